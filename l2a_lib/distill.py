"""Distil your own domain: a user's files -> a run of any student method -> a
standard Hugging Face model.

``python -m l2a_lib distill --target TGT --source SRC --task-type classification
--method l2a --out DIR`` (:func:`distill` is the same in Python):

1. reads and checks the files (``userdata``: a bad file is refused before any
   training, with a message that names the fix);
2. registers them as a task (``data.register_user_task``) whose name carries a digest
   of the data, and builds the run's configuration with ``profiles.make_config`` from
   the settings of the paper task of the same shape (text classification for single
   texts, PI for pairs, regression), the few-shot sizes overridable;
3. runs it with ``experiment.run``: the paper's runs' code, cache and checkpoints,
   no second training path;
4. saves the final student with ``save_pretrained`` (:func:`to_hugging_face`), its
   tokenizer and a model card, so that
   ``AutoModelForSequenceClassification.from_pretrained(DIR)`` loads it and predicts.

The student uses BERT's own pooler (CLS -> dense -> tanh, initialised from the
pretrained checkpoint's pooler) instead of the paper pages' mean pooling: no standard
``transformers`` class mean-pools a BERT, and the paper's BERT students are
``BertForSequenceClassification`` models. The teacher keeps the pages' mean pooling.
Students that are not BERT models (BiLSTM-soft; DistilBERT and BERT-PKD, cut from the
MPNet teacher; the teacher itself) cannot be saved this way and are refused before
training.

A saved student is also kept in the local cache (``<cache_dir>/students/<run key>``, at
full precision): asking again for a cached run copies it instead of training, and an
``--out`` folder that already holds the run's student (``distill_config.json`` names
the run key) is left as it is, so a committed example needs no training on a fresh
clone. ``dtype="float16"`` halves the saved file (the book's example); predictions then
differ from the trained student's by fp16 rounding.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import paths
from .errors import ConfigError
from .userdata import Columns, KINDS, check, check_given, encode_labels, read_table

# methods whose final model is the MiniLM-initialised BERT student
EXPORTABLE = ("student_ft", "eda", "cbert", "tinybert", "minilm", "nlpaug_ctx", "l2a",
              "l2a_wo_src", "l2a_wo_tgt", "l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark",
              "l2a_selector_off", "l2a_generator_off", "l2a_originals_off", "kd_only")
NOT_EXPORTABLE = {"majority": "it has no model", "teacher_ft": "it is the MPNet teacher",
                  "bilstm_soft": "its student is a BiLSTM",
                  "distilbert": "its student is cut from the MPNet teacher",
                  "bert_pkd4": "its student is cut from the MPNet teacher",
                  "bert_pkd6": "its student is cut from the MPNet teacher",
                  "l2a_selector_random": "it needs a learned run first (use l2a)"}


@dataclass
class Distilled:
    """What :func:`distill` returns: the run's configuration, its record, where the
    student was saved, and the in-memory student when it was trained in this call."""
    config: object
    record: dict
    out: Path
    student: object | None = None
    classes: list | None = None


def data_digest(*frames: pd.DataFrame, extra: str = "") -> str:
    """Eight hex digits over the examples' content (a changed file, a new task name)."""
    h = hashlib.sha256(extra.encode())
    for df in frames:
        h.update(pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()[:8]


def base_task(kind: str, pair: bool) -> str:
    """The paper task whose settings a user's task takes."""
    return "reg" if kind == "regression" else ("pi" if pair else "tc")


def register(target_spec: str, source_spec: str, kind: str, columns: Columns,
             source_columns: Columns | None = None, *, name: str | None = None,
             train_per_class: int = 40, n_train: int = 80, dev_size: int = 100,
             profile: str = "cpu", dev: str | None = None, test: str | None = None
             ) -> tuple[str, list, dict]:
    """Read, check and register a user's target and source; returns the task's name,
    its classes (empty for regression) and the data settings to run it with. With
    ``dev`` and ``test`` (files like the target's), the target is the training split as
    it is and no split is drawn."""
    from .data import TaskSpec
    from .tasks import register_user_task
    from .profiles import make_config
    target = read_table(target_spec, columns, kind, what="target")
    source = read_table(source_spec, source_columns or columns, kind, what="source")
    pair = columns.pair is not None
    # the sizes the run will use (the smoke profile shrinks them), checked before training
    settings = {"dev_size": dev_size, **({"n_train": n_train} if kind == "regression"
                                         else {"train_per_class": train_per_class})}
    if (dev is None) != (test is None):
        raise ConfigError("give both --dev and --test (your own splits), or neither (the target "
                          "is split by --seed)")
    if dev is not None:
        given = [read_table(f, columns, kind, what=w) for f, w in ((dev, "dev"), (test, "test"))]
        classes = check_given(target, *given, source, kind)
        target = pd.concat([encode_labels(df, classes).assign(split=s) for df, s in
                            zip((target, *given), ("train", "dev", "test"))], ignore_index=True)
        target["uid"] = [f"{s}:{i}" for i, s in enumerate(target["split"])]
    else:
        used = make_config(base_task(kind, pair), "student_ft", profile=profile, **settings).data
        classes = check(target, source, kind, train_per_class=used.train_per_class,
                        n_train=used.n_train, dev_size=used.dev_size)
        target = encode_labels(target, classes)
    source = encode_labels(source, classes)
    stem = name or Path(target_spec).stem or "user"
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:40]
    task = f"{stem}-{data_digest(target, source, extra=kind)}"
    spec = TaskSpec(name=task, title=f"{stem} (user data)", kind=kind,
                    label_names=tuple(str(c) for c in classes), pair=pair,
                    source_name=str(source_spec), target_name=str(target_spec),
                    paper_source="-", paper_target="-",
                    test_size=0,  # every example outside train and dev
                    train_sampling="given" if dev is not None else
                    ("per_class" if classes else "natural"))
    register_user_task(spec, source.assign(uid=[f"source:{i}" for i in range(len(source))]),
                       target, base_task(kind, pair))
    return task, classes, settings


def register_teacher(spec: str, classes: list) -> str:
    """A teacher by name (one of ``config.TEACHERS``, fine-tuned by the run) or a folder
    holding a fine-tuned ``BertForSequenceClassification`` (used as it is). A folder is
    checked before any training: its weights, its vocabulary (the student's, so both
    read the same token ids) and its labels (the target's classes, in the same order)."""
    from .config import TEACHERS
    from .tasks import USER_TEACHERS
    if spec in TEACHERS:
        return spec
    folder = Path(spec)
    weights = [f for f in ("model.safetensors", "pytorch_model.bin") if (folder / f).is_file()]
    if not folder.is_dir() or not weights or not (folder / "config.json").is_file():
        raise ConfigError(f"--teacher {spec}: give one of {', '.join(TEACHERS)}, or a folder "
                          "saved with save_pretrained (config.json and model.safetensors)")
    from transformers import AutoConfig, AutoTokenizer
    from .config import ModelConfig
    from .models import load_tokenizer
    cfg = AutoConfig.from_pretrained(folder)
    if cfg.model_type != "bert":
        raise ConfigError(f"--teacher {spec} is a {cfg.model_type} model: a given teacher must be a "
                          "BertForSequenceClassification with the uncased BERT vocabulary")
    if not any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        raise ConfigError(f"--teacher {spec}: no tokenizer in the folder; save it there with "
                          "tokenizer.save_pretrained")
    vocab = AutoTokenizer.from_pretrained(folder).get_vocab()
    if vocab != load_tokenizer(ModelConfig()).get_vocab():
        raise ConfigError(f"--teacher {spec}: its vocabulary is not the student's (uncased BERT), so "
                          "the two would read different token ids")
    n_out = 1 if not classes else len(classes)
    if cfg.num_labels != n_out:
        raise ConfigError(f"--teacher {spec} has {cfg.num_labels} outputs; the target needs {n_out}")
    names = [str(cfg.id2label[i]) for i in range(cfg.num_labels)] if classes else []
    if classes and names != [f"LABEL_{i}" for i in range(len(names))] and names != [str(c) for c in classes]:
        raise ConfigError(f"--teacher {spec} predicts {names}, the target's classes are "
                          f"{[str(c) for c in classes]} (in this order): relabel one of them")
    digest = hashlib.sha256((folder / weights[0]).read_bytes()).hexdigest()[:12]
    name = f"given-{digest}"
    USER_TEACHERS[name] = str(folder.resolve())
    return name


POOLINGS = ("pooler", "mean")


def make_user_config(task: str, method: str, seed: int, profile: str, settings: dict,
                     teacher: str | None = None, pooling: str = "pooler"):
    """The run's configuration: the base task's profile settings, the user's sizes, the
    student with BERT's pooler, and the teacher (``register_teacher``'s name) if given."""
    from .profiles import make_config
    if method in NOT_EXPORTABLE:
        raise ConfigError(f"--method {method} cannot be saved as a Hugging Face model "
                          f"({NOT_EXPORTABLE[method]}): choose one of {', '.join(EXPORTABLE)}")
    if method not in EXPORTABLE:
        from .config import METHODS
        what = ("is a variant of the study's pages that distill does not offer" if method in METHODS
                else "is not a method")
        raise ConfigError(f"--method {method!r} {what}; choose one of {', '.join(EXPORTABLE)}")
    config = make_config(task, method, seed, profile=profile, **settings)
    if pooling not in POOLINGS:
        raise ConfigError(f"--pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    model = dataclasses.replace(config.model, student_pooling=pooling,
                                **({"teacher": teacher} if teacher else {}))
    return dataclasses.replace(config, model=model)


def distill(target: str, source: str, *, kind: str = "classification", method: str = "l2a",
            out, columns: Columns = Columns(), source_columns: Columns | None = None,
            profile: str = "cpu", seed: int = 0, train_per_class: int = 40, n_train: int = 80,
            dev_size: int = 100, name: str | None = None, results_dir=None, cache_dir=None,
            force: bool = False, dtype: str = "float32", allow_training: bool = True,
            teacher: str | None = None, dev: str | None = None, test: str | None = None,
            pooling: str = "pooler") -> Distilled:
    """Distil a student on a user's files and save it to ``out`` (see the module)."""
    from .experiment import run
    from .records import cache_path, read_record
    from .runs import Context, final_model_hook
    if kind not in KINDS:
        raise ConfigError(f"--task-type {kind!r}: choose one of {', '.join(KINDS)}")
    task, classes, settings = register(target, source, kind, columns, source_columns, name=name,
                                       train_per_class=train_per_class, n_train=n_train,
                                       dev_size=dev_size, profile=profile, dev=dev, test=test)
    config = make_user_config(task, method, seed, profile, settings,
                              register_teacher(teacher, classes) if teacher else None, pooling)
    ctx = Context(None, results_dir, cache_dir)
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r}: choose one of {', '.join(DTYPES)}")
    kept = paths.cache_dir(cache_dir) / "students" / config.hash()
    out = Path(out)
    record_path = cache_path(config, ctx)
    if record_path.is_file() and not force:
        if saved_run(out) == (config.hash(), dtype):
            return Distilled(config, read_record(record_path), out, None, classes)
        if (kept / "config.json").is_file():
            record = read_record(record_path)
            _publish(kept, out, dtype, model_card(config, record, classes, target, source))
            return Distilled(config, record, out, None, classes)
    if not allow_training:  # a book build reads; it never trains by accident
        from .errors import MissingResults
        raise MissingResults(f"the {method} run on {task} is not in the result cache, or its "
                             f"student is not in {out}: run the same command without --no-training")
    holder: dict = {}

    def keep(model, prep):
        holder["model"], holder["tokenizer"] = model, prep.tokenizer

    token = final_model_hook.set(keep)
    try:  # a cached record without its saved student: train again to have one
        run(config, results_dir=results_dir, cache_dir=cache_dir,
            force=force or record_path.is_file())
    finally:
        final_model_hook.reset(token)
    if "model" not in holder:
        raise ConfigError(f"{method} did not hand its final model over for saving")
    record = read_record(record_path)
    card = model_card(config, record, classes, target, source)
    save_student(holder["model"], holder["tokenizer"], kept, kind=kind, classes=classes,
                 card=card, config=config)
    _publish(kept, out, dtype, card)
    return Distilled(config, record, out, holder["model"], classes)


DTYPES = ("float32", "float16")


def saved_run(folder: Path) -> tuple[str, str] | None:
    """(run key, dtype) of the student saved in ``folder``, or None."""
    meta = Path(folder) / "distill_config.json"
    if not meta.is_file() or not (Path(folder) / "config.json").is_file():
        return None
    d = json.loads(meta.read_text())
    return d.get("run_key"), d.get("dtype", "float32")


def _publish(src: Path, dst: Path, dtype: str, card: str) -> None:
    """Copy the kept student to ``dst`` with its model card; in float16, its weights
    converted."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        shutil.copy2(f, dst / f.name)
    (dst / "README.md").write_text(card)
    if dtype != "float32":
        from safetensors.torch import load_file, save_file
        import torch
        weights = dst / "model.safetensors"
        save_file({k: v.to(getattr(torch, dtype)) for k, v in load_file(weights).items()},
                  weights, metadata={"format": "pt"})
        meta = json.loads((dst / "distill_config.json").read_text())
        (dst / "distill_config.json").write_text(json.dumps({**meta, "dtype": dtype}, indent=1))
        card = (dst / "README.md").read_text()
        (dst / "README.md").write_text(card + f"\nThe weights are stored in {dtype}; predictions "
                                       "differ from the trained student's by its rounding.\n")


# --------------------------------------------------------------------- export
def to_hugging_face(student, *, kind: str, classes: list):
    """The student as a ``BertForSequenceClassification`` with the same weights: its
    encoder, BERT's pooler and the linear head (eval-mode outputs are equal); a
    mean-pooled student as :class:`~l2a_lib.hf_mean_pooled.MeanPooledBertForSequenceClassification`,
    whose code is saved with it (loading then needs ``trust_remote_code=True``)."""
    from transformers import BertConfig, BertForSequenceClassification
    enc = student.encoder
    mean = student.pooling == "mean"
    if enc.config.model_type != "bert" or (getattr(student, "pooler", None) is None and not mean):
        raise ConfigError("only a BERT student with BERT's pooler or mean pooling can be saved "
                          "as a Hugging Face model")
    cfg = BertConfig.from_dict(enc.config.to_dict())
    cfg.num_labels = student.num_labels
    cfg.classifier_dropout = student.dropout.p
    cfg.architectures = ["BertForSequenceClassification"]
    if kind == "regression":
        cfg.problem_type = "regression"
    else:
        cfg.problem_type = "single_label_classification"
        cfg.id2label = {i: str(c) for i, c in enumerate(classes)}
        cfg.label2id = {str(c): i for i, c in enumerate(classes)}
    if mean:
        from .hf_mean_pooled import MeanPooledBertForSequenceClassification as cls
        cfg.architectures = [cls.__name__]
        cfg.auto_map = {"AutoModelForSequenceClassification": f"hf_mean_pooled.{cls.__name__}"}
        model = cls(cfg)
    else:
        model = BertForSequenceClassification(cfg)
    state = {k: v for k, v in enc.state_dict().items()}
    if not mean:
        state.update({f"pooler.dense.{k}": v for k, v in student.pooler.state_dict().items()})
    missing, unexpected = model.bert.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise ConfigError(f"the student does not fit BertForSequenceClassification: missing "
                          f"{missing[:5]}, unexpected {unexpected[:5]}")
    model.classifier.load_state_dict(student.head.state_dict())
    return model.eval()


def save_student(student, tokenizer, folder: Path, *, kind: str, classes: list, card: str,
                 config=None) -> None:
    """``save_pretrained`` of the exported student and its tokenizer, README.md (the
    card) and, with ``config``, the run's configuration (distill_config.json)."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model = to_hugging_face(student, kind=kind, classes=classes)
    model.save_pretrained(folder)
    if student.pooling == "mean":  # its class, for trust_remote_code
        shutil.copy2(Path(__file__).with_name("hf_mean_pooled.py"), folder / "hf_mean_pooled.py")
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(card)
    if config is not None:
        (folder / "distill_config.json").write_text(json.dumps(
            {"run_key": config.hash(), "dtype": "float32", "config": config.to_dict()}, indent=1))


def model_card(config, record: dict, classes: list, target: str, source: str) -> str:
    """The model card: method, settings, data sizes, dev and test metrics, teacher."""
    rows = pd.DataFrame(record["rows"])
    scores = {split: {r.metric: r.value for r in rows[rows.split == split].itertuples()}
              for split in ("dev", "test")}
    fmt = lambda d: ", ".join(f"{k} {v:.3f}" for k, v in sorted(d.items()))  # noqa: E731
    teacher = record.get("teacher") or {}
    l2a = config.l2a
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-classification",
        "tags: [knowledge-distillation, l2a]", "---", "",
        f"# {config.task}: {config.method} student", "",
        f"A {len(config.model.student_layers)}-layer BERT student ({config.model.student}, "
        f"layers {list(config.model.student_layers)}, {record['n_params'] / 1e6:.1f}M parameters) "
        + ("fine-tuned on the target training split alone (no teacher)"
           if config.method == "student_ft" else f"distilled from {config.model.teacher}")
        + f" with `{config.method}` by the L2A companion (`python -m l2a_lib distill`), profile "
        f"`{config.profile}`, seed {config.seed}.", "",
        "## Data", "",
        f"- target: `{Path(target).name}`; source: `{Path(source).name}`",
        f"- task type: {'regression' if not classes else 'classification'}"
        + (f", classes {', '.join(map(str, classes))} (label ids in this order)" if classes else ""),
        "- sizes: " + ", ".join(f"{k} {v}" for k, v in record["sizes"].items()),
        "", "## Results", "",
        f"- dev: {fmt(scores['dev'])}", f"- test: {fmt(scores['test'])}",
        ("- teacher: " + ("given, fine-tuned by the user" if config.model.teacher.startswith("given-")
                          else f"{config.model.teacher} fine-tuned on the target train split")
         + f"; dev: {fmt(teacher.get('best_dev') or {})}") if teacher else "- teacher: not used",
        "", "## Settings", "",
        f"- max length {config.data.max_length}, student pooling: "
        + ("the mean of the token states (load with `trust_remote_code=True`: the class is "
           "`hf_mean_pooled.py` in this folder)" if config.model.student_pooling == "mean"
           else "BERT's pooler ([CLS] -> dense -> tanh)"),
        f"- L2A version {l2a.version or 1}, {l2a.episodes} episodes" if l2a else "- no L2A",
        f"- run key `{config.hash()}`; full configuration in `distill_config.json`",
        "", "## Caveats", "",
        "- The augmentation masked LM (EDA aside) was adapted to the paper's four domains, "
        "not to this data.",
        "- The test split is part of your target file, drawn by the seed; few-shot metrics "
        "vary across seeds: run several before drawing conclusions.",
    ]
    return "\n".join(lines) + "\n"

