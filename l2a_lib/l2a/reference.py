"""How a selector that does not learn keeps samples: a control that keeps at random at a
learned run's keep rates (``l2a_selector_random`` and the others of
``profiles.LEARNING_CONTROLS`` and ``PROBE_CONTROLS``), the probe's oracles
(``profiles.PROBE_ORACLES``), which know which samples ``l2a.corrupt`` corrupted, and a
fixed rule that keeps the samples of least teacher-student disagreement (``PROBE_RULES``)."""
from __future__ import annotations

import numpy as np
import torch

from ..config import ExperimentConfig
from ..errors import MissingResults
from ..profiles import learned_reference
from ..records import load_record


def learned_episodes(config: ExperimentConfig, ctx, keys=("keep_rate",)) -> list[dict]:
    """The episode log of the learned run ``config`` copies (``profiles.learned_reference``:
    for ``l2a_selector_random`` the full L2A run) of the same task, seed and profile, with
    ``keys`` in every episode. That run must be cached first (the workflow orders the two)."""
    ref = learned_reference(config)
    try:
        record = load_record(ref, ctx.results_dir)
    except MissingResults as e:
        raise MissingResults(f"{config.method} keeps at the keep rates of the learned "
                             f"run {ref.method} ({config.task}, seed {config.seed}), which is not cached: "
                             f"compute it first (python -m l2a_lib run --hash {ref.hash()})") from e
    episodes = record["extra"]["episodes"]
    if not episodes or any(e.get(k) is None for e in episodes for k in keys):
        raise MissingResults(f"the learned run {ref.hash()} has no {' / '.join(keys)} in its episode log")
    return episodes


def keep_rates_of_learned_selector(config: ExperimentConfig, ctx) -> list[float]:
    """The learned selector's keep rate in each episode of the run ``config`` copies;
    ``config`` keeps at random at these rates."""
    return [float(e["keep_rate"]) for e in learned_episodes(config, ctx)]


def lowest_first(score: torch.Tensor, rate: float) -> torch.Tensor:
    """Keep probabilities that keep ``rate`` of the samples, those of lowest ``score``
    first: 1 for the ``floor(rate * n)`` lowest, the remainder ``rate * n - floor(rate * n)``
    for the next one (so the expected count is ``rate * n``), 0 for the rest."""
    n = len(score)
    want = min(max(float(rate), 0.0), 1.0) * n
    whole = int(want)
    probs = torch.zeros(n)
    order = torch.argsort(score.detach().float().cpu(), stable=True)
    probs[order[:whole]] = 1.0
    if whole < n:
        probs[order[whole]] = want - whole
    return probs


def keep_rule(config: ExperimentConfig, ctx):
    """None where the run's selector learns (or is off: every sample kept); otherwise a
    function ``(episode, teacher cache, encoded pool, idx, disagreement)`` -> each sample's
    keep probability (a float tensor), from which the episode draws its actions
    (``disagreement``: each sample's teacher-student disagreement, the state feature
    ``selector.disagreement_column`` names):

    * ``selector_random``: the learned run's keep rate of that episode, for every sample;
    * ``selector_oracle="perfect"``: 0 for a corrupted sample, 1 for a clean one (the
      cache is ``l2a.corrupt.CorruptedTargets``, whose flags are the known answer);
    * ``selector_oracle="rates"``: the learned run's (``profiles.RATES_OF``) keep rate of
      the corrupted samples in that episode for a corrupted sample, of the clean ones for
      a clean one: its separation of the two groups, without its choice within each;
    * ``selector_rule="small_loss"``: in each batch, the learned run's (``profiles.RATES_OF``)
      keep rate of that episode, the samples of least disagreement first
      (:func:`lowest_first`): the "small-loss" filter of learning with noisy labels, which
      knows nothing of the known answer.

    The learned run's last episode's rates serve any later episode."""
    cfg = config.l2a
    if not (cfg.selector_random or cfg.selector_oracle or cfg.selector_rule):
        return None
    if cfg.selector_oracle == "perfect":
        rates = [(0.0, 1.0)]
    elif cfg.selector_oracle == "rates":
        rates = [(float(e["keep_corrupted"]), float(e["keep_clean"]))
                 for e in learned_episodes(config, ctx, ("keep_corrupted", "keep_clean"))]
    else:
        rates = [(r, r) for r in keep_rates_of_learned_selector(config, ctx)]

    def keep_at(episode: int, cache, enc, idx, disagreement: torch.Tensor) -> torch.Tensor:
        corrupted_rate, clean_rate = rates[min(episode, len(rates) - 1)]
        if cfg.selector_rule == "small_loss":
            return lowest_first(disagreement, clean_rate)
        if corrupted_rate == clean_rate:
            return torch.full((len(idx),), clean_rate)
        flags = torch.as_tensor(np.asarray(cache.flags(enc, idx), dtype=bool))
        return torch.where(flags, torch.tensor(corrupted_rate), torch.tensor(clean_rate)).float()
    return keep_at
