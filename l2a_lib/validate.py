"""The checks every configuration dataclass uses (``config``): a bad value gets an
error that names it and the allowed values; ``without_none`` keeps cache keys stable."""
from __future__ import annotations

from typing import Any

from .errors import ConfigError


def without_none(d):
    """Drop ``None`` values recursively. Cache keys use this, so a new optional
    field added later with default ``None`` leaves every existing key valid."""
    if isinstance(d, dict):
        return {k: without_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, (list, tuple)):
        return [without_none(v) for v in d]
    return d


def choose(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def positive(name: str, value: Any, *, integer: bool = True, allow_zero: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name}={value!r} must be {'an int' if integer else 'a number'}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")
