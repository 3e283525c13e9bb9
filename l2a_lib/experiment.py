"""``run(config) -> tidy DataFrame``: one experiment, computed or read from the cache.

Each finished run is one small JSON file ``<results_dir>/runs/<hash>.json``
(written to a temporary file, then renamed, so a killed run leaves nothing
half-written). The hash covers the full config plus ``CODE_VERSION``; a rerun
of a cached config reads the file instead of training. An L2A run also saves a
checkpoint after each episode (``checkpoint``): run again after a kill, it goes
on from there, with the same result as a run never interrupted.

:data:`METHOD_REGISTRY` maps each method name to its function: Teacher-FT,
Student-FT and the baselines in ``methods``, L2A and its ablations in
``l2a.algorithm``. :func:`run_many` and :func:`run_study` gather the runs of a
table or a study. Reading the cache alone is ``records``.
"""
from __future__ import annotations

import datetime as dt
import json
import platform
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import transformers

from . import ledger
from .checkpoint import EpisodeCheckpoint
from .config import CODE_VERSION, L2A_METHODS, METHODS, ExperimentConfig
from .profiles import make_config, runs_on
from .errors import MissingResults
from .l2a.algorithm import run_l2a
from .machine import cpu_name, peak_rss_mb
from .methods import METHODS as BASELINES
from .paths import atomic_write_text
from .records import cache_path, is_cached, read_record, record_to_frame
from .runs import Context
from .studies import STUDIES, study_configs
from .train import bf16_in_use

METHOD_REGISTRY: dict[str, Callable[[ExperimentConfig, Context], dict]] = {
    **BASELINES, **{m: run_l2a for m in L2A_METHODS}}
assert set(METHOD_REGISTRY) == set(METHODS)


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
    with ledger.recording() as led:
        out = METHOD_REGISTRY[config.method](config, ctx)
    # where this process's time went (a resumed run: its last piece only)
    out["phases"] = led.totals()
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


def run_many(tasks, methods, seeds, *, profile: str = "cpu", table: str | None = None,
             allow_training: bool = False, data_dir=None, results_dir=None, cache_dir=None,
             l2a_overrides: dict | None = None, allow_missing: bool = False,
             version: int | None = None, final: bool | None = None,
             **data_overrides) -> pd.DataFrame:
    """Tidy rows of every (task, method, seed) run. Cached runs are read; missing runs
    are trained when ``allow_training``; otherwise ``MissingResults`` names them (so a
    book build never starts hours of training by accident), unless ``allow_missing``:
    then they are left out and listed in ``df.attrs["missing"]`` as (task, method,
    seed) (empty when none is) with the total in ``df.attrs["n_runs"]`` (see
    ``report.coverage_note``).
    ``version``: L2A's, for the L2A methods (default: each page's). ``final``: the final
    grid's configurations or the first ones (default ``profiles.FINAL_GRID``)."""
    configs = [make_config(t, m, s, profile=profile, table=table,
                           l2a_overrides=l2a_overrides if m.startswith("l2a") else None,
                           version=version, final=final, **data_overrides)
               for t in tasks for m in methods if runs_on(t, m) for s in seeds]
    return gather([(None, c) for c in configs], Context(data_dir, results_dir, cache_dir),
                   allow_training, allow_missing)


def gather(pairs: list, ctx: Context, allow_training: bool, allow_missing: bool,
            column: str | None = None, what: str = "") -> pd.DataFrame:
    """The rows of (value, config) pairs (``run_many`` / ``run_study``): cached runs are
    read; the others are computed (``allow_training``), or left out and listed in
    ``df.attrs`` (``allow_missing``), or named in ``MissingResults``. With ``column``,
    each run's value goes to that column."""
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
    # the total is there whether or not some are missing: a caller adding up several
    # frames' runs counts the complete ones too
    df.attrs.update(missing=names, n_runs=len(pairs), **({"column": column} if column else {}))
    return df


# ------------------------------------------------------------------ studies
def run_study(study: str, values, tasks, methods, seeds, *, profile: str = "cpu",
              allow_training: bool = False, data_dir=None, results_dir=None,
              cache_dir=None, allow_missing: bool = False) -> pd.DataFrame:
    """Tidy rows of a study with the varied value in its own column. Missing runs are
    trained when ``allow_training``, else ``MissingResults`` names them, unless
    ``allow_missing``: then they are left out and listed in ``df.attrs["missing"]`` as
    (task, method, seed, value), as in :func:`run_many` (see ``report.coverage_note``)."""
    _, column, _, _ = STUDIES[study]
    pairs = study_configs(study, values, tasks, methods, seeds, profile)
    return gather(pairs, Context(data_dir, results_dir, cache_dir), allow_training, allow_missing,
                   column=column, what=f" of {study}")
