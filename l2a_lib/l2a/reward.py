"""The selector's reward, measured with its noise (L2A v2).

Version 1 of L2A rewarded a step with the change of the student's dev accuracy,
``r_t = acc(after) - acc(before)``. On a dev set of 100 examples that change moves
in steps of 0.01 and is zero for most steps, while the dev accuracy of a student
that does not change at all already varies by a percent between episodes: the
reward was below its own noise.

Version 2 rewards a step with the change of a continuous dev quantity, the
mean log-likelihood of the gold dev labels under the student,

    classification:  l_i = log p_student(y_i | x_i)
    regression:      l_i = -(f_student(x_i) - y_i)^2 / 2   (a unit-variance Gaussian)
    r_t = mean_i [ l_i(after step t) - l_i(before step t) ],

and measures the reward's noise on the same step: the standard error of that mean
over the dev examples, ``se_t = sd_i(l_i(after) - l_i(before)) / sqrt(n)`` (the
spread a bootstrap over dev examples would give, without resampling). The ratio
``|r_t| / se_t`` is the step's signal-to-noise; :class:`DevReward` records it for
both rewards (the log-likelihood and, for comparison, the accuracy of version 1),
so each run's episode log shows how much of each reward is signal.

The dev log-likelihood is computed in float32 whatever the training precision:
bfloat16 logits carry three significant digits, less than one step's change.
"""
from __future__ import annotations

import numpy as np
import torch

from ..encoding import Encoded
from ..train import predict

REWARDS = ("dev_loglik", "dev_metric")


def per_example(logits: np.ndarray, labels: np.ndarray, regression: bool) -> tuple[np.ndarray, np.ndarray]:
    """(l_i, c_i) of each dev example: the gold label's log-likelihood (see the
    module) and whether the prediction is correct (regression: minus the squared
    error, as the accuracy has no per-example form there)."""
    logits = np.asarray(logits, dtype=np.float64)
    if regression:
        sq = (logits[:, 0] - np.asarray(labels, dtype=np.float64)) ** 2
        return -0.5 * sq, -sq
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    y = np.asarray(labels).astype(int)
    return logp[np.arange(len(y)), y], (logits.argmax(1) == y).astype(float)


def mean_change(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(mean_i (after_i - before_i), its standard error over the n examples)."""
    diff = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, 0.0
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


class DevReward:
    """The reward of each student step, from the student's outputs on a dev split.

    ``start(model)`` measures the student before the episode's first step; each
    ``step(model)`` measures it again and returns the step's reward and noise
    (a dict: ``reward``, ``reward_se``, ``acc_change``, ``acc_change_se``);
    ``kind`` chooses which of the two is the ``reward`` ("dev_loglik", version 2, or
    "dev_metric", version 1's accuracy change; Pearson's change for regression,
    which has no per-example form: its noise is not measured)."""

    def __init__(self, dev: Encoded, *, pad_id: int, regression: bool, kind: str = "dev_loglik",
                 batch_size: int = 128, predict_fn=None):
        if kind not in REWARDS:
            raise ValueError(f"reward={kind!r}: choose one of {REWARDS}")
        self.dev, self.pad_id, self.regression, self.kind = dev, pad_id, regression, kind
        self.batch_size = batch_size
        # predict_fn(model) -> (N, C) logits in float32; the default runs train.predict
        self._predict = predict_fn or (lambda m: predict(m, dev, pad_id=pad_id,
                                                         batch_size=batch_size, bf16=False))
        self._now: tuple[np.ndarray, np.ndarray] | None = None
        self._metric: float | None = None

    def _measure(self, model) -> tuple[tuple[np.ndarray, np.ndarray], float]:
        was_training = getattr(model, "training", False)
        with torch.no_grad():
            logits = self._predict(model)
        if was_training:
            model.train()
        ll, c = per_example(logits, self.dev.labels, self.regression)
        if self.regression:
            pred, y = np.asarray(logits)[:, 0], np.asarray(self.dev.labels, dtype=float)
            metric = float(np.corrcoef(pred, y)[0, 1]) if pred.std() > 0 and y.std() > 0 else 0.0
        else:
            metric = float(c.mean())
        return (ll, c), metric

    def start(self, model) -> float:
        """Measure the student before the first step; returns its dev metric."""
        self._now, self._metric = self._measure(model)
        return self._metric

    def rebase(self, model) -> None:
        """Measure the student again without a reward: the next step's reward starts
        here (the originals' own update, made before the augmented one, is not
        credited to the selector's actions)."""
        self._now, self._metric = self._measure(model)

    def step(self, model) -> dict[str, float]:
        if self._now is None:
            raise RuntimeError("DevReward.step before DevReward.start")
        (ll0, c0), m0 = self._now, self._metric
        self._now, self._metric = self._measure(model)
        (ll1, c1), m1 = self._now, self._metric
        r_ll, se_ll = mean_change(ll0, ll1)
        if self.regression:
            acc, acc_se = m1 - m0, float("nan")
        else:
            acc, acc_se = mean_change(c0, c1)
        out = {"loglik_change": r_ll, "loglik_change_se": se_ll,
               "acc_change": acc, "acc_change_se": acc_se, "dev_metric": m1,
               "dev_loglik": float(ll1.mean())}
        if self.kind == "dev_loglik":
            out.update(reward=r_ll, reward_se=se_ll)
        else:
            out.update(reward=acc, reward_se=acc_se)
        return out

    @property
    def metric(self) -> float | None:
        """The dev metric (accuracy; Pearson for regression) at the last measurement."""
        return self._metric


def signal_to_noise(rewards, ses) -> float:
    """The root mean square of the rewards over the root mean square of their standard
    errors: above 1, the steps' rewards differ by more than their noise. NaN when the
    noise is not measured (regression's Pearson reward)."""
    r, s = np.asarray(rewards, dtype=float), np.asarray(ses, dtype=float)
    if not len(r) or not np.isfinite(s).all():
        return float("nan")
    den = float(np.sqrt(np.mean(s ** 2)))
    return float(np.sqrt(np.mean(r ** 2)) / den) if den > 0 else float("inf")
