"""Distillation losses as pure functions of tensors.

Shapes: B batch, T tokens, H hidden width, h attention heads, C classes.
``mask`` is the ``(B, T)`` attention mask (1 = real token, 0 = padding); every
token-level loss averages over real tokens only, so padding never counts.

``LOSSES`` maps a name to each function, for grepping and for configs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _token_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """(B, T) float mask, all ones when ``mask`` is None."""
    if mask is None:
        return torch.ones(like.shape[:2], dtype=like.dtype, device=like.device)
    return mask.to(like.dtype)


def attention_mse(student_att: torch.Tensor, teacher_att: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_att = 1/h * sum_i MSE(A_i^s, A_i^t)   (L2A, Feng et al. 2021, last layer).

    student_att, teacher_att: (B, h, T, T) attention probabilities of the last
    layer, same number of heads. Each head's MSE averages over the (query, key)
    pairs of real tokens of each sentence; the loss is the mean over heads
    (and over the batch, weighting sentences by their number of pairs).
    """
    if student_att.shape != teacher_att.shape:
        raise ValueError(f"attention shapes differ: student {tuple(student_att.shape)} vs "
                         f"teacher {tuple(teacher_att.shape)}; L_att needs the same heads and tokens")
    m = _token_mask(mask, student_att[:, 0])  # (B, T)
    pair = (m[:, :, None] * m[:, None, :]).unsqueeze(1)  # (B, 1, T, T)
    sq = (student_att.float() - teacher_att.float()).pow(2) * pair  # (B, h, T, T)
    per_head = sq.sum(dim=(0, 2, 3)) / pair.sum().clamp(min=1.0)  # (h,)
    return per_head.mean()


def hidden_mse(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
               projection: torch.Tensor, mask: torch.Tensor | None = None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """L_hidden = MSE(H^s W, H^t)   (L2A; TinyBERT, Jiao et al. 2020, Eq. 8).

    student_hidden: (B, T, H_s); teacher_hidden: (B, T, H_t); projection W:
    (H_s, H_t), learned with the student. Mean over real tokens and the H_t
    features.
    """
    proj = student_hidden.float() @ projection.float()  # (B, T, H_t)
    if bias is not None:
        proj = proj + bias.float()
    m = _token_mask(mask, proj)  # (B, T)
    sq = (proj - teacher_hidden.float()).pow(2).mean(-1)  # (B, T)
    return (sq * m).sum() / m.sum().clamp(min=1.0)


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                       temperature: float = 1.0, scale_t2: bool = True) -> torch.Tensor:
    """L_dark = -sum_c softmax(z^t/T)_c * log softmax(z^s/T)_c, mean over the batch,
    times T^2 when ``scale_t2`` (Hinton et al. 2015: keeps gradient magnitudes
    comparable across temperatures).

    student_logits, teacher_logits: (B, C).
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    t = F.softmax(teacher_logits.float() / temperature, dim=-1)
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    loss = -(t * log_s).sum(-1).mean()
    return loss * temperature**2 if scale_t2 else loss


def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """L = ||z^s - z^t||^2 / C, mean over the batch   (BiLSTM-soft, Tang et al. 2019).

    Also the regression analogue of L_dark (both (B, 1)).
    """
    return (student_logits.float() - teacher_logits.float()).pow(2).mean()


def prediction_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float = 1.0, regression: bool = False) -> torch.Tensor:
    """Prediction-layer distillation: ``soft_cross_entropy`` at T for classes, the
    squared error of the outputs (``logit_mse``) for regression, where no softmax exists."""
    if regression:
        return logit_mse(student_logits, teacher_logits)
    return soft_cross_entropy(student_logits, teacher_logits, temperature)


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
    m = _token_mask(mask, cos)
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
    m = _token_mask(mask, kl[:, 0])[:, None, :]  # (B, 1, T)
    return (kl * m).sum() / (m.sum() * kl.shape[1]).clamp(min=1.0)


# ------------------------------------------------------------ L2A's objective
@dataclass(frozen=True)
class KDTerms:
    """Which terms of L_KD = L_att + L_hidden + L_dark are on (Table 3 turns one off)."""
    att: bool = True
    hidden: bool = True
    dark: bool = True
    temperature: float = 1.0

    def __post_init__(self):
        if not (self.att or self.hidden or self.dark):
            raise ValueError("KDTerms: at least one of att, hidden, dark must be on")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")


def l2a_kd_loss(student, teacher, projection: torch.Tensor, mask: torch.Tensor,
                terms: KDTerms = KDTerms(), regression: bool = False
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """L_KD = L_att + L_hidden + L_dark on the LAST layer (L2A, Sec. 3).

    student, teacher: adaptor outputs (``logits``, ``hidden_states``,
    ``attentions``). For regression L_dark is the squared error of the
    outputs (no softmax exists). Returns the total and each term's value.
    """
    parts: dict[str, torch.Tensor] = {}
    if terms.att:
        parts["att"] = attention_mse(student.attentions[-1], teacher.attentions[-1], mask)
    if terms.hidden:
        parts["hidden"] = hidden_mse(student.hidden_states[-1], teacher.hidden_states[-1],
                                     projection, mask)
    if terms.dark:
        parts["dark"] = prediction_loss(student.logits, teacher.logits, terms.temperature, regression)
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}


LOSSES = {
    "attention_mse": attention_mse, "hidden_mse": hidden_mse,
    "soft_cross_entropy": soft_cross_entropy, "logit_mse": logit_mse,
    "prediction_loss": prediction_loss,
    "pkd_patience": pkd_patience, "cosine_hidden": cosine_hidden,
    "tinybert_embedding": tinybert_embedding, "tinybert_attention": tinybert_attention,
    "tinybert_hidden": tinybert_hidden, "l2a_kd": l2a_kd_loss,
    "value_relation": value_relation, "relation_kl": relation_kl,
}
