"""Our extension of L2A: the selector learns from per-sample credit (``l2a.credit``,
plain, calibrated and equal-weight) instead of the step reward. Compared with L2A version 2 and with
keeping every sample, and probed with corrupted teacher targets as on the parts page."""
from __future__ import annotations

import pandas as pd

from .. import report
from ..config import L2A_CREDIT
from ..records import load_test_labels
from ..report import diagnostics as diag
from ..report.tables import plot_episodes
from .base import View
from .parts import TASK_METRICS, cached, probe_verdict

COMPARED = ("l2a", "l2a_selector_off")  # the paper's selector (v2), and no selection at all
# our two selectors -> (their probe with half the targets reversed, the glue prefix)
OURS = {L2A_CREDIT[0]: (L2A_CREDIT[1], "credit"), L2A_CREDIT[2]: (L2A_CREDIT[3], "cal"),
        L2A_CREDIT[4]: (L2A_CREDIT[5], "eq")}
EPISODE_PLOT = ("keep_rate", "credit_gap", "credit_positive", "dev_metric")
LABELS = {"credit_gap": "kept minus dropped credit (sd)", "credit_positive": "share of credit > 0",
          "keep_rate": "keep rate", "dev_metric": "dev metric"}


def l2a_credit(profile="cpu", tasks=("tc", "pi"), seeds=(0, 1, 2, 3, 4), probe_seeds=(0, 1, 2),
               allow_training=False, allow_missing=True, results_dir=None, data_dir=None) -> View:
    """``l2a_credit``, ``l2a_credit_cal`` and ``l2a_credit_eq`` against L2A (version 2) and against keeping
    every sample: means and paired tests; their selectors over episodes; the probes."""
    tasks, seeds = list(tasks), list(seeds)
    methods = [*OURS, *COMPARED]
    kw = dict(profile=profile, allow_training=allow_training, results_dir=results_dir,
              data_dir=data_dir, allow_missing=allow_missing)
    view = View()
    records = cached(view, tasks, methods, seeds, **kw)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    view.show("means", diag.means_table(records, labels, kinds, methods, TASK_METRICS))
    tables, frames = {}, {}
    for ours, (_, prefix) in OURS.items():
        tests = report.ablation_tests(records, labels, kinds, list(COMPARED), reference=ours,
                                      task_metrics=TASK_METRICS)
        label = report.METHOD_LABELS[ours]
        tables[label] = report.paired_table(tests).drop(columns=[label], errors="ignore").rename(
            columns={"variant": "against", "removed part": "verdict",
                     f"seeds {label} higher": "seeds ours higher"})
        for r in tests.to_dict("records"):
            key = {report.METHOD_LABELS[m]: m for m in COMPARED}.get(r["variant"], r["variant"])
            view.value(f"{prefix}_{r['task']}_{key}", r["removed part"])
        frames[label] = diag.diagnostics_frame(records, ours)
    shown = {k: v for k, v in tables.items() if len(v)}
    view.show_when("tests", shown, lambda: pd.concat(shown, names=["ours"]))
    for (_, prefix), frame in zip(OURS.values(), frames.values()):
        view.show_when(f"episodes_plot_{prefix}", len(frame), lambda: plot_episodes(
            frame, EPISODE_PLOT, labels=LABELS, reference={"credit_gap": 0.0}))
    _probes(view, probe_seeds, kw)
    return view


def _probes(view, probe_seeds, kw):
    """Half of the augmented samples of TC with reversed teacher logits (``l2a.corrupt``):
    the keep rates of each of our selectors, corrupted against clean."""
    keeps = {}
    for ours, (probe_method, prefix) in OURS.items():
        frame = diag.diagnostics_frame(cached(view, ["tc"], [probe_method], probe_seeds, **kw),
                                       probe_method)
        keep = diag.probe_summary(frame)
        keeps[report.METHOD_LABELS[ours]] = keep
        view.show_when(f"{prefix}_probe_plot", len(frame), lambda: diag.plot_diagnostics(frame, "probe"))
        view.value(f"{prefix}_probe_verdict", probe_verdict(keep, pd.DataFrame()))
    shown = {k: v for k, v in keeps.items() if len(v)}
    view.show_when("probe_keep", shown, lambda: pd.concat(shown, names=["selector"]))
