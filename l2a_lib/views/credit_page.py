"""Our extension of L2A: the selector learns from per-sample credit (``l2a.credit``)
instead of the step reward. Compared with L2A version 2 and with keeping every sample,
and probed with corrupted teacher targets as on the parts page."""
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
EPISODE_PLOT = ("keep_rate", "credit_gap", "credit_positive", "dev_metric")
LABELS = {"credit_gap": "kept minus dropped credit (sd)", "credit_positive": "share of credit > 0",
          "keep_rate": "keep rate", "dev_metric": "dev metric"}


def l2a_credit(profile="cpu", tasks=("tc", "pi"), seeds=(0, 1, 2, 3, 4), probe_seeds=(0, 1, 2),
               allow_training=False, allow_missing=True, results_dir=None, data_dir=None) -> View:
    """``l2a_credit`` against L2A (version 2) and against keeping every sample: means and
    paired tests; its selector over episodes; the probe ``l2a_credit_corrupted``."""
    tasks, seeds = list(tasks), list(seeds)
    methods = [L2A_CREDIT[0], *COMPARED]
    kw = dict(profile=profile, allow_training=allow_training, results_dir=results_dir,
              data_dir=data_dir, allow_missing=allow_missing)
    view = View()
    records = cached(view, tasks, methods, seeds, **kw)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    view.show("means", diag.means_table(records, labels, kinds, methods, TASK_METRICS))
    tests = report.ablation_tests(records, labels, kinds, list(COMPARED), reference=L2A_CREDIT[0],
                                  task_metrics=TASK_METRICS)
    ours = report.METHOD_LABELS[L2A_CREDIT[0]]
    view.show("tests", report.paired_table(tests).drop(columns=[ours], errors="ignore").rename(
        columns={"variant": "against", "removed part": "per-sample credit",
                 f"seeds {ours} higher": "seeds ours higher"}))
    if len(tests):
        view.show("differences", diag.plot_differences(tests))
    for r in tests.to_dict("records"):
        key = {report.METHOD_LABELS[m]: m for m in COMPARED}.get(r["variant"], r["variant"])
        view.value(f"credit_{r['task']}_{key}", r["removed part"])
    frame = diag.diagnostics_frame(records, L2A_CREDIT[0])
    view.show_when("episodes_plot", len(frame), lambda: plot_episodes(
        frame, EPISODE_PLOT, labels=LABELS, reference={"credit_gap": 0.0}))
    # the probe: half of the augmented samples with reversed teacher logits (l2a.corrupt)
    probe = diag.diagnostics_frame(cached(view, ["tc"], [L2A_CREDIT[1]], probe_seeds, **kw),
                                   L2A_CREDIT[1])
    keep = diag.probe_summary(probe)
    view.show_when("probe_keep", len(keep), lambda: keep)
    view.show_when("probe_plot", len(probe), lambda: diag.plot_diagnostics(probe, "probe"))
    view.value("credit_probe_verdict", probe_verdict(keep, pd.DataFrame()))
    return view
