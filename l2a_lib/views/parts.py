"""L2A version 2: its diagnostics over episodes, and its learned parts switched off one
at a time (issue 34)."""
from __future__ import annotations

import pandas as pd

from .. import report
from ..config import L2A_PARTS, L2A_PROBE, L2A_PROBE_LONG
from ..experiment import run_many
from ..l2a import toy
from ..records import load_records, load_test_labels
from ..report import diagnostics as diag
from .base import View

TASK_METRICS = report.HEADLINE  # PI's target is imbalanced: the tests compare F1 there
# the variants the parts page reads at fewer seeds than the others: {method: seeds}
FEWER_SEEDS = {"l2a_originals_off": 3}
PROBE_SEEDS = 3  # the probe (L2A_PROBE) on TC
PROBE_LONG_SEEDS = 1  # its 60-episode run (L2A_PROBE_LONG)


def l2a_diagnostics(profile="cpu", tasks=("tc", "pi"), seeds=(0, 1, 2, 3, 4), allow_training=False,
                    allow_missing=True, results_dir=None, data_dir=None) -> View:
    """Version 2's episode logs: the reward and its noise, the selector, the loss terms."""
    tasks, seeds = list(tasks), list(seeds)
    view = View()
    df = run_many(tasks, ["l2a"], seeds, profile=profile, allow_training=allow_training,
                  results_dir=results_dir, data_dir=data_dir, allow_missing=allow_missing, version=2)
    view.note(report.coverage_note(df))
    records = load_records(tasks, ["l2a"], seeds, profile=profile, results_dir=results_dir, version=2)
    frame = diag.diagnostics_frame(records)
    signal = diag.reward_signal(frame)
    view.show("signal", signal)
    for task in signal.index:
        key = task.lower()
        view.value(f"diag_{key}_snr_v2", f"{signal.loc[task].iloc[1]:.2f}")
        view.value(f"diag_{key}_snr_v1", f"{signal.loc[task].iloc[3]:.2f}")
    view.show("selector", diag.selector_summary(frame))
    if len(frame):
        for panel in diag.PANELS:
            view.show(f"{panel}_plot", diag.plot_diagnostics(frame, panel))
    _budget(view, frame, allow_training, results_dir)
    return view


def _budget(view, frame, allow_training, results_dir):
    """The toy selector's budget study (``l2a.toy``): how many episodes the selector
    needs, at rewards well above their noise; read from the cache (a minute to compute)."""
    if not (allow_training or toy.budget_file(toy.budget_grid(), results_dir).is_file()):
        view.show("budget", pd.DataFrame({"not computed yet": []}))
        view.show("budget_plot", pd.DataFrame({"not computed yet": []}))
        for key in ("toy_snr_low", "toy_snr_high", "toy_pass_20", "toy_pass_20_credit",
                    "real_episodes"):
            view.value(key, "-")
        return
    study = toy.budget_study(results_dir=results_dir)
    episodes = int(frame.episode.max()) + 1 if len(frame) else None
    view.show("budget", diag.budget_table(study))
    view.show("budget_plot", diag.plot_budget(study, episodes))
    reward = study[~study.credit.astype(bool)]
    snr = reward.groupby("student_lr").reward_snr.median()
    view.value("toy_snr_low", f"{snr.min():.1f}")
    view.value("toy_snr_high", f"{snr.max():.1f}")
    for key, sub in (("toy_pass_20", reward), ("toy_pass_20_credit", study[study.credit.astype(bool)])):
        first = sub[sub.episodes == study.episodes.min()]
        view.value(key, f"{int(first.passed.sum())} of {len(first)}")
    view.value("real_episodes", str(episodes or "-"))


def l2a_parts(profile="cpu", tasks=("tc", "pi"), seeds=(0, 1, 2, 3, 4), allow_training=False,
              allow_missing=True, results_dir=None, data_dir=None) -> View:
    """L2A (version 2) against each of its parts switched off: paired differences with
    95% intervals (accuracy on TC, F1 on PI). The variant without originals and the
    probe run at the first three seeds only (``FEWER_SEEDS``)."""
    tasks, seeds = list(tasks), list(seeds)
    methods = ["l2a", *L2A_PARTS]
    view = View()
    kw = dict(profile=profile, allow_training=allow_training, results_dir=results_dir,
              data_dir=data_dir, allow_missing=allow_missing, version=2)
    grids = [([m for m in methods if m not in FEWER_SEEDS], seeds)]
    grids += [([m], seeds[:FEWER_SEEDS[m]]) for m in methods if m in FEWER_SEEDS]
    frames = [run_many(tasks, ms, ss, **kw) for ms, ss in grids]
    df = pd.concat(frames)
    df.attrs = {"missing": [x for f in frames for x in f.attrs.get("missing", [])],
                "n_runs": sum(len(tasks) * len(ms) * len(ss) for ms, ss in grids)}
    view.note(report.coverage_note(df))
    records = {}
    for ms, ss in grids:
        records.update(load_records(tasks, ms, ss, profile=profile, results_dir=results_dir, version=2))
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    view.show("means", diag.means_table(records, labels, kinds, methods, TASK_METRICS))
    tests = report.ablation_tests(records, labels, kinds, list(L2A_PARTS), task_metrics=TASK_METRICS)
    view.show("tests", report.paired_table(tests))
    if len(tests):
        view.show("differences", diag.plot_differences(tests))
    for r in tests.to_dict("records"):
        view.value(f"parts_{r['task']}_{_key(r['variant'])}", r["removed part"])
    _probe(view, profile, seeds[:PROBE_SEEDS], records, labels, kinds, allow_training, allow_missing,
           results_dir, data_dir)
    return view


def _probe(view, profile, seeds, records, labels, kinds, allow_training, allow_missing,
           results_dir, data_dir, task="tc"):
    """The probe with a known answer on real data (``l2a.corrupt``): half the augmented
    samples with wrong teacher targets, the learned selector against keeping all."""
    methods = list(L2A_PROBE)
    df = run_many([task], methods, seeds, profile=profile, allow_training=allow_training,
                  results_dir=results_dir, data_dir=data_dir, allow_missing=allow_missing, version=2)
    view.note(report.coverage_note(df))
    probe = load_records([task], methods, seeds, profile=profile, results_dir=results_dir, version=2)
    both = {**{k: v for k, v in records.items() if k[0] == task and k[2] in seeds}, **probe}
    view.show("probe_means", diag.means_table(both, {task: labels[task]}, {task: kinds[task]},
                                              ["l2a", *methods], TASK_METRICS))
    frame = diag.diagnostics_frame(probe, "l2a_corrupted")
    # the same probe over 60 episodes with the generator off (L2A_PROBE_LONG)
    long_seeds = seeds[:PROBE_LONG_SEEDS]
    df = run_many([task], list(L2A_PROBE_LONG), long_seeds, profile=profile,
                  allow_training=allow_training, results_dir=results_dir, data_dir=data_dir,
                  allow_missing=allow_missing, version=2)
    view.note(report.coverage_note(df))
    longer = diag.diagnostics_frame(load_records([task], list(L2A_PROBE_LONG), long_seeds,
                                                 profile=profile, results_dir=results_dir,
                                                 version=2), L2A_PROBE_LONG[0])
    keep, keep_long = diag.probe_summary(frame), diag.probe_summary(longer)
    runs = {"20 episodes": keep, f"{longer.episode.max() + 1 if len(longer) else 60} episodes, "
            "generator off": keep_long}
    view.show("probe_keep", pd.concat({k: v for k, v in runs.items() if len(v)}, names=["run"])
              if len(keep) or len(keep_long) else pd.DataFrame({"not computed yet": []}))
    for key, f in (("probe_plot", frame), ("probe_long_plot", longer)):
        view.show(key, diag.plot_diagnostics(f, "probe") if len(f)
                  else pd.DataFrame({"not computed yet": []}))
    test = report.ablation_tests(probe, {task: labels[task]}, {task: kinds[task]},
                                 [methods[1]], reference=methods[0], task_metrics=TASK_METRICS)
    view.value("probe_verdict", probe_verdict(keep, test))
    view.value("probe_long_verdict", probe_verdict(keep_long, pd.DataFrame()))


def probe_verdict(keep: pd.DataFrame, test: pd.DataFrame) -> str:
    """The probe's result in a sentence: whether the learned selector drops the corrupted
    samples (last episodes, per seed) and what its student scores against keeping all."""
    if not len(keep):
        return "not computed yet"
    last = [c for c in keep.columns if c.startswith("kept") and "last" in c]
    corrupted, clean = keep[last[0]], keep[last[1]]
    fewer = int((corrupted < clean).sum())
    words = (f"over the last episodes the learned selector kept fewer corrupted than clean "
             f"samples at {fewer} of {len(keep)} seeds (mean keep rate {corrupted.mean():.2f} "
             f"corrupted, {clean.mean():.2f} clean; the toy test of the method page asks for under "
             f"0.30 and over 0.70)")
    if len(test):
        r = test.iloc[0]
        words += (f"; its student minus the keep-all student: {r['difference']:+.3f} "
                  f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] on {r['metric']}")
    return words


def _key(label: str) -> str:
    return {report.METHOD_LABELS[m]: m for m in L2A_PARTS}.get(label, label)
