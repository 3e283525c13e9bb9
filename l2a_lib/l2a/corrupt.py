"""A probe with a known answer on real data: some augmented samples get a wrong
teacher target, and the selector should learn to drop them.

``tests/test_l2a_learns.py`` shows on a toy student that version 2's selector learns
to drop samples whose teacher targets are corrupted. On the real pools of the
paper's tasks there may be nothing comparable to find: if every augmented sample is
about as useful as another, a learned selector cannot beat keeping all of them. This
probe puts the answer back on real data: ``L2AConfig.corrupt_share`` of the augmented
inputs (never the labelled originals) get the teacher's logits in reversed class
order, a confidently wrong target for L_dark and for the selector's state, while
their attention maps and hidden states stay the teacher's. Each episode then records
the keep rate of the corrupted and of the clean samples (``keep_corrupted``,
``keep_clean``), and the same split by the class of the target
(``keep_corrupted_by_class``, ``keep_clean_by_class``). Methods ``l2a_corrupted`` (the learned selector) and
``l2a_corrupted_keep_all`` (every sample kept) compare what the selection is worth;
``l2a_corrupted_random`` keeps as many samples as the learned selector, at random, so its
student tells what the choice of samples is worth apart from their number
(``l2a_credit_eq_corrupted_random`` is the same control for ``l2a_credit_eq_corrupted``).
A random selector gives the generator nothing to follow, so those students keep the
masked LM's fills while the learned runs train their generator: the ``_gen_off`` pair
(``l2a_credit_eq_corrupted_gen_off`` and its ``_random`` student) switches the generator
off in both, so that it compares the choice of samples alone. Two oracles, with the
generator off too, read the flags (``l2a.reference.keep_rule``): ``..._gen_off_oracle``
drops every corrupted sample (what any selection could gain in the probe) and
``..._gen_off_rates`` keeps each group at the generator-off selector's rates, at random
within it (what that selector's separation alone is worth). A fixed rule that does not
read them, ``..._gen_off_small_loss``, keeps that selector's rate, the samples of least
teacher-student disagreement first: does the learned selector beat a small-loss filter?

Which inputs are corrupted is a function of the input's token ids and the run's seed
(a hash), so a resumed run corrupts the same ones without any state.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..encoding import Encoded


class CorruptedTargets:
    """A ``teacher.TeacherCache`` whose logits are reversed on a fixed share of the
    inputs of every encoded set except ``protected`` (the labelled originals); every
    other attribute is the wrapped cache's."""

    def __init__(self, cache, share: float, seed: int, protected: Encoded):
        if not 0.0 < share < 1.0:
            raise ValueError(f"corrupt_share={share!r} must be in (0, 1)")
        self.cache, self.share, self.seed, self.protected = cache, float(share), int(seed), protected
        self._memo: dict[int, tuple[Encoded, dict[int, bool]]] = {}  # the last few sets' flags

    def __getattr__(self, name):
        return getattr(self.cache, name)

    def __len__(self) -> int:
        return len(self.cache)

    def flags(self, enc: Encoded, idx) -> np.ndarray:
        """True for each input of ``idx`` whose target is corrupted."""
        if enc is self.protected:
            return np.zeros(len(idx), dtype=bool)
        held = self._memo.get(id(enc))
        if held is None or held[0] is not enc:  # each set is hashed once, not once per use
            held = self._memo[id(enc)] = (enc, {})
            while len(self._memo) > 4:  # a strong reference keeps an id from being reused
                del self._memo[next(iter(self._memo))]
        memo = held[1]
        out = []
        for i in np.asarray(idx):
            i = int(i)
            if i not in memo:
                raw = np.asarray(enc.input_ids[i], dtype=np.int64).tobytes()
                h = hashlib.blake2b(raw + self.seed.to_bytes(4, "little"), digest_size=8)
                memo[i] = int.from_bytes(h.digest(), "little") / 2**64 < self.share
            out.append(memo[i])
        return np.array(out, dtype=bool)

    def batch(self, enc: Encoded, idx) -> dict[str, torch.Tensor]:
        out = self.cache.batch(enc, idx)
        flags = self.flags(enc, idx)
        if not flags.any():
            return out
        logits = out["logits"].clone()
        rows = torch.as_tensor(np.flatnonzero(flags), device=logits.device)
        logits[rows] = logits[rows].flip(-1)
        return {**out, "logits": logits}

    def keep_rates(self, enc: Encoded, batches, actions) -> dict[str, float | list | None]:
        """The share kept of the corrupted and of the clean samples in one episode
        (``batches``: the index arrays of its steps; ``actions``: 1 keep / 0 drop).

        On a task with unbalanced classes a reversed target is mostly a minority-class
        target, so dropping corrupted samples and dropping minority-class targets look
        alike. ``keep_corrupted_by_class`` and ``keep_clean_by_class`` split the keep
        rates by the class the target the student sees points at (its argmax, after
        the corruption; None where a class has no sample): a selector that drops wrong
        targets keeps fewer corrupted than clean samples *within* a class."""
        steps = [idx for idx in batches if idx is not None and len(idx)]
        flags = np.concatenate([self.flags(enc, idx) for idx in steps] or [np.zeros(0, dtype=bool)])
        kept = torch.cat(list(actions)).numpy() > 0.5 if len(actions) else np.zeros(0, dtype=bool)
        if len(kept) != len(flags):
            raise ValueError(f"{len(kept)} actions for {len(flags)} samples")
        out = {"keep_corrupted": float(kept[flags].mean()) if flags.any() else None,
               "keep_clean": float(kept[~flags].mean()) if (~flags).any() else None,
               "corrupted_share": float(flags.mean()) if len(flags) else None}
        logits = [self.batch(enc, idx)["logits"] for idx in steps]
        if logits and logits[0].dim() == 2 and logits[0].shape[-1] > 1:  # classes, not a score
            target = torch.cat(logits).argmax(-1).cpu().numpy()
            for name, which in (("keep_corrupted_by_class", flags), ("keep_clean_by_class", ~flags)):
                out[name] = [float(kept[which & (target == c)].mean()) if (which & (target == c)).any()
                             else None for c in range(logits[0].shape[-1])]
        return out
