"""The GPU path's plumbing, checked on the CPU this project runs on: one device choice,
models built on it, batches collated onto it, results back on the CPU, nothing placed
on the CPU by hand. (No GPU is available here: the README says what has run where.)"""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from l2a_lib import device as dev
from l2a_lib.encoding import Encoded, collate
from l2a_lib.errors import ConfigError

LIB = Path(__file__).resolve().parent.parent / "l2a_lib"


def test_the_device_is_chosen_once_from_the_environment(monkeypatch):
    monkeypatch.delenv("L2A_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert dev.device().type == expected                       # auto
    monkeypatch.setenv("L2A_DEVICE", "cpu")
    assert dev.device() == torch.device("cpu")
    monkeypatch.setenv("L2A_DEVICE", "tpu")
    with pytest.raises(ConfigError, match="auto, cpu, cuda"):
        dev.device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("L2A_DEVICE", "cuda")
        with pytest.raises(ConfigError, match="no CUDA device"):
            dev.device()


def test_batches_and_models_go_to_the_device(monkeypatch):
    placed = []
    real = dev.on_device

    def spy(x):
        placed.append(type(x).__name__)
        return real(x)
    monkeypatch.setattr("l2a_lib.encoding.on_device", spy)
    enc = Encoded([[1, 2, 3], [4, 5]], [[0, 0, 0], [0, 0]], np.array([0, 1]))
    b = collate(enc, [0, 1], pad_id=0, regression=False)
    assert placed == ["dict"] and all(t.device == dev.device() for t in b.values())
    m = dev.on_device(torch.nn.Linear(2, 2))
    assert next(m.parameters()).device == dev.device()


def test_no_module_places_a_tensor_on_the_cpu_by_hand():
    """Every placement goes through l2a_lib.device: no ``.to("cpu")``, ``device="cpu"``,
    ``.cuda()`` or a CPU-only autocast anywhere else (``.cpu()`` to bring a result back
    for numpy, and ``map_location="cpu"`` to load a file, are allowed)."""
    bad = re.compile(r"""\.to\(\s*["']cpu["']|device\s*=\s*["']cpu["']|\.cuda\(\)|autocast\(\s*["']cpu["']""")
    found = [f"{p.relative_to(LIB)}:{i}" for p in LIB.rglob("*.py") if p.name != "device.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert found == []


def test_the_paper_profile_asks_the_cluster_for_a_gpu():
    from l2a_lib import workflow
    assert workflow.GPUS == {"smoke": 0, "cpu": 0, "paper": 1}
    snakefile = (LIB.parent / "workflow" / "Snakefile").read_text()
    assert snakefile.count("gpu=wf.GPUS[PROFILE]") == 3  # runs, teachers, the masked LM
