"""The data page's sizes table, the results tables: Table 1 (methods x tasks, beside the paper's numbers),
Table 3's layout, and the L2A training log (episodes, the selector's policy)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import data
from .common import (COLUMN_ORDER, METHOD_LABELS, METRICS, PALETTE, TASK_LABELS, aggregate, fmt,
                     paper_results, paper_rows, set_style)


def results_table(df: pd.DataFrame, methods: list[str], split: str = "test",
                  with_paper: bool = True, paper_table: str = "table1") -> pd.DataFrame:
    """Rows: each method (ours, and the paper's beside it); columns: task x metric.
    Cells: ``mean ± sd`` over seeds (ours) or the paper's number."""
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
            theirs[(TASK_LABELS[t], met)] = f"{p.value.iloc[0]:.4f}" if len(p) else "-"
        rows[(label, "this repo")] = ours
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
    """Style ``table`` (from ``results_table``) with the best of ours per column in bold."""
    best = {c: means[c].idxmax() for c in means.columns}

    def style(col):
        return ["font-weight: bold" if (src == "this repo" and best.get(col.name)
                                        and METHOD_LABELS.get(best[col.name]) == m) else ""
                for m, src in col.index]
    return table.style.apply(style, axis=0)


def plot_vs_paper(df: pd.DataFrame, methods: list[str], split: str = "test",
                  paper_table: str = "table1"):
    """One panel per task x metric: our per-seed values (dots), our mean (bar) and
    the paper's number (black diamond)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    set_style()
    d = df[(df.split == split) & df.method.isin(methods)].copy()
    d["Method"] = d.method.map(METHOD_LABELS)
    paper = paper_rows(paper_table)
    paper = paper[paper.method.isin(methods)]
    cols = [(t, m) for t, m in COLUMN_ORDER if ((d.task == t) & (d.metric == m)).any()]
    fig, axes = plt.subplots(1, len(cols), figsize=(2.1 * len(cols), 3.2), sharey=False,
                             squeeze=False)
    order = [METHOD_LABELS[m] for m in methods]
    for ax, (t, m) in zip(axes[0], cols):
        sub = d[(d.task == t) & (d.metric == m)]
        sns.barplot(data=sub, x="Method", y="value", order=order, errorbar=None, ax=ax,
                    hue="Method", palette=PALETTE, alpha=0.55, legend=False)
        sns.stripplot(data=sub, x="Method", y="value", order=order, ax=ax, color="0.15", size=4)
        p = paper[(paper.task == t) & (paper.metric == m)].set_index("method")["value"]
        for i, meth in enumerate(methods):
            if meth in p:
                ax.scatter(i, p[meth], marker="D", color="black", s=30, zorder=5,
                           label="paper" if i == 0 else None)
        ax.set_title(f"{TASK_LABELS[t]} {m}")
        ax.set_xlabel("")
        ax.set_ylabel("")
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
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
            theirs[metric] = f"{p.value.iloc[0]:.4f}" if len(p) else "-"
        cols[(label, "this repo")] = ours
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
                         "mean reward": e["mean_reward"], "keep rate": e["keep_rate"],
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
    out.index = [TASK_LABELS.get(t, t) for t in out.index]
    return out


def plot_episodes(episodes: pd.DataFrame):
    """Reward, keep rate and dev metric per episode; one panel row per quantity."""
    import seaborn as sns
    set_style()
    long = episodes.melt(id_vars=["task", "seed", "episode"], var_name="quantity", value_name="value")
    g = sns.relplot(data=long, x="episode", y="value", hue="task", units="seed", estimator=None,
                    row="quantity", kind="line", marker="o", height=2.2, aspect=2.6,
                    facet_kws={"sharey": False})
    g.set_titles("{row_name}")
    return g.figure


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
