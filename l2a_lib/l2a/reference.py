"""What a control whose selector keeps at random (``l2a_selector_random`` and the others
of ``profiles.LEARNING_CONTROLS`` and ``PROBE_CONTROLS``) reads of the learned run it copies."""
from __future__ import annotations

from ..config import ExperimentConfig
from ..errors import MissingResults
from ..profiles import learned_reference
from ..records import load_record


def keep_rates_of_learned_selector(config: ExperimentConfig, ctx) -> list[float]:
    """The learned selector's keep rate in each episode of the run ``config`` copies
    (``profiles.learned_reference``: for ``l2a_selector_random`` the full L2A run) of
    the same task, seed and profile; ``config`` keeps at random at these rates. That
    run must be cached first (the workflow orders the two)."""
    ref = learned_reference(config)
    try:
        record = load_record(ref, ctx.results_dir)
    except MissingResults as e:
        raise MissingResults(f"{config.method} keeps at random at the keep rates of the learned "
                             f"run {ref.method} ({config.task}, seed {config.seed}), which is not cached: "
                             f"compute it first (python -m l2a_lib run --hash {ref.hash()})") from e
    rates = [e.get("keep_rate") for e in record["extra"]["episodes"]]
    if not rates or any(r is None for r in rates):
        raise MissingResults(f"the learned run {ref.hash()} has no keep rates in its episode log")
    return [float(r) for r in rates]
