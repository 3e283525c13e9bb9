"""The one device a process computes on: every model is placed there when it is built,
every batch when it is collated, and results come back to the CPU for numpy.

``L2A_DEVICE`` chooses it: ``auto`` (the default: the first CUDA device when there is
one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. On CUDA, bf16 autocast is used
where the GPU supports it (``train.bf16_in_use``)."""
from __future__ import annotations

import os

import torch

from .errors import ConfigError


def device() -> torch.device:
    """The device of this process (``L2A_DEVICE``)."""
    choice = (os.environ.get("L2A_DEVICE", "auto").strip().lower() or "auto")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice != "cpu" and not choice.startswith("cuda"):
        raise ConfigError(f"L2A_DEVICE={choice!r}: give auto, cpu, cuda or cuda:N")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"L2A_DEVICE={choice} but this machine has no CUDA device: "
                          "use L2A_DEVICE=auto or cpu")
    return torch.device(choice)


def on_device(x):
    """``x`` (a tensor, or a dict / list of them, or a module) on :func:`device`."""
    if isinstance(x, dict):
        return {k: on_device(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(on_device(v) for v in x)
    if isinstance(x, (torch.Tensor, torch.nn.Module)):
        return x.to(device())
    return x
