"""Every filesystem location the companion uses, in one place.

* ``data_dir``     -- the real data sets (read-only). Argument > ``L2A_DATA_DIR``.
* ``cache_dir``    -- local, never committed: assembled pretrained weights and
  fine-tuned teachers. Argument > ``L2A_CACHE_DIR`` > ``~/.cache/l2a_companion``.
* ``results_dir``  -- the committed result cache (one small JSON file per run).
  Argument > ``L2A_RESULTS_DIR`` > ``<repo>/results``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class DataDirError(FileNotFoundError):
    """The data directory is missing or incomplete."""


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory from an argument or ``L2A_DATA_DIR``."""
    raw = path if path is not None else os.environ.get("L2A_DATA_DIR")
    if raw is None or str(raw) == "":
        raise DataDirError(
            "No data directory given. Pass data_dir=... or set the environment "
            "variable L2A_DATA_DIR to the folder that holds sst2/, rt_polarity/, "
            "qqp_subset/, cikm2018/, sick/, rte/ and amazon_blitzer_helpfulness/."
        )
    p = Path(raw).expanduser()
    if not p.is_dir():
        raise DataDirError(
            f"Data directory {p} does not exist. Set L2A_DATA_DIR (or pass "
            "data_dir=...) to the folder that holds the task data sets."
        )
    return p.resolve()


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    raw = path if path is not None else os.environ.get("L2A_CACHE_DIR")
    p = Path(raw).expanduser() if raw else Path.home() / ".cache" / "l2a_companion"
    p.mkdir(parents=True, exist_ok=True)
    return p


def results_dir(path: str | os.PathLike | None = None) -> Path:
    raw = path if path is not None else os.environ.get("L2A_RESULTS_DIR")
    p = Path(raw).expanduser() if raw else REPO_ROOT / "results"
    p.mkdir(parents=True, exist_ok=True)
    return p


def nltk_data_dir(data: str | os.PathLike | None = None) -> Path:
    """WordNet lives beside the task data (``<data_dir>/nltk_data``)."""
    return data_dir(data) / "nltk_data"


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (a fine-tuned teacher's content hash, a published
    model part's checksum)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()
