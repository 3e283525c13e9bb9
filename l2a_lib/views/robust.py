"""The robustness page (Table 1's students on noisy copies of the test split) and the
attention page (how close each student's last-layer attention is to the teacher's);
issue 36. Both read the extra scores of Table 1's runs (``profiles.EXTRA_SCORES``)."""
from __future__ import annotations

import pandas as pd

from .. import report
from ..config import TABLE1_METHODS
from ..pages import ATTENTION_METHODS
from ..tasks import HEADLINE_METRICS
from ..profiles import make_config
from ..records import cache_path, read_record, record_to_frame
from ..robustness import ATTENTION_EXAMPLES, ATTENTION_SAMPLE, MAX_EXAMPLES, NOISE, SAMPLE
from ..runs import Context
from .base import View
from .results import page_runs

HEADLINE = HEADLINE_METRICS
MID_LEVEL = sorted(NOISE["typos"])[1]  # the middle noise level: the page's headline
ROBUST_METHODS = tuple(m for m in TABLE1_METHODS if m != "majority")


def extra_frame(tasks, methods, seeds, profile: str, results_dir=None,
                final: bool | None = None) -> pd.DataFrame:
    """The cached runs' rows with their extra scores (``records.record_to_frame``);
    ``final``: the final grid's runs (default ``profiles.FINAL_GRID``)."""
    ctx = Context(results_dir=results_dir)
    paths_ = [cache_path(make_config(t, m, s, profile=profile, final=final), ctx)
              for t in tasks for m in methods for s in seeds]
    frames = [record_to_frame(read_record(p), extra_rows=True) for p in paths_ if p.is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


SAMPLES = {"noisy_test": SAMPLE, "test_attention": ATTENTION_SAMPLE}  # split -> its tag


def scored(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``split`` (``noisy_test``, ``test_attention``) scored on the examples
    of ``robustness.sample`` (tagged ``SAMPLES[split]``): rows without that tag come
    from runs that scored the first 1,000 test examples (one class on NLI and TC) and
    are left out."""
    if not len(df) or "split" not in df:
        return df.iloc[0:0]
    rows = df[df["split"] == split]
    return rows[rows["sample"] == SAMPLES[split]] if "sample" in rows else rows.iloc[0:0]


def unscored_runs(df: pd.DataFrame, split: str = "noisy_test") -> list[str]:
    """"task/method/seed" of the runs with ``split`` rows but none of ``scored``."""
    if not len(df) or "split" not in df:
        return []
    runs = df[df["split"] == split][["task", "method", "seed"]].drop_duplicates()
    good = scored(df, split)[["task", "method", "seed"]].drop_duplicates()
    old = runs.merge(good, how="left", indicator=True)
    old = old[old["_merge"] == "left_only"]
    return [f"{report.METHOD_LABELS.get(m, m)} {t}/{s}" for t, m, s in
            zip(old.task, old.method, old.seed)]


def note_unscored(view: View, df: pd.DataFrame, split: str, what: str) -> None:
    """Name on the page the runs whose ``split`` rows ``scored`` leaves out."""
    old = unscored_runs(df, split)
    if old:
        view.note(f"**{len(old)} runs scored {what} on the first 1,000 test examples**, "
                  "which on NLI and TC are one class (a fault since fixed: the examples are "
                  "now drawn in proportion to the classes, `robustness.sample`). They are "
                  "left out here until they are recomputed (`python -m l2a_lib run "
                  "--force`): " + ", ".join(old) + ".")


def noise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method, seed, noise, level) with the task's headline metric;
    the same examples without noise (kind "clean") are level 0 of every noise kind."""
    rows = []
    noisy_all = scored(df, "noisy_test")
    for task, metric in HEADLINE.items():
        sub = noisy_all[(noisy_all["task"] == task) & (noisy_all["metric"] == metric)]
        keep = ["task", "method", "seed", "noise", "level", "value"]
        clean = sub[sub["noise"] == "clean"][keep]
        for kind in NOISE:
            rows.append(clean.assign(noise=kind))
        rows.append(sub[sub["noise"] != "clean"][keep])
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return out.assign(level=out["level"].astype(float)) if len(out) else out


def drop_table(frame: pd.DataFrame, majority: dict | None = None) -> pd.DataFrame:
    """Mean over seeds of the drop from the clean test score at each noise level; with
    ``majority`` ({task: the majority baseline's test score}), a column "clean above
    majority": the room a model has to lose (one at the majority's level has none)."""
    if frame.empty:
        return frame
    mean = frame.groupby(["task", "method", "noise", "level"])["value"].mean().unstack("level")
    drops = mean.sub(mean[0.0], axis=0).drop(columns=0.0)
    drops.columns = [f"level {c:g}" for c in drops.columns]
    clean = mean[0.0].rename("clean")
    parts = [clean]
    if majority:
        tasks = clean.index.get_level_values("task")
        parts.append((clean - tasks.map(lambda t: majority.get(t, float("nan"))).to_numpy())
                     .rename("clean above majority"))
    return pd.concat(parts + [drops], axis=1)


def mid_drops(frame: pd.DataFrame, level: float = MID_LEVEL) -> pd.DataFrame:
    """Per task, method and seed: the change from the clean test score at ``level``,
    averaged over the kinds of noise (negative: the score drops)."""
    by = ["task", "method", "seed"]
    clean = frame[frame.level == 0.0].groupby(by)["value"].mean()
    noisy = frame[frame.level == level].groupby(by)["value"].mean()
    return (noisy - clean).dropna().rename("change").reset_index()


def drop_comparison(frame: pd.DataFrame, method: str = "l2a", baseline: str = "student_ft",
                    level: float = MID_LEVEL) -> pd.DataFrame:
    """Per task: the mean change at ``level`` (``mid_drops``) of ``method`` and of
    ``baseline`` and their difference, paired by seed (the same data split and noisy
    copies), with its smallest and largest value over the seeds and the seeds where
    ``method`` loses less. Tasks where either has no noisy scores are left out."""
    drops = mid_drops(frame, level)
    rows = []
    for task, sub in drops.groupby("task"):
        a = sub[sub.method == method].set_index("seed")["change"]
        b = sub[sub.method == baseline].set_index("seed")["change"]
        diff = (a - b).dropna()
        if not len(diff):
            continue
        rows.append({"task": task, method: a.mean(), baseline: b.mean(), "difference": diff.mean(),
                     "lowest": diff.min(), "highest": diff.max(),
                     "seeds losing less": f"{int((diff > 0).sum())} of {len(diff)}"})
    return pd.DataFrame(rows)


def plot_noise(frame: pd.DataFrame):
    """One panel per (task, noise kind): the headline metric against the noise level,
    one line per method (mean over seeds, with its spread)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    tasks = [t for t in HEADLINE if t in set(frame["task"])]
    fig, axes = plt.subplots(len(tasks), len(NOISE), figsize=(3.6 * len(NOISE), 2.8 * len(tasks)),
                             squeeze=False, sharex=True)
    data = frame.assign(method=frame["method"].map(lambda m: report.METHOD_LABELS.get(m, m)))
    # one colour per method in every panel, and one legend naming every method
    names = list(dict.fromkeys(data["method"]))
    palette = dict(zip(names, sns.color_palette(n_colors=len(names))))
    for i, task in enumerate(tasks):
        for j, kind in enumerate(NOISE):
            ax = axes[i][j]
            sns.lineplot(data=data[(data.task == task) & (data.noise == kind)], x="level", y="value",
                         hue="method", palette=palette, marker="o", ax=ax, legend=False,
                         errorbar="sd")
            ax.set_title(f"{report.TASK_LABELS.get(task, task)}: {kind}", fontsize=9)
            ax.set_xlabel("share of words changed" if i == len(tasks) - 1 else "")
            ax.set_ylabel(HEADLINE[task] if j == 0 else "")
    handles = [plt.Line2D([], [], color=palette[n], marker="o") for n in names]
    fig.legend(handles, names, loc="lower center", ncol=min(6, len(names)), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_attention_maps(maps_by_method: dict):
    """Heatmaps of the head-averaged last-layer attention (rows: query tokens, columns:
    keys) on the recorded test inputs: the teacher's, then each method's student's
    (L_att ties the student's last layer to the teacher's last layer)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    methods = [m for m, maps in maps_by_method.items() if maps]
    if not methods:
        return None
    examples = maps_by_method[methods[0]]
    cols = ["teacher"] + methods
    fig, axes = plt.subplots(len(examples), len(cols), squeeze=False,
                             figsize=(2.6 * len(cols), 2.6 * len(examples)))
    for i, ex in enumerate(examples):
        panels = [ex["teacher"]] + [maps_by_method[m][i]["student"] for m in methods]
        top = max(max(max(r) for r in p) for p in panels)  # one colour scale per input
        for j, (who, panel) in enumerate(zip(cols, panels)):
            ax = axes[i][j]
            sns.heatmap(panel, ax=ax, cbar=False, vmin=0, vmax=top, cmap="viridis", square=True,
                        xticklabels=ex["tokens"], yticklabels=ex["tokens"] if j == 0 else False)
            ax.tick_params(labelsize=6)
            if j == 0 and ex.get("cropped"):  # a longer input: the window of its first tokens
                ax.set_ylabel(f"first {len(ex['tokens'])} tokens", fontsize=8)
            if i == 0:
                ax.set_title("Teacher (last layer)" if who == "teacher"
                             else report.METHOD_LABELS.get(who, who), fontsize=9)
    fig.tight_layout()
    return fig


def robustness(profile="cpu", tasks=tuple(HEADLINE), methods=ROBUST_METHODS, seeds=(0, 1, 2),
               allow_training=False, allow_missing=True, results_dir=None, data_dir=None,
               final=None) -> View:
    """Table 1's runs (``final``: the final grid's) on the noisy test copies: the drop
    table, its plot, and L2A's change at the middle noise level beside Student-FT's."""
    tasks, methods, seeds = list(tasks), list(methods), list(seeds)
    view = View()
    view.value("robust_tasks", ", ".join(report.TASK_LABELS[t] for t in tasks) or "none")
    view.value("robust_mid_level", f"{MID_LEVEL:.0%}")
    view.value("robust_examples", f"{MAX_EXAMPLES:,}")
    runs = page_runs(view, tasks, methods, seeds, profile, allow_training, allow_missing,
                     results_dir, data_dir, final=final)
    df = extra_frame(tasks, methods, seeds, profile, results_dir, final=final)
    note_unscored(view, df, "noisy_test", "their noisy copies")
    frame = noise_frame(df) if "noise" in df.columns else pd.DataFrame()
    if frame.empty:
        view.note("**No run of this page has scores on noisy test copies yet.**")
    base = runs[(runs.method == "majority") & (runs.split == "test")] if len(runs) else runs
    majority = {t: g[g.metric == HEADLINE[t]].value.mean() for t, g in base.groupby("task")} \
        if len(base) else {}
    view.show_when("drops", len(frame), lambda: drop_table(frame, majority).round(3))
    view.show_when("plot", len(frame), lambda: plot_noise(frame))
    comparison = drop_comparison(frame) if len(frame) else pd.DataFrame()
    for task in HEADLINE:
        row = comparison[comparison.task == task] if len(comparison) else comparison
        for col, name in (("l2a", "l2a"), ("student_ft", "student_ft"), ("difference", "diff")):
            view.value(f"robust_{name}_mid_{task}", report.number(row[col].iloc[0], signed=True)
                       if len(row) else "(not computed yet)" if task in tasks
                       else "(not on this page)")
    view.show_when("l2a_vs_student_ft", len(comparison), lambda: comparison.assign(
        task=comparison.task.map(report.TASK_LABELS)).rename(
        columns={"l2a": "L2A", "student_ft": "Student-FT"}).round(3))
    return view


def attention(profile="cpu", tasks=tuple(HEADLINE), methods=ATTENTION_METHODS, seeds=(0, 1, 2),
              allow_training=False, allow_missing=True, results_dir=None, data_dir=None,
              final=None) -> View:
    """The students' last-layer attention against the teacher's (``final``: the final
    grid's runs): the mean KL and L_att per method, and the heatmaps of one run each."""
    tasks, methods, seeds = list(tasks), list(methods), list(seeds)
    view = View()
    view.value("attention_tasks", ", ".join(report.TASK_LABELS[t] for t in tasks) or "none")
    view.value("attention_examples", f"{ATTENTION_EXAMPLES:,}")
    page_runs(view, tasks, methods, seeds, profile, allow_training, allow_missing, results_dir,
              data_dir, final=final)
    df = extra_frame(tasks, methods, seeds, profile, results_dir, final=final)
    note_unscored(view, df, "test_attention", "their attention")
    att = scored(df, "test_attention")
    if att.empty:
        view.note("**No run of this page has attention scores yet.**")
    view.show_when("attention", len(att), lambda: attention_table(att).round(4))
    ctx = Context(results_dir=results_dir)
    maps = {}  # the first task whose runs of the first seed have maps: the same inputs for all
    for task in tasks:
        for m in methods:
            ok = att[(att.task == task) & (att.method == m)] if len(att) else att
            path = cache_path(make_config(task, m, seeds[0], profile=profile, final=final), ctx)
            if len(ok) and seeds[0] in set(ok.seed) and path.is_file():
                maps[m] = read_record(path)["extra"].get("attention_maps")
        if any(maps.values()):
            view.value("attention_maps_task", report.TASK_LABELS[task])
            break
        maps = {}
    view.values.setdefault("attention_maps_task", "(not computed yet)")
    figure = plot_attention_maps(maps)
    view.show_when("maps", figure is not None, lambda: figure)
    return view


def attention_table(att: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over the seeds of each (task, method)'s attention
    scores (the KL to the teacher's last layer and L_att), with the seeds counted."""
    table = (att.groupby(["task", "method", "metric"])["value"].agg(["mean", "std"])
             .unstack("metric"))
    table.columns = [f"{m} ({s})" for s, m in table.columns]
    seeds = att.groupby(["task", "method"]).seed.nunique().rename("seeds")
    return table.join(seeds).reset_index()
