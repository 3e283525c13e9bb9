"""L2A version 2's diagnostics (``l2a.episode``), read from the runs' episode logs, and
the learned parts' ablations."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import METHOD_LABELS, TASK_LABELS, fmt
from .significance import metric_of, seed_predictions
from .tables import plot_episodes

# episode-log key -> what the page calls it, in the order the page plots them
DIAGNOSTICS = {
    "reward": "reward (change of dev log-lik.)",
    "reward_se": "its standard error",
    "reward_snr": "reward signal / noise",
    "acc_change_snr": "accuracy change signal / noise",
    "keep_rate": "keep rate",
    "selector_entropy": "selector entropy (nats)",
    "keep_prob_sd": "sd of keep probability",
    "generator_kl": "generator KL to MLM",
    "grad_share_augmented": "gradient share, augmented",
    "aug_att": "L_att (augmented)",
    "aug_hidden": "L_hidden (augmented)",
    "aug_dark": "L_dark (augmented)",
    "orig_kd": "L_KD (originals)",
    "orig_hard": "hard-label loss (originals)",
    "generator_loss": "generator's L2A term",
    "dev_metric": "dev metric",
    "keep_corrupted": "keep rate, corrupted samples",
    "keep_clean": "keep rate, clean samples",
    "credit_gap": "kept minus dropped credit (sd)",  # the selector of l2a.credit
    "credit_positive": "share of credit > 0",
}
PANELS = {
    "reward": ("reward", "reward_se", "reward_snr", "acc_change_snr"),
    "selector": ("keep_rate", "selector_entropy", "keep_prob_sd", "grad_share_augmented"),
    "losses": ("aug_att", "aug_hidden", "aug_dark", "orig_kd", "orig_hard", "generator_kl",
               "dev_metric"),
    "probe": ("keep_corrupted", "keep_clean", "reward_snr", "dev_metric"),
}


def diagnostics_frame(records: dict, method: str = "l2a") -> pd.DataFrame:
    """{(task, method, seed): record} -> one row per episode of ``method``'s version-2
    runs, with every diagnostic the episode logged (missing ones as NaN)."""
    rows = []
    for (task, m, seed), rec in sorted(records.items()):
        if m != method or (rec["config"].get("l2a") or {}).get("version") != 2:
            continue
        for e in rec["extra"]["episodes"]:
            rows.append({"task": task, "seed": seed, "episode": e["episode"],
                         **{k: e.get(k, np.nan) for k in DIAGNOSTICS}})
    df = pd.DataFrame(rows)
    return df.astype({k: float for k in DIAGNOSTICS if k in df}) if len(df) else df


def plot_diagnostics(frame: pd.DataFrame, panel: str):
    """One group of diagnostics (``PANELS``) over episodes: rows of panels per quantity,
    a column per task, a line per seed; signal-to-noise 1 drawn as a dashed line."""
    return plot_episodes(frame, PANELS[panel], labels=DIAGNOSTICS,
                         reference={"reward_snr": 1.0, "acc_change_snr": 1.0})


def reward_signal(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task: the reward's signal-to-noise (root mean square of the steps' rewards
    over that of their standard errors, per episode) for version 2's reward and, on
    the same steps, for version 1's (the change of dev accuracy): the median over
    episodes and seeds, and the share of episodes where it exceeds 1."""
    rows = []
    for task, g in frame.groupby("task", sort=False):
        row = {"task": TASK_LABELS.get(task, task), "episodes": len(g)}
        for key, name in (("reward_snr", "dev log-likelihood (v2)"),
                          ("acc_change_snr", "dev accuracy (v1)")):
            v = g[key].dropna()
            row[f"{name}: median signal/noise"] = float(v.median()) if len(v) else np.nan
            row[f"{name}: episodes above 1"] = f"{int((v > 1).sum())} of {len(v)}" if len(v) else ""
        rows.append(row)
    return pd.DataFrame(rows).set_index("task") if rows else pd.DataFrame()


def selector_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task, first and last episode (mean ± sd over seeds): keep rate, the spread of
    the keep probability, the selector's entropy and the augmented samples' share of
    the student's gradient."""
    cols = ["keep_rate", "keep_prob_sd", "selector_entropy", "grad_share_augmented"]
    rows = []
    for task, g in frame.groupby("task", sort=False):
        for which, ep in (("first", g.episode.min()), ("last", g.episode.max())):
            at = g[g.episode == ep]
            rows.append({"task": TASK_LABELS.get(task, task), "episode": f"{which} ({ep + 1})",
                         **{DIAGNOSTICS[c]: fmt(at[c].mean(), at[c].std()) if at[c].notna().any()
                            else "" for c in cols}})
    return pd.DataFrame(rows).set_index(["task", "episode"]) if rows else pd.DataFrame()


def plot_differences(tests: pd.DataFrame):
    """The paired differences (L2A minus each variant) with their 95% intervals, one
    panel per task: a forest plot. ``tests``: ``ablation_tests`` rows."""
    import matplotlib.pyplot as plt
    tasks = list(dict.fromkeys(tests.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 0.5 * tests.variant.nunique() + 1.4),
                             squeeze=False, sharey=True)
    for ax, task in zip(axes[0], tasks):
        t = tests[tests.task == task].reset_index(drop=True)
        y = np.arange(len(t))[::-1]
        ax.errorbar(t.difference, y, xerr=[t.difference - t.ci_low, t.ci_high - t.difference],
                    fmt="o", color="k", capsize=3, ms=4)
        ax.axvline(0, color="0.5", lw=0.8, ls="--")
        ax.set_yticks(y, t.variant)
        ax.set_title(f"{TASK_LABELS.get(task, task)} ({t.metric.iloc[0]})", fontsize=10)
        ax.set_xlabel("L2A minus variant (95% CI)")
    fig.tight_layout()
    return fig


def means_table(records: dict, labels: dict, kinds: dict, methods, task_metrics: dict) -> pd.DataFrame:
    """Mean ± sd over seeds of each method's test metric(s) per task, from the stored
    test predictions (the metric the paired tests use, and accuracy beside F1)."""
    rows = {}
    for task in labels:
        metrics_ = ["acc"] + ([task_metrics[task]] if task in task_metrics else [])
        if kinds[task] == "regression":
            metrics_ = ["pearson"]
        for m in methods:
            preds = seed_predictions(records, task, m, kinds[task])
            if not preds:
                continue
            for metric in metrics_:
                v = [metric_of(kinds[task], labels[task], p, metric) for p in preds.values()]
                rows.setdefault(METHOD_LABELS.get(m, m), {})[
                    (TASK_LABELS.get(task, task), metric)] = fmt(np.mean(v), np.std(v, ddof=1)
                                                               if len(v) > 1 else np.nan) + f" ({len(v)})"
    out = pd.DataFrame(rows).T
    if len(out):
        out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def probe_summary(frame: pd.DataFrame, window: int = 5) -> pd.DataFrame:
    """The probe of ``l2a.corrupt`` (``l2a_corrupted``): per seed, the keep rate of the
    corrupted and of the clean samples over the first and the last ``window`` episodes,
    and the last episode's dev metric."""
    rows = []
    for (task, seed), g in (frame.groupby(["task", "seed"], sort=True) if len(frame) else ()):
        first, last = g[g.episode < window], g[g.episode > g.episode.max() - window]
        rows.append({"task": TASK_LABELS.get(task, task), "seed": int(seed),
                     f"kept, corrupted (episodes 1-{window})": first.keep_corrupted.mean(),
                     f"kept, clean (episodes 1-{window})": first.keep_clean.mean(),
                     f"kept, corrupted (last {window})": last.keep_corrupted.mean(),
                     f"kept, clean (last {window})": last.keep_clean.mean()})
    return pd.DataFrame(rows).set_index(["task", "seed"]).round(3) if rows else pd.DataFrame()


def probe_by_class(records: dict, method: str, window: int = 5,
                   class_names: list[str] | None = None) -> pd.DataFrame:
    """The probe's keep rates split by the class the (possibly reversed) target points
    at (``keep_corrupted_by_class``, ``keep_clean_by_class`` of the episode log), over
    the last ``window`` episodes, one row per seed of ``method``: a selector that drops
    wrong targets, not a class, keeps fewer corrupted than clean samples in each class.
    Runs logged before the split was recorded are left out."""
    rows = []
    for (task, m, seed), rec in sorted(records.items()):
        last = [e for e in rec["extra"]["episodes"] if m == method][-window:]
        if not last or any("keep_clean_by_class" not in e for e in last):
            continue
        row = {}
        for c in range(len(last[0]["keep_clean_by_class"])):
            name = class_names[c] if class_names else f"class {c}"
            for kind in ("corrupted", "clean"):
                v = [e[f"keep_{kind}_by_class"][c] for e in last]
                v = [x for x in v if x is not None]
                row[(f"target: {name}", f"kept, {kind}")] = float(np.mean(v)) if v else np.nan
        rows.append(pd.Series(row, name=(TASK_LABELS.get(task, task), int(seed))))
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows).round(3)
    out = out.astype(object).where(out.notna(), "no sample")  # a class never seen
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index.names = ["task", "seed"]
    return out


CREDIT_LABELS = {"False": "the step reward", "True": "per-sample credit",
                 "calibrated": "calibrated credit", "equal": "equal-weight credit"}  # by str(credit)


def budget_table(study: pd.DataFrame) -> pd.DataFrame:
    """The toy selector's budget study (``l2a.toy.budget_study``) by what the selector
    learns from and the student's learning rate: the step reward's median
    signal-to-noise, then per number of episodes the mean keep probability of corrupted /
    clean samples and the seeds that pass the test's bar."""
    rows = {}
    for (credit, lr), g in study.groupby(["credit", "student_lr"], sort=False):
        row = {("reward", "signal/noise"): f"{g.reward_snr.median():.1f}"}
        for e, h in g.groupby("episodes"):
            row[(f"{e} episodes", "kept: corrupted / clean")] = (
                f"{h.keep_corrupted.mean():.2f} / {h.keep_clean.mean():.2f}")
            row[(f"{e} episodes", "seeds passing")] = f"{int(h.passed.sum())} of {len(h)}"
        rows[(CREDIT_LABELS[str(credit)], f"student lr {lr:g}")] = row
    out = pd.DataFrame(rows).T
    if len(out):
        out.columns = pd.MultiIndex.from_tuples(out.columns)
        out.index.names = ["the selector learns from", "toy student"]
    return out


def plot_budget(study: pd.DataFrame, real_episodes: int | None = None):
    """The share of seeds whose selector passes (corrupted < 0.3, clean > 0.7) against the
    number of episodes, one panel per what the selector learns from, one line per student
    learning rate; ``real_episodes`` marks the real runs' number (dotted)."""
    import matplotlib.pyplot as plt
    credits = list(dict.fromkeys(study.credit))
    fig, axes = plt.subplots(1, len(credits), figsize=(3.5 * len(credits), 3.3), squeeze=False,
                             sharey=True)
    episodes = sorted(study.episodes.unique())
    for ax, credit in zip(axes[0], credits):
        sub = study[study.credit == credit]
        for (lr, g), colour in zip(sub.groupby("student_lr", sort=False),
                                   plt.cm.viridis([0.1, 0.5, 0.85])):
            ax.plot(*zip(*g.groupby("episodes").passed.mean().items()), "-o", color=colour,
                    label=f"student lr {lr:g}", ms=4)
        if real_episodes:
            ax.axvline(real_episodes, color="0.5", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(episodes, [str(e) for e in episodes])
        ax.minorticks_off()
        ax.set_xlabel("episodes")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"The selector learns from {CREDIT_LABELS[str(credit)]}", fontsize=10)
    axes[0][0].set_ylabel("share of seeds passing")
    axes[0][-1].legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def plot_probe_dose(points: pd.DataFrame, reference: tuple[str, str]):
    """Each probe student's test score against the share of corrupted samples among those it
    kept (``points``: columns student, share, score, metric, task; one point per seed, one
    marker per student). The dashed line joins the means of the two ``reference`` students
    (the page's: the random student and the perfect oracle): where a student's score
    depended only on how many corrupted samples it kept, and in proportion, its points would
    lie near that line."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for (who, g), marker in zip(points.groupby("student", sort=False), "osD^vP"):
        ax.plot(g.share, g.score, marker, label=who, ms=6, alpha=0.8)
    means = points.groupby("student")[["share", "score"]].mean()
    if all(r in means.index for r in reference):
        ax.plot(*means.loc[list(reference)].values.T, "--", color="0.5", lw=1)
    task = TASK_LABELS.get(points.task.iloc[0], points.task.iloc[0])
    ax.set_xlabel("corrupted share of the kept samples (all episodes)")
    ax.set_ylabel(f"{task} test {points.metric.iloc[0]}")
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig
