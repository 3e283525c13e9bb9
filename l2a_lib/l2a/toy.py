"""A toy task whose answer is known, for L2A's selector (issue 34).

A toy student (a bag of word embeddings) distils a toy teacher on augmented samples,
half of which carry a corrupted teacher target (the wrong class), through the same
episode loop, reward and selector as ``run_l2a`` (``episode.run_episode``,
``reward.DevReward``, ``selector.Selector``). A selector that learns keeps the clean
samples and drops the corrupted ones. ``tests/test_l2a_learns.py`` checks that it
does (and that it does not with its update switched off or with version 1's reward);
:func:`budget_study` asks how many episodes it needs when one student step moves the
dev set less (a smaller student learning rate), which is the situation of the real
runs: their step rewards are nearer their noise than the toy's.

    from l2a_lib.l2a import toy
    toy.run_toy_selector(episodes=60)            # (keep prob. corrupted, clean)
    toy.budget_study()                           # a frame, cached under results/toy/
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import paths
from ..encoding import Encoded
from ..train import Stepper
from .credit import DEV_GRADIENTS, head_inputs, sample_credit
from .episode import run_episode
from .reward import DevReward
from .selector import Policy, Selector, n_features, state_features

V, LEN, CLASS_TOKENS = 40, 4, 2  # tokens 0-1 mean class 0, 2-3 class 1, 4-39 are noise


def sentences(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` toy sentences of LEN tokens and their labels: the first token tells the
    class, the others are noise."""
    y = rng.integers(0, 2, n)
    x = rng.integers(2 * CLASS_TOKENS, V, (n, LEN))
    x[:, 0] = rng.integers(0, CLASS_TOKENS, n) + CLASS_TOKENS * y
    return torch.tensor(x), y


class Toy(nn.Module):
    """The toy student: mean of word embeddings, then a linear layer."""

    def __init__(self):
        super().__init__()
        self.emb = nn.EmbeddingBag(V, 16, mode="mean")
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        return self.out(self.emb(x))


@dataclass
class ToyResult:
    keep_corrupted: float      # the trained selector's mean keep probability, corrupted samples
    keep_clean: float          # ... clean samples (a fresh pool of 400)
    reward_snr: float          # median over episodes of the steps' reward signal-to-noise
                               # (reward.signal_to_noise, as in the real runs' logs)


def run_toy_selector(*, reward: str = "dev_loglik", update: bool = True, episodes: int = 60,
                     seed: int = 0, student_lr: float = 0.05, selector_lr: float = 0.03,
                     full: bool = False, credit: bool | str = False):
    """Train the selector on the toy for ``episodes`` episodes of 4 steps (16 samples
    each, half corrupted, plus 8 labelled originals per step). Returns the trained
    selector's keep probabilities on a fresh pool, (corrupted, clean); with ``full``, a
    :class:`ToyResult` that also has the reward's median signal-to-noise. With
    ``credit``, the selector learns from per-sample credits (``l2a.credit``) instead
    ("calibrated", "equal": the other credits of ``l2a.credit``)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    student = Toy()
    dev_x, dev_y = sentences(200, rng)
    lab_x, lab_y = sentences(64, rng)
    probe = DevReward(Encoded([[0]] * len(dev_y), [[0]] * len(dev_y), dev_y), pad_id=0,
                      regression=False, kind=reward,
                      predict_fn=lambda m: m(dev_x).float().numpy())
    selector = Selector(Policy(n_features(2, False)), lr=selector_lr, gamma=0.0, scale="episode")
    stepper = Stepper(torch.optim.Adam(student.parameters(), lr=student_lr), what="toy student")

    def pool(n):
        x, y = sentences(n, rng)
        corrupt = np.arange(n) % 2 == 1
        target = np.where(corrupt, 1 - y, y)
        t_logits = torch.tensor(np.where(np.arange(2)[None, :] == target[:, None], 3.0, -3.0),
                                dtype=torch.float32)
        return x, t_logits, corrupt

    def states(x, t_logits):
        with torch.no_grad():
            s = student(x)
        n = len(x)
        return state_features(t_logits, s, torch.zeros(n), torch.zeros(n), False)

    snr = []
    probe.start(student)
    for _ in range(episodes):
        x, t_logits, _ = pool(64)
        order = rng.permutation(64)

        def kd_of(idx):
            s = student(x[idx])
            loss = -(t_logits[idx].softmax(-1) * s.log_softmax(-1)).sum(-1).mean()
            return loss, {"dark": float(loss.detach())}

        def originals_of():
            pick = rng.choice(len(lab_y), 8, replace=False)
            loss = F.cross_entropy(student(lab_x[pick]), torch.tensor(lab_y[pick]))
            return loss, {"ce": float(loss.detach())}

        def credit_of(idx):
            with torch.no_grad(), head_inputs(student.out) as seen:
                dev_logits, z = student(dev_x), student(x[idx])
            grad = DEV_GRADIENTS[credit](seen[0], dev_logits, dev_y, regression=False)
            return sample_credit(seen[1], z, t_logits[idx], grad)

        rec = run_episode(stepper, student, [order[i:i + 16] for i in range(0, 64, 16)],
                          states_of=lambda idx: states(x[idx], t_logits[idx]), kd_of=kd_of,
                          originals_of=originals_of, reward=probe, selector=selector, gen=gen,
                          credit_of=credit_of if credit else None)
        snr.append(rec.summary()["reward_snr"])  # as the real runs' episode logs measure it
        if update:
            selector.update()
        else:
            selector.history = []
    x, t_logits, corrupt = pool(400)
    p = selector.keep_prob(states(x, t_logits))
    mask = torch.tensor(corrupt)
    out = (float(p[mask].mean()), float(p[~mask].mean()))
    return ToyResult(*out, float(np.median(snr)) if snr else float("nan")) if full else out


# the budget study: the toy's student learning rate sets how far one step moves the dev
# set; the selector sees the same kind of reward at every rate
BUDGET_EPISODES = (20, 60, 180)
BUDGET_STUDENT_LRS = (0.05, 0.003, 0.001)
BUDGET_SEEDS = tuple(range(8))
# the step reward (the paper's, version 2's) / per-sample credit: plain, calibrated, equal-weight
BUDGET_CREDITS = (False, True, "calibrated", "equal")


def budget_grid() -> dict:
    """The grid of the budget study the diagnostics page shows."""
    return {"episodes": list(BUDGET_EPISODES), "student_lrs": list(BUDGET_STUDENT_LRS),
            "seeds": list(BUDGET_SEEDS), "credits": list(BUDGET_CREDITS)}


def budget_file(grid: dict, results_dir=None) -> Path:
    """Where the budget study of ``grid`` is cached: named by a digest of the grid and
    of the code it runs (this module, the episode loop, the reward, the selector and the
    credit; comments and docstrings left out, ``paths.code_digest``)."""
    here = Path(__file__).parent
    code = paths.code_digest(*(here / f"{m}.py" for m in ("toy", "episode", "reward", "selector", "credit")))
    key = hashlib.sha256(json.dumps(grid, sort_keys=True).encode() + code.encode()).hexdigest()[:12]
    return paths.results_dir(results_dir) / "toy" / f"selector_budget-{key}.json"


def budget_study(episodes=BUDGET_EPISODES, student_lrs=BUDGET_STUDENT_LRS, seeds=BUDGET_SEEDS,
                 credits=BUDGET_CREDITS, results_dir=None, progress=None) -> pd.DataFrame:
    """The toy selector after each number of episodes, at each student learning rate and
    seed, learning from the step reward and from per-sample credit (``l2a.credit``: plain,
    calibrated and equal-weight): one
    row each (credit, episodes, student_lr, seed, keep_corrupted, keep_clean, reward_snr,
    passed = corrupted < 0.3 and clean > 0.7, the test's bar). Cached as JSON under
    ``<results>/toy/`` (:func:`budget_file`), so the book reads it and a changed toy
    recomputes it (about a minute on one core)."""
    grid = {"episodes": list(episodes), "student_lrs": list(student_lrs), "seeds": list(seeds),
            "credits": list(credits)}
    path = budget_file(grid, results_dir)
    if path.is_file():
        return pd.DataFrame(json.loads(path.read_text())["rows"])
    rows = []
    cells = [(c, e, lr, s) for c in credits for e in episodes for lr in student_lrs for s in seeds]
    for i, (c, e, lr, s) in enumerate(cells):
        r = run_toy_selector(episodes=e, student_lr=lr, seed=s, full=True, credit=c)
        rows.append({"credit": c, "episodes": e, "student_lr": lr, "seed": s,
                     "keep_corrupted": r.keep_corrupted,
                     "keep_clean": r.keep_clean, "reward_snr": r.reward_snr,
                     "passed": bool(r.keep_corrupted < 0.3 and r.keep_clean > 0.7)})
        if progress:
            progress(i + 1, len(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_text(path, json.dumps({"grid": grid, "rows": rows}, indent=1) + "\n")
    return pd.DataFrame(rows)
