"""The SMART page (issue 36): Student-FT and L2A (version 2), each with SMART's
adversarial term alone and with the Bregman proximal point too, against the same
method without SMART, paired by seed and test item; what the regulariser added to the
training loss; a plot of the paired differences."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import report
from ..config import SMART_VARIANTS
from ..tasks import HEADLINE_METRICS
from ..experiment import gather
from ..pages import SMART_PAIRS, smart_configs
from ..profiles import final_grid
from ..records import cache_path, load_test_labels, read_record
from ..report.significance import decode_predictions, metric_name, paired_comparison, verdict
from ..runs import Context
from ..train import smart_terms
from .base import View

PAIRS = SMART_PAIRS
HEADLINE = HEADLINE_METRICS


def score_table(df: pd.DataFrame) -> pd.DataFrame:
    """Each (task, method, variant)'s headline test score: mean, sd and seeds."""
    test = df[(df.split == "test") & (df.metric == df.task.map(HEADLINE))]
    if test.empty:
        return pd.DataFrame()
    t = (test.assign(method=test.method.str.replace("_smart", "", regex=False))
         .groupby(["task", "method", "variant"]).value.agg(["mean", "std", "count"]).reset_index())
    return t.rename(columns={"mean": "test", "std": "sd", "count": "seeds"})


KD_TERMS = ("att", "hidden", "dark")


def l2a_terms(episodes: list[dict]) -> dict | None:
    """L2A's loss and SMART term over its episodes (``train.smart_terms``): each episode
    logs the terms of L_KD and SMART's on one step of augmented samples (``aug_*``)."""
    return smart_terms([(sum(e.get(f"aug_{k}", 0.0) for k in KD_TERMS), e["aug_smart"])
                        for e in episodes if "aug_smart" in e])


def terms_table(pairs, ctx: Context) -> pd.DataFrame:
    """What SMART added during training, per run: the mean training loss (Student-FT:
    the task loss over all steps, ``train.smart_terms``; L2A: L_KD on the episodes'
    logged steps), the mean SMART term (adversarial + Bregman) and their ratio; averaged
    over seeds."""
    rows = []
    for variant, c in pairs:
        path = cache_path(c, ctx)
        if variant == "none" or not path.is_file():
            continue
        extra = read_record(path).get("extra", {})
        terms = (l2a_terms(extra.get("episodes", [])) if c.method == "l2a_smart"
                 else extra.get("fine_tune", {}).get("smart_terms"))
        if terms:
            rows.append({"task": c.task, "method": c.method.replace("_smart", ""),
                         "variant": variant, "task loss": terms["task_loss"],
                         "SMART term": terms["smart"], "share": terms["share"]})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).groupby(["task", "method", "variant"]).mean().reset_index()


def plot_differences(tests: pd.DataFrame):
    """One panel per task: each (method, variant)'s paired difference to the method
    without SMART, with its 95% interval over test items; a line at no change."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    tasks = list(dict.fromkeys(tests.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 2.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        g = tests[tests.task == task].reset_index(drop=True)
        y = np.arange(len(g))
        ax.errorbar(g["difference"], y, xerr=[g["difference"] - g["ci_low"], g["ci_high"] - g["difference"]],
                    fmt="o", color="tab:blue", capsize=3)
        ax.axvline(0, color="grey", lw=1, ls="--")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3))  # narrow intervals: few, legible ticks
        ax.set_yticks(y, [f"{m} + SMART ({v})" for m, v in zip(g["method"], g["SMART"])], fontsize=8)
        ax.set_xlabel(f"{g['metric'].iloc[0]}: with SMART - without")
        ax.set_title(task, fontsize=10)
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def smart(profile="cpu", tasks=tuple(HEADLINE), seeds=(0, 1, 2), allow_training=False,
          allow_missing=True, results_dir=None, data_dir=None, final=None) -> View:
    tasks, seeds = list(tasks), list(seeds)
    view = View()
    view.value("smart_tasks", ", ".join(report.TASK_LABELS[t] for t in tasks) or "none")
    pairs = smart_configs(tasks, seeds, profile, final)
    ctx = Context(data_dir, results_dir)
    df = gather(pairs, ctx, allow_training, allow_missing, column="variant", what=" of the SMART page")
    final_flag = " --final" if final_grid(final) else ""
    view.note(report.coverage_note(df, command=(
        f"`python -m l2a_lib run{final_flag} --task T --method M --seeds S`, with "
        "`--smart V` for a SMART variant V")))
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    preds: dict = {}
    for variant, c in pairs:
        path = cache_path(c, ctx)
        if path.is_file():
            rec = read_record(path)
            if "test_predictions" in rec.get("extra", {}):
                key = (c.task, c.method.replace("_smart", ""), variant)
                preds.setdefault(key, {})[c.seed] = decode_predictions(
                    kinds[c.task], rec["extra"]["test_predictions"])
    rows = []
    for task in tasks:
        metric = metric_name(kinds[task], HEADLINE[task])
        for _, base in PAIRS:
            for variant in SMART_VARIANTS:
                a, b = preds.get((task, base, variant), {}), preds.get((task, base, "none"), {})
                res = paired_comparison(labels[task], kinds[task], a, b, metric=metric)
                if res:
                    rows.append({"task": report.TASK_LABELS.get(task, task),
                                 "method": report.METHOD_LABELS.get(base, base),
                                 "SMART": variant, "metric": metric, "with SMART": res["a"],
                                 "without": res["b"], "difference": res["difference"],
                                 "ci_low": res["ci_low"], "ci_high": res["ci_high"],
                                 "seeds higher with SMART": res["seeds a higher"],
                                 "verdict": verdict(res["sign"])})
    tests = pd.DataFrame(rows)
    scores = score_table(df)
    view.show_when("scores", len(scores), lambda: scores.assign(
        task=scores.task.map(report.TASK_LABELS),
        method=scores.method.map(lambda m: report.METHOD_LABELS.get(m, m))).round(3))
    terms = terms_table(pairs, ctx)
    view.show_when("terms", len(terms), lambda: terms.assign(
        task=terms.task.map(report.TASK_LABELS),
        method=terms.method.map(lambda m: report.METHOD_LABELS.get(m, m))).round(4))
    for variant in SMART_VARIANTS:  # the prose quotes Student-FT's share and difference
        share = terms[(terms.method == "student_ft") & (terms.variant == variant)] if len(terms) else terms
        view.value(f"smart_share_{variant}", f"{share['share'].mean():.1%}" if len(share)
                   else "(not computed yet)")
    view.show_when("tests", len(tests), lambda: tests.assign(
        **{"95% CI": [report.interval(lo, hi) for lo, hi in zip(tests.ci_low, tests.ci_high)]})
        .drop(columns=["ci_low", "ci_high"]))
    view.show_when("plot", len(tests), lambda: plot_differences(tests))
    return view
