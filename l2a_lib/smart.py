"""SMART (Jiang et al., ACL 2020): smoothness-inducing adversarial regularisation
and Bregman proximal point optimisation with momentum.

* Regulariser (Eq. 2-3): ``lambda_s * max_{||x~ - x||_inf <= eps} l_s(f(x~), f(x))``
  on the input word embeddings x, with ``l_s`` the symmetric KL divergence for
  classification and the squared error for regression.
* Bregman proximal point with momentum (Eq. 4-5): a mean-teacher copy
  ``theta~ <- (1 - beta) theta + beta theta~`` after every update, and the penalty
  ``mu * D_Breg(theta, theta~) = mu * mean l_s(f(x; theta), f(x; theta~))``.

The inner maximisation, two ways (``SmartConfig.perturbation``):

* ``"reference"`` (default), as the SMART authors' public code computes it (MT-DNN's
  ``SmartPerturbation``, which produced the paper's numbers): noise ~ N(0, sigma^2);
  K times: g = grad of l_s(f(x + noise), sg f(x)) w.r.t. the noise, then
  ``noise <- (noise + eta g) / (max_h |noise + eta g|_h + 1e-6)``, the maximum taken
  over each token's H embedding dimensions (their default ``norm_p="inf"``,
  token level). Each token's perturbation so has an inf-norm of m / (m + 1e-6), m
  the inf-norm of its noise + eta g: about 1 once m is well above 1e-6, and never
  above 1; no eps ball is applied (``epsilon`` is unused). The reference ascends its ``stable_kl``,
  a logit-odds form of KL(adv || clean); here the symmetric KL: after the
  normalisation only the gradient's direction matters.
* ``"paper"``, as the paper's text reads: the same ascent along the inf-norm-
  normalised gradient (per sentence), then a clamp to the ball ``||delta||_inf <=
  epsilon``. At the paper's eps = 1e-5 the regulariser is about 1e-9 on a small
  model, i.e. nothing: the discrepancy between the paper's text and its code is
  stated on the SMART page of the book.

The final term: ``lambda_s * l_s(f(x + delta), f(x))`` with, as in the reference's
``SymKlCriterion``, each KL's target detached: ``KL(sg p_clean || p_adv) +
KL(sg p_adv || p_clean)`` (the squared error for regression, through both sides).
Gradients reach the model through both forward passes; delta is a constant.

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


def detached_symmetric_kl(adv_logits: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
    """KL(sg p_clean || p_adv) + KL(sg p_adv || p_clean), mean over the batch: the
    symmetric KL with each KL's target distribution a constant (the reference's
    ``SymKlCriterion``). (B, C) logits."""
    la, lc = F.log_softmax(adv_logits.float(), -1), F.log_softmax(clean_logits.float(), -1)
    kl_c_a = (lc.detach().exp() * (lc.detach() - la)).sum(-1)
    kl_a_c = (la.detach().exp() * (la.detach() - lc)).sum(-1)
    return (kl_c_a + kl_a_c).mean()


def perturbation(forward: Callable[[torch.Tensor], torch.Tensor], embeds: torch.Tensor,
                 logits: torch.Tensor, cfg: SmartConfig, regression: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """delta, the adversarial perturbation of ``embeds`` (B, T, H) (see the module:
    ``cfg.perturbation`` "reference" or "paper"); a constant."""
    noise = torch.randn(embeds.shape, generator=generator, dtype=embeds.dtype).to(embeds.device) * cfg.sigma
    clean = logits.detach()
    for _ in range(cfg.steps):
        noise.requires_grad_(True)
        adv = forward(embeds.detach() + noise)
        loss = smoothness_loss(adv, clean, regression)
        (grad,) = torch.autograd.grad(loss, noise)
        if cfg.perturbation == "reference":
            step = noise.detach() + cfg.eta * grad
            noise = (step / (step.abs().amax(dim=-1, keepdim=True) + 1e-6)).detach()
        else:
            scale = grad.abs().amax(dim=(-2, -1), keepdim=True).clamp(min=1e-12)  # per sentence
            noise = (noise + cfg.eta * grad / scale).clamp(-cfg.epsilon, cfg.epsilon).detach()
    return noise.detach()


def adversarial_regularizer(forward: Callable[[torch.Tensor], torch.Tensor],
                            embeds: torch.Tensor, logits: torch.Tensor, cfg: SmartConfig,
                            regression: bool = False,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """lambda_s * l_s(f(x + delta), f(x)), delta from :func:`perturbation`.

    forward: maps (B, T, H) embeddings to (B, C) logits (the model, other inputs bound);
    embeds: (B, T, H) clean word embeddings x; logits: (B, C) = f(x).
    """
    delta = perturbation(forward, embeds, logits, cfg, regression, generator)
    adv = forward(embeds + delta)
    if cfg.perturbation == "reference" and not regression:
        return cfg.lambda_s * detached_symmetric_kl(adv, logits)
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


def extra_terms(model, b: dict, logits: torch.Tensor, cfg: SmartConfig, regression: bool,
                generator: torch.Generator | None = None,
                momentum: "MomentumTeacher | None" = None) -> torch.Tensor:
    """SMART's terms added to any training loss on the batch ``b`` (``input_ids``,
    ``attention_mask``, ``token_type_ids``) whose clean outputs are ``logits``: the
    adversarial regulariser and, with ``momentum``, the Bregman penalty. Student-FT
    adds them to its task loss (``train.fine_tune``), L2A to L_KD (``l2a_smart``)."""
    def forward(embeds):  # (B, T, H) -> logits, the other inputs fixed
        return model(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                     inputs_embeds=embeds).logits
    loss = adversarial_regularizer(forward, model.word_embeddings(b["input_ids"]), logits, cfg,
                                   regression, generator)
    if momentum is not None:
        with torch.no_grad():
            avg_logits = momentum.model(b["input_ids"], b["attention_mask"],
                                        b["token_type_ids"]).logits
        loss = loss + momentum.penalty(logits, avg_logits, cfg.mu, regression)
    return loss
