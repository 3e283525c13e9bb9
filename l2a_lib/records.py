"""The result cache, read: one JSON record per run (``<results_dir>/runs/<hash>.json``),
turned into tidy rows (:func:`record_to_frame`, :func:`load_results`)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import data as data_mod
from .config import ExperimentConfig
from .profiles import make_config, runs_on
from .errors import CorruptResult, MissingResults
from .machine import machine_kind
from .runs import Context

CORE_COLUMNS = ["table", "task", "method", "seed", "split", "metric", "value", "n_params",
                "profile", "teacher", "student", "n_train", "n_dev", "n_test", "config_hash",
                "code_version", "wall_seconds"]


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


def record_to_frame(record: dict, extra_rows: bool = False) -> pd.DataFrame:
    """Tidy rows of one cached run, every setting in a column; with ``extra_rows``, also
    its extra scores (``ExperimentConfig.extra_scores``: the robustness and attention
    pages), which the paper's pages never see."""
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
    more = record.get("extra", {}).get("extra_rows", []) if extra_rows else []
    rows = [{**base, **r, **settings} for r in record["rows"] + more]
    df = pd.DataFrame(rows)
    return df[CORE_COLUMNS + [c for c in df.columns if c not in CORE_COLUMNS]]


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


def score_on_test(record: dict, metric: str) -> float:
    """The record's test score on ``metric`` (NaN where it has none)."""
    return next((r["value"] for r in record["rows"] if r["split"] == "test" and r["metric"] == metric),
                float("nan"))


def load_record(config: ExperimentConfig, results_dir=None) -> dict:
    """The full cached record of a run (rows plus everything the method logged)."""
    path = cache_path(config, Context(results_dir=results_dir))
    if not path.is_file():
        raise MissingResults(f"run {config.task}/{config.method}/seed {config.seed} is not cached")
    return read_record(path)


def load_records(tasks, methods, seeds, profile: str = "cpu", results_dir=None,
                 version: int | None = None, final: bool | None = None) -> dict:
    """{(task, method, seed): record} of the cached runs among these (each method in its
    home table; runs not computed yet are left out). ``version``: L2A's, for the L2A
    methods (default: the one each page uses, ``profiles.l2a_version``). ``final``: the
    final grid's configurations (default ``profiles.FINAL_GRID``)."""
    ctx = Context(results_dir=results_dir)
    out = {}
    for t in tasks:
        for m in (m for m in methods if runs_on(t, m)):
            for s in seeds:
                path = cache_path(make_config(t, m, s, profile=profile, version=version,
                                               final=final), ctx)
                if path.is_file():
                    out[(t, m, s)] = read_record(path)
    return out


def load_test_labels(tasks, profile: str = "cpu", data_dir=None) -> tuple[dict, dict]:
    """({task: test labels}, {task: "classification" | "regression"}): the fixed test
    set of each task, which every method and seed is scored on (``data.split_target``)."""
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


def teacher_conflicts(records, by_processor: bool = False) -> dict[str, set[str]]:
    """Teachers that runs say they share but that differ: {teacher key: the sha256
    sums recorded under it} wherever one key has more than one. Empty when every run
    that records its teacher's sha256 agrees with every other run of the same key
    (same task, seed and teacher settings). Records without a sha256 (older runs) are
    not counted.

    ``by_processor``: only runs computed on one kind of processor (``machine_kind``)
    must agree; the key is then ``"<key> on <processor>"``. A teacher fine-tuned again
    on another processor kind has other weights under the same key (floating-point
    sums differ between processors' kernels, bf16 ones most), and a grid recomputed
    there distils those. Runs that are compared with each other (one page's) must
    agree whatever their processor: call this on them without ``by_processor``."""
    seen: dict[str, set[str]] = {}
    for rec in records:
        used = rec.get("teacher") or {}
        if used.get("sha256"):
            key = used["key"]
            if by_processor:
                env = rec.get("environment") or {}
                key = f"{key} on {machine_kind(env.get('cpu'), env.get('bf16')) or 'an unrecorded processor'}"
            seen.setdefault(key, set()).add(used["sha256"])
    return {k: v for k, v in seen.items() if len(v) > 1}
