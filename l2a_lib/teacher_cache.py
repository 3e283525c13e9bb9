"""Teacher outputs computed once per unique input and reused.

The teacher is frozen during distillation, so its outputs on an input never
change: ``TeacherCache`` runs the teacher once on every input it has not seen
(keyed by the token ids), keeps what the losses need, trimmed to the input's
length and stored in bf16 (logits in fp32), and pads them into batches on
request. ``forward_passes`` counts the inputs the teacher actually ran on;
after any number of epochs it equals the number of unique inputs.

Memory: the last layer's hidden states and attentions of 2,000 inputs of 64
tokens take ~0.4 GB in bf16; methods that need more layers (TinyBERT) keep
only the mapped layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import losses
from .models import SequenceModel, last_value_projection
from .train import Encoded, autocast, collate


@dataclass(frozen=True)
class TeacherNeeds:
    """Which teacher outputs a distillation loss reads."""
    hidden_layers: tuple[int, ...] = ()     # indices into hidden_states (0 = embeddings)
    attention_layers: tuple[int, ...] = ()  # indices into attentions (0 = first layer)
    pooled_layers: tuple[int, ...] = ()     # mean-pooled hidden states (PKD's patience states)
    value_relation: bool = False            # MiniLM's last-layer value relation (B, h, T, T)


@dataclass
class TeacherCache:
    teacher: SequenceModel
    needs: TeacherNeeds
    pad_id: int
    bf16: bool = True
    batch_size: int = 64
    forward_passes: int = 0
    _store: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def __len__(self) -> int:
        return len(self._store)

    @staticmethod
    def key(enc: Encoded, i: int) -> tuple:
        return tuple(enc.input_ids[i]) + (-1,) + tuple(enc.token_type_ids[i])

    @torch.no_grad()
    def fill(self, enc: Encoded) -> None:
        """Run the teacher on every input of ``enc`` not cached yet (length-sorted batches)."""
        todo, seen = [], set()
        for i in range(len(enc)):
            k = self.key(enc, i)
            if k not in self._store and k not in seen:
                todo.append(i)
                seen.add(k)
        todo.sort(key=lambda i: len(enc.input_ids[i]))
        need_hidden = bool(self.needs.hidden_layers or self.needs.pooled_layers)
        need_att = bool(self.needs.attention_layers)
        captured = {}
        hook = (last_value_projection(self.teacher).register_forward_hook(
            lambda mod, inp, out: captured.__setitem__("values", out))
            if self.needs.value_relation else None)
        try:
            self._fill(enc, todo, need_hidden or need_att, captured)
        finally:
            if hook is not None:
                hook.remove()

    def _fill(self, enc: Encoded, todo: list[int], output_hidden: bool, captured: dict) -> None:
        heads = self.teacher.encoder.config.num_attention_heads
        for s in range(0, len(todo), self.batch_size):
            idx = todo[s:s + self.batch_size]
            b = collate(enc, idx, self.pad_id, regression=self.teacher.num_labels == 1)
            with autocast(self.bf16):
                out = self.teacher(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                                   output_hidden=output_hidden)
            vr = (losses.value_relation(captured["values"], heads, b["attention_mask"])
                  if self.needs.value_relation else None)
            self.forward_passes += len(idx)
            m = b["attention_mask"].unsqueeze(-1).float()
            for r, i in enumerate(idx):
                n = len(enc.input_ids[i])
                item = {"logits": out.logits[r].float().clone()}
                for l in self.needs.hidden_layers:
                    item[f"hidden{l}"] = out.hidden_states[l][r, :n].to(torch.bfloat16).clone()
                for l in self.needs.attention_layers:
                    item[f"att{l}"] = out.attentions[l][r, :, :n, :n].to(torch.bfloat16).clone()
                for l in self.needs.pooled_layers:
                    h = out.hidden_states[l][r].float()
                    item[f"pooled{l}"] = (h * m[r]).sum(0) / m[r].sum()
                if vr is not None:
                    item["vr"] = vr[r, :, :n, :n].to(torch.bfloat16).clone()
                self._store[self.key(enc, i)] = item

    def entries(self, start: int = 0) -> list[tuple[tuple, dict]]:
        """The cached (key, outputs) pairs from the ``start``-th computed on, in the
        order they were computed (for ``checkpoint.EpisodeCheckpoint``)."""
        return list(self._store.items())[start:]

    def restore(self, entries, forward_passes: int) -> None:
        """Put back outputs saved with :meth:`entries` (a resumed run)."""
        self._store.update(entries)
        self.forward_passes = forward_passes

    def batch(self, enc: Encoded, idx) -> dict[str, torch.Tensor]:
        """Padded teacher outputs of examples ``idx`` (filling any that are missing)."""
        idx = list(idx)
        items = [self._store.get(self.key(enc, i)) for i in idx]
        if any(it is None for it in items):
            self.fill(Encoded([enc.input_ids[i] for i in idx], [enc.token_type_ids[i] for i in idx],
                              np.asarray(enc.labels)[idx]))
            items = [self._store[self.key(enc, i)] for i in idx]
        T = max(len(enc.input_ids[i]) for i in idx)
        out = {"logits": torch.stack([it["logits"] for it in items])}
        for name in items[0]:
            if name.startswith("hidden"):
                x = torch.zeros(len(idx), T, items[0][name].shape[-1])
                for r, it in enumerate(items):
                    x[r, : it[name].shape[0]] = it[name].float()
                out[name] = x
            elif name.startswith("att") or name == "vr":
                h = items[0][name].shape[0]
                x = torch.zeros(len(idx), h, T, T)
                for r, it in enumerate(items):
                    n = it[name].shape[-1]
                    x[r, :, :n, :n] = it[name].float()
                out[name] = x
            elif name.startswith("pooled"):
                out[name] = torch.stack([it[name] for it in items])
        return out
