"""The data page's sizes table, the results tables: Table 1 (methods x tasks, beside the paper's numbers),
Table 3's layout, and the L2A training log (episodes, the selector's policy)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import data
from .common import (COLUMN_ORDER, METHOD_LABELS, METRICS, PALETTE, TASK_LABELS, aggregate, fmt,
                     paper_results, paper_rows, set_style)


def student_sizes(df: pd.DataFrame, methods: list[str]) -> dict[str, str]:
    """{method: its model's size in parameters, e.g. "19M"} (the largest over tasks;
    "none" for the majority baseline), to group Table 1's rows by student size."""
    n = df[df.method.isin(methods)].groupby("method")["n_params"].max()
    return {m: "none" if not n.get(m) else f"{n[m] / 1e6:.0f}M" for m in methods
            if m in n.index}


def by_size(df: pd.DataFrame, methods: list[str]) -> list[str]:
    """``methods`` reordered largest model first, the given order kept within a size."""
    n = df[df.method.isin(methods)].groupby("method")["n_params"].max().fillna(0)
    return sorted(methods, key=lambda m: -round(float(n.get(m, 0)) / 1e6))


def results_table(df: pd.DataFrame, methods: list[str], split: str = "test",
                  with_paper: bool = True, paper_table: str = "table1",
                  sizes: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows: each method (ours, and the paper's beside it); columns: task x metric.
    Cells: ``mean ± sd`` over seeds (ours) or the paper's number. ``sizes`` ({method:
    size}, :func:`student_sizes`) adds our model's size to each of our rows' method
    (a table grouped by size reads it there, at no width)."""
    agg = aggregate(df[df.method.isin(methods)], split)
    paper = paper_rows(paper_table)
    rows = {}
    for m in methods:
        label = METHOD_LABELS.get(m, m)
        ours, theirs = {}, {}
        for t, met in COLUMN_ORDER:
            r = agg[(agg.task == t) & (agg.method == m) & (agg.metric == met)]
            ours[(TASK_LABELS[t], met)] = fmt(r["mean"].iloc[0], r["sd"].iloc[0]) if len(r) else "-"
            p = paper[(paper.task == t) & (paper.method == m) & (paper.metric == met)]
            theirs[(TASK_LABELS[t], met)] = f"{p.value.iloc[0]:.3f}" if len(p) else "-"
        size = (sizes or {}).get(m)
        rows[(f"{label} ({size})" if size and size != "none" else label, "ours")] = ours
        if with_paper:
            rows[(label, "paper")] = theirs
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index = pd.MultiIndex.from_tuples(out.index, names=["method", "source"])
    return out


def mean_table(df: pd.DataFrame, methods: list[str], split: str = "test") -> pd.DataFrame:
    """Numeric means (rows: methods, columns: task x metric) for styling and glue."""
    agg = aggregate(df[df.method.isin(methods)], split)
    agg["col"] = list(zip(agg.task.map(TASK_LABELS), agg.metric))
    wide = agg.pivot(index="method", columns="col", values="mean")
    cols = [(TASK_LABELS[t], m) for t, m in COLUMN_ORDER if (TASK_LABELS[t], m) in wide.columns]
    wide = wide.reindex(index=[m for m in methods if m in wide.index], columns=cols)
    wide.columns = pd.MultiIndex.from_tuples(wide.columns)
    return wide


def mark_best(table: pd.DataFrame, means: pd.DataFrame):
    """``table`` (from ``results_table``) as a page shows it (``display.readable``), the
    best of ours per column in bold."""
    from .display import readable
    best = {c: METHOD_LABELS.get(means[c].idxmax()) for c in means.columns
            if means[c].notna().any()}
    bold = np.zeros((len(table), len(table.columns) + table.index.nlevels), dtype=bool)
    for i, (method, source) in enumerate(table.index):
        for j, col in enumerate(table.columns):  # our label may carry the model's size
            bold[i, j + table.index.nlevels] = source == "ours" and best.get(col) in (
                method, method.rsplit(" (", 1)[0])
    return readable(table, bold=bold)


METRIC_NAMES = {"acc": "accuracy", "f1": "F1", "pearson": "Pearson r", "spearman": "Spearman rho"}
SEED_MARKERS = ("o", "s", "^", "v", "P", "X")


def plot_vs_paper(df: pd.DataFrame, methods: list[str], split: str = "test",
                  paper_table: str = "table1"):
    """A 2 x 2 grid, one panel per task on its first metric (accuracy, or Pearson for
    regression): each method a row, each seed a marker of its own shape, the mean
    over seeds a vertical bar, the paper's number a black diamond; the legend below
    the panels."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    set_style()
    d = df[(df.split == split) & df.method.isin(methods)]
    paper = paper_rows(paper_table)
    paper = paper[paper.method.isin(methods)]
    tasks = [t for t in TASK_LABELS if (d.task == t).any()]
    rows_n = 1 if len(tasks) <= 2 else 2
    cols_n = 1 if len(tasks) == 1 else 2
    height = 0.32 * len(methods) + 1.2
    fig, axes = plt.subplots(rows_n, cols_n, figsize=(5.2 * cols_n, height * rows_n), squeeze=False)
    seeds = sorted(d.seed.unique())
    colors = dict(zip(methods, __import__("seaborn").color_palette(PALETTE, len(methods))))
    for ax, t in zip(axes.flat, tasks):
        metric = METRICS[t][0]
        sub = d[(d.task == t) & (d.metric == metric)]
        p = paper[(paper.task == t) & (paper.metric == metric)].set_index("method")["value"]
        for i, m in enumerate(methods):
            y = len(methods) - 1 - i
            vals = sub[sub.method == m]
            if len(vals):
                ax.plot([vals.value.mean()] * 2, [y - 0.35, y + 0.35], color=colors[m], lw=3)
                for _, r in vals.iterrows():
                    k = seeds.index(r.seed) % len(SEED_MARKERS)
                    ax.scatter(r.value, y, marker=SEED_MARKERS[k], s=22, color=colors[m],
                               edgecolor="0.2", linewidth=0.5, zorder=4)
            if m in p:
                ax.scatter(p[m], y, marker="D", s=34, color="black", zorder=5)
        ax.set_yticks(range(len(methods)), [METHOD_LABELS.get(m, m) for m in reversed(methods)])
        ax.set_ylim(-0.6, len(methods) - 0.4)
        ax.set_xlabel(f"test {METRIC_NAMES[metric]}")
        ax.set_title(f"{TASK_LABELS[t]} ({METRIC_NAMES[metric]})", fontsize=10)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color="0.3", lw=3, label="our mean over seeds")]
    handles += [Line2D([], [], ls="", marker=SEED_MARKERS[k % len(SEED_MARKERS)], color="0.6",
                       markeredgecolor="0.2", label=f"seed {s}") for k, s in enumerate(seeds)]
    handles += [Line2D([], [], ls="", marker="D", color="black", label="the paper")]
    fig.tight_layout(rect=(0, 0.06 if rows_n == 2 else 0.1, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    return fig


def ablation_table(df: pd.DataFrame, methods: list[str], task: str = "tc",
                   split: str = "test") -> pd.DataFrame:
    """Table 3's layout: rows ACC / F1, columns the variants; ours (mean ± sd) and the paper's."""
    agg = aggregate(df[(df.task == task) & df.method.isin(methods)], split)
    paper = paper_results()
    paper = paper[(paper.table == "table3") & (paper.task == task)]
    cols = {}
    for m in methods:
        label = METHOD_LABELS.get(m, m) if m != "l2a" else "L_KD"
        ours, theirs = {}, {}
        for metric in METRICS[task]:
            r = agg[(agg.method == m) & (agg.metric == metric)]
            ours[metric] = fmt(r["mean"].iloc[0], r["sd"].iloc[0]) if len(r) else "-"
            p = paper[(paper.method == m) & (paper.metric == metric)]
            theirs[metric] = f"{p.value.iloc[0]:.3f}" if len(p) else "-"
        cols[(label, "ours")] = ours
        cols[(label, "paper")] = theirs
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def episode_frame(records: dict) -> pd.DataFrame:
    """Tidy per-episode log of L2A runs: {(task, seed): record} -> rows."""
    rows = []
    for (task, seed), rec in records.items():
        for e in rec["extra"]["episodes"]:
            rows.append({"task": task, "seed": seed, "episode": e["episode"],
                         "mean reward": e.get("mean_reward", e.get("reward")),  # version 2: "reward" "keep rate": e["keep_rate"],
                         "dev metric": e["dev_metric"],
                         "keep prob sd": e.get("keep_prob_sd", np.nan),
                         "generator KL to MLM": e.get("generator_kl", np.nan)})
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def policy_summary(records: dict) -> pd.DataFrame:
    """What the selector learnt, per task: over the last episode of each seed, the
    spread of its keep probability and its correlation with the edit rate and
    with the teacher-student disagreement (mean ± sd over seeds)."""
    rows = []
    for (task, seed), rec in records.items():
        last = rec["extra"]["episodes"][-1]
        if "keep_prob_sd" not in last:
            continue
        rows.append({"task": task, "seed": seed, "keep rate": last["keep_rate"],
                     "keep prob sd": last["keep_prob_sd"],
                     "corr(keep, edit rate)": last["keep_corr_edit_rate"],
                     "corr(keep, disagreement)": last["keep_corr_disagreement"]})
    if not rows:
        return pd.DataFrame()
    d = pd.DataFrame(rows)
    cols = [c for c in d.columns if c not in ("task", "seed")]
    out = d.groupby("task", sort=False)[cols].agg(lambda v: fmt(v.mean(), v.std()))
    out.index = pd.Index([TASK_LABELS.get(t, t) for t in out.index], name="task")
    return out


def plot_episodes(episodes: pd.DataFrame, quantities=("mean reward", "keep rate", "dev metric"),
                  labels: dict | None = None, reference: dict | None = None):
    """Each quantity per episode (one row of panels each; default: mean reward, keep
    rate, dev metric), one column per task, one line per seed (its own marker); the
    dev metric named per task. ``labels``: axis label per quantity; ``reference``: a
    horizontal line per quantity (e.g. signal-to-noise 1)."""
    import matplotlib.pyplot as plt
    set_style()
    quantities = [q for q in quantities if q in episodes and episodes[q].notna().any()]
    tasks = [t for t in TASK_LABELS if (episodes.task == t).any()]
    fig, axes = plt.subplots(len(quantities), len(tasks), figsize=(2.7 * len(tasks), 1.9 * len(quantities)),
                             squeeze=False, sharex=True)
    seeds = sorted(episodes.seed.unique())
    colors = __import__("seaborn").color_palette(PALETTE, len(seeds))
    for j, t in enumerate(tasks):
        for i, q in enumerate(quantities):
            ax = axes[i][j]
            for k, s in enumerate(seeds):
                e = episodes[(episodes.task == t) & (episodes.seed == s)].sort_values("episode")
                ax.plot(e.episode, e[q], marker=SEED_MARKERS[k % len(SEED_MARKERS)], ms=3, lw=1,
                        color=colors[k], label=f"seed {s}")
            metric = METRIC_NAMES[METRICS[t][0]]
            if reference and q in reference:
                ax.axhline(reference[q], color="0.5", lw=0.8, ls="--")
            ax.set_ylabel({"dev metric": f"dev {metric}", "mean reward": f"reward (change of dev {metric})",
                           **(labels or {})}.get(q, q), fontsize=8)
            if i == 0:
                ax.set_title(TASK_LABELS[t], fontsize=10)
            if i == len(quantities) - 1:
                ax.set_xlabel("episode")
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
            ax.tick_params(labelsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(seeds), frameon=False, fontsize=9)
    return fig


def data_summary(data_dir=None, cfg_by_task: dict | None = None, seed: int = 0
            ) -> pd.DataFrame:
    """Sizes and label balance of every task's domains and splits (the data page)."""
    rows = []
    for name, spec in data.TASK_REGISTRY.items():
        td = data.load_task(name, (cfg_by_task or {}).get(name), seed=seed, data_dir=data_dir)
        for split in ("source", "train", "dev", "test"):
            df = getattr(td, split)
            row = {"task": name, "split": split, "n": len(df),
                   "dropped_empty_in_domain": td.dropped_empty["source" if split == "source"
                                                               else "target"]}
            if spec.kind == "classification":
                row["positive_share"] = float((df["label"] == 1).mean())
            else:
                row["label_mean"] = float(df["label"].mean())
                row["label_sd"] = float(df["label"].std())
            rows.append(row)
    return pd.DataFrame(rows)
