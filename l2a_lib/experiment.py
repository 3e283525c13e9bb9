"""``run(config) -> tidy DataFrame`` and the result cache.

Each finished run is one small JSON file ``<results_dir>/runs/<hash>.json``
(written to a temporary file, then renamed, so a killed run leaves nothing
half-written). The hash covers the full config plus ``CODE_VERSION``; a rerun
of a cached config reads the file instead of training. An L2A run also saves a
checkpoint after each episode (``checkpoint``): run again after a kill, it goes
on from there, with the same result as a run never interrupted.

Fine-tuned teachers are cached locally under ``<cache_dir>/teachers`` (never
committed) and reused by every later method of the same task and seed.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from . import data as data_mod
from . import models, paths
from .checkpoint import EpisodeCheckpoint, EpochCheckpoint, read_progress
from .config import CODE_VERSION, METHODS, ExperimentConfig, without_none
from .train import Encoded, bf16_in_use, encode, fine_tune

log = logging.getLogger(__name__)

CORE_COLUMNS = ["table", "task", "method", "seed", "split", "metric", "value", "n_params",
                "profile", "teacher", "student", "n_train", "n_dev", "n_test", "config_hash",
                "code_version", "wall_seconds"]


@dataclass
class Context:
    """Where a run reads and writes."""
    data_dir: Path | None = None
    results_dir: Path | None = None
    cache_dir: Path | None = None
    # which fine-tuned teacher the run used, and whether it was trained in the run
    # (then the run's wall time includes the teacher's fine-tuning)
    teacher_used: dict | None = dataclasses.field(default=None, compare=False)
    # seconds spent in earlier processes on a teacher fine-tuning resumed here
    # (``teacher_checkpoint``): counted in the run's wall time
    seconds_before: float = dataclasses.field(default=0.0, compare=False)

    @property
    def runs(self) -> Path:
        p = paths.results_dir(self.results_dir) / "runs"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def checkpoint_dir(self, config: ExperimentConfig) -> Path:
        """Where a long run saves its episode checkpoints (``checkpoint``)."""
        return paths.results_dir(self.results_dir) / ".checkpoints" / config.hash()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------- shared steps
@dataclass
class Prepared:
    task: data_mod.TaskData
    tokenizer: object
    train: Encoded
    dev: Encoded
    test: Encoded

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id


def prepare(config: ExperimentConfig, ctx: Context) -> Prepared:
    task = data_mod.load_task(config.task, config.data, seed=config.seed, data_dir=ctx.data_dir)
    tok = models.load_tokenizer(config.model)
    enc = {s: encode(getattr(task, s), tok, config.data.max_length) for s in ("train", "dev", "test")}
    return Prepared(task, tok, enc["train"], enc["dev"], enc["test"])


def teacher_key(config: ExperimentConfig) -> str:
    """What determines a fine-tuned teacher (not the method that uses it)."""
    m = config.model
    blob = json.dumps({"data": without_none(dataclasses.asdict(config.data)), "teacher": m.teacher,
                       "pooling": m.pooling, "dropout": m.dropout, "seed": config.seed,
                       "train": dataclasses.asdict(config.teacher_train),
                       "code_version": CODE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def teacher_files(config: ExperimentConfig, cache_dir=None) -> tuple[Path, Path]:
    """Where the fine-tuned teacher of ``config`` is cached: its weights and its
    fine-tuning record (``<cache_dir>/teachers/<teacher_key>.pt`` / ``.json``)."""
    folder = paths.cache_dir(cache_dir) / "teachers"
    key = teacher_key(config)
    return folder / f"{key}.pt", folder / f"{key}.json"


def teacher_checkpoint(config: ExperimentConfig, cache_dir=None) -> EpochCheckpoint:
    """The per-epoch checkpoint of the teacher fine-tuning of ``config``, beside the
    teacher's files (``<cache_dir>/teachers/<teacher_key>.ckpt/``), so that any run that
    needs the teacher resumes it."""
    weights, _ = teacher_files(config, cache_dir)
    return EpochCheckpoint(weights.with_suffix(".ckpt"), run_id=teacher_key(config))


def get_teacher(config: ExperimentConfig, ctx: Context, prep: Prepared):
    """Teacher-FT for this task and seed: from the local cache, or fine-tuned now
    (resuming after the last epoch of a fine-tuning cut off earlier)."""
    spec = prep.task.spec
    teacher = models.build_teacher(config.model, spec.num_labels, prep.tokenizer,
                                   seed=config.seed, cache=ctx.cache_dir)
    key = teacher_key(config)
    weights, meta = teacher_files(config, ctx.cache_dir)
    if weights.is_file() and meta.is_file():
        teacher.load_state_dict(torch.load(weights, map_location="cpu"))
        info = json.loads(meta.read_text())
        if "sha256" not in info:  # a teacher saved before its content hash was recorded
            info["sha256"] = paths.file_sha256(weights)
        ctx.teacher_used = _teacher_summary(key, info, trained_here=False)
        return teacher, info
    ckpt = teacher_checkpoint(config, ctx.cache_dir)
    ctx.seconds_before += (read_progress(ckpt.folder) or {}).get("seconds", 0.0)
    result = fine_tune(teacher, prep.train, prep.dev, spec.kind, config.teacher_train,
                       seed=config.seed, pad_id=prep.pad_id, dev_metric=spec.dev_metric,
                       desc=f"teacher {config.task} s{config.seed}", checkpoint=ckpt)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".pt.tmp")
    torch.save(teacher.state_dict(), tmp)
    os.replace(tmp, weights)
    info = {**dataclasses.asdict(result), "sha256": paths.file_sha256(weights)}
    atomic_write_text(meta, json.dumps(info))
    ckpt.clear()
    ctx.teacher_used = _teacher_summary(key, info, trained_here=True)
    return teacher, info


def _teacher_summary(key: str, info: dict, trained_here: bool) -> dict:
    """What a run records of its teacher: the cache key, the content hash of its
    weights (runs that record the same one distilled the very same teacher), the
    best dev scores (a teacher retrained on a new machine can be checked against the
    committed Teacher-FT record) and whether it was fine-tuned inside this run."""
    return {"key": key, "sha256": info.get("sha256"),
            "best_dev": info.get("best_dev"), "best_epoch": info.get("best_epoch"),
            "trained_here": trained_here,
            "seconds": round(float(info.get("seconds", 0.0)), 1) if trained_here else 0.0}


def cpu_name() -> str:
    """The processor model (wall times are only comparable on the same one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb() -> float | None:
    """The peak resident memory of this process so far, in MB (None where the
    ``resource`` module does not exist)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024 if platform.system() == "Darwin" else 1024), 1)


FP32_FALLBACK = " (fp32: no native bf16)"


def machine_kind(cpu: str | None, bf16: bool | None) -> str | None:
    """The processor as wall times know it: its model ``cpu``, marked
    ``FP32_FALLBACK`` where the run's bf16 fell back to fp32 (``bf16`` False), since
    such runs take several times longer on the same model. ``bf16`` None (a record
    made before it was recorded) keeps the bare model; ``cpu`` None stays None."""
    return cpu + FP32_FALLBACK if cpu is not None and bf16 is False else cpu


def this_machine_kind() -> str:
    """:func:`machine_kind` of this machine (its processor, and whether its runs get
    bf16: :func:`train.bf16_in_use`)."""
    return machine_kind(cpu_name(), bf16_in_use())


def compact_predictions(kind: str, logits) -> str | list[float]:
    """Test predictions small enough for a result file: class ids as one string of
    digits, or regression outputs rounded to 4 decimals (paired tests need them)."""
    import numpy as np
    logits = np.asarray(logits)
    if kind == "classification":
        return "".join(str(int(c)) for c in logits.argmax(-1))
    return [round(float(x), 4) for x in logits.reshape(-1)]


def _score(model, prep: Prepared, config: ExperimentConfig, train_cfg,
           sink: dict | None = None) -> list[dict]:
    """dev and test metrics; with ``sink``, also the compact test predictions."""
    from . import metrics
    from .train import predict
    rows = []
    for split, enc in (("dev", prep.dev), ("test", prep.test)):
        logits = predict(model, enc, pad_id=prep.pad_id, batch_size=train_cfg.eval_batch_size,
                         bf16=train_cfg.bf16, desc=f"eval {split}")
        scores = metrics.compute(prep.task.spec.kind, logits, enc.labels)
        rows += [{"split": split, "metric": k, "value": v} for k, v in scores.items()]
        if split == "test" and sink is not None:
            sink["test_predictions"] = compact_predictions(prep.task.spec.kind, logits)
    return rows


# -------------------------------------------------------------------- methods
def run_teacher_ft(config: ExperimentConfig, ctx: Context) -> dict:
    """Teacher-FT: the pretrained teacher fine-tuned on the target train split only."""
    prep = prepare(config, ctx)
    teacher, info = get_teacher(config, ctx, prep)
    out = {"n_params": teacher.n_params(), "fine_tune": info, "sizes": prep.task.sizes()}
    out["rows"] = _score(teacher, prep, config, config.teacher_train, sink=out)
    return out


def run_student_ft(config: ExperimentConfig, ctx: Context) -> dict:
    """Student-FT: the pretrained (truncated) student fine-tuned on the target train split."""
    prep = prepare(config, ctx)
    spec = prep.task.spec
    student = models.build_student(config.model, spec.num_labels, seed=config.seed,
                                   cache=ctx.cache_dir)
    result = fine_tune(student, prep.train, prep.dev, spec.kind, config.student_train,
                       seed=config.seed, pad_id=prep.pad_id, dev_metric=spec.dev_metric,
                       desc=f"student {config.task} s{config.seed}")
    out = {"n_params": student.n_params(), "fine_tune": dataclasses.asdict(result),
           "sizes": prep.task.sizes()}
    out["rows"] = _score(student, prep, config, config.student_train, sink=out)
    return out


def _registry() -> dict[str, Callable[[ExperimentConfig, Context], dict]]:
    from .config import L2A_METHODS
    from .distill import run_l2a
    from .methods import METHODS as baselines
    return {"teacher_ft": run_teacher_ft, "student_ft": run_student_ft, **baselines,
            **{m: run_l2a for m in L2A_METHODS}}


METHOD_REGISTRY: dict[str, Callable[[ExperimentConfig, Context], dict]] = _registry()
assert set(METHOD_REGISTRY) == set(METHODS)


# ---------------------------------------------------------------------- cache
def cache_path(config: ExperimentConfig, ctx: Context | None = None) -> Path:
    return (ctx or Context()).runs / f"{config.hash()}.json"


def is_cached(config: ExperimentConfig, ctx: Context | None = None) -> bool:
    return cache_path(config, ctx).is_file()


VARIED = {"fig2_data_size": ("train_per_class", ("data", "train_per_class")),
          "sensitivity_T": ("T", ("l2a", "temperature")),
          "sensitivity_alpha": ("alpha", ("l2a", "alpha"))}


def varied_value(config: ExperimentConfig | dict) -> tuple[str, object] | None:
    """(column, value) of the setting a study varies, e.g. ("T", 0.5); None for a
    run outside the studies. Takes a config or its dict (as stored in a record)."""
    cfg = config.to_dict() if isinstance(config, ExperimentConfig) else config
    varied = VARIED.get(cfg["table"])
    if not varied:
        return None
    name, path = varied
    value = cfg
    for key in path:
        value = (value or {}).get(key)
    return name, value


def record_to_frame(record: dict) -> pd.DataFrame:
    """Tidy rows of one cached run, every setting in a column."""
    cfg = record["config"]
    sizes = record.get("sizes", {})
    env = record.get("environment") or {}
    base = {"table": cfg["table"], "task": cfg["task"], "method": cfg["method"],
            "seed": cfg["seed"], "n_params": record.get("n_params"), "profile": cfg["profile"],
            "teacher": cfg["model"]["teacher"], "student": cfg["model"]["student"],
            "n_train": sizes.get("train"), "n_dev": sizes.get("dev"), "n_test": sizes.get("test"),
            "config_hash": record["config_hash"], "code_version": record["code_version"],
            "wall_seconds": record.get("wall_seconds"),
            # the run's torch threads (1 in runs computed two at a time on two cores)
            "threads": env.get("threads"),
            # the processor it ran on: wall times compare only on the same one
            # (marked where its bf16 fell back to fp32: machine_kind)
            "cpu": machine_kind(env.get("cpu"), env.get("bf16")),
            # seconds of the run spent fine-tuning its teacher (0: it was cached;
            # missing in records older than this field)
            "teacher_seconds": (record.get("teacher") or {}).get("seconds")}
    settings = pd.json_normalize({k: v for k, v in cfg.items()
                                  if k not in ("table", "task", "method", "seed", "profile")},
                                 sep=".").iloc[0].to_dict()
    settings = {k: (json.dumps(v) if isinstance(v, (list, tuple)) else v)
                for k, v in settings.items()}
    varied = varied_value(cfg)
    if varied:  # the value a study varies gets a column of its own
        base[varied[0]] = varied[1]
    rows = [{**base, **r, **settings} for r in record["rows"]]
    df = pd.DataFrame(rows)
    return df[CORE_COLUMNS + [c for c in df.columns if c not in CORE_COLUMNS]]


class CorruptResult(ValueError):
    """A result file that is not a complete record (results are written atomically,
    so this only happens when a file is edited or copied by hand)."""


def read_record(path) -> dict:
    """One cached result record; a clear error names the file if it is not valid."""
    try:
        record = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptResult(f"corrupt result file {path} ({e}); delete it and rerun the run "
                            "(every other cached run is kept)") from e
    if not isinstance(record, dict) or "rows" not in record or "config" not in record:
        raise CorruptResult(f"corrupt result file {path} (no 'config' / 'rows'); delete it "
                            "and rerun the run")
    return record


def run(config: ExperimentConfig, *, data_dir=None, results_dir=None, cache_dir=None,
        force: bool = False) -> pd.DataFrame:
    """Run one experiment (or read it from the cache) and return its tidy rows. An L2A
    run cut off earlier resumes from its last episode checkpoint; ``force`` recomputes
    from the start. The result file is written atomically: a reader never sees half
    of one, and two processes computing the same run leave one complete record."""
    ctx = Context(data_dir, results_dir, cache_dir)
    path = cache_path(config, ctx)
    if path.is_file() and not force:
        return record_to_frame(read_record(path))
    if force:  # recompute from the start, not from an episode checkpoint
        EpisodeCheckpoint(ctx.checkpoint_dir(config)).clear()
    return _compute(config, ctx, path)


def _compute(config: ExperimentConfig, ctx: Context, path: Path) -> pd.DataFrame:
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.time()
    out = METHOD_REGISTRY[config.method](config, ctx)
    import transformers
    record = {
        "config": config.to_dict(), "config_hash": config.hash(), "code_version": CODE_VERSION,
        "rows": out.pop("rows"), "n_params": out.pop("n_params"), "sizes": out.pop("sizes"),
        # a run resumed from a checkpoint: the time of the earlier pieces too
        "wall_seconds": round(time.time() - t0 + out.pop("wall_seconds_before", 0.0)
                              + ctx.seconds_before, 1),
        "started_at": started.isoformat(timespec="seconds"),
        "environment": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "python": platform.python_version(), "threads": torch.get_num_threads(),
                        "cpu": cpu_name(),
                        # what the config's bf16=True parts got: bf16 autocast, or
                        # fp32 on a CPU without native bf16 (train.bf16_in_use)
                        "bf16": bf16_in_use(),
                        # the process's peak memory (the workflow's mem_mb comes from it)
                        "max_rss_mb": peak_rss_mb()},
        "extra": out,
    }
    if ctx.teacher_used is not None:
        record["teacher"] = ctx.teacher_used
    atomic_write_text(path, json.dumps(record, indent=1, default=float))
    EpisodeCheckpoint(ctx.checkpoint_dir(config)).clear()
    return record_to_frame(record)


def load_record(config: ExperimentConfig, results_dir=None) -> dict:
    """The full cached record of a run (rows plus everything the method logged)."""
    path = cache_path(config, Context(results_dir=results_dir))
    if not path.is_file():
        from .report import MissingResults
        raise MissingResults(f"run {config.task}/{config.method}/seed {config.seed} is not cached")
    return read_record(path)


def load_records(tasks, methods, seeds, profile: str = "cpu", results_dir=None) -> dict:
    """{(task, method, seed): record} of the cached runs among these (each method in its
    home table; runs not computed yet are left out)."""
    from .config import make_config
    ctx = Context(results_dir=results_dir)
    out = {}
    for t in tasks:
        for m in methods:
            for s in seeds:
                path = cache_path(make_config(t, m, s, profile=profile), ctx)
                if path.is_file():
                    out[(t, m, s)] = read_record(path)
    return out


def load_test_labels(tasks, profile: str = "cpu", data_dir=None) -> tuple[dict, dict]:
    """({task: test labels}, {task: "classification" | "regression"}): the fixed test
    set of each task, which every method and seed is scored on (``data.split_target``)."""
    from .config import make_config
    labels, kinds = {}, {}
    for t in tasks:
        td = data_mod.load_task(t, make_config(t, "l2a", profile=profile).data, seed=0,
                                data_dir=data_dir)
        labels[t], kinds[t] = td.test["label"].to_numpy(), td.spec.kind
    return labels, kinds


def load_results(results_dir=None) -> pd.DataFrame:
    """Every cached run as one tidy frame (empty frame with the core columns if none)."""
    runs = Context(results_dir=results_dir).runs
    frames = [record_to_frame(read_record(p)) for p in sorted(runs.glob("*.json"))]
    if not frames:
        return pd.DataFrame(columns=CORE_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    return df[CORE_COLUMNS + [c for c in df.columns if c not in CORE_COLUMNS]]


def run_many(tasks, methods, seeds, *, profile: str = "cpu", table: str | None = None,
             allow_training: bool = False, data_dir=None, results_dir=None, cache_dir=None,
             l2a_overrides: dict | None = None, allow_missing: bool = False,
             **data_overrides) -> pd.DataFrame:
    """Tidy rows of every (task, method, seed) run. Cached runs are read; missing runs
    are trained when ``allow_training``; otherwise ``MissingResults`` names them (so a
    book build never starts hours of training by accident), unless ``allow_missing``:
    then they are left out and listed in ``df.attrs["missing"]`` as (task, method,
    seed) with the total in ``df.attrs["n_runs"]`` (see ``report.coverage_note``)."""
    from .config import make_config
    configs = [make_config(t, m, s, profile=profile, table=table,
                           l2a_overrides=l2a_overrides if m.startswith("l2a") else None,
                           **data_overrides)
               for t in tasks for m in methods for s in seeds]
    return _gather([(None, c) for c in configs], Context(data_dir, results_dir, cache_dir),
                   allow_training, allow_missing)


def _gather(pairs: list, ctx: Context, allow_training: bool, allow_missing: bool,
            column: str | None = None, what: str = "") -> pd.DataFrame:
    """The rows of (value, config) pairs (``run_many`` / ``run_study``): cached runs are
    read; the others are computed (``allow_training``), or left out and listed in
    ``df.attrs`` (``allow_missing``), or named in ``MissingResults``. With ``column``,
    each run's value goes to that column."""
    from .report import MissingResults
    missing = set() if allow_training else {c.hash() for _, c in pairs if not is_cached(c, ctx)}
    names = [(c.task, c.method, c.seed) + ((v,) if column else ()) for v, c in pairs
             if c.hash() in missing]
    if missing and not allow_missing:
        raise MissingResults(f"{len(names)} of {len(pairs)} runs{what} are not in the result cache "
                             f"({ctx.runs}), e.g. {names[:6]}. Compute them with `make results` "
                             "or pass allow_training=True.")
    frames = [run(c, data_dir=ctx.data_dir, results_dir=ctx.results_dir, cache_dir=ctx.cache_dir)
              .assign(**({column: v} if column else {}))
              for v, c in pairs if c.hash() not in missing]
    df = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["task", "method", "seed", "split", "metric", "value"] + ([column] if column else [])))
    if missing:
        df.attrs.update(missing=names, n_runs=len(pairs), **({"column": column} if column else {}))
    return df


# ------------------------------------------------------------------ studies
STUDIES = {
    # study -> (table, varied column, how a value becomes overrides, the default value)
    "fig2_data_size": ("fig2_data_size", "train_per_class",
                       lambda v: ({"train_per_class": v}, None), 40),
    "sensitivity_T": ("sensitivity_T", "T", lambda v: ({}, {"temperature": v}), 1.0),
    "sensitivity_alpha": ("sensitivity_alpha", "alpha", lambda v: ({}, {"alpha": v}), 0.0829),
}


def study_configs(study: str, values, tasks, methods, seeds, profile: str = "cpu") -> list:
    """The configs of a study; the default value reuses the main table's runs."""
    from .config import make_config
    table, _, overrides, default = STUDIES[study]
    out = []
    for v in values:
        data_o, l2a_o = overrides(v)
        for t in tasks:
            for m in methods:
                for s in seeds:
                    if v == default:
                        out.append((v, make_config(t, m, s, profile=profile)))
                    else:
                        out.append((v, make_config(t, m, s, profile=profile, table=table,
                                                   l2a_overrides=l2a_o if m.startswith("l2a") else None,
                                                   **data_o)))
    return out


def run_study(study: str, values, tasks, methods, seeds, *, profile: str = "cpu",
              allow_training: bool = False, data_dir=None, results_dir=None,
              cache_dir=None, allow_missing: bool = False) -> pd.DataFrame:
    """Tidy rows of a study with the varied value in its own column. Missing runs are
    trained when ``allow_training``, else ``MissingResults`` names them, unless
    ``allow_missing``: then they are left out and listed in ``df.attrs["missing"]`` as
    (task, method, seed, value), as in :func:`run_many` (see ``report.coverage_note``)."""
    _, column, _, _ = STUDIES[study]
    pairs = study_configs(study, values, tasks, methods, seeds, profile)
    return _gather(pairs, Context(data_dir, results_dir, cache_dir), allow_training, allow_missing,
                   column=column, what=f" of {study}")
