"""Command line: ``python -m l2a_lib <command>``.

* ``results --csv``         every cached result as one tidy CSV
* ``run``                   run (or read from the cache) task x method x seed
* ``batch``                 compute every missing run, execute every notebook into book/
* ``run-config``            run one configuration given as JSON
* ``audit``                 recompute cached runs, report any difference (determinism)
* ``prepare-weights``       assemble the offline teacher weights once
* ``data-summary``          sizes and label balance of every task
"""
from __future__ import annotations

import argparse
import json
import logging
import sys


def _cmd_results(args) -> int:
    from .experiment import load_results
    df = load_results(args.results_dir)
    if args.csv:
        df.to_csv(sys.stdout, index=False)
    else:
        core = ["table", "task", "method", "split", "metric"]
        print(df.groupby(core)["value"].agg(["mean", "std", "count"]).round(4).to_string()
              if len(df) else "no cached results")
    return 0


def _cmd_run(args) -> int:
    from .config import make_config
    from .experiment import is_cached, run, Context
    configs = [make_config(t, m, s, profile=args.profile, table=args.table)
               for t in args.task for m in args.method for s in args.seeds]
    for i, cfg in enumerate(configs, 1):
        ctx = Context(args.data_dir, args.results_dir)
        state = "cached" if is_cached(cfg, ctx) and not args.force else "running"
        print(f"[{i}/{len(configs)}] {cfg.task} {cfg.method} seed={cfg.seed} "
              f"({cfg.profile}) {state} {cfg.hash()}", flush=True)
        df = run(cfg, data_dir=args.data_dir, results_dir=args.results_dir, force=args.force)
        test = df[df.split == "test"]
        print("    " + "  ".join(f"{r.metric}={r.value:.4f}" for r in test.itertuples())
              + f"  ({df.wall_seconds.iloc[0]}s)", flush=True)
    return 0


def _cmd_run_config(args) -> int:
    from .config import ExperimentConfig
    from .experiment import run
    cfg = ExperimentConfig.from_dict(json.loads(args.config))
    print(f"{cfg.task} {cfg.method} seed={cfg.seed} ({cfg.profile}, {cfg.table}) {cfg.hash()}",
          flush=True)
    df = run(cfg, data_dir=args.data_dir, results_dir=args.results_dir)
    print(df[["split", "metric", "value"]].to_string(index=False))
    return 0


def _cmd_weights(args) -> int:
    from .models import assemble_mpnet, minilm_dir
    print("teacher:", assemble_mpnet())
    print("student:", minilm_dir())
    return 0


def _cmd_data(args) -> int:
    from .data import summary
    print(summary(args.data_dir).to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .config import METHODS, PROFILES, TABLES, TASKS
    p = argparse.ArgumentParser(prog="python -m l2a_lib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default=None, help="result cache (default: L2A_RESULTS_DIR "
                   "or the repository's results/)")
    p.add_argument("--data-dir", default=None, help="data folder (default: L2A_DATA_DIR)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("results", help="print cached results")
    r.add_argument("--csv", action="store_true", help="one tidy CSV row per result")
    r.set_defaults(func=_cmd_results)

    r = sub.add_parser("run", help="run task x method x seed (cached runs are read, not rerun)")
    r.add_argument("--task", nargs="+", choices=TASKS, default=list(TASKS))
    r.add_argument("--method", nargs="+", choices=METHODS, required=True)
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.add_argument("--table", choices=TABLES, default=None,
                   help="default: the method's home table (table1 for the main methods)")
    r.add_argument("--force", action="store_true", help="recompute even if cached")
    r.set_defaults(func=_cmd_run)

    r = sub.add_parser("run-config", help="run one configuration given as JSON (the batch runner's unit)")
    r.add_argument("config", help="ExperimentConfig.to_dict() as JSON")
    r.set_defaults(func=_cmd_run_config)

    from .batch import add_parser
    add_parser(sub)
    from .audit import add_parser as add_audit
    add_audit(sub)

    r = sub.add_parser("prepare-weights", help="assemble the offline pretrained weights")
    r.set_defaults(func=_cmd_weights)
    r = sub.add_parser("data-summary", help="sizes and label balance of every task")
    r.set_defaults(func=_cmd_data)

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - turn library errors into one clear line
        from .config import ConfigError
        from .data import DataError
        from .models import WeightsError
        from .paths import DataDirError
        if isinstance(exc, (ConfigError, DataError, WeightsError, DataDirError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
