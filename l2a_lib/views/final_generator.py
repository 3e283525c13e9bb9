"""The diagnostics page's section on the final grid's settings: L2A's generator under
version 2's first update, A(z) (the runs computed before the fix, kept as the control),
and under the bounded update A+(z) the final grid uses (``l2a_lib.l2a.generator``):
how far each generator moved from the masked LM, what it wrote, and the test scores
paired by seed."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import report
from ..profiles import FINAL_GENERATOR_WEIGHTING, make_config
from ..records import cache_path, load_test_labels, read_record
from ..report import diagnostics as diag
from ..report.significance import metric_name, paired_comparison, seed_predictions, verdict
from ..runs import Context
from ..tasks import HEADLINE_METRICS
from .base import View

# the two updates, as the page names them, and the weighting each run was computed with
UPDATES = {"A(z), standardised": "advantage", "A+(z), bounded": FINAL_GENERATOR_WEIGHTING}
COLLAPSE_KL = 10.0  # nats: a generator this far from the masked LM writes other text
GALLERY_ROWS = 3    # generator samples shown per task and update
CONTROL_TASKS = ("nli", "reg")  # the tasks whose final L2A ran first with A(z)


def final_records(tasks, seeds, profile="cpu", results_dir=None) -> dict:
    """{(task, update, seed): record} of the final grid's L2A runs under each update."""
    ctx = Context(results_dir=results_dir)
    out = {}
    for task in tasks:
        for update, weighting in UPDATES.items():
            for seed in seeds:
                c = make_config(task, "l2a", seed, profile=profile, final=True,
                                l2a_overrides={"generator_weighting": weighting})
                if cache_path(c, ctx).is_file():
                    out[(task, update, seed)] = read_record(cache_path(c, ctx))
    return out


def kl_frame(records: dict) -> pd.DataFrame:
    """One row per episode: the generator's KL to the masked LM and the dev metric."""
    rows = [{"task": report.TASK_LABELS.get(t, t), "update": u, "seed": s, "episode": e["episode"],
             "generator_kl": float(e.get("generator_kl", np.nan)),
             "dev_metric": float(e.get("dev_metric", np.nan))}
            for (t, u, s), rec in records.items() for e in rec["extra"]["episodes"]]
    return pd.DataFrame(rows)


def peaks(frame: pd.DataFrame) -> pd.Series:
    """The largest KL each run's generator reached, indexed by (task, update, seed)."""
    if frame.empty:  # no run yet: the same index levels, no rows
        return pd.Series(dtype=float, index=pd.MultiIndex.from_arrays(
            [[], [], []], names=["task", "update", "seed"]), name="generator_kl")
    return frame.groupby(["task", "update", "seed"], sort=False).generator_kl.max()


def kl_table(peak: pd.Series) -> pd.DataFrame:
    """Per task and update, from each run's largest KL (:func:`peaks`): runs, the median
    and maximum over the runs, and how many runs went past ``COLLAPSE_KL``."""
    rows = []
    for (task, update), p in peak.groupby(level=["task", "update"], sort=False):
        rows.append({"task": task, "update": update, "runs": len(p),
                     "largest KL, median over runs": p.median(), "largest KL, max": p.max(),
                     f"runs past {COLLAPSE_KL:g} nats": f"{int((p > COLLAPSE_KL).sum())} of {len(p)}"})
    return pd.DataFrame(rows).set_index(["task", "update"]) if rows else pd.DataFrame()


def plot_kl(frame: pd.DataFrame):
    """The generator's KL to the masked LM over episodes: a panel per task, a line per
    run, coloured by update, on a log scale."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    tasks = list(dict.fromkeys(frame.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.0), squeeze=False, sharey=True)
    colours = dict(zip(UPDATES, ("tab:red", "tab:blue")))
    for ax, task in zip(axes[0], tasks):
        for (update, seed), g in frame[frame.task == task].groupby(["update", "seed"], sort=False):
            ax.plot(g.episode + 1, g.generator_kl.clip(lower=1e-3), color=colours[update], lw=1.2,
                    label=update if seed == g.seed.min() else None, alpha=0.8)
        ax.axhline(COLLAPSE_KL, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("episode")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("KL(masked LM || G), nats")
    uniq = {}  # one legend entry per update, from whichever panel has its runs
    for ax in axes[0]:
        handles, labels = ax.get_legend_handles_labels()
        uniq.update({k: v for k, v in zip(labels, handles) if k not in uniq})
    fig.legend(uniq.values(), uniq.keys(), loc="upper center", ncol=len(uniq), fontsize=8,
               bbox_to_anchor=(0.5, 1.06))
    fig.tight_layout()
    return fig


def gallery(records: dict) -> pd.DataFrame:
    """What the trained generator wrote: per task, the run of the standardised update
    whose KL went highest, and the bounded run of the same seed, ``GALLERY_ROWS``
    samples each from the run's gallery (fills drawn from G after training)."""
    rows = []
    for task in dict.fromkeys(t for t, _, _ in records):
        std = {s: r for (t, u, s), r in records.items() if t == task and u == list(UPDATES)[0]}
        if not std:
            continue
        seed = max(std, key=lambda s: max(e.get("generator_kl", 0.0) for e in std[s]["extra"]["episodes"]))
        for update in UPDATES:
            rec = records.get((task, update, seed))
            shown = [g for g in (rec or {}).get("extra", {}).get("gallery", [])
                     if g.get("from", "").startswith("G_theta")][:GALLERY_ROWS]
            rows += [{"task": report.TASK_LABELS.get(task, task), "update": update, "seed": seed,
                      "original": g["original"], "generator's sample": g["sample"]} for g in shown]
    return pd.DataFrame(rows)


def score_tests(records: dict, tasks, profile="cpu", data_dir=None) -> pd.DataFrame:
    """Per task: the bounded update's L2A against the standardised one's, paired by seed
    and over test items (the headline metric)."""
    labels, kinds = load_test_labels(list(tasks), profile=profile, data_dir=data_dir)
    rows = []
    first, final = list(UPDATES)
    for task in tasks:
        metric = metric_name(kinds[task], HEADLINE_METRICS[task])
        res = paired_comparison(labels[task], kinds[task],
                                seed_predictions(records, task, final, kinds[task]),
                                seed_predictions(records, task, first, kinds[task]), metric=metric)
        if res:
            rows.append({"task": report.TASK_LABELS.get(task, task), "metric": metric,
                         final: res["a"], first: res["b"], "difference": res["difference"],
                         "95% CI": report.interval(res["ci_low"], res["ci_high"]),
                         "seeds higher, bounded": res["seeds a higher"], "verdict": verdict(res["sign"])})
    return pd.DataFrame(rows).set_index("task") if rows else pd.DataFrame()


def final_generator(view: View, tasks, seeds, profile="cpu", results_dir=None, data_dir=None) -> None:
    """The section's tables, plot and glued values (``diag_final_*``)."""
    tasks, seeds = list(tasks), list(seeds)
    records = final_records(tasks, seeds, profile, results_dir)
    frame = kl_frame(records)
    view.value("diag_final_tasks", ", ".join(report.TASK_LABELS.get(t, t) for t in tasks) or "none")
    peak = peaks(frame)
    for key, update in (("standardised", list(UPDATES)[0]), ("bounded", list(UPDATES)[1])):
        runs = peak[peak.index.get_level_values("update") == update]
        view.value(f"diag_final_runs_{key}", str(len(runs)))
        view.value(f"diag_final_collapsed_{key}", f"{int((runs > COLLAPSE_KL).sum())} of {len(runs)}")
        view.value(f"diag_final_kl_max_{key}", f"{runs.max():.1f}" if len(runs) else "-")
    view.value("diag_collapse_kl", f"{COLLAPSE_KL:g}")
    view.show_when("final_kl", len(frame), lambda: kl_table(peak).round(2))
    view.show_when("final_kl_plot", len(frame), lambda: plot_kl(frame))
    view.show_when("final_gallery", len(frame), lambda: gallery(records))
    tests = score_tests(records, tasks, profile, data_dir) if len(frame) else pd.DataFrame()
    view.show_when("final_scores", len(tests), lambda: tests.round(3))
    short = dict(zip(UPDATES, ("A", "A+")))
    dframe = diag.diagnostics_frame({(f"{report.TASK_LABELS.get(t, t)}, {short[u]}", "l2a", s): r
                                     for (t, u, s), r in records.items()})
    view.show_when("final_signal", len(dframe), lambda: diag.reward_signal(dframe))
    view.show_when("final_selector", len(dframe), lambda: diag.selector_summary(dframe))
