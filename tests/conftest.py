import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _data_dir():
    raw = os.environ.get("L2A_DATA_DIR")
    if raw:
        return Path(raw)
    guess = REPO.parent / "shared" / "data"
    return guess if guess.is_dir() else None


@pytest.fixture(scope="session")
def data_dir():
    d = _data_dir()
    if d is None:
        pytest.skip("real data not available: set L2A_DATA_DIR")
    assert d.is_dir(), f"L2A_DATA_DIR={d} is not a directory"
    return d


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("L2A_PROGRESS", "0")


@pytest.fixture(scope="session")
def tokenizer():
    from l2a_lib import models
    from l2a_lib.config import ModelConfig
    return models.load_tokenizer(ModelConfig())
