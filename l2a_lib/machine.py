"""The machine a run is computed on, as its record keeps it: the processor, the
torch threads, whether bf16 was native, the peak memory. Wall times and exact
numbers compare only between runs of the same kind of machine."""
from __future__ import annotations

import platform
from pathlib import Path

from .train import bf16_in_use


def cpu_name() -> str:
    """The processor model (wall times are only comparable on the same one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb() -> float | None:
    """The peak resident memory of this process so far, in MB (None where the
    ``resource`` module does not exist)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024 if platform.system() == "Darwin" else 1024), 1)


FP32_FALLBACK = " (fp32: no native bf16)"


def machine_kind(cpu: str | None, bf16: bool | None) -> str | None:
    """The processor as wall times know it: its model ``cpu``, marked
    ``FP32_FALLBACK`` where the run's bf16 fell back to fp32 (``bf16`` False), since
    such runs take several times longer on the same model. ``bf16`` None (a record
    made before it was recorded) keeps the bare model; ``cpu`` None stays None."""
    return cpu + FP32_FALLBACK if cpu is not None and bf16 is False else cpu


def this_machine_kind() -> str:
    """:func:`machine_kind` of this machine (its processor, and whether its runs get
    bf16: :func:`train.bf16_in_use`)."""
    return machine_kind(cpu_name(), bf16_in_use())
