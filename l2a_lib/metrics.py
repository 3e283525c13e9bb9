"""Evaluation metrics of the paper: ACC and F1 for classification, Pearson and
Spearman for regression.

F1 is the binary F1 of the positive class (label 1: positive review,
paraphrase, entailment), the usual choice for PI and NLI; the paper does not
say which F1 it reports, but its PI numbers (ACC 0.88, F1 0.74 on a target
with ~15% positives) fit the positive-class F1, not the macro F1.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def accuracy(labels, preds) -> float:
    labels, preds = np.asarray(labels), np.asarray(preds)
    if labels.shape != preds.shape or labels.size == 0:
        raise ValueError(f"labels {labels.shape} and preds {preds.shape} must be equal, non-empty")
    return float((labels == preds).mean())


def f1_positive(labels, preds, positive: int = 1) -> float:
    """F1 of class ``positive``: 2 TP / (2 TP + FP + FN); 0.0 when there is no TP."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    tp = int(((preds == positive) & (labels == positive)).sum())
    fp = int(((preds == positive) & (labels != positive)).sum())
    fn = int(((preds != positive) & (labels == positive)).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def pearson(labels, preds) -> float:
    labels, preds = np.asarray(labels, float), np.asarray(preds, float)
    if np.ptp(preds) == 0 or np.ptp(labels) == 0:
        return 0.0  # a constant prediction carries no correlation (np.std of one may be 1e-16)
    return float(stats.pearsonr(labels, preds)[0])


def spearman(labels, preds) -> float:
    labels, preds = np.asarray(labels, float), np.asarray(preds, float)
    if np.ptp(preds) == 0 or np.ptp(labels) == 0:
        return 0.0
    return float(stats.spearmanr(labels, preds)[0])


def compute(kind: str, logits: np.ndarray, labels) -> dict[str, float]:
    """All metrics of a task kind from raw model outputs ``(N, C)`` or ``(N, 1)``."""
    logits = np.asarray(logits, dtype=float)
    if kind == "classification":
        preds = logits.argmax(-1)
        return {"acc": accuracy(labels, preds), "f1": f1_positive(labels, preds)}
    if kind == "regression":
        preds = logits.reshape(-1)
        return {"pearson": pearson(labels, preds), "spearman": spearman(labels, preds)}
    raise ValueError(f"kind={kind!r} must be 'classification' or 'regression'")
