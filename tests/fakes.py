"""Stand-ins shared by the tests: masked LMs for the augmenter tests (deterministic,
instant) and a kill right after a checkpoint is written."""
from contextlib import contextmanager

import pytest
import torch


class Killed(Exception):
    """Stands for a kill right after a checkpoint was written."""


@contextmanager
def killed_after_save(monkeypatch, cls, when=lambda state: True, exc=Killed):
    """Inside the block, ``cls.save`` (a checkpoint class) writes its checkpoint and then
    raises ``exc`` when ``when(state)`` holds for the saved state; the block must end
    by that exception."""
    save = cls.save

    def save_then_die(self, state, *args, **kwargs):
        save(self, state, *args, **kwargs)
        if when(state):
            raise exc

    with monkeypatch.context() as m, pytest.raises(exc):
        m.setattr(cls, "save", save_then_die)
        yield


class FakeProvider:
    """A masked LM that always ranks the pieces of ``ranking`` first, in order."""

    def __init__(self, tokenizer, ranking):
        self.tokenizer = tokenizer
        self.ids = tokenizer.convert_tokens_to_ids(ranking)
        self.calls = 0

    def log_probs(self, input_ids, attention_mask, positions):
        self.calls += 1
        n = int(positions.sum())
        out = torch.full((n, len(self.tokenizer)), -50.0)
        for rank, i in enumerate(self.ids):
            out[:, i] = -float(rank)
        return out


class FakeConditional(torch.nn.Module):
    """Predicts 'good' for label 1 and 'bad' for label 0 at every masked position."""

    def __init__(self, tokenizer):
        super().__init__()
        self.good, self.bad = tokenizer.convert_tokens_to_ids(["good", "bad"])
        self.vocab = len(tokenizer)

    def forward(self, input_ids, attention_mask, positions, labels):
        rows = labels[:, None].expand_as(positions)[positions]
        out = torch.full((int(positions.sum()), self.vocab), -1e4)
        out[rows == 1, self.good] = 0.0
        out[rows == 0, self.bad] = 0.0
        return out
