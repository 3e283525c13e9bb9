"""The generator G_theta of L2A and its loss.

Architecture: a copy of the augmentation masked LM (MPNet-base encoder, top
layers and MLM head trainable; ``l2a_lib.mlm``). It models the fills of an
augmentation: for a sample z of x with edited positions o,

    log P_G(z|x) = sum_{i in o} log softmax(G(x with o masked))[z_i]

(x with o masked equals z with o masked, so a sample alone determines it); the
edit distance and the positions still come from P_s. G starts equal to the
masked LM, so its first samples are P_s's.

Training uses the L2A loss (Feng et al. 2021)

    L_G = -E_{z ~ P_s} [ (log P_s(z) + pi_phi(z)) log P_G(z|x) ]

with pi_phi(z) the selector's keep probability. Taken literally, the weight
``log P_s(z) + pi_phi(z)`` is negative for every sample (log P_s < 0), and
descending the loss would push every sample's probability down. As in
REINFORCE, we subtract the batch mean of the weights (a baseline) and divide by
their standard deviation (so the step size does not grow with sentence length,
which scales log P_s). Centred weights alone are still unbounded: a sample
with a negative weight lowers the loss without limit as its log P_G goes to
-inf, and on the cpu profile the loss fell by an order of magnitude in four
episodes while G learnt to avoid fills rather than to prefer any. The default
``weighting="positive"`` therefore keeps only the positive part of the
standardised weight (advantage-filtered, reward-weighted maximum likelihood):

    w+(z) = max(0, (w(z) - mean w) / sd w),   L_G = -mean_z w+(z) log P_G(z|x) >= 0

G raises the probability of the samples that are likelier under P_s and that
the selector keeps, the loss is bounded below by 0, and samples below the
batch mean are left alone rather than driven to zero probability.
``weighting="centered"`` gives the signed form, ``"literal"`` the paper's
formula as written.

Reinforcing the likelier samples also sharpens G towards its most probable
fills; on the cpu profile, twenty such updates collapsed G onto one or two
words placed at almost every edited position. The update therefore adds an anchor
to the static masked LM at the edited positions,

    L = L_G + beta * mean_positions KL(P_MLM(. | x_masked) || P_G(. | x_masked)),

(``anchor`` = beta, 0 switches it off), the trust region that keeps G a
refinement of P_MLM rather than a new language model.

Version 2 of L2A (``weighting="advantage"``, ``l2a.algorithm``) uses

    L = -mean_z A(z) log P_G(z|x) + beta * mean_positions KL(P_MLM || P_G),
    A(z) = (pi_phi(z) - mean pi) / sd pi   over the episode's samples,

beside the paper's L_G = -E_{z ~ P_s}[(log P_s(z) + pi_phi(z)) log P_G(z|x)]. Why
they differ: in the paper's weight, log P_s spans tens of nats across samples
(8-54 on the cpu profile) while pi lies in [0, 1], so the selector hardly moves G
(on ``tests/test_l2a_learns.py``'s toy, version 1's weighting left the favoured
fills' probability unchanged, 1.0x, where this one doubled it); and from the second
episode the samples come from G itself, so weighting by their probability sharpens
G on its own likeliest fills. The role that log P_s played, keeping G close to the
static distribution, is the anchor's. The samples are scored with dropout off, as
they were drawn.

The final grid's version 2 (``weighting="advantage_positive"``) uses

    L = -mean_z A+(z) log P_G(z|x) + beta * mean_positions KL(P_MLM || P_G),
    A+(z) = max(0, pi_phi(z) - mean pi)   over the episode's samples.

Why: ``A(z)`` has the two flaws that the ``"positive"`` weighting above removed
from the paper's weight, and on long inputs they collapsed G. Its negative part
makes the loss unbounded below, as for centred weights; and dividing by ``sd pi``
turns any spread of the keep probabilities, however small and whatever its cause,
into weights of size 1. The L2A term sums log P_G over a sample's edited positions
while the anchor is a mean over positions, so the longer the input, the more the
term outweighs the anchor. In the first final-grid runs on NLI and regression (128
tokens), where the reward is about as large as its noise, G drifted to a KL of 50-100
nats from the masked LM in some seeds, and its samples filled most edited positions
with "a", "have" or "has" (the run's gallery; the diagnostics page). ``A+`` is
bounded (L >= 0 before the anchor): G only raises the probability of the samples the
selector keeps more often than average, by as much as the selector's keep
probabilities differ. A selector with no preference leaves G at (keep
probabilities all equal) or within a few thousandths of a nat of the masked LM, and
one with a consistent preference moves it (``tests/test_l2a_learns.py``: on the toy,
the favoured fills' probability rises 2.2x, against 2.4x with ``A``, while a
preference that no fill can meet moves G less than a twentieth as far).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..device import device, on_device
from ..mlm import AugmentationMLM, MaskedLMProvider
from ..train import Stepper, autocast, run_steps
from .static import Sample


WEIGHTINGS = ("advantage", "advantage_positive", "positive", "centered", "literal")


def _check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}: choose one of {WEIGHTINGS}")


def l2a_weights(log_ps: torch.Tensor, keep_prob: torch.Tensor,
                weighting: str = "positive") -> torch.Tensor:
    """w(z) = log P_s(z) + pi_phi(z): as is (``"literal"``), standardised over the
    batch (``"centered"``), or the positive part of the standardised weight
    (``"positive"``, version 1's default); ``"advantage"`` (version 2) is the
    selector's keep probability alone, standardised over the batch,
    ``A(z) = (pi_phi(z) - mean pi) / sd pi``; ``"advantage_positive"`` (version 2 in
    the final grid) its bounded form, ``A+(z) = max(0, pi_phi(z) - mean pi)``, not
    standardised (see the module). (N,) -> (N,)."""
    _check_weighting(weighting)
    if weighting.startswith("advantage"):
        w = keep_prob.float() - keep_prob.float().mean()
        if len(w) < 2 or float(w.std()) < 1e-6:  # one keep probability for all: no signal
            return torch.zeros_like(w)          # (not rounding error blown up to +-1)
        if weighting == "advantage_positive":
            return w.clamp(min=0.0)
        return w / w.std()
    w = log_ps.float() + keep_prob.float()
    if weighting == "literal":
        return w
    w = w - w.mean()
    if len(w) > 1:
        w = w / w.std().clamp(min=1e-6)
    return w.clamp(min=0.0) if weighting == "positive" else w


def l2a_loss(log_pg: torch.Tensor, log_ps: torch.Tensor, keep_prob: torch.Tensor,
             weighting: str = "positive") -> torch.Tensor:
    """The generator's loss L_G = -E_{z ~ P_s}[(log P_s(z) + pi_phi(z)) log P_G(z|x)],
    as -mean_z w(z) log P_G(z|x) with w(z) from :func:`l2a_weights`. log_pg: (N,) with
    grad; the weights are constants."""
    w = l2a_weights(log_ps, keep_prob, weighting).detach()
    return -(w * log_pg).mean()


class Generator:
    """G_theta: a trainable copy of the augmentation masked LM."""

    def __init__(self, base: AugmentationMLM, tokenizer, *, lr: float = 5e-5,
                 head_lr: float = 3e-4, bf16: bool = True, batch_size: int = 32,
                 weighting: str = "positive", anchor: float = 1.0):
        self.base = base  # the static masked LM: frozen reference for the anchor
        self.model = copy.deepcopy(base)
        self.anchor = float(anchor)
        _check_weighting(weighting)
        self.tokenizer, self.bf16, self.batch_size = tokenizer, bf16, batch_size
        self.weighting = weighting
        head = list(self.model.head.parameters())
        body = [p for p in self.model.encoder.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW([{"params": head, "lr": head_lr},
                                            {"params": body, "lr": lr}], weight_decay=0.0)
        self.stepper = Stepper(self.optimizer, max_grad_norm=1.0, what="generator")
        self.steps = 0  # updates taken; 0 means G still equals the masked LM

    def state_dict(self) -> dict:
        """The trained part of G_theta (the frozen layers equal the masked LM's) and its
        optimizer, for a resumed run."""
        trained = {n for n, p in self.model.named_parameters() if p.requires_grad}
        return {"model": {n: t for n, t in self.model.state_dict().items() if n in trained},
                "optimizer": self.optimizer.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        if unexpected or not set(missing) <= frozen | {n for n, _ in self.model.named_buffers()}:
            raise ValueError(f"generator checkpoint does not fit the model: missing "
                             f"{sorted(set(missing) - frozen)[:5]}, unexpected {unexpected[:5]}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state.get("steps", 1))  # an older checkpoint: assume G has moved

    def provider(self, max_length: int = 128) -> MaskedLMProvider:
        """P_G as a fill provider for ``StaticDistribution.sample(fill_provider=...)``."""
        return MaskedLMProvider(self.model, self.tokenizer, max_length=max_length, bf16=self.bf16)

    def _batch(self, samples: list[Sample]):
        tok = self.tokenizer
        T = max(len(s.input_ids) for s in samples)
        ids = torch.full((len(samples), T), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        where = torch.zeros((len(samples), T), dtype=torch.bool)
        for r, s in enumerate(samples):
            ids[r, : len(s.input_ids)] = torch.tensor(s.input_ids)
            mask[r, : len(s.input_ids)] = 1
            where[r, s.positions] = True
        targets = ids[where]
        masked = ids.clone()
        masked[where] = tok.mask_token_id
        return masked, mask, where, targets

    def log_prob(self, samples: list[Sample], with_anchor: bool = False):
        """log P_G(z|x) of each sample (N,), differentiable; 0 for d = 0. With
        ``with_anchor``, also the mean KL(P_MLM || P_G) over the edited positions."""
        dev = device()
        edited = [k for k, s in enumerate(samples) if s.positions]
        out = torch.zeros(len(samples), device=dev)
        if not edited:
            return (out, torch.zeros((), device=dev)) if with_anchor else out
        masked, mask, where, targets = on_device(self._batch([samples[k] for k in edited]))
        with autocast(self.bf16):
            logits = self.model(masked, mask, where)  # (N_pos, V)
        log_pg = F.log_softmax(logits.float(), -1)
        logp = log_pg.gather(1, targets[:, None]).squeeze(1)
        rows = torch.repeat_interleave(torch.arange(len(edited), device=dev), where.sum(1))
        per_sample = torch.zeros(len(edited), device=dev).index_add(0, rows, logp)
        out = out.index_put((torch.tensor(edited, device=dev),), per_sample)
        if not with_anchor:
            return out
        with torch.no_grad(), autocast(self.bf16):
            log_base = F.log_softmax(self.base(masked, mask, where).float(), -1)
        kl = (log_base.exp() * (log_base - log_pg)).sum(-1).mean()
        return out, kl

    def kl_to_base(self, samples: list[Sample]) -> float:
        """Mean KL(P_MLM || P_G) over the samples' edited positions, without gradient."""
        with torch.no_grad():
            return float(self.log_prob(samples, with_anchor=True)[1])

    def update(self, samples: list[Sample], keep_prob, rng: np.random.Generator, *,
               epochs: int = 1, dropout: bool = True) -> dict[str, float]:
        """``epochs`` passes of the generator's loss over ``samples`` (shuffled
        mini-batches), with dropout on (version 1) or off (``dropout=False``, version 2:
        the samples are scored as they were drawn, in eval mode). Returns the mean L2A
        term and the mean KL to the masked LM (the anchor)."""
        keep_prob = on_device(torch.as_tensor(np.asarray(keep_prob, dtype=np.float32)))
        log_ps = on_device(torch.tensor([s.log_ps for s in samples], dtype=torch.float32))
        self.model.train(dropout)
        l2a_terms, kls = [], []

        def loss_of(idx):
            batch = [samples[i] for i in idx]
            if not any(s.positions for s in batch):
                return None
            log_pg, kl = self.log_prob(batch, with_anchor=True)
            if self.weighting.startswith("advantage"):  # keep_prob holds A(z), computed above
                term = -(keep_prob[idx].detach() * log_pg).mean()
            else:
                term = l2a_loss(log_pg, log_ps[idx], keep_prob[idx], self.weighting)
            l2a_terms.append(term.item())
            kls.append(kl.item())
            return term + self.anchor * kl if self.anchor > 0 else term

        if self.weighting.startswith("advantage"):
            # A(z) over every sample of the update, not per mini-batch
            keep_prob = l2a_weights(log_ps, keep_prob, self.weighting)
            if not bool(keep_prob.any()):
                # Every A(z) is 0 (the selector is off or random: one keep probability for
                # all): the L2A term has no gradient and the anchor's is numerical noise
                # while G equals the masked LM, which Adam would scale up to full-size
                # steps (measured: KL 0.09 nats after one episode on the cpu profile).
                # No signal, no step.
                self.model.eval()
                return {"generator_loss": 0.0,
                        "generator_kl": self.kl_to_base(samples) if self.steps else 0.0}
        self.steps += 1
        for _ in range(epochs):
            run_steps(self.stepper, np.array_split(rng.permutation(len(samples)),
                                                   max(1, len(samples) // self.batch_size)), loss_of)
        self.model.eval()
        return {"generator_loss": float(np.mean(l2a_terms)) if l2a_terms else 0.0,
                "generator_kl": float(np.mean(kls)) if kls else 0.0}


def generator_step(generator: Generator, pool, order, keep_prob, rng,
                    limit: int, **update) -> dict[str, float]:
    """L2A loss over (a random subset of ``limit``) samples the selector judged this
    episode, weighted by their keep probability (``update``: ``Generator.update``'s
    epochs and dropout)."""
    picked = rng.permutation(len(keep_prob))[:limit]
    samples, weights = [], []
    for pos in sorted(picked.tolist()):
        for s in pool.samples[order[pos]]:
            samples.append(s)
            weights.append(float(keep_prob[pos]))
    return generator.update(samples, weights, rng, **update)
