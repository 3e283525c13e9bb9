"""Task registry and loaders: source and target domain of each of the four tasks.

Every loader returns a DataFrame with the columns ``text_a``, ``text_b``
(``None`` for single-sentence tasks) and ``label`` (int class, or float for
regression), plus ``uid`` (a stable id of the row in its file).

Splits of the target (``load_task``):

* ``test``  -- fixed per task (a stratified sample drawn with the task's own
  split seed, independent of the run seed), so every method and seed is
  scored on the same examples;
* ``train`` -- few-shot: ``train_per_class`` examples per class for TC and NLI;
  ``n_train`` examples at the target's natural class balance for PI (as the
  paper, which kept the CIKM target as is) and for regression; drawn with the
  run seed from the rest;
* ``dev``   -- small (``dev_size``), stratified by the target's class
  proportions, drawn with the run seed from what train left over. Used for
  early stopping and, later, the selector's reward.

The three are disjoint by construction (``tests/test_data.py`` checks it).
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .errors import DataError
from . import paths, tasks
from .config import DataConfig
from .profiles import make_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str
    kind: str  # "classification" | "regression"
    label_names: tuple[str, ...]
    pair: bool
    source_name: str
    target_name: str
    paper_source: str
    paper_target: str
    test_size: int
    train_sampling: str = "per_class"  # "per_class" (few-shot k per class) | "natural" | "given"
    split_seed: int = 20210121
    note: str = ""

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.label_names)

    @property
    def dev_metric(self) -> str:
        """What early stopping maximises on the target dev set: Pearson for
        regression; for classification the mean of ACC and F1, because on PI's
        imbalanced dev set (15% paraphrases) accuracy alone rewards a student
        that predicts "not paraphrase" for everything."""
        return "pearson" if self.kind == "regression" else "acc_f1"


# ----------------------------------------------------------------- file reading
def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(
            f"Missing data file {path} ({what}). Check that L2A_DATA_DIR points at the "
            "companion's data folder and that the file is there (see its README.md)."
        )
    return path


def _read_tsv(path: Path, columns: list[str], *, header: bool, quoted: bool = False,
              encoding: str = "utf-8") -> list[tuple[int, dict]]:
    """Rows of a TSV as ``(line_number, {column: value})``; a row with the wrong
    number of fields raises ``DataError`` naming the file and line."""
    rows = []
    with open(path, encoding=encoding, newline="") as fh:
        if quoted:
            reader = csv.reader(fh, delimiter="\t", quotechar='"')
            lines = ((reader.line_num, r) for r in reader)
        else:
            lines = ((i + 1, line.rstrip("\r\n").split("\t")) for i, line in enumerate(fh))
        for lineno, fields in lines:
            if header and lineno == 1:
                if [f.strip() for f in fields[: len(columns)]] != columns:
                    raise DataError(
                        f"{path}, line 1: header {fields!r} does not start with the expected "
                        f"columns {columns}. Is this the right file?"
                    )
                continue
            if fields == [""] or not fields:
                continue  # blank line
            if len(fields) != len(columns):
                raise DataError(
                    f"{path}, line {lineno}: malformed row, expected {len(columns)} tab-separated "
                    f"fields ({', '.join(columns)}) but found {len(fields)}. Fix or remove that line."
                )
            rows.append((lineno, dict(zip(columns, fields))))
    return rows


def _label(path: Path, lineno: int, raw: str, mapping: dict) -> int | float:
    key = raw.strip()
    if key not in mapping:
        raise DataError(
            f"{path}, line {lineno}: unknown label {raw!r}; allowed labels are {sorted(mapping)}. "
            "Fix the label or remove the line."
        )
    return mapping[key]


def _frame(records: list[dict], path: Path, pair: bool) -> pd.DataFrame:
    """Build the frame, dropping (and counting) rows with an empty text."""
    df = pd.DataFrame.from_records(records, columns=["uid", "text_a", "text_b", "label"])
    empty = df["text_a"].str.strip().eq("")
    if pair:
        empty |= df["text_b"].fillna("").str.strip().eq("")
    n_empty = int(empty.sum())
    if n_empty:
        log.warning("%s: dropped %d row(s) with an empty text", path, n_empty)
    df = df.loc[~empty].reset_index(drop=True)
    df.attrs["dropped_empty"] = n_empty
    df.attrs["file"] = str(path)
    return df


# --------------------------------------------------------------- local loaders
BIN = {"0": 0, "1": 1}


def _sst2(d: Path) -> pd.DataFrame:
    p = _need(d / "sst2" / "train.tsv", "SST-2 train")
    rows = _read_tsv(p, ["sentence", "label"], header=True)
    return _frame([{"uid": f"sst2:{n}", "text_a": r["sentence"], "text_b": None,
                    "label": _label(p, n, r["label"], BIN)} for n, r in rows], p, False)


def _rt(d: Path) -> pd.DataFrame:
    records, last = [], None
    for name, label in (("rt-polarity.neg", 0), ("rt-polarity.pos", 1)):
        p = last = _need(d / "rt_polarity" / name, "RT sentence polarity")
        with open(p, encoding="latin-1") as fh:
            for n, line in enumerate(fh, 1):
                records.append({"uid": f"rt:{name}:{n}", "text_a": line.strip(), "text_b": None,
                                "label": label})
    return _frame(records, last.parent, False)


def _qqp(d: Path) -> pd.DataFrame:
    p = _need(d / "qqp_subset" / "qqp_sample_clean.tsv", "QQP subset")
    cols = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    rows = _read_tsv(p, cols, header=True)
    return _frame([{"uid": f"qqp:{n}", "text_a": r["question1"], "text_b": r["question2"],
                    "label": _label(p, n, r["is_duplicate"], BIN)} for n, r in rows], p, True)


def _cikm_target(d: Path) -> pd.DataFrame:
    # Spanish file: es1, en1, es2, en2, label -- we use the English translations.
    p = _need(d / "cikm2018" / "cikm_spanish_train_20180516.txt", "CIKM 2018 Spanish pairs")
    rows = _read_tsv(p, ["es1", "en1", "es2", "en2", "label"], header=False)
    return _frame([{"uid": f"cikm_es:{n}", "text_a": r["en1"], "text_b": r["en2"],
                    "label": _label(p, n, r["label"], BIN)} for n, r in rows], p, True)


SICK_LABELS = {"ENTAILMENT": 1, "NEUTRAL": 0, "CONTRADICTION": 0}
RTE_LABELS = {"entailment": 1, "not_entailment": 0}


def _sick(d: Path) -> pd.DataFrame:
    p = _need(d / "sick" / "SICK.txt", "SICK")
    cols = ["pair_ID", "sentence_A", "sentence_B", "relatedness_score", "entailment_judgment"]
    rows = _read_tsv(p, cols, header=True)
    return _frame([{"uid": f"sick:{n}", "text_a": r["sentence_A"], "text_b": r["sentence_B"],
                    "label": _label(p, n, r["entailment_judgment"], SICK_LABELS)} for n, r in rows],
                  p, True)


def _rte(d: Path) -> pd.DataFrame:
    # All labelled RTE (the re-split train/dev/test) is pooled; load_task re-splits it.
    frames = []
    for split in ("train", "dev", "test"):
        p = _need(d / "rte" / f"{split}.tsv", f"RTE {split}")
        rows = _read_tsv(p, ["index", "sentence1", "sentence2", "label"], header=True)
        frames.append(_frame([{"uid": f"rte:{split}:{n}", "text_a": r["sentence1"],
                               "text_b": r["sentence2"],
                               "label": _label(p, n, r["label"], RTE_LABELS)} for n, r in rows],
                             p, True))
    out = pd.concat(frames, ignore_index=True)
    out.attrs["dropped_empty"] = sum(f.attrs["dropped_empty"] for f in frames)
    return out


def _amazon(domain: str, min_votes: int = 1) -> Callable[[Path], pd.DataFrame]:
    """The reviews of ``domain`` with at least ``min_votes`` helpfulness votes."""
    def load(d: Path) -> pd.DataFrame:
        p = _need(d / "amazon_blitzer_helpfulness" / f"{domain}.tsv", f"Amazon {domain} reviews")
        cols = ["unique_id", "title", "review_text", "rating", "helpful_yes", "helpful_total",
                "sentiment_file"]
        records = []
        for n, r in _read_tsv(p, cols, header=True, quoted=True):
            try:
                yes, total = int(r["helpful_yes"]), int(r["helpful_total"])
            except ValueError:
                raise DataError(f"{p}, line {n}: helpful_yes/helpful_total "
                                f"{r['helpful_yes']!r}/{r['helpful_total']!r} are not integers. "
                                "Fix or remove the line.") from None
            if total < max(1, min_votes):
                continue  # no votes: no helpfulness ratio (or fewer than asked for)
            if not 0 <= yes <= total:
                raise DataError(f"{p}, line {n}: helpful_yes={yes} is outside [0, helpful_total="
                                f"{total}]. Fix or remove the line.")
            text = f"{r['title'].strip()}. {r['review_text'].strip()}".strip(". ")
            records.append({"uid": f"amazon_{domain}:{n}", "text_a": text, "text_b": None,
                            "label": yes / total})
        return _frame(records, p, False)
    return load


# ----------------------------------------------------------------- hub loaders
def _hub(name: str, config: str | None, splits: list[str], fields: tuple[str, str | None, str],
         label_map: dict | None) -> pd.DataFrame:
    """Load a paper data set by name through ``datasets`` (needs a network)."""
    try:
        import datasets
        parts = [datasets.load_dataset(name, config, split=s) for s in splits]
    except Exception as exc:  # noqa: BLE001 - any hub failure gets the same advice
        raise DataError(
            f"Could not load {name}{'/' + config if config else ''} from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}). Without a network use DataConfig(source='local') "
            "and L2A_DATA_DIR (the cpu profile)."
        ) from exc
    a, b, y = fields
    records = []
    for s, part in zip(splits, parts):
        for i, row in enumerate(part):
            lab = row[y] if label_map is None else label_map.get(row[y])
            if lab is None:
                continue
            records.append({"uid": f"{name}:{s}:{i}", "text_a": row[a],
                            "text_b": row[b] if b else None, "label": lab})
    return _frame(records, Path(name), b is not None)


HUB_LOADERS: dict[tuple[str, str], Callable[[], pd.DataFrame]] = {
    ("tc", "source"): lambda: _hub("glue", "sst2", ["train"], ("sentence", None, "label"), None),
    ("tc", "target"): lambda: _hub("rotten_tomatoes", None, ["train", "validation", "test"],
                                   ("text", None, "label"), None),
    ("pi", "source"): lambda: _hub("glue", "qqp", ["train"], ("question1", "question2", "label"),
                                   None),
    ("nli", "source"): lambda: _hub("multi_nli", None, ["train"], ("premise", "hypothesis", "label"),
                                    {0: 1, 1: 0, 2: 0}),
    ("nli", "target"): lambda: _hub("scitail", "tsv_format", ["train", "validation", "test"],
                                    ("premise", "hypothesis", "label"), {"entails": 1, "neutral": 0}),
}

# ---------------------------------------------------------------------- registry
TASK_REGISTRY: dict[str, TaskSpec] = {
    "tc": TaskSpec("tc", "Text classification", "classification", ("negative", "positive"), False,
                   "SST-2 (GLUE train)", "RT sentence polarity (Pang & Lee)", "SST-2", "RT",
                   test_size=4000),
    "pi": TaskSpec("pi", "Paraphrase identification", "classification",
                   ("not paraphrase", "paraphrase"), True, "QQP (23,497-pair subset)",
                   "CIKM AnalytiCup 2018 (1,400 Spanish pairs, English translations)",
                   "Quora QP", "CIKM AnalytiCup 2018", test_size=900, train_sampling="natural",
                   note="source is ~6% of QQP; as in the paper the CIKM target keeps its natural "
                        "class balance (15% paraphrases): 300 training pairs, not k per class"),
    "nli": TaskSpec("nli", "Natural language inference", "classification",
                    ("not entailment", "entailment"), True,
                    "SICK (entailment vs neutral/contradiction)", "RTE (GLUE, all labelled pairs)",
                    "MultiNLI", "SciTail", test_size=2000,
                    note="MultiNLI and SciTail are not available offline; SICK and RTE stand in"),
    "reg": TaskSpec("reg", "Review helpfulness regression", "regression", ("helpfulness",), False,
                    "Amazon Electronics (Blitzer et al. 2007)", "Amazon Kitchen (Blitzer et al. 2007)",
                    "Amazon Electronics", "Amazon Watches", test_size=1200,
                    train_sampling="natural",
                    note="Watches is not available offline; Kitchen stands in. Target = "
                         "helpful_yes / helpful_total on reviews with >= 1 vote"),
}

LOCAL_LOADERS: dict[tuple[str, str], Callable[[Path], pd.DataFrame]] = {
    ("tc", "source"): _sst2, ("tc", "target"): _rt,
    ("pi", "source"): _qqp, ("pi", "target"): _cikm_target,
    ("nli", "source"): _sick, ("nli", "target"): _rte,
    ("reg", "source"): _amazon("electronics"), ("reg", "target"): _amazon("kitchen"),
}
amazon_reviews = _amazon  # the regression loader with a vote threshold (l2a_lib.candidates)


def get_task(task: str) -> TaskSpec:
    if task in tasks.USER_REGISTRY:
        return tasks.USER_REGISTRY[task][0]
    if task not in TASK_REGISTRY:
        raise DataError(f"unknown task {task!r}; known tasks are {list(TASK_REGISTRY)}")
    return TASK_REGISTRY[task]


def load_domain(task: str, domain: str, *, source: str = "local", data_dir=None) -> pd.DataFrame:
    """All labelled examples of a task's ``source`` or ``target`` domain."""
    get_task(task)
    if domain not in ("source", "target"):
        raise DataError(f"domain={domain!r} must be 'source' or 'target'")
    if task in tasks.USER_REGISTRY:  # a frame, or a loader of the data folder
        found = tasks.USER_REGISTRY[task][1 if domain == "source" else 2]
        return found(paths.data_dir(data_dir)) if callable(found) else found.copy()
    if source == "hub" and (task, domain) in HUB_LOADERS:
        return HUB_LOADERS[(task, domain)]()
    # The CIKM and Amazon originals are not on the hub: local files serve every profile.
    return LOCAL_LOADERS[(task, domain)](paths.data_dir(data_dir))


# ------------------------------------------------------------------------ splits
@dataclass
class TaskData:
    spec: TaskSpec
    source: pd.DataFrame
    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    dropped_empty: dict[str, int] | None = None  # rows with an empty text, per domain

    def sizes(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("source", "train", "dev", "test")}


def _stratified(df: pd.DataFrame, n: int, rng: np.random.RandomState, proportions: pd.Series | None,
                what: str) -> pd.Index:
    """Draw ``n`` rows; classification draws per class in the given proportions."""
    if n > len(df):
        raise DataError(f"cannot draw {n} {what} examples from {len(df)} available")
    if proportions is None:
        return df.index[rng.permutation(len(df))[:n]]
    counts = (proportions * n).round().astype(int)
    counts.iloc[-1] = n - counts.iloc[:-1].sum()  # make the total exact
    picked = []
    for label, k in counts.items():
        idx = df.index[df["label"] == label]
        if k > len(idx):
            raise DataError(f"cannot draw {k} {what} examples of class {label} from {len(idx)}")
        picked.append(idx[rng.permutation(len(idx))[:k]])
    return pd.Index(np.concatenate(picked))


def split_target(target: pd.DataFrame, spec: TaskSpec, cfg: DataConfig, seed: int
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, dev, test) of the target domain; see the module docstring."""
    if spec.train_sampling == "given":  # a user's own splits (distill --dev / --test)
        train, dev, test = (target[target["split"] == s].drop(columns="split").reset_index(drop=True)
                            for s in ("train", "dev", "test"))
        if cfg.limit:
            train, dev, test = (f.iloc[: cfg.limit] for f in (train, dev, test))
        return train, dev, test
    cls = spec.kind == "classification"
    props = target["label"].value_counts(normalize=True).sort_index() if cls else None
    if spec.test_size:
        test_idx = _stratified(target, spec.test_size,
                               np.random.RandomState(spec.split_seed), props, "test")
    else:  # a user's task: train and dev first, every other example for test
        test_idx = target.index[:0]
    pool = target.drop(index=test_idx)
    rng = np.random.RandomState(seed)
    if spec.train_sampling == "per_class":
        k = cfg.train_per_class
        train_idx = _stratified(pool, k * spec.num_labels, rng,
                                pd.Series(1.0 / spec.num_labels, index=props.index), "train")
    else:  # natural class proportions (stratified), or plain random for regression
        train_idx = _stratified(pool, cfg.n_train, rng, props, "train")
    rest = pool.drop(index=train_idx)
    dev_idx = _stratified(rest, cfg.dev_size, rng, props, "dev")
    if not spec.test_size:
        test_idx = rest.index.drop(dev_idx)
    train, dev, test = (target.loc[i].reset_index(drop=True) for i in (train_idx, dev_idx, test_idx))
    if cfg.limit:  # smoke profile: a mixed-class head of each split (draws are class-ordered)
        train, dev, test = (f.sample(frac=1.0, random_state=seed).iloc[: cfg.limit]
                            .reset_index(drop=True) for f in (train, dev, test))
    return train, dev, test


def load_task(task: str, cfg: DataConfig | None = None, seed: int = 0, data_dir=None) -> TaskData:
    """Source domain plus the target's train / dev / test splits for a seed
    (``cfg`` defaults to the cpu profile's data settings of the task)."""
    cfg = cfg or make_config(task, "student_ft").data
    if cfg.task != task:
        raise DataError(f"DataConfig is for task {cfg.task!r}, not {task!r}")
    spec = get_task(task)
    source = load_domain(task, "source", source=cfg.source, data_dir=data_dir)
    target = load_domain(task, "target", source=cfg.source, data_dir=data_dir)
    train, dev, test = split_target(target, spec, cfg, seed)
    if cfg.limit:
        source = source.iloc[: cfg.limit * 4].reset_index(drop=True)
    dropped = {"source": source.attrs.get("dropped_empty", 0),
               "target": target.attrs.get("dropped_empty", 0)}
    return TaskData(spec, source, train, dev, test, dropped)
