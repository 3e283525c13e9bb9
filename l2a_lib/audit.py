"""Determinism audit: recompute cached runs and report any difference.

    python -m l2a_lib audit --profile smoke --n 4            # fast
    python -m l2a_lib audit --method student_ft --task tc --n 1 --fresh-cache

Picks ``n`` cached runs of the profile (the cheapest first, by their recorded wall
time; ``--method`` / ``--task`` / ``--hash`` narrow the choice), recomputes each into a
scratch result folder and compares every (split, metric) value with the cached
record. Floating-point sums depend on the processor and on the number of threads,
so only records computed on this machine's processor are picked (``--any-processor``
lifts that) and each is recomputed with the torch thread count it recorded.
With ``--fresh-cache`` the teachers and the masked LM are retrained in a
scratch cache too (slower: audits them as well). Target on CPU: identical numbers.
Exit code 1 when any value differs.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from . import paths
from .config import METHODS, PROFILES, TASKS, ExperimentConfig
import torch

from .experiment import run
from .machine import cpu_name
from .records import read_record
from .runs import Context


def pick(ctx: Context, profile: str, n: int, methods=None, tasks=None, hashes=None,
         any_processor: bool = False) -> list[dict]:
    """The ``n`` cheapest cached records of ``profile`` (optionally of some methods / tasks /
    config hashes), computed on this processor unless ``any_processor``."""
    here = cpu_name()
    records = [read_record(p) for p in sorted(ctx.runs.glob("*.json"))]
    records = [r for r in records if r["config"]["profile"] == profile
               and (not methods or r["config"]["method"] in methods)
               and (not tasks or r["config"]["task"] in tasks)
               and (not hashes or r["config_hash"] in hashes)
               and (any_processor or r.get("environment", {}).get("cpu") == here)]
    return sorted(records, key=lambda r: (r.get("wall_seconds", 0.0), r["config_hash"]))[:n]


def compare(cached: dict, fresh: pd.DataFrame) -> pd.DataFrame:
    """One row per (split, metric): cached value, recomputed value, difference."""
    old = pd.DataFrame(cached["rows"]).set_index(["split", "metric"])["value"]
    new = fresh.set_index(["split", "metric"])["value"]
    both = pd.DataFrame({"cached": old, "recomputed": new})
    both["abs_diff"] = (both["cached"] - both["recomputed"]).abs()
    return both.reset_index()


def audit(ctx: Context, profile: str = "smoke", n: int = 3, methods=None, tasks=None,
          fresh_cache: bool = False, hashes=None, any_processor: bool = False) -> pd.DataFrame:
    rows = []
    picked = pick(ctx, profile, n, methods, tasks, hashes, any_processor)
    if not picked:
        raise SystemExit(f"no cached {profile} runs to audit in {ctx.runs}"
                         + (f" for methods {methods}" if methods else "")
                         + ("" if any_processor else f" computed on this processor ({cpu_name()}); "
                            "--any-processor audits the others"))
    threads_before = torch.get_num_threads()
    for rec in picked:
        config = ExperimentConfig.from_dict(rec["config"])
        torch.set_num_threads(rec.get("environment", {}).get("threads") or threads_before)
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache" if fresh_cache else ctx.cache_dir
            published = paths.results_dir(ctx.results_dir) / "mlm"
            if not fresh_cache and published.is_dir():
                # the masked LM the cached runs used, published with them: read, not retrained
                (Path(tmp) / "results").mkdir()
                (Path(tmp) / "results" / "mlm").symlink_to(published.resolve())
            fresh = run(config, data_dir=ctx.data_dir, results_dir=Path(tmp) / "results",
                        cache_dir=cache)
        torch.set_num_threads(threads_before)
        diff = compare(rec, fresh)
        for _, r in diff.iterrows():
            rows.append({"task": config.task, "method": config.method, "seed": config.seed,
                         "config_hash": config.hash(), **r.to_dict()})
        print(f"  {config.task} {config.method} seed={config.seed}: max |diff| "
              f"{diff['abs_diff'].max():.3g}", flush=True)
    return pd.DataFrame(rows)


def main(args) -> int:
    ctx = Context(args.data_dir, args.results_dir)
    df = audit(ctx, args.profile, args.n, args.method, args.task, args.fresh_cache,
               args.hash, args.any_processor)
    runs = df.groupby("config_hash")["abs_diff"].max()
    same = int((runs == 0).sum())
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(df.to_string(index=False))
    print(f"{same} of {len(runs)} recomputed runs identical; largest difference "
          f"{df['abs_diff'].max():.3g}")
    return 0 if same == len(runs) else 1


def add_parser(sub) -> None:
    p = sub.add_parser("audit", help="recompute cached runs and report any difference")
    p.add_argument("--profile", choices=PROFILES, default="smoke")
    p.add_argument("--n", type=int, default=3, help="how many runs (the cheapest first)")
    p.add_argument("--method", nargs="+", choices=METHODS)
    p.add_argument("--task", nargs="+", choices=TASKS)
    p.add_argument("--hash", nargs="+", metavar="HASH", help="only these cached runs")
    p.add_argument("--any-processor", action="store_true",
                   help="also records computed on another processor (expect small differences)")
    p.add_argument("--fresh-cache", action="store_true",
                   help="also retrain teachers / masked LM in a scratch cache")
    p.set_defaults(func=main)
