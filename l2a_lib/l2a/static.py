"""L2A's static augmentation distribution P_s(z|x) (Feng et al. 2021, Sec. 3.2).

One function per factor: :func:`log_p_distance` is P(d|x), :func:`log_p_positions`
is P(o|d,x), :func:`log_p_fill` is P(w|o,d,x); :class:`StaticDistribution` samples
z from their product.

    P_s(z|x) = P(d|x) * P(o|d,x) * prod_{i in o} P(w_i|o,d,x)

over the word pieces of x (m = the number of non-special pieces):

* **edit distance** d in 0..m, ``P(d|x) = exp(-d/alpha) c(d,m) / sum_e exp(-e/alpha) c(e,m)``
  with ``c(d,m) = C(m,d) (V-1)^d``: the number of sentences at Hamming
  (substitution) distance d from a sentence of m pieces over a vocabulary of
  V pieces (RAML, Norouzi et al. 2016). Computed in log space with lgamma and
  logsumexp. This is exactly Binomial(m, p) with
  ``p = r / (1 + r)``, ``r = (V-1) exp(-1/alpha)``: alpha sets the expected
  share p of replaced pieces (``edit_rate``); with V = 30,522, alpha = 0.083
  gives p = 0.15 and larger alpha drifts further from x.
* **positions** o: a uniformly random set of d of the m positions,
  ``P(o|d,x) = 1 / C(m,d)`` (RAML's choice; the slides' "d/m" is the chance
  that a given position is chosen).
* **fills**: every chosen position is masked at once and filled with
  ``w ~ softmax(log P_MLM(w | x_masked) / T)``, the original piece and
  non-words excluded, so that z is exactly at distance d.

``sample`` returns each z with log P_s(z), d and the positions, and costs one
masked-LM forward pass per batch of sentences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..mlm import FIRST_WORD_ID


def log_count(d: np.ndarray | int, m: int, vocab: int) -> np.ndarray:
    """log c(d, m) = log C(m, d) + d log(V - 1)."""
    d = np.asarray(d, dtype=float)
    return (math.lgamma(m + 1) - np.vectorize(math.lgamma)(d + 1)
            - np.vectorize(math.lgamma)(m - d + 1) + d * math.log(vocab - 1))


def log_p_distance(m: int, alpha: float, vocab: int) -> np.ndarray:
    """P(d|x) = exp(-d/alpha) c(d,m) / sum_e exp(-e/alpha) c(e,m), as log P(d|x) for
    d = 0..m (exact, normalised in log space); c(d,m) = C(m,d) (V-1)^d (:func:`log_count`)."""
    if alpha <= 0:
        raise ValueError(f"alpha={alpha} must be > 0")
    d = np.arange(m + 1)
    logits = -d / alpha + log_count(d, m, vocab)
    return logits - np.logaddexp.reduce(logits)


def log_p_positions(m: int, d: int) -> float:
    """P(o|d,x) = 1 / C(m,d): the d edited positions o are a uniformly random set of
    the m editable pieces. Returns log P(o|d,x) = -log C(m,d)."""
    return -(math.lgamma(m + 1) - math.lgamma(d + 1) - math.lgamma(m - d + 1))


def log_p_fill(mlm_log_probs: torch.Tensor, original: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """P(w|o,d,x) = softmax_w(log P_MLM(w | x with o masked) / T) over the word pieces
    other than the original piece x_i (and never a special or [unusedN] piece), so a
    sample is exactly at distance d. ``mlm_log_probs``: (N, V) at the N edited
    positions (changed in place); ``original``: (N,) the pieces they held. Returns the
    (N, V) tempered log-probabilities the fills are drawn from."""
    mlm_log_probs[:, :FIRST_WORD_ID] = -torch.inf
    mlm_log_probs[torch.arange(len(original)), original] = -torch.inf  # exactly distance d
    return torch.log_softmax(mlm_log_probs / temperature, dim=-1)


def edit_rate(alpha: float, vocab: int) -> float:
    """The expected share of replaced pieces under P(d|x): r / (1 + r)."""
    log_r = math.log(vocab - 1) - 1.0 / alpha
    return 1.0 / (1.0 + math.exp(-log_r))


def alpha_for_rate(rate: float, vocab: int) -> float:
    """The alpha whose ``edit_rate`` is ``rate``."""
    if not 0 < rate < 1:
        raise ValueError(f"rate={rate} must be in (0, 1)")
    return 1.0 / (math.log(vocab - 1) - math.log(rate / (1 - rate)))


@dataclass
class Sample:
    """One augmented sentence z of a source sentence x."""
    source_index: int
    input_ids: list[int]           # z in the shared word-piece ids, with [CLS]/[SEP]
    positions: list[int]           # edited positions (indices into input_ids)
    distance: int                  # d
    log_ps: float                  # log P_s(z|x)
    log_p_fill: float              # sum_i log P_T(w_i)  (the part a generator can change)


class StaticDistribution:
    """Sampler of P_s(z|x) on top of a masked-LM provider (``mlm.MaskedLMProvider``
    or anything with ``tokenizer`` and ``log_probs(ids, mask, positions)``)."""

    def __init__(self, provider, alpha: float, temperature: float = 1.0, max_length: int = 128):
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        self.provider, self.alpha, self.temperature = provider, alpha, temperature
        self.tokenizer = provider.tokenizer
        self.max_length = max_length
        self.vocab = len(self.tokenizer)
        self._log_pd: dict[int, np.ndarray] = {}

    def log_p_distance(self, m: int) -> np.ndarray:
        if m not in self._log_pd:
            self._log_pd[m] = log_p_distance(m, self.alpha, self.vocab)
        return self._log_pd[m]

    def _editable(self, ids: list[int]) -> list[int]:
        return [j for j, t in enumerate(ids) if t >= FIRST_WORD_ID]

    def sample(self, texts: list[str], n: int, rng: np.random.Generator,
               generator: torch.Generator | None = None, fill_provider=None) -> list[Sample]:
        """``n`` samples of each text. ``fill_provider`` (a generator G_theta) replaces
        the masked LM for the fills; d and positions still come from P_s."""
        tok = self.tokenizer
        enc = tok(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        plans = []  # (text index, ids, positions, d, log P(d) + log P(o|d))
        for i, ids in enumerate(enc):
            editable = self._editable(ids)
            m = len(editable)
            log_pd = self.log_p_distance(m)
            for _ in range(n):
                d = int(rng.choice(m + 1, p=np.exp(log_pd))) if m else 0
                pos = sorted(rng.choice(editable, size=d, replace=False).tolist()) if d else []
                plans.append((i, ids, pos, d, float(log_pd[d]) + log_p_positions(m, d)))
        return self._fill(plans, generator, fill_provider or self.provider)

    @torch.no_grad()
    def _fill(self, plans, generator, provider) -> list[Sample]:
        tok = self.tokenizer
        out: list[Sample | None] = [None] * len(plans)
        # sentences with edits, longest first: the provider's batches then hold sentences
        # of similar length and are cut to their longest (little compute on padding)
        todo = sorted((k for k, p in enumerate(plans) if p[3] > 0), key=lambda k: -len(plans[k][1]))
        for k, (i, ids, pos, d, lp) in enumerate(plans):
            if d == 0:
                out[k] = Sample(i, list(ids), [], 0, lp, 0.0)
        if not todo:
            return out
        T = max(len(plans[k][1]) for k in todo)
        input_ids = torch.full((len(todo), T), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        where = torch.zeros((len(todo), T), dtype=torch.bool)
        for r, k in enumerate(todo):
            ids, pos = plans[k][1], plans[k][2]
            input_ids[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
            where[r, pos] = True
        log_p = provider.log_probs(input_ids, mask, where)  # (N, V), row-major over positions
        tempered = log_p_fill(log_p, input_ids[where], self.temperature)
        fills = torch.multinomial(tempered.exp(), 1, generator=generator).squeeze(1)  # (N,)
        log_fill = tempered.gather(1, fills[:, None]).squeeze(1)
        filled = input_ids.clone()
        filled[where] = fills
        counts = where.sum(1).tolist()
        offsets = np.cumsum([0] + counts)
        for r, k in enumerate(todo):
            i, ids, pos, d, lp = plans[k]
            lf = float(log_fill[offsets[r]:offsets[r + 1]].sum())
            out[k] = Sample(i, filled[r, : len(ids)].tolist(), pos, d, lp + lf, lf)
        return out

    def decode(self, sample: Sample) -> str:
        return self.tokenizer.decode(sample.input_ids[1:-1])
