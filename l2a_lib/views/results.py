"""Table 1, Table 2 and Table 3 of the paper, as the book shows them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import data as data_mod
from .. import report
from ..errors import MissingResults
from ..experiment import run_many
from ..profiles import PAGES_V1, make_config
from ..records import load_record, load_records, load_test_labels
from .base import View

# each baseline family's rows, shown on its own page (book/baselines_*.md)
FAMILIES = {"augmentation": ["student_ft", "eda", "cbert", "tinybert", "nlpaug_ctx", "l2a"],
            "layers": ["teacher_ft", "student_ft", "distilbert", "bert_pkd4", "bert_pkd6", "minilm",
                       "tinybert", "distilbert_same", "bert_pkd_same", "l2a", "l2a_pkd6_student"],
            "bilstm": ["student_ft", "bilstm_soft"]}


def page_runs(view: View, tasks, methods, seeds, profile, allow_training, allow_missing,
              results_dir, data_dir, version=None, final=None) -> pd.DataFrame:
    """A results page's runs (``run_many``), with the notes every such page carries:
    the runs missing (and the command that computes them), the precision of the means
    and the version of L2A."""
    df = run_many(tasks, methods, seeds, profile=profile, allow_training=allow_training,
                  results_dir=results_dir, data_dir=data_dir, allow_missing=allow_missing,
                  version=version, final=final)
    view.note(report.coverage_note(df) if not final else report.coverage_note(
        df, command="`python -m l2a_lib run --final --task T --method M --seeds S`"))
    view.note(report.precision_note(df))
    view.note(report.version_note(df))
    return df


def glue_verdicts(view: View, sig: pd.DataFrame, prefix: str) -> None:
    """How many tasks L2A is better / worse on, and which (the words of the test); a
    task whose test was made while some of its runs are missing (``with_missing``) is
    named "(interim)"."""
    for word, key in (("better", prefix), ("worse", prefix.replace("better", "worse"))):
        rows = sig[sig.verdict == word] if len(sig) else sig
        at = [report.TASK_LABELS[r["task"]] + (" (interim)" if r.get("runs missing") else "")
              for r in rows.to_dict("records")] if len(rows) else []
        view.value(key, f"{len(at)} of {len(sig)}")
        view.value(key + "_tasks", ", ".join(at) or "none")


def with_missing(sig: pd.DataFrame, missing, methods) -> pd.DataFrame:
    """``sig`` with a column "runs missing": per task, how many runs of ``methods``
    (those a test compares, L2A included) are not computed yet (``missing``:
    ``df.attrs["missing"]``); its verdict can still change where that is not 0."""
    if not len(sig) or not missing:
        return sig
    return sig.assign(**{"runs missing": [report.not_computed(list(missing), t, list(methods))
                                          for t in sig.task]})


def table1(profile="cpu", tasks=("tc", "pi", "nli", "reg"), methods=("teacher_ft", "student_ft"),
           seeds=(0, 1, 2), allow_training=False, allow_missing=True, results_dir=None,
           data_dir=None) -> View:
    """Table 1: the results table beside the paper's, the plot, the paired tests of L2A
    against the best baseline (any student, and L2A's own student), each baseline
    family's rows, and the numbers the page's prose reads."""
    tasks, methods, seeds = list(tasks), list(methods), list(seeds)
    view = View()
    df = page_runs(view, tasks, methods, seeds, profile, allow_training, allow_missing,
               results_dir, data_dir)
    means = report.mean_table(df, methods)
    by_size = report.by_size(df, methods)  # rows grouped by the size of the model
    view.show("results", report.mark_best(report.results_table(
        df, by_size, sizes=report.student_sizes(df, by_size)), means))
    view.show("vs_paper", report.plot_vs_paper(df, methods))
    records = load_records(tasks, [m for m in methods if m != "teacher_ft"], seeds,
                           profile=profile, results_dir=results_dir)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    same = paired_sections(view, df, records, labels, kinds, tasks, "t1")
    view.value("t1_same_student_methods",
               ", ".join(report.METHOD_LABELS[m] for m in same[tasks[0]]) or "none")
    for family, members in FAMILIES.items():
        members = [m for m in members if m in methods]
        view.value(f"family_{family}", report.mark_best(report.results_table(df, members),
                                                        report.mean_table(df, members)))
    _table1_values(view, df, means, tasks, methods, seeds, profile, results_dir, data_dir)
    glue_constant_methods(view, records, labels, kinds)
    shared = report.teacher_consistency(results_dir)
    view.value("teachers_compared", str(len(shared)))
    view.value("teachers_differ", str(int((~shared["same"].astype(bool)).sum())) if len(shared) else "0")
    return view


def paired_sections(view, df, records, labels, kinds, tasks, prefix) -> dict[str, list[str]]:
    """L2A against the best baseline (``paired``), against the best baseline that
    distils into L2A's own student (``paired_same_student``) and, where L2A also ran
    on BERT6-PKD's larger student, that run against the best baseline of its size
    (``paired_pkd6_student``), each with its verdict counts glued as
    ``{prefix}_l2a_better[_same]`` / ``{prefix}_l2a6_better``; returns {task: the
    same-student methods}."""
    missing = df.attrs.get("missing", [])
    sig = with_missing(report.significance_table(records, labels, kinds), missing,
                       ["l2a", *report.BASELINES])
    glue_verdicts(view, sig, f"{prefix}_l2a_better")
    view.show("paired", report.paired_table(sig))
    sig_same = size_matched_tests(df, records, labels, kinds, tasks)
    glue_verdicts(view, sig_same, f"{prefix}_l2a_better_same")
    view.show("paired_same_student", report.paired_table(sig_same))
    sig_six = size_matched_tests(df, records, labels, kinds, tasks, LARGER)
    glue_verdicts(view, sig_six, f"{prefix}_l2a6_better")
    label = report.METHOD_LABELS[LARGER]
    view.show("paired_pkd6_student", report.paired_table(sig_six).drop(columns=[label], errors="ignore")
              if len(sig_six) else pd.DataFrame({"runs": [f"no run of {label} is computed yet"]}))
    return {t: report.same_student(df, t) if len(df) else [] for t in tasks}


LARGER = "l2a_pkd6_student"  # L2A distilling into BERT6-PKD's student


def size_matched_tests(df, records, labels, kinds, tasks, method="l2a") -> pd.DataFrame:
    """``method`` against the best baseline whose model has its parameter count
    (``report.same_student``: for L2A the layer-KD baselines run on its student, for
    L2A on BERT6-PKD's student BERT6-PKD and DistilBERT), per task where one ran, with
    the runs missing counted (``with_missing``)."""
    same = {t: report.same_student(df, t, method) if len(df) else [] for t in tasks}
    frames = [report.significance_table(records, {t: labels[t]}, {t: kinds[t]}, method=method,
                                        baselines=same[t]) for t in tasks if same[t]]
    return with_missing(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
                        df.attrs.get("missing", []), [method, *report.BASELINES])


def size_matched_words(sig: pd.DataFrame, method: str = "l2a") -> str:
    """:func:`size_matched_tests` in words, per task: the verdict, the difference with
    its 95% interval, the baseline, the seeds in which ``method`` is higher and, where
    runs are missing, that the verdict is interim."""
    if not len(sig):
        return "not computed yet on any task"
    label = report.METHOD_LABELS.get(method, method)
    return "; ".join(
        f"{r['verdict']} on {report.TASK_LABELS[r['task']]} "
        f"{'than' if r['verdict'] in ('better', 'worse') else 'from'} {r['best baseline']} "
        f"({report.number(r['difference'], signed=True)} {report.interval(r['ci_low'], r['ci_high'])}, "
        f"higher in {r[f'seeds {label} higher']} seeds"
        + (f"; interim, {r['runs missing']} run(s) not computed yet" if r.get("runs missing") else "")
        + ")" for r in sig.to_dict("records"))


def glue_constant_methods(view, records, labels, kinds, name="constant_methods"):
    """Which baselines answer (almost) one class on every seed, per task (glued as
    ``name``); the majority baseline does so by construction and is not listed."""
    found = []
    for task in labels:
        for m in sorted({m for (t, m, _) in records if t == task and m != "majority"}):
            preds = report.seed_predictions(records, task, m, kinds[task])
            flat = report.degenerate_seeds(kinds[task], preds)
            if preds and len(flat) == len(preds):
                found.append(f"{report.METHOD_LABELS.get(m, m)} on {report.TASK_LABELS[task]}")
    view.value(name, ", ".join(found) or "none")


def glue_means(view, means, methods, names=None):
    """``{method}_{task}_{metric}``: each mean over seeds as every page quotes it (one
    name per quantity, so two pages quoting it print the same digits). ``names``:
    {method: the name's prefix} where a page shows another quantity under the same
    method (Table 2's L2A is version 1, Table 1's is version 2 on TC and PI)."""
    names = names or {}
    for task, label in report.TASK_LABELS.items():
        for metric in report.METRICS[task]:
            for m in methods:
                if (label, metric) in means.columns:
                    value = means.loc[m, (label, metric)] if m in means.index else float("nan")
                    view.value(f"{names.get(m, m)}_{task}_{metric}",
                               "(not computed yet)" if value != value else report.number(value))


def _table1_values(view, df, means, tasks, methods, seeds, profile, results_dir, data_dir):
    """The numbers the prose of Table 1 quotes."""
    glue_means(view, means, methods)
    sds = report.aggregate(df).set_index(["task", "method", "metric"])["sd"]
    for m in methods:
        if ("reg", m, "pearson") in sds.index:
            view.value(f"{m}_reg_pearson_sd", f"{sds[('reg', m, 'pearson')]:.3f}")
    paper = report.paper_rows("table1")
    for r in paper.itertuples():
        view.value(f"paper_{r.method}_{r.task}_{r.metric}", report.number(r.value))
    params = df.groupby("method")["n_params"].first()
    for m in params.index:
        view.value(f"{m}_params_m", f"{params[m] / 1e6:.1f}M")
    view.value("n_seeds", str(df.seed.nunique()))
    if "nli" in tasks:
        nli_test = data_mod.load_task("nli", seed=0, data_dir=data_dir).test
        view.value("nli_majority", f"{max(nli_test.label.mean(), 1 - nli_test.label.mean()):.3f}")
    sizes = df[df.split == "test"].groupby("task")["n_test"].first()
    view.value("tc_n_test", f"{int(sizes['tc']):,}")
    gap = means.loc["teacher_ft", ("TC", "acc")] - means.loc["student_ft", ("TC", "acc")]
    view.value("tc_teacher_minus_student", f"{gap:+.3f}")
    if "reg" in tasks:
        _regression_fit(view, df, seeds, profile, results_dir)


def _regression_fit(view, df, seeds, profile, results_dir):
    """How the regression fine-tunings fit, from each run's per-epoch history."""
    fits, dev_r, best_r = {}, [], []
    for m in ("teacher_ft", "student_ft"):
        for s in seeds:
            try:
                rec = load_record(make_config("reg", m, s, profile=profile), results_dir)
            except MissingResults:
                continue
            hist = rec["extra"]["fine_tune"]["history"]
            fits.setdefault(m, []).append(min(h["train_loss"] for h in hist))
            fits.setdefault(m + "_epoch", []).append(
                int(np.argmin([h["train_loss"] for h in hist])) + 1)
            dev_r += [h["pearson"] for h in hist]
            best_r.append(rec["extra"]["fine_tune"]["best_dev"]["pearson"])
    if not best_r:
        return
    n_dev = int(df[(df.task == "reg")]["n_dev"].dropna().iloc[0])
    r = float(np.mean(best_r))
    for m in ("teacher_ft", "student_ft"):
        view.value(f"{m}_reg_min_train_mse", f"{np.mean(fits[m]):.3f}")
        view.value(f"{m}_reg_min_train_epoch", f"{np.median(fits[m + '_epoch']):.0f}")
    lo, hi = np.percentile(dev_r, [10, 90])
    view.value("reg_dev_pearson_p10", f"{lo:.2f}")
    view.value("reg_dev_pearson_p90", f"{hi:.2f}")
    view.value("reg_best_dev_pearson", f"{r:.2f}")
    view.value("reg_n_dev", str(n_dev))
    view.value("reg_pearson_se", f"{report.pearson_standard_error(r, n_dev):.2f}")


def table2(profile="cpu", tasks=("tc", "pi", "nli", "reg"),
           methods=("teacher_ft", "student_ft", "l2a_wo_tgt", "l2a_wo_src", "l2a"),
           seeds=(0, 1, 2), allow_training=False, allow_missing=True, results_dir=None,
           data_dir=None) -> View:
    """Table 2 (source and target augmentation): the table, the plot, and the paired
    tests of L2A against each ablation."""
    tasks, methods, seeds = list(tasks), list(methods), list(seeds)
    view = View()
    df = page_runs(view, tasks, methods, seeds, profile, allow_training, allow_missing,
               results_dir, data_dir, version=PAGES_V1)
    means = report.mean_table(df, methods)
    view.show("results", report.mark_best(report.results_table(df, methods, paper_table="table2"),
                                          means))
    view.show("vs_paper", report.plot_vs_paper(df, methods, paper_table="table2"))
    glue_means(view, means, methods, names={"l2a": "l2a_v1"})
    records = load_records(tasks, ["l2a", "l2a_wo_src", "l2a_wo_tgt"], seeds, profile=profile,
                           results_dir=results_dir, version=PAGES_V1)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    tests = report.ablation_tests(records, labels, kinds, ["l2a_wo_src", "l2a_wo_tgt"],
                                  paper_table="table2")
    for variant, what in (("L2A w/o src", "src"), ("L2A w/o tgt", "tgt")):
        rows = tests[tests.variant == variant]
        untested = "" if len(rows) == len(tasks) else f"; {len(tasks) - len(rows)} not computed yet"
        for word in ("helps", "hurts", "no clear effect"):
            at = rows[rows["removed part"] == word].task.tolist()
            key = f"t2_{what}_{word.replace(' ', '_')}"
            view.value(key, f"{len(at)} of {len(rows)}")
            view.value(key + "_tasks",
                       (", ".join(report.TASK_LABELS[t] for t in at) or "none") + untested)
    view.show("paired", report.paired_table(tests))
    return view


def table3(profile="cpu", tasks=("tc",), methods=("l2a", "l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"),
           seeds=(0, 1, 2), allow_training=False, results_dir=None, data_dir=None) -> View:
    """Table 3 (the KD terms): the table, the plot, the paired tests of L2A against each
    variant without one term."""
    tasks, methods, seeds = list(tasks), list(methods), list(seeds)
    view = View()
    df = run_many(tasks, methods, seeds, profile=profile, allow_training=allow_training,
                  results_dir=results_dir, data_dir=data_dir)
    view.note(report.version_note(df))
    view.show("results", report.ablation_table(df, methods, tasks[0]))
    view.show("vs_paper", report.plot_vs_paper(df, methods, paper_table="table3"))
    records = load_records(tasks, methods, seeds, profile=profile, results_dir=results_dir)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    tests = report.ablation_tests(records, labels, kinds, methods[1:], paper_table="table3")
    method_of = {report.METHOD_LABELS[m]: m for m in methods}
    for r in tests.to_dict("records"):
        m = method_of[r["variant"]]
        view.value(f"t3_{m}_diff", f"{r['difference']:+.3f}")
        view.value(f"t3_{m}_ci", report.interval(r["ci_low"], r["ci_high"]))
        view.value(f"t3_{m}_verdict", {"no clear effect": "has no clear effect"}.get(
            r["removed part"], r["removed part"]))
        gap = -r["difference"]  # the variant minus full L2A
        view.value(f"t3_{m}_effect", f"{'raises' if gap > 0 else 'lowers'} accuracy by "
                                     f"{report.number(abs(gap))}")
        view.value(f"t3_{m}_seeds", r["seeds L2A higher"])
        view.value(f"t3_{m}_paper", f"{r['paper difference']:+.3f}")
    view.value("t3_n_test", f"{len(labels[tasks[0]]):,}")
    majority = pd.Series(labels[tasks[0]]).value_counts(normalize=True).max()
    view.value("t3_majority", f"{majority:.3f}")
    wo_dark = df[(df.method == "l2a_wo_dark") & (df.split == "test") & (df.metric == "acc")]
    view.value("t3_wo_dark_lowest_seed", f"{wo_dark.value.min():.3f}" if len(wo_dark) else "-")
    means = report.mean_table(df, methods)
    paper = report.paper_results().query("table == 'table3' and metric == 'acc'").set_index("method")
    view.value("t3_paper_wo_dark_acc", f"{paper.loc['l2a_wo_dark', 'value']:.3f}")
    glue_means(view, means, methods)
    view.show("paired", report.paired_table(tests))
    return view
