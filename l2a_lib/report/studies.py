"""The studies: Figure 2 (data size) and the T / alpha sensitivity, as plots,
tables and the trend each statement of the paper predicts."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..studies import STUDIES
from .common import METHOD_LABELS, METRICS, PALETTE, TASK_LABELS, VALUE_NAMES, fmt, set_style
from . import significance
from .display import interval


AXIS_NAMES = {"train_per_class": "target examples per class", "T": "fill temperature T",
              "alpha": "edit-distance temperature alpha"}


def plot_study(df: pd.DataFrame, column: str, methods: list[str], task: str = "tc",
               split: str = "test", reference: dict | None = None):
    """Test metric against the varied value, one line per method, ± sd error bars. The
    x axis has the scale the study's trend is fitted on (``SHAPE_CLAIMS``): log2 for the
    values that double (the data size, T), so the plot shows the line the claims test.
    ``reference``: {(label, metric): value} drawn as dashed horizontal lines (a baseline
    at its default setting)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    set_style()
    log2 = any(SHAPE_CLAIMS[study][0] == "log2" for study, spec in STUDIES.items()
               if spec[1] == column)
    d = df[(df.split == split) & (df.task == task) & df.method.isin(methods)].copy()
    d["Method"] = d.method.map(METHOD_LABELS)
    metrics = list(METRICS[task])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=d[d.metric == metric], x=column, y="value", hue="Method", marker="o",
                     errorbar="sd", err_style="bars", ax=ax, palette=PALETTE)
        for k, ((label, met), value) in enumerate((reference or {}).items()):
            if met == metric:
                ax.axhline(value, ls="--", lw=1.2, color=f"{0.25 + 0.25 * k:.2f}", label=label)
        names = {"acc": "accuracy", "f1": "F1", "pearson": "Pearson r", "spearman": "Spearman rho"}
        ax.set_title(f"{TASK_LABELS[task]}: test {names.get(metric, metric)}", fontsize=10)
        ax.set_ylabel(f"test {names.get(metric, metric)}")
        ax.set_xlabel(AXIS_NAMES.get(column, column))
        if reference and ax.get_legend() is None:
            ax.legend()
        if log2:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(d[column].unique()), [f"{v:g}" for v in sorted(d[column].unique())])
            ax.minorticks_off()
        if ax is not axes[0][-1] and ax.get_legend():
            ax.get_legend().remove()
    if axes[0][-1].get_legend():  # one legend, beside the plots rather than over the lines
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    return fig


def study_table(df: pd.DataFrame, column: str, methods: list[str], task: str = "tc",
                split: str = "test") -> pd.DataFrame:
    """mean ± sd per (value, method, metric); ``(n=k)`` marks a cell from fewer seeds
    than the fullest cell (a study whose runs are not all computed yet)."""
    d = df[(df.split == split) & (df.task == task) & df.method.isin(methods)]
    g = d.groupby([column, "method", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()
    full = g["count"].max() if len(g) else 0  # a cell from fewer seeds than the others says so
    g["cell"] = [fmt(m, s) + (f" (n={n})" if n < full else "")
                 for m, s, n in zip(g["mean"], g["std"], g["count"])]
    g["col"] = [f"{METHOD_LABELS.get(m, m)} {met}" for m, met in zip(g.method, g.metric)]
    out = g.pivot(index=column, columns="col", values="cell").fillna("-")
    out.columns.name = None
    return out.rename_axis(VALUE_NAMES.get(column, column))


def study_by_seed(df: pd.DataFrame, column: str, methods: list[str], task: str = "tc",
                  seeds: list[int] | None = None, split: str = "test") -> pd.DataFrame:
    """The task's main metric (ACC, or Pearson for regression) of every run of a
    study: one row per value, one column per method, each cell the seeds' scores
    in ``seeds`` order, ``-`` for a run not computed yet. It shows what a wide sd
    in :func:`study_table` comes from: one seed far from the others, or all apart."""
    metric = METRICS[task][0]
    d = df[(df.split == split) & (df.task == task) & df.method.isin(methods) & (df.metric == metric)]
    seeds = sorted(int(s) for s in d.seed.unique()) if seeds is None else list(seeds)
    score = {(v, m, int(s)): x for v, m, s, x in zip(d[column], d.method, d.seed, d.value)}
    present = [m for m in methods if m in set(d.method)]
    values = sorted(set(d[column]))
    table = pd.DataFrame(
        {f"{METHOD_LABELS.get(m, m)} {metric}": [
            " / ".join(f"{score[(v, m, s)]:.3f}" if (v, m, s) in score else "-" for s in seeds)
            for v in values] for m in present},
        index=pd.Index(values, name=VALUE_NAMES.get(column, column)))
    table.columns = [f"{c} (seeds {' / '.join(map(str, seeds))})" for c in table.columns]
    return table


# ------------------------------------------------- the studies' shape, checked
# study -> (how the varied value enters the trend, the paper's statements). The
# slides give Figure 2 and the sensitivity study as shapes only
# (paper_results.md); each statement becomes a trend of the main test metric
# whose sign the paper predicts, or one paired difference.
SHAPE_CLAIMS = {
    "fig2_data_size": ("log2", [
        ("the smaller the target set, the larger L2A's gain", ("l2a", "student_ft"), "trend", -1),
        ("at small sizes the student even beats the teacher", ("l2a", "teacher_ft"), "smallest", 1)]),
    "sensitivity_T": ("log2", [("small T is best", ("l2a",), "trend", -1)]),
    "sensitivity_alpha": ("linear", [("quality degrades as alpha grows", ("l2a",), "trend", -1)]),
}


def not_computed(missing, task: str, methods, value=None) -> int:
    """How many of the runs listed as not computed yet (``df.attrs["missing"]``:
    ``(task, method, seed[, value])``) are on ``task`` with one of ``methods``, and
    at the study value ``value`` when one is given."""
    return sum(t == task and m in methods and (value is None or rest[1:2] == [value])
               for t, m, *rest in missing)


def within_seed_trend(x, y, seeds) -> tuple[float, float, float] | None:
    """Least-squares slope of ``y`` on ``x`` within seeds (each seed's own means
    removed: a seed's few-shot draw and teacher shift all of its runs alike) and
    its 95% t interval, ``(slope, low, high)``; ``None`` when the runs leave no
    degree of freedom (fewer than two values within a seed, or too few runs)."""
    from scipy import stats
    x, y, seeds = (np.asarray(a, dtype=float) for a in (x, y, seeds))
    xc, yc = x.copy(), y.copy()
    for s in np.unique(seeds):
        k = seeds == s
        xc[k] -= xc[k].mean()
        yc[k] -= yc[k].mean()
    sxx = float((xc ** 2).sum())
    dof = len(x) - len(np.unique(seeds)) - 1
    if sxx <= 1e-12 or dof < 1:
        return None
    slope = float((xc * yc).sum() / sxx)
    se = float(np.sqrt(((yc - slope * xc) ** 2).sum() / dof / sxx))
    half = float(stats.t.ppf(0.975, dof)) * se
    return slope, slope - half, slope + half


def _paired_mean(diffs) -> tuple[float, float, float] | None:
    """Mean of paired differences with its 95% t interval over seeds; None below 2 seeds."""
    from scipy import stats
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return None
    half = float(stats.t.ppf(0.975, len(d) - 1)) * float(d.std(ddof=1)) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean()) - half, float(d.mean()) + half


def study_shape(df: pd.DataFrame, study: str, task: str = "tc", split: str = "test") -> pd.DataFrame:
    """The paper's statements about a study (``SHAPE_CLAIMS``), checked on the main
    test metric (ACC, or Pearson for regression).

    A trend is the within-seed least-squares slope of the metric (or, for a gain,
    of L2A minus the other method on the same seed) on the varied value (its log2
    for the data size and T, whose values double), given as the change it
    predicts from the smallest to the largest value, with a 95% interval.
    "supported" when the interval lies on the side the paper predicts, "contradicted"
    when it lies on the other side, else "not shown" (``significance.verdict``). Runs not computed yet
    (``df.attrs["missing"]``) make a verdict "interim", or "pending" when too few
    runs are there to fit it."""
    column = STUDIES[study][1]
    scale, statements = SHAPE_CLAIMS[study]
    metric = METRICS[task][0]
    d = df[(df.split == split) & (df.task == task) & (df.metric == metric)]
    score = d.pivot_table(index=[column, "seed"], columns="method", values="value")
    missing = df.attrs.get("missing", [])
    values = sorted({v for v, _ in score.index} | {m[3] for m in missing if m[0] == task})
    rows = []
    for claim, methods, kind, sign in statements:
        have = score.reindex(columns=list(methods)).dropna()  # no rows if a method has no run
        at = values[0] if values else None
        if kind == "smallest":
            have = have[have.index.get_level_values(0) == at]
        gap = not_computed(missing, task, methods, at if kind == "smallest" else None)
        y = have[methods[0]] - (have[methods[1]] if len(methods) > 1 else 0.0)
        quantity = (f"{METHOD_LABELS[methods[0]]} - {METHOD_LABELS[methods[1]]}" if len(methods) > 1
                    else METHOD_LABELS[methods[0]]) + f" {metric}"
        v = y.index.get_level_values(0).to_numpy(dtype=float)
        if kind == "smallest":
            fit = _paired_mean(y.to_numpy())
            where = f" at {VALUE_NAMES.get(column, column)} = {at:g}" if at is not None else ""
            change = fit
            evidence = (f"{quantity}{where}: {fit[0]:+.3f} {interval(fit[1], fit[2])}, "
                        f"higher in {int((y > 0).sum())} of {len(y)} seeds") if fit else None
        else:
            x = np.log2(v) if scale == "log2" else v
            fit = within_seed_trend(x, y.to_numpy(), y.index.get_level_values(1))
            span = (x.max() - x.min()) if len(x) else 0.0
            change = tuple(f * span for f in fit) if fit else None
            evidence = (f"{quantity}, {VALUE_NAMES.get(column, column)} {v.min():g} -> {v.max():g}: {change[0]:+.3f} "
                        f"{interval(change[1], change[2])} ({len(y)} runs)") if fit else None
        if change is None:
            verdict = "pending"
            evidence = f"{gap} run(s) not computed yet" if gap else "too few runs to fit"
        else:
            verdict = significance.verdict(sign * significance.interval_sign(change[1], change[2]),
                                           "claim")
            if gap:
                verdict += f" (interim: {gap} run(s) not computed yet)"
        rows.append({"study": study, "paper": claim, "evidence": evidence, "verdict": verdict,
                     "change": change[0] if change else np.nan,
                     "ci_low": change[1] if change else np.nan,
                     "ci_high": change[2] if change else np.nan})
    return pd.DataFrame(rows, columns=["study", "paper", "evidence", "verdict", "change",
                                       "ci_low", "ci_high"])


