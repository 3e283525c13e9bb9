"""What ``workflow/Snakefile`` reads: every run of the pages under a profile, what
each run needs trained before it (its fine-tuned teacher, the augmentation masked
LM), and the threads, memory and wall time each job asks of a cluster, computed
from the run times recorded in the result cache.

The workflow engine is Snakemake; nothing here schedules anything.
"""
from __future__ import annotations

import dataclasses
import json
import math
from functools import cached_property
from pathlib import Path

from .errors import UnknownJob
from . import mlm, pages, paths
from .config import ExperimentConfig
from .profiles import learned_reference, make_config
from .records import is_cached, load_record
from .runs import Context
from .robustness import manifest_path
from .teacher import teacher_key

# torch threads of one job: the cpu profile's runs were computed with two threads
THREADS = {"smoke": 1, "cpu": 2, "paper": 4}
# GPUs a job asks the cluster for (the SLURM executor's ``gpu`` resource): the paper
# profile computes on one (``l2a_lib.device``: L2A_DEVICE=auto picks it)
GPUS = {"smoke": 0, "cpu": 0, "paper": 1}
# memory of a job whose kind has no recorded peak yet (records carry ``max_rss_mb``
# from this version on; the committed cpu-profile runs predate it)
FALLBACK_MEM_MB = {"smoke": 3000, "cpu": 8000, "paper": 16000}
RUNTIME_MARGIN = 1.5      # a job may take this many times the longest recorded run of its kind
RUNTIME_FLOOR_MIN = 10    # ... and at least this many minutes more (start-up, a slower node)
UNRECORDED_SECONDS = 3600  # a job whose profile has no recorded run at all (a new scratch folder)


def needs_teacher(c: ExperimentConfig) -> bool:
    """Whether run ``c`` reads a fine-tuned teacher: every method that distils one, and
    Student-FT when it is scored against the teacher's attention (the final grid), so
    that it waits for the teacher's job instead of fine-tuning a second copy."""
    return (c.method not in ("majority", "student_ft", "mlm")
            or "attention" in (c.extra_scores or ()))


def teacher_run(c: ExperimentConfig) -> ExperimentConfig:
    """The Teacher-FT run that fine-tunes the teacher ``c`` distils (same data, seed, teacher)."""
    return dataclasses.replace(c, method="teacher_ft", augment=None, distill=None, mlm_steps=None,
                               l2a=None)


def depends_on(c: ExperimentConfig) -> ExperimentConfig | None:
    """The run whose result ``c`` reads, if any: ``l2a_selector_random`` keeps at the keep
    rates of the full L2A run of its task and seed (a job after that one); the probe's
    oracle and the rule that keep at a learned selector's rates (``profiles.RATES_OF``), after that."""
    if c.l2a is not None and (c.l2a.selector_random or c.l2a.selector_oracle == "rates" or c.l2a.selector_rule):
        return learned_reference(c)
    return None


def mlm_key(c: ExperimentConfig) -> str | None:
    """The key of the augmentation masked LM run ``c`` reads, or None."""
    return mlm.config_of(c).key() if c.mlm_steps is not None else None


@dataclasses.dataclass
class Recorded:
    """What the cache tells of one finished run (for resources)."""
    method: str
    task: str
    profile: str
    train_per_class: int | None
    seconds: float               # its own wall time, without fine-tuning its teacher
    teacher_seconds: float       # fine-tuning its teacher, when it did so itself
    max_rss_mb: float | None


def _recorded(record: dict) -> Recorded:
    cfg = record["config"]
    teacher = record.get("teacher") or {}
    fine_tune = (record.get("extra") or {}).get("fine_tune") or {}
    wall = float(record.get("wall_seconds") or 0.0)
    if cfg["method"] == "teacher_ft":  # its fine-tuning is the teacher's
        tuned = float(fine_tune.get("seconds", wall))
        own = max(wall - tuned, 0.0)
    else:
        tuned = float(teacher.get("seconds") or 0.0)
        own = wall - tuned
    return Recorded(cfg["method"], cfg["task"], cfg["profile"], cfg["data"].get("train_per_class"),
                    own, tuned, (record.get("environment") or {}).get("max_rss_mb"))


class Plan:
    """Every run, teacher and masked LM of the pages under ``profile``."""

    def __init__(self, profile: str, results_dir=None, cache_dir=None):
        self.profile = profile
        self.results = paths.results_dir(results_dir)
        self.cache = paths.cache_dir(cache_dir)
        self.runs: dict[str, ExperimentConfig] = {c.hash(): c for c in pages.configs(profile)}
        self.teachers: dict[str, ExperimentConfig] = {}
        self.mlms: dict[str, ExperimentConfig] = {}
        for h, c in self.runs.items():
            if needs_teacher(c):
                self.teachers.setdefault(teacher_key(c), teacher_run(c))
            if mlm_key(c):
                self.mlms.setdefault(mlm_key(c), c)

    # ------------------------------------------------------------- files
    def result(self, h: str) -> Path:
        return self.results / "runs" / f"{h}.json"

    def teacher_file(self, key: str) -> Path:
        """The teacher's fine-tuning record (written after its weights)."""
        return self.cache / "teachers" / f"{key}.json"

    def noise_file(self, task: str) -> Path:
        return manifest_path(task, self.profile, self.cache)

    def mlm_file(self, key: str) -> Path:
        return self.results / "mlm" / key / paths.MANIFEST

    def run_inputs(self, h: str) -> dict[str, str]:
        """What run ``h`` reads that another job trains: its teacher and masked LM,
        only while its result is missing (a cached run never waits for a teacher
        that a new machine lacks, and is never recomputed because of one)."""
        if self.result(h).is_file():
            return {}
        c = self.run(h)
        out = {}
        if needs_teacher(c):
            out["teacher"] = str(self.teacher_file(teacher_key(c)))
        if mlm_key(c):
            out["mlm"] = str(self.mlm_file(mlm_key(c)))
        ref = depends_on(c)
        if ref is not None:
            out["learned"] = str(self.result(ref.hash()))
        if "noise" in (c.extra_scores or ()):  # scored on the noisy test copies
            out["noise"] = str(self.noise_file(c.task))
        return out

    def page_inputs(self, name: str, cached_only: bool = False) -> list[str]:
        """The result files page ``name`` reads (``cached_only``: those present)."""
        files = [self.result(c.hash()) for c in pages.page(name).configs(self.profile)]
        return [str(f) for f in files if not cached_only or f.is_file()]

    def run(self, h: str) -> ExperimentConfig:
        if h not in self.runs:
            raise UnknownJob(f"no run {h} among the pages of the {self.profile} profile "
                             f"({len(self.runs)} runs)")
        return self.runs[h]

    def teacher(self, key: str) -> ExperimentConfig:
        if key not in self.teachers:
            raise UnknownJob(f"no teacher {key} among the runs of the {self.profile} profile")
        return self.teachers[key]

    def mlm_run(self, key: str) -> ExperimentConfig:
        if key not in self.mlms:
            raise UnknownJob(f"no masked LM {key} among the runs of the {self.profile} profile")
        return self.mlms[key]

    # ------------------------------------------------------------- resources
    @cached_property
    def recorded(self) -> list[Recorded]:
        """Every finished run of the cache (read once, when a job's resources are asked)."""
        out = []
        for p in sorted((self.results / "runs").glob("*.json")):
            try:
                out.append(_recorded(json.loads(p.read_text())))
            except (ValueError, KeyError):
                continue  # a corrupt file is reported where it is read for results
        return out

    def _alike(self, task: str, size, method: str | None = None) -> list[Recorded]:
        """Recorded runs like (method, task, size) (``method`` None: runs that fine-tuned
        a teacher): this profile's, else (a profile with nothing recorded yet, such as
        ``paper`` on a GPU) the cpu profile's, which take longer than a GPU's. The same
        task and training size first, then the same task, then any."""
        def kind(r):
            return r.method == method if method else r.teacher_seconds > 0
        for profile in dict.fromkeys((self.profile, "cpu")):
            rows = [r for r in self.recorded if r.profile == profile and kind(r)]
            for pick in (lambda r: r.task == task and r.train_per_class == size,
                         lambda r: r.task == task, lambda r: True):
                found = [r for r in rows if pick(r)]
                if found:
                    return found
        return []

    def _minutes(self, seconds: list[float]) -> int:
        longest = max(seconds) if seconds else UNRECORDED_SECONDS
        return int(math.ceil(RUNTIME_MARGIN * longest / 60)) + RUNTIME_FLOOR_MIN

    def _mem(self, rows: list[Recorded]) -> int:
        peaks = [r.max_rss_mb for r in rows if r.max_rss_mb]
        if not peaks:
            return FALLBACK_MEM_MB[self.profile]
        return int(math.ceil(1.5 * max(peaks) / 100) * 100)

    def runtime(self, h: str) -> int:
        """Minutes to ask for run ``h``: the longest recorded run of its kind, its
        teacher's fine-tuning aside (a job of its own), times ``RUNTIME_MARGIN``."""
        c = self.run(h)
        return self._minutes([r.seconds for r in self._alike(c.task, c.data.train_per_class,
                                                              c.method)])

    def mem_mb(self, h: str) -> int:
        c = self.run(h)
        return self._mem(self._alike(c.task, c.data.train_per_class, c.method))

    def teacher_runtime(self, key: str) -> int:
        """Minutes to ask for fine-tuning teacher ``key``: the longest recorded
        fine-tuning of a teacher on its task and training size (by a Teacher-FT run or
        by the first run that needed it)."""
        c = self.teacher(key)
        return self._minutes([r.teacher_seconds for r in self._alike(c.task,
                                                                      c.data.train_per_class)])

    def teacher_mem_mb(self, key: str) -> int:
        c = self.teacher(key)
        return self._mem(self._alike(c.task, c.data.train_per_class, "teacher_ft"))

    def mlm_runtime(self, key: str) -> int:
        """Minutes to ask for training the masked LM: its recorded training time."""
        c = make_config("tc", "mlm", 0, profile=self.profile)
        seconds = []
        if is_cached(c, Context(results_dir=self.results)):
            seconds.append(float(load_record(c, self.results)["extra"]["mlm"]["seconds"]))
        return self._minutes(seconds)


def describe(plan: Plan) -> str:
    """One line for the Snakefile's start: how many runs the pages read, how many are cached."""
    cached = sum(plan.result(h).is_file() for h in plan.runs)
    return (f"{plan.profile} profile: {len(plan.runs)} runs for {len(pages.PAGES)} pages, "
            f"{cached} in the cache, {len(plan.runs) - cached} to compute; "
            f"{len(plan.teachers)} fine-tuned teachers")

