"""Episode checkpoints: an L2A run cut off (a session's end, ``kill -9``) resumes
at its last finished episode instead of starting again.

A run of Algorithm 1 is a loop of episodes. After each one, ``distill.run_l2a``
saves everything the next episodes read:

- the student, the projection W, their optimizer and learning-rate schedule;
- the selector (policy, its optimizer, the running state statistics) and the
  generator (its trainable masked LM and optimizer);
- the random streams (numpy's, the sampling ``torch.Generator``, torch's global
  one that dropout draws from);
- the episode log, the best dev score and the student that reached it;
- the teacher outputs computed so far (``TeacherCache``). They are saved, not
  recomputed, because a teacher output depends slightly on the other inputs of
  its padded batch; recomputing them in other batches would change the run's
  numbers.

A resumed run is therefore the same computation as one that was never
interrupted (on the same machine and thread count, like any rerun):
``tests/test_methods.py::test_an_l2a_run_cut_off_resumes_from_its_checkpoint_with_the_same_result``
checks that both give the same record. The record's ``wall_seconds`` adds up
the pieces, each up to its last checkpoint; ``extra.resumed_at_episode`` lists
where the run was resumed.

Layout, under ``<results_dir>/.checkpoints/<config hash>/`` (not committed):
``state.pt`` (replaced atomically after each episode), ``teacher-<k>.pt`` (the
teacher outputs added in episode k, written before the state that counts them)
and ``progress.json`` (episode reached and seconds spent, read by
``batch --dry-run``). The folder is removed once the run's record is written.
The config hash covers the code version, so a checkpoint is never resumed by a
different run.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import torch

STATE, PROGRESS = "state.pt", "progress.json"


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class EpisodeCheckpoint:
    """The checkpoint folder of one run."""

    def __init__(self, folder: Path, run_id: str = ""):
        self.folder = Path(folder)
        self.run_id = run_id

    def save(self, state: dict, teacher_entries: list, shard: int) -> None:
        """Save the state after episode ``shard`` and the teacher outputs added since
        the previous save (the shard first, so that a saved state never counts a
        shard that is not on disk)."""
        from .experiment import atomic_write_text
        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_save({"keys": [k for k, _ in teacher_entries],
                      "items": [v for _, v in teacher_entries]}, self.folder / f"teacher-{shard}.pt")
        _atomic_save({**state, "run_id": self.run_id, "shards": shard + 1}, self.folder / STATE)
        atomic_write_text(self.folder / PROGRESS, json.dumps({
            "episode": state["episode"], "episodes": state["episodes"],
            "seconds": round(state["seconds"], 1)}))

    def load(self) -> tuple[dict, list] | None:
        """(state, teacher entries in the order they were computed), or None when
        there is no checkpoint of this run. A checkpoint that cannot be read (a disk
        that filled up, files removed by hand) is reported, removed, and the run
        starts from the beginning."""
        if not (self.folder / STATE).is_file():
            return None
        try:
            state = torch.load(self.folder / STATE, map_location="cpu")
            if state.get("run_id") != self.run_id:
                raise ValueError(f"it belongs to run {state.get('run_id')}, not {self.run_id}")
            entries = []
            for k in range(state["shards"]):
                shard = torch.load(self.folder / f"teacher-{k}.pt", map_location="cpu")
                entries.extend(zip(map(tuple, shard["keys"]), shard["items"]))
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: start again
            warnings.warn(f"episode checkpoint {self.folder.name} cannot be read "
                          f"({type(e).__name__}: {e}); the run starts from the beginning")
            self.clear()
            return None
        return state, entries

    def clear(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)


def read_progress(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / PROGRESS).read_text())
    except (OSError, ValueError):
        return None


def rng_state(rng, gen: torch.Generator) -> dict:
    """The random streams a run draws from: numpy's, a ``torch.Generator`` and torch's
    global one (dropout)."""
    return {"numpy": rng.bit_generator.state, "generator": gen.get_state(),
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict, rng, gen: torch.Generator) -> None:
    rng.bit_generator.state = state["numpy"]
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
