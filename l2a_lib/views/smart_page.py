"""The SMART page (issue 36): Student-FT and L2A (version 2), each with SMART's
adversarial term alone and with the Bregman proximal point too, against the same
method without SMART, paired by seed and test item."""
from __future__ import annotations

import pandas as pd

from .. import report
from ..config import SMART_VARIANTS
from ..tasks import HEADLINE_METRICS
from ..experiment import gather
from ..profiles import make_config
from ..records import cache_path, load_test_labels, read_record
from ..report.significance import decode_predictions, metric_name, paired_comparison, verdict
from ..runs import Context
from .base import View

PAIRS = (("student_ft_smart", "student_ft"), ("l2a_smart", "l2a"))
HEADLINE = HEADLINE_METRICS


def smart_configs(tasks, seeds, profile: str) -> list[tuple[str, object]]:
    """(variant, config) of every run the page reads; the variant is "none" for the
    method without SMART (L2A in version 2, as its SMART runs)."""
    out = []
    for t in tasks:
        for s in seeds:
            for smart_m, base in PAIRS:
                out.append(("none", make_config(t, base, s, profile=profile,
                                                version=2 if base == "l2a" else None)))
                out += [(v, make_config(t, smart_m, s, profile=profile, smart=v))
                        for v in SMART_VARIANTS]
    return out


def smart(profile="cpu", tasks=tuple(HEADLINE), seeds=(0, 1, 2), allow_training=False,
          allow_missing=True, results_dir=None, data_dir=None) -> View:
    view = View()
    pairs = smart_configs(list(tasks), list(seeds), profile)
    ctx = Context(data_dir, results_dir)
    df = gather(pairs, ctx, allow_training, allow_missing, column="variant", what=" of the SMART page")
    view.note(report.coverage_note(df))
    labels, kinds = load_test_labels(list(tasks), profile=profile, data_dir=data_dir)
    preds: dict = {}
    for variant, c in pairs:
        path = cache_path(c, ctx)
        if path.is_file():
            rec = read_record(path)
            if "test_predictions" in rec.get("extra", {}):
                key = (c.task, c.method.replace("_smart", ""), variant)
                preds.setdefault(key, {})[c.seed] = decode_predictions(
                    kinds[c.task], rec["extra"]["test_predictions"])
    rows = []
    for task in tasks:
        metric = metric_name(kinds[task], HEADLINE[task])
        for _, base in PAIRS:
            for variant in SMART_VARIANTS:
                a, b = preds.get((task, base, variant), {}), preds.get((task, base, "none"), {})
                res = paired_comparison(labels[task], kinds[task], a, b,
                                        metric=None if metric in ("acc", "pearson") else metric)
                if res:
                    rows.append({"task": report.TASK_LABELS.get(task, task),
                                 "method": report.METHOD_LABELS.get(base, base),
                                 "SMART": variant, "metric": metric, "with SMART": res["a"],
                                 "without": res["b"], "difference": res["difference"],
                                 "95% CI": report.interval(res["ci_low"], res["ci_high"]),
                                 "seeds higher with SMART": res["seeds a higher"],
                                 "verdict": verdict(res["sign"])})
    view.show("tests", pd.DataFrame(rows))
    return view
