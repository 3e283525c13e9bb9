"""Every filesystem location the companion uses, in one place.

* ``data_dir``     -- the real data sets (read-only). Argument > ``L2A_DATA_DIR``.
* ``cache_dir``    -- local, never committed: assembled pretrained weights and
  fine-tuned teachers. Argument > ``L2A_CACHE_DIR`` > ``~/.cache/l2a_companion``.
* ``results_dir``  -- the committed result cache (one small JSON file per run).
  Argument > ``L2A_RESULTS_DIR`` > ``<repo>/results``.

It also holds the file-system helpers every writer uses: :func:`atomic_write_text`
and :func:`atomic_torch_save` (a temporary file in the same folder, then a rename:
a reader never sees half a file), :func:`file_lock` (one process at a time in a block,
such as a teacher's fine-tuning that two runs need at once) and :func:`publish_state` /
:func:`load_published_state` (a state dict committed with the results in parts
of at most ``PART_BYTES``, each with its sha256).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .errors import DataDirError

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def code_digest(*files: str | os.PathLike) -> str:
    """A sha256 of Python files' code without comments and docstrings (their syntax
    trees), so that a cache keyed on it survives an edit of the prose."""
    import ast
    h = hashlib.sha256()
    for f in files:
        tree = ast.parse(Path(f).read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        h.update(ast.dump(tree).encode())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (a fine-tuned teacher's content hash, a published
    model part's checksum)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str = ""):
    """Hold an exclusive lock on the file ``path`` (created if missing) for the block:
    another process that asks for the same lock (a second run started beside this one, a
    Snakemake job on the same machine) waits until the block ends, after saying what it
    waits for (``what``) on stderr. POSIX ``flock``; where ``fcntl`` does not exist
    (Windows) the block runs without a lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process{': ' + what if what else ''} ({path.name})",
                  file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename."""
    import torch  # torch is heavy; the helpers above serve torch-free readers too
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ------------------------------------------------------- published weights
PART_BYTES = 40 * 2**20  # committed weight files stay well below git hosts' file limits
MANIFEST = "manifest.json"  # names a published model's parts and their sha256


def publish_state(state: dict, info: dict, folder: str | os.PathLike) -> None:
    """Write a state dict and its training record to ``folder`` (committed with the
    results): the tensors cut into parts of at most ``PART_BYTES`` (whole tensors,
    exact values) and a ``manifest.json`` listing each part's tensors and sha256.
    Written into a temporary folder and renamed, so a reader sees all of it or none."""
    import torch
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    tmp.mkdir(exist_ok=True)
    parts, current, size = [], {}, 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > PART_BYTES:
            parts.append(current)
            current, size = {}, 0
        current[name] = tensor.detach().clone().contiguous()
        size += nbytes
    if current:
        parts.append(current)
    listing = []
    for i, part in enumerate(parts):
        path = tmp / f"part-{i:02d}.pt"
        torch.save(part, path)
        listing.append({"file": path.name, "tensors": sorted(part), "sha256": file_sha256(path)})
    (tmp / MANIFEST).write_text(json.dumps({"parts": listing, "info": info}, indent=1))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process published first
        shutil.rmtree(tmp, ignore_errors=True)


def load_published_state(folder: str | os.PathLike) -> tuple[dict, dict] | None:
    """The state dict and training record written by :func:`publish_state`, or ``None``
    when ``folder`` holds none. A part whose sha256 differs from the manifest is an
    error (a truncated or edited file), not a silent retrain."""
    import torch
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return None
    spec = json.loads(manifest.read_text())
    state = {}
    for part in spec["parts"]:
        path = Path(folder) / part["file"]
        if not path.is_file() or file_sha256(path) != part["sha256"]:
            raise OSError(f"{path}: missing or not the file its manifest lists (sha256 differs); "
                          "restore it from git or delete the folder to retrain")
        state.update(torch.load(path, map_location="cpu"))
    return state, spec["info"]
