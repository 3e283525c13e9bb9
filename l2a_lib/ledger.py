"""Where a run's time goes, by phase: the cost ledger each result record carries
(``extra["phases"]``, seconds per phase; the Compute page adds them up).

    with ledger.recording() as led:       # experiment.run does this for every run
        ...
        with ledger.phase("teacher inference"):
            ...
    led.totals()   # {"teacher inference": 12.3, ..., "other": 0.4}

Time is booked to the innermost open phase only (an evaluation inside a training
step is evaluation, not training) unless an outer phase is opened ``whole``, so the
phases add up to the run's wall time;
what no phase covers is "other". Outside ``recording`` a phase costs nothing.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections import defaultdict

# the phases, in the order the Compute page stacks them
PHASES = ("data and tokenisation", "loading weights", "teacher fine-tuning",
          "augmentation sampling", "teacher inference", "student training", "evaluation",
          "selector", "generator", "checkpoints", "other")

_current: contextvars.ContextVar["Ledger | None"] = contextvars.ContextVar("ledger", default=None)


class Ledger:
    """Seconds per phase of one process, exclusive of nested phases."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._open: list[str] = []
        self._whole = 0  # open phases that take their nested phases' time (``whole``)
        self._since = self._start = time.perf_counter()

    def _book(self) -> float:
        now = time.perf_counter()
        if self._open:
            self.seconds[self._open[-1]] += now - self._since
        self._since = now
        return now

    def enter(self, name: str, whole: bool = False) -> None:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; the phases are {', '.join(PHASES)}")
        self._book()
        self._open.append(self._open[-1] if self._whole else name)
        self._whole += bool(whole or self._whole)

    def exit(self) -> None:
        self._book()
        self._open.pop()
        self._whole = max(0, self._whole - 1)

    def totals(self, digits: int = 1) -> dict[str, float]:
        """Seconds per phase (rounded to ``digits``), "other" the rest of the wall time."""
        now = self._book()
        out = {p: round(self.seconds[p], digits) for p in PHASES if self.seconds.get(p)}
        out["other"] = round(max(0.0, now - self._start - sum(self.seconds.values())), digits)
        return out


@contextlib.contextmanager
def recording():
    """Record the phases of everything run inside (one run)."""
    led = Ledger()
    token = _current.set(led)
    try:
        yield led
    finally:
        _current.reset(token)


@contextlib.contextmanager
def phase(name: str, whole: bool = False):
    """Book the time inside to ``name`` (no-op when nothing is recording). ``whole``:
    phases opened inside are booked to ``name`` too (a teacher's fine-tuning is
    teacher fine-tuning, its evaluations included)."""
    led = _current.get()
    if led is None:
        yield
        return
    led.enter(name, whole)
    try:
        yield
    finally:
        led.exit()


def booked(name: str, whole: bool = False):
    """Decorator: every call of the function is booked to ``name`` (see :func:`phase`)."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with phase(name, whole):
                return fn(*args, **kwargs)
        return inner
    return wrap
