"""SMART (Jiang et al., ACL 2020): smoothness-inducing adversarial regularisation
and Bregman proximal point optimisation with momentum.

* Regulariser (Eq. 2-3): ``lambda_s * max_{||x~ - x||_inf <= eps} l_s(f(x~), f(x))``
  on the input word embeddings x, with ``l_s`` the symmetric KL divergence for
  classification and the squared error for regression. The max is approximated
  as in the paper: start from Gaussian noise of std ``sigma``, take ``steps``
  (K) ascent steps of size ``eta`` along the inf-norm-normalised gradient, and
  project back onto the eps ball after each step.
* Bregman proximal point with momentum (Eq. 4-5): a mean-teacher copy
  ``theta~ <- (1 - beta) theta + beta theta~`` after every update, and the penalty
  ``mu * D_Breg(theta, theta~) = mu * mean l_s(f(x; theta), f(x; theta~))``.

The public reference code ships only the perturbation; both parts are here.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import SmartConfig  # noqa: F401  (re-exported: the config of this module)


def symmetric_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """l_s(P, Q) = KL(P||Q) + KL(Q||P), mean over the batch. (B, C) logits."""
    lp, lq = F.log_softmax(p_logits.float(), -1), F.log_softmax(q_logits.float(), -1)
    return ((lp.exp() - lq.exp()) * (lp - lq)).sum(-1).mean()


def smoothness_loss(a: torch.Tensor, b: torch.Tensor, regression: bool) -> torch.Tensor:
    """Symmetric KL for classification, squared error for regression."""
    if regression:
        return (a.float() - b.float()).pow(2).mean()
    return symmetric_kl(a, b)


def adversarial_regularizer(forward: Callable[[torch.Tensor], torch.Tensor],
                            embeds: torch.Tensor, logits: torch.Tensor, cfg: SmartConfig,
                            regression: bool = False,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """lambda_s * l_s(f(x + delta*), f(x)), delta* found by K projected ascent steps.

    forward: maps (B, T, H) embeddings to (B, C) logits (the model, other inputs bound);
    embeds: (B, T, H) clean word embeddings x; logits: (B, C) = f(x).
    Gradients reach the model through f(x + delta*) and f(x); delta* is a constant.
    """
    noise = torch.randn(embeds.shape, generator=generator, dtype=embeds.dtype).to(embeds.device) * cfg.sigma
    clean = logits.detach()
    for _ in range(cfg.steps):
        noise.requires_grad_(True)
        adv = forward(embeds.detach() + noise)
        loss = smoothness_loss(adv, clean, regression)
        (grad,) = torch.autograd.grad(loss, noise)
        scale = grad.abs().amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12)  # inf-norm per sentence
        noise = (noise + cfg.eta * grad / scale).clamp(-cfg.epsilon, cfg.epsilon).detach()
    adv = forward(embeds + noise)
    return cfg.lambda_s * smoothness_loss(adv, logits, regression)


class MomentumTeacher:
    """The mean-teacher copy theta~ of Bregman proximal point optimisation."""

    def __init__(self, model: nn.Module, beta: float):
        self.beta = beta
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """theta~ <- (1 - beta) * theta + beta * theta~ (after each optimizer step)."""
        for p_avg, p in zip(self.model.parameters(), model.parameters()):
            p_avg.mul_(self.beta).add_(p.detach(), alpha=1 - self.beta)

    def penalty(self, logits: torch.Tensor, teacher_logits: torch.Tensor, mu: float,
                regression: bool = False) -> torch.Tensor:
        """mu * D_Breg = mu * l_s(f(x; theta), f(x; theta~)); ``teacher_logits`` from ``self.model``."""
        return mu * smoothness_loss(logits, teacher_logits.detach(), regression)
