"""The robustness page (Table 1's students on noisy copies of the test split) and the
attention page (how close each student's last-layer attention is to the teacher's);
issue 36. Both read the extra scores of Table 1's runs (``profiles.EXTRA_SCORES``)."""
from __future__ import annotations

import pandas as pd

from .. import report
from ..config import TABLE1_METHODS
from ..tasks import HEADLINE_METRICS
from ..experiment import run_many
from ..profiles import make_config
from ..records import cache_path, read_record, record_to_frame
from ..robustness import NOISE
from ..runs import Context
from .base import View

HEADLINE = HEADLINE_METRICS
ROBUST_METHODS = tuple(m for m in TABLE1_METHODS if m != "majority")
ATTENTION_METHODS = ("student_ft", "minilm", "tinybert", "eda", "l2a", "l2a_wo_att")


def extra_frame(tasks, methods, seeds, profile: str, results_dir=None) -> pd.DataFrame:
    """The cached runs' rows with their extra scores (``records.record_to_frame``)."""
    ctx = Context(results_dir=results_dir)
    paths_ = [cache_path(make_config(t, m, s, profile=profile), ctx)
              for t in tasks for m in methods for s in seeds]
    frames = [record_to_frame(read_record(p), extra_rows=True) for p in paths_ if p.is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def noise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method, seed, noise, level) with the task's headline metric;
    the clean test split is level 0 of every noise kind."""
    rows = []
    for task, metric in HEADLINE.items():
        sub = df[(df["task"] == task) & (df["metric"] == metric)]
        noisy = sub[sub["split"] == "noisy_test"][["task", "method", "seed", "noise", "level", "value"]]
        clean = sub[sub["split"] == "test"][["task", "method", "seed", "value"]]
        with_noise = clean.merge(noisy[["task", "method", "seed"]].drop_duplicates())
        for kind in NOISE:
            rows.append(with_noise.assign(noise=kind, level=0.0))
        rows.append(noisy)
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return out.assign(level=out["level"].astype(float)) if len(out) else out


def drop_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of the drop from the clean test score at each noise level."""
    if frame.empty:
        return frame
    mean = frame.groupby(["task", "method", "noise", "level"])["value"].mean().unstack("level")
    drops = mean.sub(mean[0.0], axis=0).drop(columns=0.0)
    drops.columns = [f"level {c:g}" for c in drops.columns]
    clean = mean[0.0].rename("clean")
    return pd.concat([clean, drops], axis=1)


def plot_noise(frame: pd.DataFrame):
    """One panel per (task, noise kind): the headline metric against the noise level,
    one line per method (mean over seeds, with its spread)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    tasks = [t for t in HEADLINE if t in set(frame["task"])]
    fig, axes = plt.subplots(len(tasks), len(NOISE), figsize=(3.6 * len(NOISE), 2.8 * len(tasks)),
                             squeeze=False, sharex=True)
    data = frame.assign(method=frame["method"].map(lambda m: report.METHOD_LABELS.get(m, m)))
    for i, task in enumerate(tasks):
        for j, kind in enumerate(NOISE):
            ax = axes[i][j]
            sns.lineplot(data=data[(data.task == task) & (data.noise == kind)], x="level", y="value",
                         hue="method", marker="o", ax=ax, legend=(i, j) == (0, 0), errorbar="sd")
            ax.set_title(f"{report.TASK_LABELS.get(task, task)}: {kind}", fontsize=9)
            ax.set_xlabel("share of words changed" if i == len(tasks) - 1 else "")
            ax.set_ylabel(HEADLINE[task] if j == 0 else "")
    if axes[0][0].get_legend() is not None:
        handles, labels = axes[0][0].get_legend_handles_labels()
        axes[0][0].get_legend().remove()
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8,
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
            if i == 0:
                ax.set_title("Teacher (last layer)" if who == "teacher"
                             else report.METHOD_LABELS.get(who, who), fontsize=9)
    fig.tight_layout()
    return fig


def _with_extra_rows(view: View, tasks, methods, seeds, profile, allow_training, allow_missing,
                     results_dir, data_dir) -> pd.DataFrame:
    """The page's runs (computed when ``allow_training``; the missing ones listed in a
    note), with their extra scores."""
    df = run_many(list(tasks), list(methods), list(seeds), profile=profile,
                  allow_training=allow_training, allow_missing=allow_missing,
                  results_dir=results_dir, data_dir=data_dir)
    view.note(report.coverage_note(df))
    return extra_frame(tasks, methods, seeds, profile, results_dir)


def robustness(profile="cpu", tasks=tuple(HEADLINE), methods=ROBUST_METHODS, seeds=(0, 1, 2),
               allow_training=False, allow_missing=True, results_dir=None, data_dir=None) -> View:
    view = View()
    df = _with_extra_rows(view, tasks, methods, seeds, profile, allow_training, allow_missing,
                          results_dir, data_dir)
    frame = noise_frame(df) if "noise" in df.columns else pd.DataFrame()
    if frame.empty:
        view.note("**No run of this page has scores on noisy test copies yet.**")
        return view
    view.show("drops", drop_table(frame).round(3))
    view.show("plot", plot_noise(frame))
    return view


def attention(profile="cpu", tasks=tuple(HEADLINE), methods=ATTENTION_METHODS, seeds=(0, 1, 2),
              allow_training=False, allow_missing=True, results_dir=None, data_dir=None) -> View:
    view = View()
    df = _with_extra_rows(view, tasks, methods, seeds, profile, allow_training, allow_missing,
                          results_dir, data_dir)
    att = df[df["split"] == "test_attention"] if len(df) else df
    if att.empty:
        view.note("**No run of this page has attention scores yet.**")
        return view
    table = (att.groupby(["task", "method", "metric"])["value"].agg(["mean", "std"])
             .unstack("metric"))
    table.columns = [f"{m} ({s})" for s, m in table.columns]
    view.show("attention", table.round(4))
    ctx = Context(results_dir=results_dir)
    maps = {}
    for m in methods:  # one task and seed: the first of each
        path = cache_path(make_config(tasks[0], m, seeds[0], profile=profile), ctx)
        if path.is_file():
            maps[m] = read_record(path)["extra"].get("attention_maps")
    figure = plot_attention_maps(maps)
    if figure is not None:
        view.show("maps", figure)
    return view
