"""The student steps of one episode of Algorithm 1 (L2A version 2), with what a
reader needs to see whether the selector learns.

For each batch of the episode's augmented pool:

    state   <- states_of(batch)                       (teacher and student outputs)
    action  <- keep / drop each sample                (the selector, at random, or keep all)
    loss    <- L_KD(kept) * |kept| / |batch| + L_orig (labelled target originals)
    step the student
    reward  <- the change of the dev log-likelihood (``reward.DevReward``), with its noise

:func:`run_episode` is the loop; ``run_l2a`` calls it with the real student, teacher
cache and pool, and ``tests/test_l2a_learns.py`` with a toy student whose answer is
known. It returns the episode's diagnostics (means over the steps): the reward and
its standard error, the accuracy change (version 1's reward) and its standard error,
the keep rate, the policy's mean keep probability and its entropy, each loss term,
and the share of the student's gradient that comes from the augmented samples
(measured on the episode's first step that has both parts: the norm of each part's
gradient, ``|g_aug| / (|g_aug| + |g_orig|)``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..ledger import phase
from ..train import Stepper
from .reward import DevReward, signal_to_noise
from .selector import Selector


@dataclass
class EpisodeRecord:
    """Everything one episode's steps produced (per step), for the selector, the
    generator and the log."""
    states: list[torch.Tensor] = field(default_factory=list)    # (N_t, F) per step
    probs: list[torch.Tensor] = field(default_factory=list)     # the policy's keep probability
    actions: list[torch.Tensor] = field(default_factory=list)   # 1 keep / 0 drop
    steps: list[dict] = field(default_factory=list)             # reward, noise, loss terms
    grad_share_augmented: float | None = None

    def all_states(self) -> torch.Tensor:
        return torch.cat(self.states) if self.states else torch.zeros(0)

    def summary(self) -> dict:
        """The episode's diagnostics: means over its steps (see the module)."""
        def mean(key):
            vals = [s[key] for s in self.steps if s.get(key) is not None]
            vals = [v for v in vals if np.isfinite(v)]
            return float(np.mean(vals)) if vals else None
        probs = torch.cat(self.probs) if self.probs else torch.zeros(0)
        p = probs.double().clamp(1e-6, 1 - 1e-6)
        entropy = float(-(p * p.log() + (1 - p) * (1 - p).log()).mean()) if len(p) else None
        keys = sorted({k for s in self.steps for k in s})
        rewarded = [s for s in self.steps if "reward" in s]
        out = {k: mean(k) for k in keys}
        out.update({
            "reward_snr": signal_to_noise([s["reward"] for s in rewarded],
                                          [s["reward_se"] for s in rewarded]),
            "acc_change_snr": signal_to_noise([s["acc_change"] for s in rewarded],
                                              [s["acc_change_se"] for s in rewarded]),
            "keep_rate": float(torch.cat(self.actions).mean()) if self.actions else None,
            "mean_keep_prob": float(probs.mean()) if len(probs) else None,
            "selector_entropy": entropy,
            "grad_share_augmented": self.grad_share_augmented,
            "steps": len(self.steps)})
        return out


def _grad_norm(loss: torch.Tensor, params) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def run_episode(stepper: Stepper, model, batches, *, states_of, kd_of, originals_of,
                reward: DevReward, selector: Selector | None = None,
                random_keep=None, gen: torch.Generator | None = None,
                params=None, where=lambda step: f"step {step}", credit_of=None) -> EpisodeRecord:
    """One episode's student steps (see the module).

    ``batches``: index arrays into the pool (an empty one: a step on the originals
    alone); ``states_of(idx)`` -> (N, F) states; ``kd_of(idx)`` -> (mean L_KD over
    ``idx``, {term: value}); ``originals_of()`` -> (loss, {term: value}) or None;
    ``selector``: the learned policy (acts, remembers, is rewarded; its update is the
    caller's, once per episode); ``random_keep(idx, states)``: each sample's keep probability
    instead (the policy is not asked; ``l2a.reference.keep_rule``); neither: keep everything.
    ``params``: the student's parameters, to measure the gradient share. ``reward``
    must have been started (``DevReward.start``) on ``model``. ``credit_of(idx)`` ->
    (N,) per-sample credits (``l2a.credit``), measured after the originals' step and
    handed to the selector, which then learns from them instead of the step's reward.

    Each batch makes two optimizer steps: first on the originals, then on the kept
    augmented samples, and the reward is the dev change of the second alone. In one
    joint step the originals' part of the change (which the actions do not decide)
    would be credited to the actions: on the toy task of ``tests/test_l2a_learns.py``
    it was the larger part of the reward's variance."""
    rec = EpisodeRecord()
    want_share = params is not None

    def augmented(keep, idx, info):
        term, parts = kd_of(keep)
        info.update({f"aug_{k}": v for k, v in parts.items()})
        info["aug_loss"] = float(term.detach()) * len(keep) / len(idx)
        return term * (len(keep) / len(idx))

    for i, idx in enumerate(batches):
        info: dict = {}
        rec.steps.append(info)
        keep = None
        with phase("student training"):
            if idx is not None and len(idx):
                state = states_of(idx)
                rec.states.append(state)
                if selector is not None:
                    actions = selector.act(state, gen)
                    rec.probs.append(selector.last_probs)
                elif random_keep is not None:
                    actions = torch.bernoulli(random_keep(idx, state), generator=gen)
                else:
                    actions = torch.ones(len(idx))
                rec.actions.append(actions)
                keep = np.asarray(idx)[actions.numpy() > 0.5]
                info["kept"] = float(actions.mean())
            orig = originals_of()
            if orig is not None:
                orig, parts = orig
                info.update({f"orig_{k}": v for k, v in parts.items()})
                info["orig_loss"] = float(orig.detach())
                if want_share and keep is not None and len(keep):
                    a = _grad_norm(augmented(keep, idx, {}), params)
                    o = _grad_norm(orig, params)
                    rec.grad_share_augmented = a / (a + o) if a + o > 0 else None
                    want_share = False
                stepper.step(orig, where(i) + " (originals)")
        if keep is None:  # a step on the originals alone: nothing to reward
            continue
        if orig is not None:
            reward.rebase(model)
        if credit_of is not None and selector is not None:
            with phase("selector"):
                credit = credit_of(idx)
            selector.credit(credit)
            kept_mask = actions.numpy() > 0.5
            if kept_mask.any() and (~kept_mask).any() and credit.std() > 0:
                # does it keep the better samples? (kept minus dropped, in sd of the step's credits)
                info["credit_gap"] = float((credit[kept_mask].mean() - credit[~kept_mask].mean())
                                           / credit.std())
        with phase("student training"):
            stepper.step(augmented(keep, idx, info) if len(keep) else None, where(i))
        r = reward.step(model)
        info.update(r)
        if selector is not None:
            selector.reward(r["reward"])
    return rec
