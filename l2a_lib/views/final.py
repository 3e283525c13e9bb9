"""Table 1 on the chosen settings, task by task while the final grid is computed
(issue 35): the runs of ``make_config(..., final=True)`` (the teachers the page
"Choosing the settings" chose, L2A version 2, BiLSTM-soft's fixed schedule, nlpaug's
augmenter) for the tasks whose final Table 1 is in the cache, beside the same rows on
the settings the rest of the book still shows.

Every glued name starts with ``final_``: the other pages quote the first settings'
numbers under the plain names (``teacher_ft_nli_acc``), and one name prints one
quantity on every page.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

import pandas as pd

from .. import report
from ..config import L2A_METHODS
from ..experiment import run_many
from ..pages import AUGMENT_CONTROL, LEARNING_CONTROLS
from ..profiles import runs_on
from ..records import load_records, load_test_labels, score_on_test
from ..tasks import HEADLINE_METRICS
from .base import View, pending
from .results import (LARGER, glue_constant_methods, glue_means, glue_verdicts, page_runs,
                      paired_sections, with_missing)

PREFIX = "final"
# the rows of the change table: what a reader checks first on a new setting
CHANGE_ROWS = ("majority", "teacher_ft", "student_ft", "l2a")


def headline(task: str) -> str:
    """The metric a task's verdicts read (F1 on PI, Pearson on regression, else ACC)."""
    return HEADLINE_METRICS[task]


def change_table(old: pd.DataFrame, new: pd.DataFrame, tasks) -> pd.DataFrame:
    """Per task and headline metric: majority, Teacher-FT, Student-FT, L2A and the best
    other method (the highest mean; Teacher-FT, majority and L2A on any student
    excluded) on the first settings and on the final ones (mean over seeds on the test
    set; seeds in brackets where a side has fewer than the other)."""
    rows = []
    for task in tasks:
        metric = headline(task)
        cells = {}
        for side, df in (("first settings", old), ("final settings", new)):
            sub = df[df.task == task] if len(df) else df
            agg = report.aggregate(sub) if len(sub) else pd.DataFrame()
            agg = agg[agg.metric == metric].set_index("method") if len(agg) else agg
            for m in CHANGE_ROWS:
                cells[(m, side)] = agg["mean"].get(m) if len(agg) else None
            others = agg.drop(index=[m for m in agg.index if m in ("teacher_ft", "majority")
                                     or m in L2A_METHODS]) if len(agg) else agg
            best = others["mean"].idxmax() if len(others) else None
            cells[("best other", side)] = (f"{report.METHOD_LABELS.get(best, best)} "
                                           f"{report.number(others['mean'][best])}" if best else "-")
        for m in CHANGE_ROWS + ("best other",):
            rows.append({"task": report.TASK_LABELS[task], "metric": metric,
                         "row": report.METHOD_LABELS.get(m, m) if m != "best other"
                         else "best other method",
                         **{side: (cells[(m, side)] if isinstance(cells[(m, side)], str)
                                   else report.number(cells[(m, side)])
                                   if cells[(m, side)] is not None else "-")
                            for side in ("first settings", "final settings")}})
    return pd.DataFrame(rows)


def _where(record: dict) -> str:
    """Where a run was computed: processor, torch threads, transformers version."""
    env = record.get("environment") or {}
    return ", ".join((env.get("cpu") or "processor not recorded",
                      f"{env.get('threads', '?')} thread(s)",
                      f"transformers {env.get('transformers', '?')}"))


def recomputed_pairs(tasks, methods, seeds, profile="cpu", results_dir=None) -> pd.DataFrame:
    """The final grid's runs whose configuration is a first-settings run's but for the
    extra scores (``extra_scores``: noisy copies and attention, which are read after
    training), where both are cached: the same training computed twice, on the
    machines and library versions of two sessions. Per run: the headline test score of
    each, their difference, the epoch each chose on the dev set (fine-tuned runs), and
    where each was computed."""
    from ..profiles import make_config
    from ..records import read_record
    from ..runs import Context
    runs = Context(results_dir=results_dir).runs
    rows = []
    for task in tasks:
        metric = headline(task)
        for m in methods:
            for seed in seeds:
                final = make_config(task, m, seed, profile=profile, final=True)
                first = dataclasses.replace(final, extra_scores=None)
                pair = [runs / f"{c.hash()}.json" for c in (first, final)]
                if first.hash() == final.hash() or not all(p.is_file() for p in pair):
                    continue
                recs = [read_record(p) for p in pair]
                score = [score_on_test(rec, metric) for rec in recs]
                epoch = [(rec.get("extra") or {}).get("fine_tune", {}).get("best_epoch") for rec in recs]
                where = [_where(rec) for rec in recs]
                rows.append({"task": report.TASK_LABELS[task], "method": report.METHOD_LABELS.get(m, m),
                             "seed": seed, "metric": metric, "first": score[0], "again": score[1],
                             "difference": score[1] - score[0],
                             "dev-chosen epoch": (f"{epoch[0]} -> {epoch[1]}"
                                                  if None not in epoch else "-"),
                             "first computed on": where[0], "again on": where[1]})
    return pd.DataFrame(rows)


def scores_plot(df: pd.DataFrame, tasks, methods):
    """One panel per task on its headline metric: each method's test score per seed (a
    dot) and its mean (a bar), the majority baseline as a dashed line; methods in the
    page's row order, the first at the top."""
    import matplotlib.pyplot as plt
    shown = [m for m in methods if m != "majority" and m in set(df.method)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 0.38 * len(shown) + 1.4),
                             squeeze=False)
    for ax, task in zip(axes[0], tasks):
        metric = headline(task)
        sub = df[(df.task == task) & (df.split == "test") & (df.metric == metric)]
        for i, m in enumerate(shown):
            vals = sub[sub.method == m].value
            ax.scatter(vals, [i] * len(vals), s=18, alpha=0.7, color="tab:blue")
            if len(vals):
                ax.plot([vals.mean()] * 2, [i - 0.32, i + 0.32], color="black", lw=2)
        base = sub[sub.method == "majority"].value
        if len(base):
            ax.axvline(base.mean(), color="grey", ls="--", lw=1, label="majority")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_yticks(range(len(shown)), [report.METHOD_LABELS.get(m, m) for m in shown])
        ax.invert_yaxis()
        ax.set_xlabel(f"test {metric} (dots: seeds, bar: mean)")
        ax.set_title(report.TASK_LABELS[task])
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def table1_final(profile="cpu", tasks=("nli",), methods=("teacher_ft", "student_ft", "l2a"),
                 seeds=(0, 1, 2), allow_training=False, allow_missing=True, results_dir=None,
                 data_dir=None) -> View:
    """Table 1 on the final settings for ``tasks``: the results table, the paired tests
    of L2A against the best baseline, against the best same-student baseline and
    against Student-FT, the methods that answer one class, and the change from the
    first settings."""
    tasks, methods, seeds = list(tasks), list(methods), list(seeds)
    view = View()
    view.value(f"{PREFIX}_tasks", ", ".join(report.TASK_LABELS[t] for t in tasks) or "none")
    df = page_runs(view, tasks, methods, seeds, profile, allow_training, allow_missing,
                   results_dir, data_dir, final=True)
    if len(df):
        means = report.mean_table(df, methods)
        ordered = report.by_size(df, methods)
        table = report.results_table(df, ordered, sizes=report.student_sizes(df, ordered))
        # two tasks a table: four tasks' eight columns do not fit the page's width
        for key, part in (("results", tasks[:2]), ("results_more", tasks[2:])):
            labels = {report.TASK_LABELS[t] for t in part}
            cols = [c for c in table.columns if c[0] in labels]
            view.show(key, report.mark_best(table.loc[:, cols], means) if cols else pending())
        glue_means(view, means, methods, names={m: f"{PREFIX}_{m}" for m in methods})
    else:
        view.show("results", pd.DataFrame({"runs": ["none of this page's runs is computed yet"]}))
        view.show("results_more", pending())
    for t in tasks:  # a task none of whose runs is computed yet: the prose's numbers say so
        for metric in report.METRICS[t]:
            for m in methods:
                view.values.setdefault(f"{PREFIX}_{m}_{t}_{metric}", "(not computed yet)")
    view.show_when("plot", len(df), lambda: scores_plot(df, tasks, methods))
    old = run_many(tasks, [m for m in CHANGE_ROWS if m in methods], seeds, profile=profile,
                   results_dir=results_dir, data_dir=data_dir, allow_missing=True, final=False)
    view.show("changes", change_table(old, df, tasks))
    _recomputed(view, tasks, methods, seeds, profile, results_dir)
    records = load_records(tasks, [m for m in methods if m != "teacher_ft"], seeds,
                           profile=profile, results_dir=results_dir, final=True)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    paired_sections(view, df, records, labels, kinds, tasks, PREFIX)
    sig_ft = with_missing(report.significance_table(records, labels, kinds, baselines=["student_ft"]),
                          df.attrs.get("missing", []), ["l2a", "student_ft"])
    glue_verdicts(view, sig_ft, f"{PREFIX}_l2a_better_ft")
    view.show("paired_student_ft", report.paired_table(sig_ft))
    _paired_controls(view, records, labels, kinds, tasks, seeds, profile, results_dir)
    every = {**records, **load_records(tasks, ["teacher_ft"], seeds, profile=profile,
                                       results_dir=results_dir, final=True)}
    above = majority_tests(every, labels, kinds, tasks, methods)
    for t in tasks:
        if kinds[t] == "classification":
            label = report.TASK_LABELS[t]
            better = above[(above.task == label) & (above.verdict == "better")].method.tolist() \
                if len(above) else []
            view.value(f"{PREFIX}_above_majority_{t}", ", ".join(better) or "none")
    view.show("above_majority", above if len(above) else pd.DataFrame(
        {"runs": ["no classification run is computed yet"]}))
    glue_constant_methods(view, records, labels, kinds, name=f"{PREFIX}_constant_methods")
    _positive_class(view, every, labels, kinds, methods)
    return view


UNDER = "seeds under the test's share"  # positive_class's column


def positive_class(records, labels, kinds, methods, task="pi") -> pd.DataFrame:
    """Where a binary task's F1 comes from, per method: the share of test items it
    predicts positive, the positive class's precision and recall (each the mean over
    seeds) and the seeds at which it predicts fewer positives than the test set holds.
    The first row is the test labels themselves; ``attrs["under_every_seed"]`` lists the
    methods under the test's share at every seed they have."""
    y = np.asarray(labels[task]).astype(int)
    rows = [{"method": "test labels", "predicted positive": y.mean(),
             "precision": None, "recall": None, UNDER: None}]
    under_all = []
    for m in methods:
        preds = report.seed_predictions(records, task, m, kinds[task])
        if not preds:
            continue
        got = []
        for p in preds.values():
            p = np.asarray(p).astype(int)
            hit = int(((p == 1) & (y == 1)).sum())
            got.append((p.mean(), hit / p.sum() if p.sum() else np.nan, hit / max(y.sum(), 1)))
        arr = np.array(got, dtype=float)
        called = arr[~np.isnan(arr[:, 1]), 1]  # precision is undefined where nothing is called positive
        share, recall = arr[:, 0].mean(), arr[:, 2].mean()
        precision = called.mean() if len(called) else np.nan
        under = sum(g[0] < y.mean() for g in got)
        if under == len(got):
            under_all.append(m)
        rows.append({"method": m, "predicted positive": share,
                     "precision": precision, "recall": recall,
                     UNDER: f"{under} of {len(got)}"})
    table = pd.DataFrame(rows)
    table.attrs["under_every_seed"] = under_all
    return table


def _positive_class(view, records, labels, kinds, methods, task="pi") -> None:
    """:func:`positive_class` on the page, with the test set's positive share and the
    methods under it at every seed glued."""
    if task not in labels:  # the task is not on this page
        view.value(f"{PREFIX}_{task}_positive_share", "(not on this page)")
        view.value(f"{PREFIX}_{task}_under_every_seed", "(not on this page)")
        view.show(f"positive_class_{task}", pd.DataFrame({"runs": [f"{report.TASK_LABELS[task]} is not on this page"]}))
        return
    table = positive_class(records, labels, kinds, methods, task)
    view.value(f"{PREFIX}_{task}_positive_share", report.number(table["predicted positive"].iloc[0]))
    under = [report.METHOD_LABELS.get(m, m) for m in table.attrs["under_every_seed"]]
    view.value(f"{PREFIX}_{task}_under_every_seed", ", ".join(under) or "none")
    view.show(f"positive_class_{task}", table if len(table) > 1 else pd.DataFrame(
        {"runs": [f"no {report.TASK_LABELS[task]} run is computed yet"]}))


def _recomputed(view, tasks, methods, seeds, profile, results_dir) -> None:
    """The table of :func:`recomputed_pairs` and its summary: how many pairs, how many
    agree within 0.001, the largest difference."""
    pairs = recomputed_pairs(tasks, methods, seeds, profile, results_dir)
    same = int((pairs.difference.abs() < 1e-3).sum()) if len(pairs) else 0
    view.value(f"{PREFIX}_recomputed_pairs", str(len(pairs)))
    view.value(f"{PREFIX}_recomputed_same", str(same))
    view.value(f"{PREFIX}_recomputed_largest", report.number(pairs.difference.abs().max())
               if len(pairs) else "-")
    shown = pairs.round({"first": 4, "again": 4, "difference": 4}) if len(pairs) else pd.DataFrame(
        {"runs": ["no run of the first settings is computed again yet"]})
    view.show("recomputed", shown)


def majority_tests(records, labels, kinds, tasks, methods, n_boot: int = 2000) -> pd.DataFrame:
    """Every method against the majority baseline on each classification task's headline
    metric, paired by seed and test item (the reader's first sanity check: a method no
    better than answering the majority class has learnt nothing a page can compare).
    Regression has no such row: the mean baseline's Pearson is 0 by definition."""
    from ..report import significance as sig
    rows = []
    for task in tasks:
        kind = kinds[task]
        if kind != "classification":
            continue
        base = sig.seed_predictions(records, task, "majority", kind)
        for m in methods:
            preds = sig.seed_predictions(records, task, m, kind) if m != "majority" else {}
            res = sig.paired_comparison(labels[task], kind, preds, base, n_boot,
                                        metric=headline(task)) if preds and base else None
            if res:
                rows.append({"task": report.TASK_LABELS[task], "method": report.METHOD_LABELS.get(m, m),
                             "metric": headline(task),
                             "above majority": report.number(res["difference"], signed=True),
                             "95% CI": report.interval(res["ci_low"], res["ci_high"]),
                             "seeds higher": res["seeds a higher"],
                             "verdict": sig.verdict(res["sign"])})
    return pd.DataFrame(rows)


class PairedControl(NamedTuple):
    """A control the final Table 1 pairs an L2A method with: on that page, ``key`` and
    ``suffix`` name its glue and table (``final_{key}_runs{suffix}``,
    ``paired_{key}{suffix}``); ``words`` is the name of the sentence the claims and
    front pages glue."""
    method: str
    control: str
    key: str
    suffix: str
    words: str


# what L2A's learning adds (each L2A method against its own learned-parts-off control,
# ``pages.LEARNING_CONTROLS``) and what its augmentation adds (L2A against the same KD
# with no augmentation, ``pages.AUGMENT_CONTROL``): the one table both pages read
_SUFFIX = {"l2a": "", LARGER: "_6"}
PAIRED_CONTROLS = tuple(
    PairedControl(method, control, "parts_off", _SUFFIX[method],
                  f"final_learning_control{_SUFFIX[method]}")
    for method, control in LEARNING_CONTROLS.items()) + (
    PairedControl("l2a", AUGMENT_CONTROL, "kd_only", "", "final_augment_control"),)


def paired_control(records, labels, kinds, tasks, seeds, method, control, profile="cpu",
                   results_dir=None) -> tuple[pd.DataFrame, int, int]:
    """(tests, control runs cached, control runs asked): ``method`` (in ``records``)
    against ``control`` (a row of :data:`PAIRED_CONTROLS`) on the ``tasks`` where the
    control runs; paired per task, with the runs of either still missing counted
    (``with_missing``: the verdict is interim). The control runs are read from the
    cache here."""
    on = [t for t in tasks if runs_on(t, control)]
    cached = load_records(on, [control], seeds, profile=profile, results_dir=results_dir, final=True)
    every = {**records, **cached}
    missing = [(t, m, s) for t in on for m in (method, control) for s in seeds if (t, m, s) not in every]
    sig = report.significance_table(every, labels, kinds, method=method, baselines=[control])
    return with_missing(sig, missing, [method, control]), len(cached), len(on) * len(seeds)


def control_words(sig: pd.DataFrame, method: str = "l2a") -> str:
    """A control's verdict per task in words: the test's word, ``method`` minus the
    control with its 95% interval, and the seeds in which ``method`` is higher."""
    if not len(sig):
        return "not computed yet on any task"
    label = report.METHOD_LABELS.get(method, method)
    return "; ".join(
        f"{r['verdict']} on {report.TASK_LABELS[r['task']]} "
        f"({report.number(r['difference'], signed=True)} {report.interval(r['ci_low'], r['ci_high'])}, "
        f"{label} higher in {r[f'seeds {label} higher']} seeds"
        + (f"; interim, {r['runs missing']} run(s) not computed yet" if r.get("runs missing") else "")
        + ")" for r in sig.to_dict("records"))


def paired_controls(records, labels, kinds, tasks, seeds, profile, results_dir):
    """:func:`paired_control` for each row of :data:`PAIRED_CONTROLS`:
    (that row, tests, control runs cached, asked)."""
    for row in PAIRED_CONTROLS:
        yield (row, *paired_control(records, labels, kinds, tasks, seeds, row.method,
                                    row.control, profile, results_dir))


def _paired_controls(view, records, labels, kinds, tasks, seeds, profile, results_dir) -> None:
    """Each control of :data:`PAIRED_CONTROLS` on the page: what L2A's (and the larger
    student's L2A's) learning adds, and what its augmentation adds, learned or not."""
    for row, sig, n, asked in paired_controls(records, labels, kinds, tasks, seeds,
                                              profile, results_dir):
        _glue_control(view, row.key, row.suffix, sig, n, asked, row.method)


def _glue_control(view, key, suffix, sig, n, asked, method="l2a") -> None:
    """One control's paired test on the page: its runs cached (``final_{key}_runs``), the
    verdicts (``final_l2a_better_{key}``) and the table (``paired_{key}``), each name
    ending in ``suffix``."""
    view.value(f"{PREFIX}_{key}_runs{suffix}", f"{n} of {asked}")
    glue_verdicts(view, sig, f"{PREFIX}_l2a_better_{key}{suffix}")
    label = report.METHOD_LABELS[method]
    view.show(f"paired_{key}{suffix}", report.paired_table(sig).drop(
        columns=[label], errors="ignore").rename(columns={"best baseline": "control"})
        if len(sig) else pd.DataFrame({"runs": ["none of the control's runs is computed yet"]}))
