"""L2A's distillation objective (Feng et al. 2021, Sec. 3), on the last layer:

    L_KD = L_att + L_hidden + L_dark

* :func:`attention_mse` -- L_att, the attention maps' MSE, averaged over heads;
* :func:`hidden_mse` -- L_hidden, the MSE of the projected hidden states H^s W and H^t;
* :func:`soft_cross_entropy` -- L_dark, the soft cross-entropy of the predictions at
  temperature T (for regression the squared error of the outputs, ``losses.logit_mse``);
* :func:`kd_loss` -- their sum, with Table 3's switches (:class:`KDTerms`).

Shapes: B batch, T tokens, H hidden width, h attention heads, C classes; ``mask``
is the ``(B, T)`` attention mask and token-level terms average over real tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..device import on_device
from ..encoding import token_mask
from ..models import ModelOutputs


def attention_mse(student_att: torch.Tensor, teacher_att: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_att = 1/h * sum_{i=1..h} MSE(A_i^s, A_i^t)   (L2A, Feng et al. 2021, last layer).

    student_att, teacher_att: (B, h, T, T) attention probabilities of the last
    layer, same number of heads. Each head's MSE averages over the (query, key)
    pairs of real tokens of each sentence; the loss is the mean over heads
    (and over the batch, weighting sentences by their number of pairs).
    """
    if student_att.shape != teacher_att.shape:
        raise ValueError(f"attention shapes differ: student {tuple(student_att.shape)} vs "
                         f"teacher {tuple(teacher_att.shape)}; L_att needs the same heads and tokens")
    m = token_mask(mask, student_att[:, 0])  # (B, T)
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
    m = token_mask(mask, proj)  # (B, T)
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
    """The regression form of L_dark: ||z^s - z^t||^2 / C, mean over the batch (also
    BiLSTM-soft's loss, Tang et al. 2019)."""
    return (student_logits.float() - teacher_logits.float()).pow(2).mean()


def dark_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
              temperature: float = 1.0, regression: bool = False) -> torch.Tensor:
    """L_dark: :func:`soft_cross_entropy` at T for classes, :func:`logit_mse` for
    regression (no softmax exists)."""
    if regression:
        return logit_mse(student_logits, teacher_logits)
    return soft_cross_entropy(student_logits, teacher_logits, temperature)


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


def kd_loss(student, teacher, projection: torch.Tensor, mask: torch.Tensor,
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
        parts["dark"] = dark_loss(student.logits, teacher.logits, terms.temperature, regression)
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def projection(student, teacher, seed: int) -> nn.Parameter:
    """W of L_hidden: (H_s, H_t), random normal / sqrt(H_s), learned with the student."""
    hs, ht = student.encoder.config.hidden_size, teacher.encoder.config.hidden_size
    g = torch.Generator().manual_seed(seed)
    return nn.Parameter(on_device(torch.randn(hs, ht, generator=g) / hs**0.5))  # W: (H_s, H_t)


def last_layer_kd(student_out, cached: dict, layers: int, W, mask, terms: KDTerms,
                  regression: bool, with_parts: bool = False):
    """L_KD of a student output against cached teacher outputs (``TeacherCache.batch``
    with the last layer's hidden states and attentions: ``TeacherNeeds.last_layer``);
    with ``with_parts``, also each term's value."""
    t_out = ModelOutputs(cached["logits"], (cached[f"hidden{layers}"],),
                         (cached[f"att{layers - 1}"],))
    total, parts = kd_loss(student_out, t_out, W, mask, terms, regression)
    return (total, parts) if with_parts else total
