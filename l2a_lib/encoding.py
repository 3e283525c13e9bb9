"""Tokenised splits and padded batches: what every model in the companion reads.

An :class:`Encoded` split keeps ragged token-id lists (no padding); :func:`collate`
pads the examples of one batch to their longest length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .device import on_device


@dataclass
class Encoded:
    """A tokenised split: ragged id lists plus labels."""
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(df: pd.DataFrame, tokenizer, max_length: int) -> Encoded:
    """Tokenise ``text_a`` (and ``text_b`` for pairs) with truncation."""
    a = df["text_a"].tolist()
    b = df["text_b"].tolist() if "text_b" in df and df["text_b"].notna().any() else None
    enc = tokenizer(a, b, truncation=True, max_length=max_length)
    tt = enc.get("token_type_ids") or [[0] * len(x) for x in enc["input_ids"]]
    return Encoded(enc["input_ids"], tt, df["label"].to_numpy())


def collate(enc: Encoded, idx, pad_id: int, regression: bool) -> dict[str, torch.Tensor]:
    """Pad the examples ``idx`` to their longest length."""
    idx = list(idx)
    T = max(len(enc.input_ids[i]) for i in idx)
    ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
    types = torch.zeros((len(idx), T), dtype=torch.long)
    mask = torch.zeros((len(idx), T), dtype=torch.long)
    for r, i in enumerate(idx):
        n = len(enc.input_ids[i])
        ids[r, :n] = torch.tensor(enc.input_ids[i])
        types[r, :n] = torch.tensor(enc.token_type_ids[i])
        mask[r, :n] = 1
    y = torch.tensor(enc.labels[idx], dtype=torch.float32 if regression else torch.long)
    return on_device({"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": y})


def token_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """(B, T) float mask, all ones when ``mask`` is None."""
    if mask is None:
        return torch.ones(like.shape[:2], dtype=like.dtype, device=like.device)
    return mask.to(like.dtype)
