"""Tables and figures from tidy result frames. Every table is a pivot of rows.

The paper's own numbers (``paper_results.csv``, transcribed from the authors'
slides) sit beside ours, in the same tidy shape.
"""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from .config import TABLE1_METHODS, TASKS

METRICS = {"tc": ("acc", "f1"), "pi": ("acc", "f1"), "nli": ("acc", "f1"),
           "reg": ("pearson", "spearman")}
METHOD_LABELS = {
    "teacher_ft": "Teacher-FT", "student_ft": "Student-FT", "bilstm_soft": "BiLSTM-soft",
    "distilbert": "DistilBERT", "bert_pkd4": "BERT4-PKD", "bert_pkd6": "BERT6-PKD",
    "minilm": "MiniLM", "tinybert": "TinyBERT", "eda": "EDA", "cbert": "CBERT", "l2a": "L2A",
    "l2a_wo_src": "L2A w/o src", "l2a_wo_tgt": "L2A w/o tgt", "l2a_wo_att": "w/o L_att",
    "l2a_wo_hidden": "w/o L_hidden", "l2a_wo_dark": "w/o L_dark",
}
TASK_LABELS = {"nli": "NLI", "pi": "PI", "tc": "TC", "reg": "Reg"}
COLUMN_ORDER = [(t, m) for t in ("nli", "pi", "tc", "reg") for m in METRICS[t]]


class MissingResults(LookupError):
    """A table asks for runs that are not in the result cache."""


def paper_results() -> pd.DataFrame:
    with resources.files("l2a_lib").joinpath("paper_results.csv").open() as fh:
        return pd.read_csv(fh)


def _paper_rows(table: str) -> pd.DataFrame:
    """The paper's numbers of ``table``, plus methods the paper reports only in another
    table (Teacher-FT is in its Table 2, but belongs beside Table 1 too)."""
    paper = paper_results()
    own = paper[paper.table == table]
    other = paper[(paper.table != table) & ~paper.method.isin(own.method)]
    return pd.concat([own, other.drop_duplicates(["task", "method", "metric"])])


def aggregate(df: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean, sd and number of seeds per (table, task, method, metric)."""
    d = df[df["split"] == split]
    g = d.groupby(["task", "method", "metric"])["value"]
    return g.agg(mean="mean", sd="std", n="count").reset_index()


def require(df: pd.DataFrame, methods, tasks=TASKS, seeds=None) -> None:
    """Raise ``MissingResults`` naming each missing (task, method, seed)."""
    missing = []
    for t in tasks:
        for m in methods:
            have = set(df[(df.task == t) & (df.method == m)]["seed"])
            want = set(seeds) if seeds is not None else {0}
            missing += [(t, m, s) for s in sorted(want - have)]
    if missing:
        raise MissingResults(f"{len(missing)} run(s) are not cached, e.g. {missing[:6]}. Run "
                             "`make results` (or python -m l2a_lib run ...) first.")


def coverage_note(df: pd.DataFrame, shown: str | None = None) -> str:
    """Markdown saying which runs of a page are not computed yet (``run_many(...,
    allow_missing=True)`` lists them in ``df.attrs``); empty when all are there.
    ``shown`` says what the page does in their place (default: by the kind of page)."""
    missing = df.attrs.get("missing", [])
    if not missing:
        return ""
    column = df.attrs.get("column")  # a study's missing runs also carry the varied value
    by_method: dict[str, list[str]] = {}
    for task, method, seed, *value in missing:
        label = METHOD_LABELS.get(method, method) + (f", {column} = {value[0]}" if value else "")
        by_method.setdefault(label, []).append(f"{task}/{seed}")
    shown = shown or ("the table and the plot leave them out; a cell from fewer seeds says so"
                      if column else "their cells show `-`")
    lines = [f"**{len(missing)} of {df.attrs.get('n_runs', len(missing))} runs of this page are "
             f"not computed yet**; {shown}. Compute them with "
             "`python -m l2a_lib batch` (resumable). Missing (task/seed):", ""]
    lines += [f"* {m}: {', '.join(v)}" for m, v in by_method.items()]
    return "\n".join(lines)


def precision_note(df: pd.DataFrame, column: str | None = None) -> str:
    """Markdown naming the runs of a page computed in fp32 because their CPU had no
    native bf16 (the ``cpu`` column marked ``experiment.FP32_FALLBACK``: the config's
    bf16 autocast fell back, ``train.bf16_in_use``), with a study's varied ``column``;
    empty when there are none."""
    from .experiment import FP32_FALLBACK
    if "cpu" not in df or not len(df):
        return ""
    runs = df.groupby("config_hash").first()
    fp32 = runs[runs["cpu"].fillna("").str.endswith(FP32_FALLBACK)]
    if not len(fp32):
        return ""
    by_method: dict[str, list[str]] = {}
    for _, r in fp32.sort_values(["method", "task", "seed"]).iterrows():
        value = f", {column} = {r[column]:g}" if column and column in r else ""
        by_method.setdefault(METHOD_LABELS.get(r["method"], r["method"]) + value,
                             []).append(f"{r['task']}/{r['seed']}")
    lines = [f"**{len(fp32)} of {len(runs)} runs of this page were computed in fp32**: the "
             "processor they ran on has no native bf16, so the configuration's bf16 autocast "
             "fell back to fp32 (`train.bf16_in_use`; `environment.bf16` in each record). All "
             "other runs used bf16 autocast as configured. fp32 only rounds less; the method "
             "and every setting are the same. Runs in fp32 (task/seed):", ""]
    lines += [f"* {m}: {', '.join(v)}" for m, v in by_method.items()]
    return "\n".join(lines)


def _fmt(mean: float, sd: float) -> str:
    if np.isnan(mean):
        return "-"
    return f"{mean:.4f}" if np.isnan(sd) else f"{mean:.4f} ± {sd:.4f}"


def results_table(df: pd.DataFrame, methods: list[str], split: str = "test",
                  with_paper: bool = True, paper_table: str = "table1") -> pd.DataFrame:
    """Rows: each method (ours, and the paper's beside it); columns: task x metric.
    Cells: ``mean ± sd`` over seeds (ours) or the paper's number."""
    agg = aggregate(df[df.method.isin(methods)], split)
    paper = _paper_rows(paper_table)
    rows = {}
    for m in methods:
        label = METHOD_LABELS.get(m, m)
        ours, theirs = {}, {}
        for t, met in COLUMN_ORDER:
            r = agg[(agg.task == t) & (agg.method == m) & (agg.metric == met)]
            ours[(TASK_LABELS[t], met)] = _fmt(r["mean"].iloc[0], r["sd"].iloc[0]) if len(r) else "-"
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
    paper = _paper_rows(paper_table)
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


PALETTE = "colorblind"


def set_style() -> None:
    """The one figure style of the book."""
    import seaborn as sns
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE, font_scale=0.9)


def standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy ``p`` measured on ``n`` examples."""
    return float(np.sqrt(p * (1 - p) / n))


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
            ours[metric] = _fmt(r["mean"].iloc[0], r["sd"].iloc[0]) if len(r) else "-"
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
    out = d.groupby("task", sort=False)[cols].agg(lambda v: _fmt(v.mean(), v.std()))
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


def plot_study(df: pd.DataFrame, column: str, methods: list[str], task: str = "tc",
               split: str = "test"):
    """Test metric against the varied value, one line per method, ± sd error bars. The
    x axis has the scale the study's trend is fitted on (``SHAPE_CLAIMS``): log2 for the
    values that double (the data size, T), so the plot shows the line the claims test."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from .experiment import STUDIES
    set_style()
    log2 = any(SHAPE_CLAIMS[study][0] == "log2" for study, spec in STUDIES.items()
               if spec[1] == column)
    d = df[(df.split == split) & (df.task == task) & df.method.isin(methods)].copy()
    d["Method"] = d.method.map(METHOD_LABELS)
    metrics = list(METRICS[task])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=d[d.metric == metric], x=column, y="value", hue="Method", marker="o",
                     errorbar="sd", err_style="bars", ax=ax, palette=PALETTE)
        ax.set_title(f"{TASK_LABELS[task]} {metric}")
        ax.set_ylabel(metric)
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
    g["cell"] = [_fmt(m, s) + (f" (n={n})" if n < full else "")
                 for m, s, n in zip(g["mean"], g["std"], g["count"])]
    g["col"] = [f"{METHOD_LABELS.get(m, m)} {met}" for m, met in zip(g.method, g.metric)]
    return g.pivot(index=column, columns="col", values="cell").fillna("-")


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
            " / ".join(f"{score[(v, m, s)]:.4f}" if (v, m, s) in score else "-" for s in seeds)
            for v in values] for m in present},
        index=pd.Index(values, name=column))
    table.columns.name = f"seeds {' / '.join(map(str, seeds))}"
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
    "confirmed" when the interval lies on the side the paper predicts, "opposite"
    when it lies on the other side, else "no clear trend". Runs not computed yet
    (``df.attrs["missing"]``) make a verdict "interim", or "pending" when too few
    runs are there to fit it."""
    from .experiment import STUDIES
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
            where = f" at {column} = {at:g}" if at is not None else ""
            change = fit
            evidence = (f"{quantity}{where}: {fit[0]:+.4f} [{fit[1]:+.4f}, {fit[2]:+.4f}], "
                        f"higher in {int((y > 0).sum())} of {len(y)} seeds") if fit else None
            flat = "no clear difference"
        else:
            x = np.log2(v) if scale == "log2" else v
            fit = within_seed_trend(x, y.to_numpy(), y.index.get_level_values(1))
            span = (x.max() - x.min()) if len(x) else 0.0
            change = tuple(f * span for f in fit) if fit else None
            evidence = (f"{quantity}, {column} {v.min():g} -> {v.max():g}: {change[0]:+.4f} "
                        f"[{change[1]:+.4f}, {change[2]:+.4f}] ({len(y)} runs)") if fit else None
            flat = "no clear trend"
        if change is None:
            verdict = "pending"
            evidence = f"{gap} run(s) not computed yet" if gap else "too few runs to fit"
        else:
            verdict = ("confirmed" if min(sign * change[1], sign * change[2]) > 0 else
                       "opposite" if max(sign * change[1], sign * change[2]) < 0 else flat)
            if gap:
                verdict += f" (interim: {gap} run(s) not computed yet)"
        rows.append({"study": study, "paper": claim, "evidence": evidence, "verdict": verdict,
                     "change": change[0] if change else np.nan,
                     "ci_low": change[1] if change else np.nan,
                     "ci_high": change[2] if change else np.nan})
    return pd.DataFrame(rows, columns=["study", "paper", "evidence", "verdict", "change",
                                       "ci_low", "ci_high"])


# ------------------------------------------------------- significance and claims
def decode_predictions(kind: str, compact) -> np.ndarray:
    """Inverse of ``experiment.compact_predictions``."""
    if kind == "classification":
        return np.frombuffer(compact.encode(), dtype=np.uint8) - ord("0")
    return np.asarray(compact, dtype=float)


def _metric_of(kind: str, labels, preds) -> float:
    from . import metrics
    return (metrics.accuracy(labels, preds) if kind == "classification"
            else metrics.pearson(labels, preds))


def paired_bootstrap(labels, preds_a: list, preds_b: list, kind: str, n_boot: int = 2000,
                     seed: int = 0) -> dict:
    """Paired bootstrap over test items (the same resampled items for both methods,
    each seed's predictions averaged): mean difference of the metric (ACC or
    Pearson) of A minus B, its 95% interval, and the one-sided p-value of A <= B."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    n = len(labels)
    diffs = []
    base = np.mean([_metric_of(kind, labels, a) for a in preds_a]) - np.mean(
        [_metric_of(kind, labels, b) for b in preds_b])
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        da = np.mean([_metric_of(kind, labels[idx], a[idx]) for a in preds_a])
        db = np.mean([_metric_of(kind, labels[idx], b[idx]) for b in preds_b])
        diffs.append(da - db)
    diffs = np.asarray(diffs)
    return {"difference": float(base), "ci_low": float(np.quantile(diffs, 0.025)),
            "ci_high": float(np.quantile(diffs, 0.975)), "p_value": float((diffs <= 0).mean())}


def paired_comparison(labels, kind: str, preds_a: dict, preds_b: dict, n_boot: int = 2000) -> dict:
    """A against B on the seeds both have ({seed: test predictions} each), paired twice:
    by seed (same few-shot draw, same teacher) and by test item (:func:`paired_bootstrap`
    of each one's metric averaged over those seeds). The bootstrap interval covers the
    sampling of test items only, with the seeds held fixed, so ``sign`` asks both:
    +1 when the 95% interval is above 0 and A is higher in every seed, -1 when the
    interval is below 0 and B is higher in every seed, else 0. Empty without a shared seed."""
    seeds = sorted(set(preds_a) & set(preds_b))
    if not seeds:
        return {}
    a, b = [preds_a[s] for s in seeds], [preds_b[s] for s in seeds]
    res = paired_bootstrap(labels, a, b, kind, n_boot)
    per_seed = [(_metric_of(kind, labels, x), _metric_of(kind, labels, y)) for x, y in zip(a, b)]
    wins, losses_ = sum(x > y for x, y in per_seed), sum(x < y for x, y in per_seed)
    sign = (1 if res["ci_low"] > 0 and wins == len(seeds) else
            -1 if res["ci_high"] < 0 and losses_ == len(seeds) else 0)
    return {"a": float(np.mean([x for x, _ in per_seed])),
            "b": float(np.mean([y for _, y in per_seed])), **res,
            "seeds a higher": f"{wins} of {len(seeds)}", "sign": sign}


def significance_table(records: dict, labels: dict, kinds: dict, method: str = "l2a",
                       baselines=None, n_boot: int = 2000) -> pd.DataFrame:
    """``method`` against the best baseline per task (by mean test ACC / Pearson over
    its seeds), paired by seed and by test item (:func:`paired_comparison`):
    "better" / "worse" where the interval and every seed agree, else "no clear difference".

    records: {(task, method, seed): record}; labels: {task: test labels};
    kinds: {task: "classification" | "regression"}.
    """
    label = METHOD_LABELS.get(method, method)
    rows = []
    for task in labels:
        kind = kinds[task]
        have = {m for (t, m, _) in records if t == task}
        cands = [m for m in (baselines or have) if m in have and m != method
                 and m not in ("teacher_ft",)]
        preds = {m: seed_predictions(records, task, m, kind) for m in cands + [method]}
        scored = {m: np.mean([_metric_of(kind, labels[task], p) for p in ps.values()])
                  for m, ps in preds.items() if ps}
        if method not in scored or len(scored) < 2:
            continue
        best = max((m for m in scored if m != method), key=scored.get)
        res = paired_comparison(labels[task], kind, preds[method], preds[best], n_boot)
        if not res:
            continue
        rows.append({"task": task, "best baseline": METHOD_LABELS.get(best, best),
                     "metric": "acc" if kind == "classification" else "pearson",
                     label: res["a"], "best baseline score": res["b"],
                     **{k: res[k] for k in ("difference", "ci_low", "ci_high", "p_value")},
                     f"seeds {label} higher": res["seeds a higher"],
                     "verdict": {1: "better", -1: "worse", 0: "no clear difference"}[res["sign"]]})
    return pd.DataFrame(rows)


def same_student(df: pd.DataFrame, task: str, method: str = "l2a") -> list[str]:
    """The methods whose model on ``task`` has exactly ``method``'s parameter count:
    the baselines that distil into the same student (not the larger PKD / DistilBERT
    students built from teacher layers, nor the BiLSTM)."""
    sizes = df[df.task == task].groupby("method")["n_params"].first().dropna()
    if method not in sizes:
        return []
    return [m for m in sizes.index if m != method and sizes[m] == sizes[method]]


def seed_predictions(records: dict, task: str, method: str, kind: str) -> dict[int, np.ndarray]:
    """{seed: test predictions} of ``method`` on ``task`` from {(task, method, seed): record}
    (runs that stored no predictions are left out)."""
    return {s: decode_predictions(kind, r["extra"]["test_predictions"])
            for (t, m, s), r in sorted(records.items())
            if t == task and m == method and "test_predictions" in r.get("extra", {})}


def ablation_tests(records: dict, labels: dict, kinds: dict, variants, reference: str = "l2a",
                   n_boot: int = 2000, paper_table: str | None = None) -> pd.DataFrame:
    """Each variant (a part of ``reference`` removed) against ``reference`` itself
    (:func:`paired_comparison`). ``difference`` is reference minus variant (ACC, or
    Pearson for regression): the removed part "helps" where the 95% interval is above
    0 and the reference is higher in every seed, "hurts" in the mirror case, and
    otherwise has "no clear effect".

    records: {(task, method, seed): record}; labels: {task: test labels};
    kinds: {task: "classification" | "regression"}. With ``paper_table``, the
    paper's own difference on the same metric is added beside ours."""
    ref_label = METHOD_LABELS.get(reference, reference)
    paper = _paper_rows(paper_table) if paper_table else None

    def paper_difference(task, variant, metric):
        if paper is None:
            return {}
        at = paper[(paper.task == task) & (paper.metric == metric)].set_index("method")["value"]
        return {"paper difference": float(at[reference] - at[variant])
                if reference in at and variant in at else np.nan}
    rows = []
    for task in labels:
        kind = kinds[task]
        ref = seed_predictions(records, task, reference, kind)
        for variant in variants:
            res = paired_comparison(labels[task], kind, ref,
                                    seed_predictions(records, task, variant, kind), n_boot)
            if not res:
                continue
            metric = "acc" if kind == "classification" else "pearson"
            rows.append({"task": task, "variant": METHOD_LABELS.get(variant, variant), "metric": metric,
                         ref_label: res["a"], "variant score": res["b"],
                         **{k: res[k] for k in ("difference", "ci_low", "ci_high", "p_value")},
                         **paper_difference(task, variant, metric),
                         f"seeds {ref_label} higher": res["seeds a higher"],
                         "removed part": {1: "helps", -1: "hurts", 0: "no clear effect"}[res["sign"]]})
    columns = ["task", "variant", "metric", ref_label, "variant score", "difference", "ci_low",
               "ci_high", "p_value", *(["paper difference"] if paper is not None else []),
               f"seeds {ref_label} higher", "removed part"]
    return pd.DataFrame(rows, columns=columns)  # the same columns when no variant has a run yet


# Table 1's methods but the teacher and L2A (the list is written once, in config.py)
BASELINES = [m for m in TABLE1_METHODS if m not in ("teacher_ft", "l2a")]


def claims(df: pd.DataFrame, split: str = "test", tolerance: float = 0.01) -> pd.DataFrame:
    """The paper's four claims, checked task by task on the first metric of each task
    (ACC, or Pearson for regression). "matches" allows ``tolerance`` below the teacher.

    Runs listed in ``df.attrs["missing"]`` (``run_many(..., allow_missing=True)``) are
    not silently dropped: a claim whose runs are all missing on a task is "pending",
    and a verdict drawn from part of its runs says how many are missing."""
    agg = aggregate(df, split)
    mean = {(r.task, r.method, r.metric): r.mean for r in agg.itertuples()}
    missing = df.attrs.get("missing", [])
    rows = []

    def m(task, method):
        return mean.get((task, method, METRICS[task][0]))

    def add(claim, task, methods, evidence, verdict):
        gap = not_computed(missing, task, methods)
        if evidence is None:  # nothing computed yet for this claim on this task
            if gap:
                rows.append({"claim": claim, "task": task, "verdict": "pending",
                             "evidence": f"{gap} run(s) not computed yet"})
            return
        if gap:
            verdict += f" (interim: {gap} run(s) not computed yet)"
        rows.append({"claim": claim, "task": task, "evidence": evidence, "verdict": verdict})

    for task in ("nli", "pi", "tc", "reg"):
        l2a = m(task, "l2a")
        if l2a is None:
            add("1. L2A beats every baseline", task, ["l2a"], None, "")
            continue
        base = {b: m(task, b) for b in BASELINES if m(task, b) is not None}
        best = max(base, key=base.get) if base else None
        add("1. L2A beats every baseline", task, ["l2a", *BASELINES],
            f"L2A {l2a:.4f} vs best baseline {METHOD_LABELS[best]} {base[best]:.4f} "
            f"({len(base)} baselines)" if base else None,
            "confirmed" if base and l2a > base[best] else "not confirmed")
        if task in ("nli", "tc"):
            t = m(task, "teacher_ft")
            add("2. L2A's student matches or beats Teacher-FT", task, ["teacher_ft"],
                f"L2A {l2a:.4f} vs Teacher-FT {t:.4f}" if t is not None else None,
                "confirmed" if t is not None and l2a >= t - tolerance else "not confirmed")
        wo = {v: m(task, v) for v in ("l2a_wo_src", "l2a_wo_tgt") if m(task, v) is not None}
        add("3. Source and target augmentation both help", task, ["l2a_wo_src", "l2a_wo_tgt"],
            ", ".join(f"{METHOD_LABELS[v]} {x:.4f}" for v, x in wo.items()) + f" vs L2A {l2a:.4f}"
            if wo else None,
            "confirmed" if all(l2a > x for x in wo.values()) else "not confirmed")
        terms = {v: m(task, v) for v in ("l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark")
                 if m(task, v) is not None}
        helped = [v for v, x in terms.items() if l2a > x]
        add("4. Each of L_att, L_hidden, L_dark helps", task,
            ["l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"],
            ", ".join(f"{METHOD_LABELS[v]} {x:.4f}" for v, x in terms.items()) + f" vs L_KD {l2a:.4f}"
            if terms else None,
            "confirmed" if len(helped) == len(terms) else
            f"partly ({len(helped)} of {len(terms)} terms)")
    return pd.DataFrame(rows, columns=["claim", "task", "evidence", "verdict"])


def teacher_consistency(results_dir=None) -> pd.DataFrame:
    """Is fine-tuning reproducible? One row per teacher that some run fine-tuned again
    (on a machine whose local teacher cache was empty) while a Teacher-FT record of
    the same teacher exists: the committed Teacher-FT's best dev scores beside the
    retrained teacher's, and whether they are equal. Runs record their teacher from
    the ``teacher`` field on (older records lack it and are not counted)."""
    from .config import ExperimentConfig
    from .experiment import Context, read_record, teacher_key

    def where(rec):  # processor and torch threads of a run (older records lack the processor)
        env = rec.get("environment") or {}
        return f"{env.get('cpu') or '?'}, {env.get('threads') or '?'} thr"

    def scores(best):  # {"acc": 0.62, "f1": 0.677...} -> "acc 0.6200, f1 0.6780"
        return ", ".join(f"{k} {v:.4f}" for k, v in (best or {}).items())
    committed, retrained = {}, []
    for path in sorted(Context(results_dir=results_dir).runs.glob("*.json")):
        rec = read_record(path)
        cfg = rec["config"]
        if cfg["method"] == "teacher_ft":
            key = teacher_key(ExperimentConfig.from_dict(cfg))
            committed.setdefault(key, (rec, rec["extra"]["fine_tune"]["best_dev"]))
        used = rec.get("teacher")
        if used and used.get("trained_here"):
            retrained.append((cfg, used, rec))
    rows = []
    for cfg, used, rec in retrained:
        base = committed.get(used["key"])
        if base is None or base[0]["started_at"] == rec["started_at"]:
            continue  # no earlier record of this teacher to compare with
        rows.append({"task": cfg["task"], "seed": cfg["seed"], "run": f"{cfg['table']}/{cfg['method']}",
                     "committed best dev": scores(base[1]), "committed on": where(base[0]),
                     "retrained best dev": scores(used["best_dev"]), "retrained on": where(rec),
                     "same": base[1] == used["best_dev"]})
    return pd.DataFrame(rows, columns=["task", "seed", "run", "committed best dev", "committed on",
                                       "retrained best dev", "retrained on", "same"])
