"""Distillation losses as pure functions of tensors.

Shapes: B batch, T tokens, H hidden width, h attention heads, C classes.
``mask`` is the ``(B, T)`` attention mask (1 = real token, 0 = padding); every
token-level loss averages over real tokens only, so padding never counts.

``LOSSES`` maps a name to each function, for grepping and for configs. L2A's own
objective L_KD = L_att + L_hidden + L_dark and its three terms are in
``l2a_lib.l2a.kd`` (TinyBERT's layer-wise losses reuse L_att and L_hidden).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .encoding import token_mask
from .l2a.kd import (attention_mse, dark_loss, hidden_mse, kd_loss, logit_mse,
                     soft_cross_entropy)

# prediction-layer distillation (soft CE at T; squared error for regression) is L2A's L_dark
prediction_loss = dark_loss


def pkd_patience(student_cls: list[torch.Tensor], teacher_cls: list[torch.Tensor]) -> torch.Tensor:
    """L_PT = sum_j || h^s_j/||h^s_j|| - h^t_j/||h^t_j|| ||_2^2, mean over the batch
    (BERT-PKD, Sun et al. 2019, Eq. 3).

    student_cls[j], teacher_cls[j]: (B, H) [CLS] states of the j-th mapped layer
    pair (same width; project first otherwise).
    """
    if len(student_cls) != len(teacher_cls) or not student_cls:
        raise ValueError(f"need the same non-zero number of student ({len(student_cls)}) and "
                         f"teacher ({len(teacher_cls)}) layers")
    total = 0.0
    for s, t in zip(student_cls, teacher_cls):
        diff = F.normalize(s.float(), dim=-1) - F.normalize(t.float(), dim=-1)
        total = total + diff.pow(2).sum(-1).mean()
    return total


def cosine_hidden(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_cos = 1 - cos(h^s_t, h^t_t), mean over real tokens   (DistilBERT, Sanh et al. 2019).

    student_hidden, teacher_hidden: (B, T, H), same width.
    """
    cos = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)  # (B, T)
    m = token_mask(mask, cos)
    return ((1 - cos) * m).sum() / m.sum().clamp(min=1.0)


def layer_mapping(n_student: int, n_teacher: int) -> list[int]:
    """TinyBERT's uniform mapping g(m) = m * N/M: student layer m (1..M) learns from
    teacher layer g(m); returns the teacher layer of each student layer."""
    if n_student < 1 or n_teacher < n_student:
        raise ValueError(f"need 1 <= n_student ({n_student}) <= n_teacher ({n_teacher})")
    step = n_teacher // n_student
    return [step * (m + 1) for m in range(n_student)]


def tinybert_embedding(student_emb: torch.Tensor, teacher_emb: torch.Tensor,
                       projection: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_embd = MSE(E^s W_e, E^t)   (TinyBERT, Eq. 9). (B, T, H_s), (B, T, H_t), (H_s, H_t)."""
    return hidden_mse(student_emb, teacher_emb, projection, mask)


def tinybert_attention(student_atts, teacher_atts, mapping: list[int],
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_attn = sum_m 1/h sum_i MSE(A^s_{m,i}, A^t_{g(m),i})   (TinyBERT, Eq. 7).

    student_atts: M x (B, h, T, T); teacher_atts: N x (B, h, T, T); mapping[m-1]
    = g(m) in 1..N. TinyBERT matches pre-softmax scores; the adaptor exposes
    probabilities, so this matches probabilities (as L2A's L_att does).
    """
    return sum(attention_mse(s, teacher_atts[g - 1], mask) for s, g in zip(student_atts, mapping))


def tinybert_hidden(student_hiddens, teacher_hiddens, projections, mapping: list[int],
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_hidn = sum_m MSE(H^s_m W_h, H^t_{g(m)})   (TinyBERT, Eq. 8).

    student_hiddens: M+1 x (B, T, H_s) (embeddings first, as the adaptor gives
    them); teacher_hiddens: N+1 x (B, T, H_t); one (H_s, H_t) projection per
    student layer (or one shared).
    """
    if isinstance(projections, torch.Tensor):
        projections = [projections] * len(mapping)
    return sum(hidden_mse(student_hiddens[m + 1], teacher_hiddens[g], projections[m], mask)
               for m, g in enumerate(mapping))


def value_relation(values: torch.Tensor, heads: int, mask: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """VR = softmax(V_a V_a^T / sqrt(d_k)) per head a   (MiniLM, Wang et al. 2020, Eq. 9).

    values: (B, T, H) outputs of the last layer's value projection; returns
    (B, heads, T, T) with padded keys given zero weight.
    """
    B, T, H = values.shape
    v = values.float().view(B, T, heads, H // heads).transpose(1, 2)  # (B, h, T, d)
    scores = v @ v.transpose(-1, -2) / math.sqrt(H // heads)  # (B, h, T, T)
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e4)
    return scores.softmax(-1)


def relation_kl(teacher_rel: torch.Tensor, student_rel: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """1/(h |x|) sum_a sum_t KL(R^t_{a,t} || R^s_{a,t})   (MiniLM, Eq. 7 and 10).

    teacher_rel, student_rel: (B, h, T, T) row distributions (attention maps or
    value relations); the mean runs over heads and real query positions.
    """
    t, s = teacher_rel.float().clamp(min=1e-9), student_rel.float().clamp(min=1e-9)
    kl = (t * (t.log() - s.log())).sum(-1)  # (B, h, T)
    m = token_mask(mask, kl[:, 0])[:, None, :]  # (B, 1, T)
    return (kl * m).sum() / (m.sum() * kl.shape[1]).clamp(min=1.0)


LOSSES = {
    "attention_mse": attention_mse, "hidden_mse": hidden_mse,
    "soft_cross_entropy": soft_cross_entropy, "logit_mse": logit_mse,
    "prediction_loss": dark_loss,
    "pkd_patience": pkd_patience, "cosine_hidden": cosine_hidden,
    "tinybert_embedding": tinybert_embedding, "tinybert_attention": tinybert_attention,
    "tinybert_hidden": tinybert_hidden, "l2a_kd": kd_loss,
    "value_relation": value_relation, "relation_kl": relation_kl,
}
