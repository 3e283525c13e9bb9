"""BiLSTM-soft's student (Tang et al. 2019): a word-level BiLSTM classifier with
GloVe-initialised embeddings, and the whitespace tokenizer it reads."""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch import nn

from .models import ModelOutputs
from .resources import glove


class WordTokenizer:
    """Lower-cased whitespace words -> ids of a vocabulary built from a corpus; the
    call signature of a Hugging Face tokenizer, enough for ``train.encode``."""

    pad_token_id, unk_token_id = 0, 1

    def __init__(self, corpus: list[str], max_vocab: int = 50_000):
        counts = Counter(w for t in corpus for w in t.lower().split())
        self.words = ["<pad>", "<unk>"] + [w for w, _ in counts.most_common(max_vocab)]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def _ids(self, text: str, max_length: int) -> list[int]:
        ids = [self.index.get(w, self.unk_token_id) for w in (text or "").lower().split()]
        return (ids or [self.unk_token_id])[:max_length]

    def __call__(self, a, b=None, truncation=True, max_length=128):
        ids, types = [], []
        for i, text in enumerate(a):
            x = self._ids(text, max_length)
            y = self._ids(b[i], max_length) if b is not None and b[i] is not None else []
            ids.append(x + y)
            types.append([0] * len(x) + [1] * len(y))
        return {"input_ids": ids, "token_type_ids": types}


class BiLSTMClassifier(nn.Module):
    """Tang et al. (2019): embedding -> BiLSTM -> max-pool -> tanh dense -> output.
    Sentence pairs run the BiLSTM on each side (siamese) and classify
    [h_a, h_b, h_a * h_b, |h_a - h_b|]. Same call signature as ``SequenceModel``."""

    def __init__(self, vocab: int, num_labels: int, emb_dim: int = 50, hidden: int = 300,
                 dense: int = 400, pair: bool = False, embeddings: torch.Tensor | None = None):
        super().__init__()
        self.num_labels, self.pair = num_labels, pair
        self.embed = nn.Embedding(vocab, emb_dim, padding_idx=0)
        if embeddings is not None:
            with torch.no_grad():
                self.embed.weight.copy_(embeddings)
        self.lstm = nn.LSTM(emb_dim, hidden, batch_first=True, bidirectional=True)
        feats = 2 * hidden * (4 if pair else 1)
        self.dense = nn.Linear(feats, dense)
        self.head = nn.Linear(dense, num_labels)

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        out = out.masked_fill(mask[:, :, None] == 0, -1e4)
        return out.max(1).values  # (B, 2 * hidden)

    @staticmethod
    def _side(ids, mask, types, side: int):
        keep = (mask == 1) & (types == side)
        rows = [r[k] for r, k in zip(ids, keep)]
        T = max(1, max(len(r) for r in rows))
        out = torch.zeros(len(rows), T, dtype=torch.long, device=ids.device)
        m = torch.zeros(len(rows), T, dtype=torch.long, device=ids.device)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
            m[i, : max(1, len(r))] = 1
        return out, m

    def forward(self, input_ids, attention_mask, token_type_ids=None, *, output_hidden=False,
                inputs_embeds=None) -> ModelOutputs:
        if self.pair:
            ha = self._encode(*self._side(input_ids, attention_mask, token_type_ids, 0))
            hb = self._encode(*self._side(input_ids, attention_mask, token_type_ids, 1))
            h = torch.cat([ha, hb, ha * hb, (ha - hb).abs()], -1)
        else:
            h = self._encode(input_ids, attention_mask)
        return ModelOutputs(self.head(torch.tanh(self.dense(h))), (), ())

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def glove_init(words: list[str], dim: int = 50, seed: int = 0) -> torch.Tensor:
    """Embedding rows for ``words``: GloVe 6B 50-d where known, small random otherwise."""
    g = glove()
    rng = np.random.default_rng(seed)
    emb = rng.normal(0, 0.1, (len(words), dim)).astype(np.float32)
    emb[0] = 0.0
    for i, w in enumerate(words):
        j = g.index.get(w)
        if j is not None:
            emb[i] = g.vectors[j]
    return torch.from_numpy(emb)
