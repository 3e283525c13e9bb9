"""The augmentation masked LM seen from outside: its top fills of a masked word
(:func:`example_fills`, the masked-LM page) and the model saved as a standard
``transformers`` fill-mask checkpoint (:func:`export_fill_mask`, for nlpaug)."""
from __future__ import annotations

import copy

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .device import on_device
from . import models
from .mlm import FIRST_WORD_ID, AugmentationMLM
from .train import autocast


@torch.no_grad()
def example_fills(model: AugmentationMLM, tokenizer, sentences: list[str], k: int = 5,
                  seed: int = 0, bf16: bool = True) -> pd.DataFrame:
    """For each sentence, mask one random word piece and list the top-k fills."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in sentences:
        ids = tokenizer(s, truncation=True, max_length=64, return_tensors="pt")["input_ids"]
        real = [j for j in range(1, ids.shape[1] - 1) if int(ids[0, j]) >= FIRST_WORD_ID]
        if not real:
            continue
        j = int(rng.choice(real))
        pos = torch.zeros_like(ids, dtype=torch.bool)
        pos[0, j] = True
        inp = ids.clone()
        inp[pos] = tokenizer.mask_token_id
        with autocast(bf16):
            logits = model(*on_device((inp, torch.ones_like(ids), pos))).float().cpu()
        probs = logits.softmax(-1)[0]
        top = probs.topk(k)
        masked = tokenizer.decode(inp[0, 1:-1]).replace(tokenizer.mask_token, "[MASK]")
        rows.append({"sentence": masked, "original": tokenizer.convert_ids_to_tokens(int(ids[0, j])),
                     "top fills (probability)": ", ".join(
                         f"{w} ({p:.2f})" for w, p in zip(tokenizer.convert_ids_to_tokens(
                             top.indices.tolist()), top.values.tolist()))})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------- export
def export_fill_mask(model: AugmentationMLM, out_dir, cache=None) -> "Path":
    """Save the augmentation masked LM as a standard ``transformers`` checkpoint
    (``MPNetForMaskedLM`` + MPNet's tokenizer) that ``pipeline("fill-mask")`` and
    nlpaug's ``ContextualWordEmbsAug(model_type="bert")`` load as they would any
    hub model. Same weights, same predictions over the word pieces.

    Two adaptations: the head's bias over the shared BERT vocabulary is scattered
    to MPNet's ids (``id_map``), with -1e4 on specials and ``[unusedN]`` slots;
    and the tokenizer's mask token is BERT's ``[MASK]`` (nlpaug writes that string
    into sentences for BERT-style models), whose embedding row is set to MPNet's
    ``<mask>`` row, so the encoder sees exactly what it was trained on."""

    from transformers import AutoTokenizer, MPNetForMaskedLM
    out_dir = Path(out_dir)
    model = copy.deepcopy(model).cpu()  # exported from main memory, wherever it trained
    enc = model.encoder
    hf = MPNetForMaskedLM(enc.config)
    hf.mpnet.load_state_dict(enc.state_dict(), strict=False)
    hf.lm_head.dense.load_state_dict(model.head.dense.state_dict())
    hf.lm_head.layer_norm.load_state_dict(model.head.norm.state_dict())
    tok = AutoTokenizer.from_pretrained(str(models.assemble_mpnet(cache)))
    mask_id = tok.convert_tokens_to_ids("[MASK]")
    emb = hf.mpnet.embeddings.word_embeddings.weight
    with torch.no_grad():
        emb[mask_id] = emb[tok.mask_token_id]
        bias = torch.full((enc.config.vocab_size,), -1e4)
        words = torch.arange(FIRST_WORD_ID, len(model.id_map))
        bias[model.id_map[words]] = model.head.bias.detach().float()[words]
        hf.lm_head.bias.copy_(bias)
        if hf.lm_head.decoder.bias is not None:
            hf.lm_head.decoder.bias.copy_(bias)
    hf.tie_weights()
    tok.mask_token = "[MASK]"
    out_dir.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir
