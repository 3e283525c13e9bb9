"""EDA (Wei & Zou, EMNLP 2019): synonym replacement (SR), random insertion (RI),
random swap (RS) and random deletion (RD).

For a sentence of l words, SR, RI and RS change n = max(1, int(alpha * l)) words
and RD drops each word with probability p = alpha_rd; each augmented sentence
comes from one operation, int(n_aug / 4) + 1 per operation, shuffled and cut to
n_aug (the EDA paper's recipe).

nlpaug is not used here: its WordNet ``SynonymAug`` POS-tags with NLTK's
averaged-perceptron tagger, which is not available offline (EDA itself needs no
POS tags: it takes every synset of the word), its ``RandomWordAug`` swap
exchanges a word with a *neighbour* (EDA swaps two random words) and its delete
removes a fixed ceil(p * l) words (EDA deletes each word independently).
WordNet 3.0 is read from ``<L2A_DATA_DIR>/nltk_data``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..resources import wordnet
from .base import Augmenter, register, words_of

# EDA's stop-word list (the NLTK English list it ships), lower-case
STOP_WORDS = frozenset("""i me my myself we our ours ourselves you your yours yourself yourselves he
him his himself she her hers herself it its itself they them their theirs themselves what which who
whom this that these those am is are was were be been being have has had having do does did doing a
an the and but if or because as until while of at by for with about against between into through
during before after above below to from up down in out on off over under again further then once
here there when where why how all any both each few more most other some such no nor not only own
same so than too very s t can will just don should now""".split())


@functools.lru_cache(maxsize=100_000)
def synonyms(word: str) -> tuple[str, ...]:
    """Sorted WordNet synonyms of ``word`` (all synsets), letters and spaces only."""
    out = set()
    for syn in wordnet().synsets(word):
        for lemma in syn.lemmas():
            s = lemma.name().replace("_", " ").replace("-", " ").lower()
            if s != word and all(c.isalpha() or c == " " for c in s):
                out.add(s)
    return tuple(sorted(out))


def synonym_replacement(words: list[str], n: int, rng: np.random.Generator) -> list[str]:
    new = list(words)
    candidates = [i for i, w in enumerate(words) if w.lower() not in STOP_WORDS and w.isalpha()]
    replaced = 0
    for i in rng.permutation(candidates) if candidates else []:
        syns = synonyms(words[i].lower())
        if syns:
            new[i] = syns[rng.integers(len(syns))]
            replaced += 1
        if replaced >= n:
            break
    return " ".join(new).split()


def random_insertion(words: list[str], n: int, rng: np.random.Generator) -> list[str]:
    new = list(words)
    for _ in range(n):
        for _attempt in range(10):  # EDA tries up to 10 random words for one with a synonym
            if not new:
                break
            syns = synonyms(new[rng.integers(len(new))].lower())
            if syns:
                new.insert(int(rng.integers(len(new) + 1)), syns[rng.integers(len(syns))])
                break
    return " ".join(new).split()


def random_swap(words: list[str], n: int, rng: np.random.Generator) -> list[str]:
    new = list(words)
    if len(new) < 2:
        return new
    for _ in range(n):
        i, j = rng.choice(len(new), size=2, replace=False)
        new[i], new[j] = new[j], new[i]
    return new


def random_deletion(words: list[str], p: float, rng: np.random.Generator) -> list[str]:
    if len(words) <= 1:
        return list(words)
    keep = rng.random(len(words)) >= p
    if not keep.any():  # EDA keeps one random word rather than return nothing
        return [words[int(rng.integers(len(words)))]]
    return [w for w, k in zip(words, keep) if k]


@dataclass
class EDA(Augmenter):
    alpha_sr: float = 0.1
    alpha_ri: float = 0.1
    alpha_rs: float = 0.1
    alpha_rd: float = 0.1
    name: str = "eda"

    def augment(self, text: str, n_aug: int, rng: np.random.Generator) -> list[str]:
        words = words_of(text)
        if not words:
            return [text] * n_aug
        per_op = n_aug // 4 + 1
        size = lambda a: max(1, int(a * len(words)))  # noqa: E731
        out = []
        out += [synonym_replacement(words, size(self.alpha_sr), rng) for _ in range(per_op)]
        out += [random_insertion(words, size(self.alpha_ri), rng) for _ in range(per_op)]
        out += [random_swap(words, size(self.alpha_rs), rng) for _ in range(per_op)]
        out += [random_deletion(words, self.alpha_rd, rng) for _ in range(per_op)]
        order = rng.permutation(len(out))[:n_aug]
        return [" ".join(out[i]) for i in order]


register("eda")(EDA)
