"""Metric golden values, computed by hand."""
import math

import numpy as np
import pytest

from l2a_lib import metrics


def test_accuracy_and_positive_f1_golden():
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    preds = [1, 0, 1, 1, 0, 0, 0, 0]
    # TP=2, FP=1, FN=2 -> F1 = 4 / (4 + 1 + 2) = 4/7 ; accuracy = 5/8
    assert metrics.accuracy(labels, preds) == pytest.approx(5 / 8)
    assert metrics.f1_positive(labels, preds) == pytest.approx(4 / 7)


def test_f1_is_zero_without_true_positives():
    assert metrics.f1_positive([1, 0, 0], [0, 0, 0]) == 0.0


def test_pearson_and_spearman_golden():
    y = [1.0, 2.0, 3.0, 4.0]
    p = [1.0, 3.0, 2.0, 5.0]
    # Pearson by hand: dx=(-1.5,-.5,.5,1.5), dy=(-1.75,.25,-.75,2.25)
    num = 1.5 * 1.75 - 0.5 * 0.25 - 0.5 * 0.75 + 1.5 * 2.25
    den = math.sqrt(5.0) * math.sqrt(1.75**2 + 0.25**2 + 0.75**2 + 2.25**2)
    assert metrics.pearson(y, p) == pytest.approx(num / den)
    # ranks of p: 1,3,2,4 -> d = 0,1,-1,0 -> rho = 1 - 6*2/(4*15) = 0.8
    assert metrics.spearman(y, p) == pytest.approx(0.8)


def test_constant_prediction_has_zero_correlation():
    assert metrics.pearson([0.1, 0.5, 0.9], [0.3, 0.3, 0.3]) == 0.0
    # a mean tiled over many rows: np.std of it is not exactly 0 (the majority baseline)
    const = np.full(1000, np.mean([3.1, 2.7, 4.9]))
    labels = np.linspace(0.0, 1.0, 1000)
    assert metrics.pearson(labels, const) == 0.0 and metrics.spearman(labels, const) == 0.0


def test_the_majority_baseline_answers_the_training_majority_or_mean():
    from l2a_lib.majority import constant_output
    assert constant_output([0, 1, 1, 2], "classification", 3).tolist() == [0.0, 1.0, 0.0]
    assert constant_output([0, 0, 1, 1], "classification", 2).tolist() == [1.0, 0.0]  # tie: lower id
    assert constant_output([1.0, 2.0, 6.0], "regression", 1).tolist() == [3.0]


def test_compute_dispatches_on_kind():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5]])
    assert metrics.compute("classification", logits, [0, 1, 1]) == {
        "acc": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3)}
    out = metrics.compute("regression", np.array([[0.1], [0.2], [0.3]]), [0.0, 0.5, 1.0])
    assert set(out) == {"pearson", "spearman"} and out["spearman"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kind"):
        metrics.compute("ranking", logits, [0, 1, 1])


def test_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must be equal"):
        metrics.accuracy([1, 0], [1])
