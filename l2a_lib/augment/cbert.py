"""CBERT (Wu et al. 2019, "Conditional BERT contextual augmentation").

The augmentation masked LM is fine-tuned on the labelled target training set
with a *label embedding* added to the input embeddings, where BERT adds its
segment embedding (MPNet has no segment embedding, so the label embedding is
simply added to the word embeddings, which is what BERT's segment embedding
does). Augmenting a sentence then masks ``mask_prob`` of its word pieces (at
least one) and samples each replacement from the label-conditional
distribution (special tokens and the original piece excluded), so that
replacements fit the label. Regression targets are conditioned on two bins
(below / at-or-above the training median): CBERT is defined for classes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import on_device
from ..mlm import mask_tokens, non_words
from ..train import Stepper, autocast, progress, run_steps
from .base import Augmenter, register


class LabelConditionalMLM(nn.Module):
    """AugmentationMLM with a label embedding added to every input position."""

    def __init__(self, base, num_labels: int):
        super().__init__()
        self.base = copy.deepcopy(base)
        hidden = self.base.encoder.config.hidden_size
        self.label_embedding = nn.Embedding(num_labels, hidden)
        nn.init.zeros_(self.label_embedding.weight)  # start as the unconditional LM

    def forward(self, input_ids, attention_mask, positions, labels) -> torch.Tensor:
        enc = self.base.encoder
        embeds = enc.get_input_embeddings()(self.base.id_map[input_ids])  # (B, T, H)
        embeds = embeds + self.label_embedding(labels)[:, None, :]
        h = enc(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        return self.base.head(h[positions], enc.get_input_embeddings().weight)


def label_ids(labels, regression: bool, median: float | None = None) -> torch.Tensor:
    y = np.asarray(labels, dtype=float)
    if regression:
        return torch.tensor((y >= median).astype(np.int64))
    return torch.tensor(y.astype(np.int64))


@dataclass
class CBERT(Augmenter):
    model: LabelConditionalMLM = None
    tokenizer: object = None
    mask_prob: float = 0.15
    max_length: int = 128
    regression: bool = False
    median: float | None = None
    bf16: bool = True
    batch_size: int = 64
    name: str = "cbert"

    def __post_init__(self):
        if self.model is None or self.tokenizer is None:
            raise ValueError("CBERT needs a fine-tuned LabelConditionalMLM and the tokenizer "
                             "(see l2a_lib.augment.cbert.fine_tune)")

    @torch.no_grad()
    def augment_batch(self, texts, n_aug, rng, labels=None):
        if labels is None:
            raise ValueError("CBERT conditions on the label: pass labels")
        tok, model = self.tokenizer, self.model.eval()
        enc = tok(texts, truncation=True, max_length=self.max_length)["input_ids"]
        lab = label_ids(labels, self.regression, self.median)
        rows = [(i, ids) for i, ids in enumerate(enc) for _ in range(n_aug)]
        results = [[] for _ in texts]
        special = set(tok.all_special_ids)
        for start in progress(range(0, len(rows), self.batch_size), "CBERT augmenting"):
            chunk = rows[start:start + self.batch_size]
            T = max(len(ids) for _, ids in chunk)
            input_ids = torch.full((len(chunk), T), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(input_ids)
            pos = torch.zeros((len(chunk), T), dtype=torch.bool)
            for r, (_, ids) in enumerate(chunk):
                input_ids[r, : len(ids)] = torch.tensor(ids)
                mask[r, : len(ids)] = 1
                real = [j for j, t in enumerate(ids) if t not in special]
                if real:
                    k = max(1, int(round(self.mask_prob * len(real))))
                    pos[r, rng.choice(real, size=min(k, len(real)), replace=False)] = True
            if not pos.any():
                for i, ids in chunk:
                    results[i].append(texts[i])
                continue
            original = input_ids[pos]
            corrupted = input_ids.clone()
            corrupted[pos] = tok.mask_token_id
            with autocast(self.bf16):
                logits = model(*on_device((corrupted, mask, pos, lab[[i for i, _ in chunk]])))
            logits = logits.float().cpu()
            logits[:, non_words(logits.shape[1])] = -torch.inf  # no specials / [unusedN]
            logits[torch.arange(len(original)), original] = -torch.inf
            probs = F.softmax(logits, -1).numpy().astype(np.float64)
            cdf = probs.cumsum(-1)
            draws = rng.random(len(probs)) * cdf[:, -1]
            new = torch.tensor([int(np.searchsorted(c, d, side="right")) for c, d in zip(cdf, draws)])
            new = new.clamp(max=probs.shape[1] - 1)
            filled = input_ids.clone()
            filled[pos] = new
            for r, (i, ids) in enumerate(chunk):
                results[i].append(tok.decode(filled[r, 1:len(ids) - 1].tolist()))
        return results

    def augment(self, text, n_aug, rng):
        raise ValueError("CBERT conditions on the label: use augment_batch(texts, n, rng, labels)")


def fine_tune(base, texts: list[str], labels, tokenizer, *, num_labels: int, regression: bool,
              epochs: int = 10, batch_size: int = 16, lr: float = 5e-5, head_lr: float = 1e-3,
              mask_prob: float = 0.15, max_length: int = 128, seed: int = 0, bf16: bool = True
              ) -> tuple[LabelConditionalMLM, float | None]:
    """CBERT's conditional MLM fine-tuning on the labelled target training set.
    Returns the model and the regression median (None for classes)."""
    median = float(np.median(labels)) if regression else None
    model = on_device(LabelConditionalMLM(base, 2 if regression else num_labels))
    lab = label_ids(labels, regression, median)
    enc = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    gen = torch.Generator().manual_seed(seed)
    trainable = [p for p in model.base.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": trainable, "lr": lr},
                             {"params": model.label_embedding.parameters(), "lr": head_lr}])
    model.train()

    def batches():  # a fresh order of the training sentences every epoch
        for _ in range(epochs):
            for idx in torch.randperm(len(enc), generator=gen).split(batch_size):
                yield idx.tolist()

    def loss_of(idx):
        T = max(len(enc[i]) for i in idx)
        ids = torch.full((len(idx), T), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, : len(enc[i])] = torch.tensor(enc[i])
            mask[r, : len(enc[i])] = 1
        inp, pos, targets = mask_tokens(ids, mask, tokenizer, mask_prob, gen)
        with autocast(bf16):
            logits = model(*on_device((inp, mask, pos, lab[idx])))
        return F.cross_entropy(logits.float(), on_device(targets))

    steps = epochs * -(-len(enc) // batch_size)
    run_steps(Stepper(opt, what="CBERT's conditional masked LM"),
              progress(batches(), "CBERT's conditional masked LM", total=steps), loss_of)
    return model.eval(), median


register("cbert")(CBERT)
