"""The augmenters' common interface and their registry (the package's
``__init__`` imports every augmenter, which registers itself).

Each augmenter separates the *policy* (how many words change, which ones) from
the *resource* (WordNet, spaCy's POS tags, GloVe, a masked LM), takes its
randomness explicitly (a ``numpy.random.Generator``) and never crashes on empty,
one-word or very long input: an input it cannot change comes back unchanged.

``augment_frame`` applies an augmenter to a task frame: each side of a sentence
pair is augmented independently (as EDA, TinyBERT and CBERT treat single
sentences) and the label, or the regression target, is kept.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np
import pandas as pd


class Augmenter(ABC):
    """``augment_batch(texts, n_aug, rng, labels)`` -> ``n_aug`` variants of each text."""

    name: str = "augmenter"

    @abstractmethod
    def augment(self, text: str, n_aug: int, rng: np.random.Generator) -> list[str]:
        """``n_aug`` augmented versions of one text."""

    def augment_batch(self, texts: list[str], n_aug: int, rng: np.random.Generator,
                      labels=None) -> list[list[str]]:
        return [self.augment(t, n_aug, rng) for t in texts]


def words_of(text: str) -> list[str]:
    return text.split()


def augment_frame(df: pd.DataFrame, augmenter: Augmenter, n_aug: int, seed: int) -> pd.DataFrame:
    """``n_aug`` augmented rows per row of ``df`` (columns text_a, text_b, label, uid)."""
    if n_aug < 1:
        raise ValueError(f"n_aug={n_aug} must be >= 1")
    rng = np.random.default_rng(seed)
    labels = df["label"].tolist()
    side_a = augmenter.augment_batch(df["text_a"].tolist(), n_aug, rng, labels)
    pair = "text_b" in df and df["text_b"].notna().any()
    side_b = augmenter.augment_batch(df["text_b"].tolist(), n_aug, rng, labels) if pair else None
    rows = []
    for i, (uid, label) in enumerate(zip(df["uid"], labels)):
        for j in range(n_aug):
            a = side_a[i][j] if side_a[i][j].strip() else df["text_a"].iloc[i]
            b = None
            if pair:
                b = side_b[i][j] if side_b[i][j].strip() else df["text_b"].iloc[i]
            rows.append({"uid": f"{uid}#{augmenter.name}{j}", "text_a": a, "text_b": b,
                         "label": label, "orig_uid": uid})
    return pd.DataFrame(rows, columns=["uid", "text_a", "text_b", "label", "orig_uid"])


REGISTRY: dict[str, Callable[..., Augmenter]] = {}


def register(name: str):
    def deco(factory):
        REGISTRY[name] = factory
        return factory
    return deco


def get(name: str, **kwargs) -> Augmenter:
    if name not in REGISTRY:
        raise KeyError(f"unknown augmenter {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name](**kwargs)
