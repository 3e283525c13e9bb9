"""Command line: ``python -m l2a_lib <command>``.

* ``results --csv``         every cached result as one tidy CSV
* ``run``                   run (or read from the cache) task x method x seed, or one run by its hash
* ``teacher``               fine-tune (or find cached) the teacher of a workflow key
* ``mlm``                   train (or load) the augmentation masked LM of a workflow key
* ``noise``                 the noisy copies of a task's test split (robustness page)
* ``frozen-probe``          a linear model on each encoder's frozen features (settings page)
* ``page``                  execute one book page's notebook with papermill
* ``check-book``            the built book in headless Chromium: what a reader must not see
* ``audit``                 recompute cached runs, report any difference (determinism)
* ``prepare-weights``       assemble the offline teacher weights once
* ``data-summary``          sizes and label balance of every task
* ``distill``               distil a student on your own files, saved as a Hugging Face model

The whole study (every run, every page, the book) is the Snakemake workflow in
``workflow/Snakefile``: ``snakemake -n`` lists what is missing, ``snakemake --cores 2``
computes it.

Each command imports what it needs when it runs (not for an import cycle: the
library has none, ``tests/test_layout.py``), so that ``--help`` and the light
commands start without loading torch and transformers.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .errors import USER_ERRORS


def _cmd_results(args) -> int:
    from .records import load_results
    df = load_results(args.results_dir)
    if args.csv:
        df.to_csv(sys.stdout, index=False)
    else:
        core = ["table", "task", "method", "split", "metric"]
        print(df.groupby(core)["value"].agg(["mean", "std", "count"]).round(4).to_string()
              if len(df) else "no cached results")
    return 0


def _cmd_run(args) -> int:
    from .profiles import make_config
    from .experiment import run
    from .records import is_cached
    from .runs import Context
    if args.hash:
        from .workflow import Plan
        plan = Plan(args.profile, args.results_dir)
        configs = [plan.run(h) for h in args.hash]
    elif args.candidate:  # the settings page's candidates (l2a_lib.candidates)
        from .candidates import candidate
        configs = [c for name in args.candidate
                   for c in candidate(name).configs(args.profile, seeds=args.seeds)
                   if not args.method or c.method in args.method]  # --method: only these
    else:
        if not args.method:
            raise SystemExit("run: give --method (with --task and --seeds), or --hash")
        configs = [make_config(t, m, s, profile=args.profile, table=args.table,
                               version=args.l2a_version, final=True if args.final else None,
                               smart=args.smart)
                   for t in args.task for m in args.method for s in args.seeds]
    for i, cfg in enumerate(configs, 1):
        ctx = Context(args.data_dir, args.results_dir)
        state = "cached" if is_cached(cfg, ctx) and not args.force else "running"
        print(f"[{i}/{len(configs)}] {cfg.table} {cfg.task} {cfg.method} seed={cfg.seed} "
              f"({cfg.profile}) {state} {cfg.hash()}", flush=True)
        df = run(cfg, data_dir=args.data_dir, results_dir=args.results_dir, force=args.force)
        test = df[df.split == "test"]
        print("    " + "  ".join(f"{r.metric}={r.value:.4f}" for r in test.itertuples())
              + f"  ({df.wall_seconds.iloc[0]}s)", flush=True)
    return 0


def _cmd_teacher(args) -> int:
    from .runs import Context, prepare
    from .teacher import get_teacher
    from .workflow import Plan
    config = Plan(args.profile, args.results_dir).teacher(args.key)
    ctx = Context(args.data_dir, args.results_dir)
    print(f"teacher {args.key}: {config.task} seed={config.seed} "
          f"train_per_class={config.data.train_per_class} ({config.profile})", flush=True)
    _, info = get_teacher(config, ctx, prepare(config, ctx))
    print(f"best dev {info.get('best_dev')} at epoch {info.get('best_epoch')}; "
          f"sha256 {info.get('sha256')}", flush=True)
    return 0


def _cmd_noise(args) -> int:
    from .profiles import make_config
    from .robustness import write_manifest
    from .runs import Context, prepare
    config = make_config(args.task, "student_ft", 0, profile=args.profile)
    prep = prepare(config, Context(args.data_dir, args.results_dir))
    path = write_manifest(prep.task.test, args.task, args.profile)
    print(f"noisy test copies of {args.task} ({args.profile}): {path}", flush=True)
    return 0


def _cmd_frozen_probe(args) -> int:
    from .frozen_probe import frozen_probe
    for task in args.task:
        df = frozen_probe(task, seed=args.seed, profile=args.profile, data_dir=args.data_dir,
                          results_dir=args.results_dir)
        print(df.round(4).to_string(index=False), flush=True)
    return 0


def _cmd_mlm(args) -> int:
    from . import mlm, models
    from .runs import Context
    from .workflow import Plan
    config = Plan(args.profile, args.results_dir).mlm_run(args.key)
    _, info, cfg = mlm.for_run(config, Context(args.data_dir, args.results_dir),
                             models.load_tokenizer(config.model))
    print(f"masked LM {cfg.key()}: {cfg.steps} steps, trained in {info.get('seconds', 0):.0f}s",
          flush=True)
    return 0


def _cmd_page(args) -> int:
    from .pages import execute
    state = execute(args.name, args.profile, args.out, results_dir=args.results_dir)
    print(f"page {args.name}: {state} -> {args.out}", flush=True)
    return 0


def _cmd_check_book(args) -> int:
    from .bookcheck import check_book
    found = check_book(args.html, width=args.width, screenshots=args.screenshots)
    bad = {page: p for page, p in found.items() if p}
    for page, problems in bad.items():
        for problem in problems:
            print(f"{page}: {problem}")
    print(f"check-book: {len(found) - len(bad)} of {len(found)} pages clean at {args.width} px",
          flush=True)
    return 1 if bad else 0


def _cmd_weights(args) -> int:
    from .models import assemble_mpnet, minilm_dir
    print("teacher:", assemble_mpnet())
    print("student:", minilm_dir())
    return 0


def _cmd_data(args) -> int:
    from .report import data_summary
    print(data_summary(args.data_dir).to_string(index=False))
    return 0


def _cmd_distill(args) -> int:
    from .distill import distill
    from .userdata import Columns
    cols = Columns(text=args.text_column, label=args.label_column, pair=args.pair_column)
    src_cols = Columns(text=args.source_text_column or cols.text,
                       label=args.source_label_column or cols.label,
                       pair=args.source_pair_column or cols.pair)
    res = distill(args.target, args.source, kind=args.task_type, method=args.method, out=args.out,
                  columns=cols, source_columns=src_cols, profile=args.profile, seed=args.seed,
                  train_per_class=args.train_per_class, n_train=args.n_train,
                  dev_size=args.dev_size, name=args.name, results_dir=args.results_dir,
                  force=args.force, dtype=args.dtype, allow_training=not args.no_training,
                  teacher=args.teacher, dev=args.dev, test=args.test, pooling=args.pooling)
    rows = {(r["split"], r["metric"]): r["value"] for r in res.record["rows"]}
    shown = ", ".join(f"{split} {metric} {value:.3f}" for (split, metric), value in rows.items()
                      if metric in ("acc", "f1", "pearson"))
    print(f"{res.config.method} on {res.config.task} (seed {res.config.seed}): {shown}")
    remote = ", trust_remote_code=True" if args.pooling == "mean" else ""
    print(f"saved to {res.out}: AutoModelForSequenceClassification.from_pretrained("
          f"{str(res.out)!r}{remote})")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .config import METHODS, PROFILES, SMART_VARIANTS, TABLES, TASKS
    p = argparse.ArgumentParser(prog="python -m l2a_lib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", default=None, help="result cache (default: L2A_RESULTS_DIR "
                   "or the repository's results/)")
    p.add_argument("--data-dir", default=None, help="data folder (default: L2A_DATA_DIR)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("results", help="print cached results")
    r.add_argument("--csv", action="store_true", help="one tidy CSV row per result")
    r.set_defaults(func=_cmd_results)

    r = sub.add_parser("run", help="run task x method x seed, or runs by hash (cached runs are "
                       "read, not rerun)")
    r.add_argument("--task", nargs="+", choices=TASKS, default=list(TASKS))
    r.add_argument("--method", nargs="+", choices=METHODS)
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--candidate", nargs="+", metavar="NAME",
                   help="the Teacher-FT, Student-FT and majority runs of candidate settings "
                        "(l2a_lib.candidates; the page 'Choosing the settings'); with "
                        "--method, only those methods' runs")
    r.add_argument("--hash", nargs="+", metavar="HASH",
                   help="runs of the book's pages by config hash (what the workflow calls)")
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.add_argument("--table", choices=TABLES, default=None,
                   help="default: the method's home table (table1 for the main methods)")
    r.add_argument("--l2a-version", type=int, choices=(1, 2), default=None,
                   help="the version of L2A for the L2A methods (default: the one the "
                        "method's page uses; l2a_lib.profiles.l2a_version)")
    r.add_argument("--final", action="store_true",
                   help="the final grid's settings (the teachers the page 'Choosing the "
                        "settings' chose; default: l2a_lib.profiles.FINAL_GRID)")
    r.add_argument("--smart", choices=SMART_VARIANTS, default=None,
                   help="the SMART variant of student_ft_smart and l2a_smart: the adversarial "
                        "term alone (the default) or with the Bregman proximal point")
    r.add_argument("--force", action="store_true", help="recompute even if cached")
    r.set_defaults(func=_cmd_run)

    r = sub.add_parser("teacher", help="fine-tune the teacher of a workflow key (once; cached)")
    r.add_argument("key")
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.set_defaults(func=_cmd_teacher)

    r = sub.add_parser("noise", help="generate the noisy copies of a task's test split (the "
                       "robustness page; once, cached)")
    r.add_argument("task", choices=TASKS)
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.set_defaults(func=_cmd_noise)

    r = sub.add_parser("frozen-probe", help="what each encoder knows before fine-tuning: a linear "
                       "model on its frozen features (the settings page; once, cached)")
    r.add_argument("task", nargs="+", choices=TASKS)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.set_defaults(func=_cmd_frozen_probe)

    r = sub.add_parser("mlm", help="train the augmentation masked LM of a workflow key (once; "
                       "published with the results)")
    r.add_argument("key")
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.set_defaults(func=_cmd_mlm)

    r = sub.add_parser("page", help="execute one book page's notebook with papermill")
    r.add_argument("name")
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.add_argument("--out", required=True, help="the executed notebook (e.g. book/table1.ipynb)")
    r.set_defaults(func=_cmd_page)

    from .audit import add_parser as add_audit
    add_audit(sub)

    r = sub.add_parser("check-book", help="open every built page in headless Chromium and report "
                                          "visible code, wide tables, NaN, tracebacks, broken "
                                          "images and links")
    r.add_argument("--html", default="book/_build/html", help="the built book")
    r.add_argument("--width", type=int, default=1280, help="the browser window's width in px")
    r.add_argument("--screenshots", default=None, help="save a full-page PNG of each page here")
    r.set_defaults(func=_cmd_check_book)

    r = sub.add_parser("prepare-weights", help="assemble the offline pretrained weights")
    r.set_defaults(func=_cmd_weights)
    r = sub.add_parser("data-summary", help="sizes and label balance of every task")
    r.set_defaults(func=_cmd_data)

    r = sub.add_parser("distill", help="distil a student on your own files (any Table 1 method "
                       "with a BERT student) and save it as a Hugging Face model")
    r.add_argument("--target", required=True, help="the target domain's labelled examples: a CSV, "
                   "TSV or JSON Lines file, or a hub data set (name or name:split)")
    r.add_argument("--source", required=True, help="the source domain's labelled examples (same forms)")
    r.add_argument("--task-type", choices=("classification", "regression"), default="classification")
    r.add_argument("--method", default="l2a", help="l2a (default), student_ft, eda, cbert, tinybert, "
                   "minilm, nlpaug_ctx or an L2A variant")
    r.add_argument("--out", required=True, help="folder for the saved student")
    r.add_argument("--text-column", default="text")
    r.add_argument("--pair-column", default=None, help="the second text of a sentence pair")
    r.add_argument("--label-column", default="label")
    r.add_argument("--source-text-column", default=None, help="default: --text-column")
    r.add_argument("--source-pair-column", default=None, help="default: --pair-column")
    r.add_argument("--source-label-column", default=None, help="default: --label-column")
    r.add_argument("--train-per-class", type=int, default=40,
                   help="target training examples per class (classification)")
    r.add_argument("--n-train", type=int, default=80, help="target training examples (regression)")
    r.add_argument("--dev-size", type=int, default=100, help="target dev examples; the rest is test")
    r.add_argument("--dev", default=None, help="your own dev split (with --test): the target "
                   "file is then the training split as it is, and nothing is drawn")
    r.add_argument("--test", default=None, help="your own test split (with --dev)")
    r.add_argument("--seed", type=int, default=0, help="draws the splits and seeds the training")
    r.add_argument("--teacher", default=None, help="a teacher to fine-tune on the target "
                   "(all-mpnet-base-v2, the default, or bert-base-uncased), or a folder holding a "
                   "fine-tuned BertForSequenceClassification to use as it is")
    r.add_argument("--profile", choices=PROFILES, default="cpu")
    r.add_argument("--name", default=None, help="the task's name (default: the target file's)")
    r.add_argument("--pooling", choices=("pooler", "mean"), default="pooler",
                   help="the student's pooling: BERT's pooler (a standard "
                        "BertForSequenceClassification) or the mean of the token states (the "
                        "paper pages' students; loading then needs trust_remote_code=True)")
    r.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="precision of the saved weights (float16 halves the file)")
    r.add_argument("--force", action="store_true", help="recompute even if cached")
    r.add_argument("--no-training", action="store_true",
                   help="fail instead of training when the run is not cached (book builds)")
    r.set_defaults(func=_cmd_distill)

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - turn library errors into one clear line
        if isinstance(exc, USER_ERRORS):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
