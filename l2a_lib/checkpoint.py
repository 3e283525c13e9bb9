"""Episode checkpoints: an L2A run cut off (a session's end, ``kill -9``) resumes
at its last finished episode instead of starting again. Epoch checkpoints
(:class:`EpochCheckpoint`) do the same for a fine-tuning, after its last epoch.

A run of Algorithm 1 is a loop of episodes. After each one, ``l2a.algorithm.run_l2a``
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
and ``progress.json`` (episode reached, seconds spent in all and in the episodes
themselves: a look at it tells how far a run has got, and the resumed run adds those
seconds to its wall time). The folder is removed once the run's record is written.
The config hash covers the code version, so a checkpoint is never resumed by a
different run.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import torch

from .ledger import booked
from .paths import atomic_torch_save, atomic_write_text

STATE, PROGRESS = "state.pt", "progress.json"


class _Checkpoint:
    """A checkpoint folder, owned by ``run_id`` (a checkpoint of another owner is never
    resumed)."""

    what = "checkpoint"

    def __init__(self, folder: Path, run_id: str = ""):
        self.folder = Path(folder)
        self.run_id = run_id

    def _check_owner(self, state: dict) -> None:
        if state.get("run_id") != self.run_id:
            raise ValueError(f"it belongs to {state.get('run_id')}, not {self.run_id}")

    def _discard(self, e: Exception) -> None:
        """Report a checkpoint that cannot be read (a disk that filled up, files removed
        by hand, another owner's) and remove it: the work starts from the beginning."""
        warnings.warn(f"{self.what} {self.folder.name} cannot be read "
                      f"({type(e).__name__}: {e}); it starts from the beginning")
        self.clear()

    def clear(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)


class EpisodeCheckpoint(_Checkpoint):
    """The checkpoint folder of one run. A state is saved after the first episode and
    then at most every ``L2A_CHECKPOINT_SECONDS`` (120 by default; 0: after every
    episode): an L2A state is about 0.6 GB (student, generator and their optimizers),
    and writing it after each of 20 episodes took 5% of a run. A run cut off loses at
    most that much work; what it resumes is the same computation either way."""

    what = "episode checkpoint"
    _last_save = 0.0

    def due(self) -> bool:
        """Whether the next episode's state should be saved (see the class)."""
        every = float(os.environ.get("L2A_CHECKPOINT_SECONDS", "120") or 0)
        return time.time() - self._last_save >= every

    @booked("checkpoints")
    def save(self, state: dict, teacher_entries: list, shard: int) -> None:
        """Save the state and, as shard number ``shard`` (0, 1, ...), the teacher
        outputs added since the previous save (the shard first, so that a saved state
        never counts a shard that is not on disk)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"keys": [k for k, _ in teacher_entries],
                      "items": [v for _, v in teacher_entries]}, self.folder / f"teacher-{shard}.pt")
        atomic_torch_save({**state, "run_id": self.run_id, "shards": shard + 1}, self.folder / STATE)
        progress = {"episode": state["episode"], "episodes": state["episodes"],
                    "seconds": round(state["seconds"], 1)}
        if "loop_seconds" in state:  # the episodes' own time (no teacher, no setup)
            progress["loop_seconds"] = round(state["loop_seconds"], 1)
        atomic_write_text(self.folder / PROGRESS, json.dumps(progress))
        self._last_save = time.time()

    def load(self) -> tuple[dict, list] | None:
        """(state, teacher entries in the order they were computed), or None when
        there is no checkpoint of this run. A checkpoint that cannot be read (a disk
        that filled up, files removed by hand) is reported, removed, and the run
        starts from the beginning."""
        if not (self.folder / STATE).is_file():
            return None
        try:
            state = torch.load(self.folder / STATE, map_location="cpu")
            self._check_owner(state)
            entries = []
            for k in range(state["shards"]):
                shard = torch.load(self.folder / f"teacher-{k}.pt", map_location="cpu")
                entries.extend(zip(map(tuple, shard["keys"]), shard["items"]))
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: start again
            self._discard(e)
            return None
        return state, entries


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


class EpochCheckpoint(_Checkpoint):
    """The per-epoch checkpoint of one fine-tuning (``train.train_loop``), so that a
    long one (a base-size teacher on 640 examples takes hours on a CPU) cut off at a
    session's end resumes after its last finished epoch.

    Layout of the folder: ``state.pt`` (model, optimizer, schedule, random streams,
    history and early-stopping counters; replaced atomically after each epoch),
    ``best-<epoch>.pt`` (the best dev state so far, written only when it changes and
    before the state that names it, so a saved state never points at a missing file)
    and ``progress.json`` (epochs done and seconds spent, added to the wall time of the
    run that resumes it). As for episode
    checkpoints, a resumed fine-tuning is the same computation as an uninterrupted one
    (``tests/test_train.py::test_a_fine_tuning_cut_off_resumes_after_its_last_epoch_with_the_same_result``).
    """

    what = "epoch checkpoint"

    @booked("checkpoints")
    def save(self, state: dict, best_state: dict | None, new_best: bool) -> None:
        """Save the state after epoch ``state["epoch"]``; ``best_state`` is written too
        when ``new_best`` (it changed in this epoch)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        best_epoch = state["best_epoch"]
        if new_best and best_state is not None:
            atomic_torch_save(best_state, self.folder / f"best-{best_epoch}.pt")
        atomic_torch_save({**state, "run_id": self.run_id}, self.folder / STATE)
        for old in self.folder.glob("best-*.pt"):  # superseded best states
            if old.name != f"best-{best_epoch}.pt":
                old.unlink(missing_ok=True)
        atomic_write_text(self.folder / PROGRESS, json.dumps({
            "epoch": state["epoch"] + 1, "epochs": state["epochs"],
            "seconds": round(state["seconds"], 1)}))

    def load(self) -> tuple[dict, dict | None] | None:
        """(state, best dev state or None), or None when there is no checkpoint. One
        that cannot be read is reported, removed, and the fine-tuning starts again."""
        if not (self.folder / STATE).is_file():
            return None
        try:
            state = torch.load(self.folder / STATE, map_location="cpu")
            self._check_owner(state)
            best = self.folder / f"best-{state['best_epoch']}.pt"
            best_state = torch.load(best, map_location="cpu") if state["has_best"] else None
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: start again
            self._discard(e)
            return None
        return state, best_state
