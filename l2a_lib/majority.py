"""The majority baseline: a reader's first sanity check of a task setting.

It predicts the majority class of the target training split for every input
(classification; ties go to the lower class id) or the mean training label
(regression; its Pearson and Spearman are 0 by ``metrics``' convention for a
constant prediction). No model, no teacher: a method that does not beat it has
learnt nothing about the target task.
"""
from __future__ import annotations

import numpy as np

from . import metrics
from .config import ExperimentConfig
from .runs import Context, compact_predictions, prepare


def constant_output(labels, kind: str, num_labels: int) -> np.ndarray:
    """The one output row the baseline gives every input: one-hot logits of the
    majority class (C,), or the mean label (1,)."""
    labels = np.asarray(labels)
    if kind == "regression":
        return np.array([float(labels.astype(float).mean())])
    counts = np.bincount(labels.astype(int), minlength=num_labels)
    row = np.zeros(num_labels)
    row[int(counts.argmax())] = 1.0
    return row


def run_majority(config: ExperimentConfig, ctx: Context) -> dict:
    prep = prepare(config, ctx)
    spec = prep.task.spec
    row = constant_output(prep.train.labels, spec.kind, spec.num_labels)
    out = {"n_params": 0, "sizes": prep.task.sizes(), "constant_output": row.tolist(), "rows": []}
    for split, enc in (("dev", prep.dev), ("test", prep.test)):
        logits = np.tile(row, (len(enc), 1))
        out["rows"] += [{"split": split, "metric": k, "value": v}
                        for k, v in metrics.compute(spec.kind, logits, enc.labels).items()]
        if split == "test":
            out["test_predictions"] = compact_predictions(spec.kind, logits)
    return out
