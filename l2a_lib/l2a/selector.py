"""The reinforced selector pi_phi (L2A, Sec. 3.3) and REINFORCE.

State of an augmented sample (``state_features``), from the teacher's and the
student's outputs on it, no gradients:

* classification: teacher probabilities (C), student probabilities (C), the
  teacher's and the student's max probability and entropy, KL(teacher ||
  student), the student's cross-entropy against the teacher's argmax, and
  whether the two argmaxes agree;
* regression: teacher and student predictions, their difference and its square;
* both: the sample's edit rate d/m and its log P_s per edited piece.

Action: keep (1) or drop (0), a ~ Bernoulli(pi_phi(s)), pi_phi a two-layer MLP.
Reward of step t (:func:`reward`): the change of the student's target-dev metric
(accuracy or Pearson) caused by the update on the kept samples. Return
``G_t = sum_k gamma^k r_{t+k}`` (:func:`discounted_returns`); the policy gradient is
REINFORCE (:func:`reinforce_loss`) with the
episode's mean return as the baseline, the advantages divided by the root mean
square of all advantages seen so far (dev-metric changes are a few hundredths:
without it the step size would depend on the dev set's size), applied once per
episode (Algorithm 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..train import Stepper


def state_features(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                   edit_rate: torch.Tensor, log_ps_per_piece: torch.Tensor,
                   regression: bool) -> torch.Tensor:
    """The selector's state of each augmented sample z, from outputs without gradients:

        classification: s(z) = [p_t, p_s, max p_t, max p_s, H(p_t), H(p_s), KL(p_t || p_s),
                                CE(p_s, argmax p_t), 1{argmax p_t = argmax p_s}, d/m, log P_s(z)/d]
        regression:     s(z) = [y_t, y_s, y_s - y_t, (y_s - y_t)^2, d/m, log P_s(z)/d]

    with p_t, p_s the teacher's and the student's class probabilities (y_t, y_s their
    outputs). teacher_logits, student_logits: (N, C); edit_rate and log_ps_per_piece: (N,).
    Returns (N, F)."""
    t, s = teacher_logits.float(), student_logits.float()
    extra = [edit_rate.float()[:, None], log_ps_per_piece.float()[:, None]]
    if regression:
        diff = s[:, :1] - t[:, :1]
        return torch.cat([t[:, :1], s[:, :1], diff, diff.pow(2)] + extra, -1)
    pt, ps = t.softmax(-1), s.softmax(-1)
    lpt, lps = t.log_softmax(-1), s.log_softmax(-1)
    ent_t = -(pt * lpt).sum(-1, keepdim=True)
    ent_s = -(ps * lps).sum(-1, keepdim=True)
    kl = (pt * (lpt - lps)).sum(-1, keepdim=True)
    ce = F.cross_entropy(s, t.argmax(-1), reduction="none")[:, None]
    agree = (t.argmax(-1) == s.argmax(-1)).float()[:, None]
    return torch.cat([pt, ps, pt.max(-1, keepdim=True).values, ps.max(-1, keepdim=True).values,
                      ent_t, ent_s, kl, ce, agree] + extra, -1)


def n_features(num_labels: int, regression: bool) -> int:
    return 6 if regression else 2 * num_labels + 7 + 2


def disagreement_column(num_labels: int, regression: bool) -> int:
    """Index in ``state_features`` of the teacher-student disagreement: KL(teacher ||
    student) for classification, the squared difference for regression."""
    return 3 if regression else 2 * num_labels + 4


def policy_profile(keep_prob: torch.Tensor, states: torch.Tensor, num_labels: int,
                   regression: bool) -> dict[str, float]:
    """How the policy discriminates among the states of an episode: the spread of
    its keep probability and its Pearson correlation with the edit rate and with
    the teacher-student disagreement (0 when either side is constant)."""
    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
        den = float(a.norm() * b.norm())
        return float((a * b).sum()) / den if den > 0 else 0.0
    return {"keep_prob_sd": float(keep_prob.double().std()) if len(keep_prob) > 1 else 0.0,
            "keep_corr_edit_rate": corr(keep_prob, states[:, -2]),
            "keep_corr_disagreement": corr(keep_prob, states[:, disagreement_column(num_labels, regression)])}


def reward(dev_before: float, dev_after: float) -> float:
    """r_t = M(student after step t) - M(student before it): the change of the
    student's target-dev metric M (accuracy; Pearson for regression) that the update
    on the kept samples caused."""
    return dev_after - dev_before


def discounted_returns(rewards, gamma: float) -> np.ndarray:
    """The return G_t = sum_{k >= 0} gamma^k r_{t+k}, computed backwards."""
    out = np.zeros(len(rewards), dtype=float)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def reinforce_loss(keep_probs: list[torch.Tensor], actions: list[torch.Tensor],
                   advantages) -> torch.Tensor:
    """The REINFORCE loss of an episode,

        L(phi) = -1/T sum_t A_t sum_{n in batch t} log pi_phi(a_n | s_n),

    with log pi(a|s) = a log p + (1 - a) log(1 - p), p = pi_phi(keep | s) (clamped to
    [1e-6, 1 - 1e-6]) and A_t the (scaled) advantage of step t. ``keep_probs`` and
    ``actions``: one (N_t,) tensor per step; ``advantages``: one number per step."""
    loss = 0.0
    for p, a, adv in zip(keep_probs, actions, advantages):
        p = p.clamp(1e-6, 1 - 1e-6)
        logp = a * p.log() + (1 - a) * (1 - p).log()  # (N,)
        loss = loss - float(adv) * logp.sum()
    return loss / len(keep_probs)


class Policy(nn.Module):
    """pi_phi(keep | s): state -> hidden (tanh) -> keep probability."""

    def __init__(self, n_in: int, hidden: int = 32, init_keep: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        with torch.no_grad():  # start at keep probability init_keep whatever the state
            self.net[2].weight.zero_()
            self.net[2].bias.fill_(float(np.log(init_keep / (1 - init_keep))))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(state).squeeze(-1))  # (N,)


@dataclass
class Step:
    states: torch.Tensor   # (N, F)
    actions: torch.Tensor  # (N,) in {0, 1}
    reward: float = 0.0
    credit: np.ndarray | None = None  # (N,) per-sample credit (l2a.credit), when measured


@dataclass
class Selector:
    """pi_phi with its episode memory and REINFORCE update."""
    policy: Policy
    lr: float = 1e-3
    gamma: float = 0.9
    # how the advantages are scaled: "running" (version 1: by the root mean square of
    # every advantage seen so far) or "episode" (version 2: standardised within the
    # episode, so that late episodes, whose rewards are small, still move the policy)
    scale: str = "running"
    history: list[Step] = field(default_factory=list)

    def __post_init__(self):
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)
        # features vary in scale: standardise with running statistics of the states seen
        self._mean, self._var, self._n = None, None, 0
        self._adv_sq, self._adv_n = 0.0, 0

    def state_dict(self) -> dict:
        """Everything a resumed run needs (the episode memory is empty between episodes)."""
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "stats": (self._mean, self._var, self._n, self._adv_sq, self._adv_n)}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._mean, self._var, self._n, self._adv_sq, self._adv_n = state["stats"]
        self.history = []

    def _normalise(self, states: torch.Tensor, update: bool) -> torch.Tensor:
        if update:
            x = states.double()
            if self._mean is None:
                self._mean, self._var, self._n = x.mean(0), x.var(0, unbiased=False), len(x)
            else:
                n = self._n + len(x)
                delta = x.mean(0) - self._mean
                self._var = (self._var * self._n + x.var(0, unbiased=False) * len(x)
                             + delta.pow(2) * self._n * len(x) / n) / n
                self._mean, self._n = self._mean + delta * len(x) / n, n
        return ((states.double() - self._mean) / (self._var.sqrt() + 1e-6)).float()

    @torch.no_grad()
    def keep_prob(self, states: torch.Tensor) -> torch.Tensor:
        if self._mean is None:
            return self.policy(torch.zeros_like(states))
        return self.policy(self._normalise(states, update=False))

    @torch.no_grad()
    def act(self, states: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sample keep/drop for each state and remember them for this episode."""
        probs = self.policy(self._normalise(states, update=True))
        actions = torch.bernoulli(probs, generator=generator)
        self.history.append(Step(states.clone(), actions))
        self.last_probs = probs  # the keep probabilities behind these actions (diagnostics)
        return actions

    def reward(self, r: float) -> None:
        """The reward of the latest step."""
        self.history[-1].reward = float(r)

    def credit(self, c) -> None:
        """The per-sample credit of the latest step's samples (``l2a.credit``)."""
        self.history[-1].credit = np.asarray(c, dtype=float)

    def _credit_update(self) -> dict[str, float]:
        """The gradient of sum_n pi(s_n) c_n, the credits divided by their root mean
        square over the episode: the keep probability goes up where a step on the sample
        would help the dev set (c > 0), down where it would hurt. Not centred: zero credit
        is a meaningful point (no first-order effect), and centring pushed down the clean
        samples below the episode's mean once the toy student knew the task (keep rate of
        the clean ones 0.79 after 180 episodes on ``l2a.toy`` at student lr 0.05, against
        0.94 uncentred)."""
        credits = np.concatenate([s.credit for s in self.history])
        loss = 0.0
        for step in self.history:
            c = step.credit / (np.sqrt((credits ** 2).mean()) or 1.0)
            p = self.policy(self._normalise(step.states, update=False))
            loss = loss - (p * torch.as_tensor(c, dtype=p.dtype)).sum()
        loss = loss / len(credits)
        Stepper(self.optimizer, what="selector").step(loss)
        self.history = []
        return {"policy_loss": float(loss.detach()), "mean_credit": float(credits.mean()),
                "credit_positive": float((credits > 0).mean())}

    def update(self) -> dict[str, float]:
        """REINFORCE on the episode's discounted returns (mean-return baseline), or, when
        every step has per-sample credits, the credit update; then forget the episode.
        Returns what happened, for the episode log."""
        if not self.history:
            return {"policy_loss": 0.0, "mean_return": 0.0}
        if all(s.credit is not None for s in self.history):
            return self._credit_update()
        rewards = [s.reward for s in self.history]
        returns = discounted_returns(rewards, self.gamma)
        advantages = returns - returns.mean()
        # scale: the root mean square of every advantage seen so far (all episodes),
        # so that one episode's larger advantages still weigh more than another's
        if self.scale == "episode":
            sd = advantages.std()
            advantages = advantages / sd if sd > 0 else advantages
        else:
            self._adv_sq = self._adv_sq + float((advantages ** 2).sum())
            self._adv_n = self._adv_n + len(advantages)
            if self._adv_sq > 0:
                advantages = advantages / np.sqrt(self._adv_sq / self._adv_n)
        loss = reinforce_loss([self.policy(self._normalise(step.states, update=False))
                               for step in self.history],
                              [step.actions for step in self.history], advantages)
        Stepper(self.optimizer, what="selector").step(loss)
        self.history = []
        return {"policy_loss": float(loss.detach()), "mean_return": float(returns.mean())}
