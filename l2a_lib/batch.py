"""The batch runner: every table, figure, ablation and baseline in one command.

``BATCH`` is the one declarative list of (notebook, parameters) entries; each
entry also names the experiment runs its notebook reads. ``python -m l2a_lib
batch`` first computes every experiment run that is not in the result cache
(one subprocess per run: a crash or a kill loses at most that run, and each
finished run is written atomically), then executes every notebook with
papermill into ``book/`` (to a temporary file, renamed when complete), and
reports every failure at the end with its log.

    python -m l2a_lib batch --profile cpu --dry-run     # what would run, how long; ends "N runs left"
    python -m l2a_lib batch --only table1               # one entry
    python -m l2a_lib batch --print-commands            # plain commands, one per line (job arrays)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .checkpoint import read_progress
from .config import ExperimentConfig, make_config
from .experiment import Context, in_progress, is_cached, load_results, this_machine_kind, varied_value

TABLE1_METHODS = ["teacher_ft", "student_ft", "bilstm_soft", "distilbert", "bert_pkd4", "bert_pkd6",
                  "minilm", "tinybert", "eda", "cbert", "l2a"]
TASKS = ["tc", "pi", "nli", "reg"]
SEEDS = [0, 1, 2]
PROFILE_SEEDS = {"smoke": (0,), "cpu": tuple(SEEDS), "paper": tuple(SEEDS)}  # None in Needs = these
DATA_SIZES = [10, 20, 40, 80, 320]               # target training examples per class (Figure 2)
T_VALUES = [0.25, 0.5, 1.0, 2.0]                  # fill temperature T
ALPHA_VALUES = [0.0754, 0.0799, 0.0829, 0.0914]   # edit rates of about 5%, 10%, 15%, 35%


@dataclass(frozen=True)
class Needs:
    """A grid of experiment runs a notebook reads."""
    methods: tuple[str, ...]
    tasks: tuple[str, ...] = tuple(TASKS)
    seeds: tuple[int, ...] | None = None  # None: the profile's seeds (PROFILE_SEEDS)
    table: str | None = None  # None: each method's home table

    def configs(self, profile: str) -> list[ExperimentConfig]:
        return [make_config(t, m, s, profile=profile, table=self.table)
                for t in self.tasks for m in self.methods for s in self.seeds or PROFILE_SEEDS[profile]]


@dataclass(frozen=True)
class StudyNeeds:
    """The runs of a study (``experiment.STUDIES``) over some values."""
    study: str
    values: tuple
    methods: tuple[str, ...]
    tasks: tuple[str, ...] = ("tc",)
    seeds: tuple[int, ...] | None = None  # None: the profile's seeds

    def configs(self, profile: str) -> list[ExperimentConfig]:
        from .experiment import study_configs
        return [c for _, c in study_configs(self.study, self.values, self.tasks, self.methods,
                                            self.seeds or PROFILE_SEEDS[profile], profile)]


@dataclass(frozen=True)
class Entry:
    name: str                      # the book page (book/<name>.ipynb)
    notebook: str                  # the source (notebooks/<notebook>.ipynb)
    params: dict = field(default_factory=dict)
    needs: tuple[Needs, ...] = ()
    partial: bool = False          # the notebook renders with runs missing (lists them)
    title: str = ""                # the pending page's title while runs are missing

    def configs(self, profile: str) -> list[ExperimentConfig]:
        return [c for n in self.needs for c in n.configs(profile)]

    @property
    def seeded(self) -> bool:
        """Whether the notebook takes a ``seeds`` parameter (it reads per-seed runs)."""
        return any(n.seeds is None for n in self.needs)


BATCH: list[Entry] = [
    Entry("data", "data"),
    Entry("reliability", "reliability"),
    Entry("performance", "performance"),
    Entry("mlm", "mlm", needs=(Needs(("mlm",), seeds=(0,)),)),
    Entry("table1", "table1", {"methods": TABLE1_METHODS}, (Needs(tuple(TABLE1_METHODS)),),
          partial=True),
    Entry("table2", "table2", needs=(Needs(("teacher_ft", "student_ft", "l2a_wo_tgt", "l2a_wo_src",
                                              "l2a")),), partial=True,
          title="Table 2: cross-domain augmentation"),
    Entry("table3", "table3", needs=(Needs(("l2a", "l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"),
                                           tasks=("tc",)),), title="Table 3: the terms of L_KD"),
    Entry("l2a_training", "l2a_training", needs=(Needs(("l2a",)),), partial=True,
          title="Training L2A: episodes and the augmentation gallery"),
    Entry("claims", "claims", needs=(Needs(tuple(TABLE1_METHODS) + ("l2a_wo_src", "l2a_wo_tgt")),
                                     Needs(("l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"),
                                           tasks=("tc",)),
                                     # the shapes of Figure 2 and the sensitivity study
                                     StudyNeeds("fig2_data_size", tuple(DATA_SIZES),
                                                ("teacher_ft", "student_ft", "l2a")),
                                     StudyNeeds("sensitivity_T", tuple(T_VALUES), ("l2a",)),
                                     StudyNeeds("sensitivity_alpha", tuple(ALPHA_VALUES), ("l2a",))),
          partial=True, title="The paper's claims, one by one"),
    Entry("fig2_data_size", "study", {"study": "fig2_data_size", "values": DATA_SIZES,
                                      "methods": ["teacher_ft", "student_ft", "l2a"]},
          (StudyNeeds("fig2_data_size", tuple(DATA_SIZES), ("teacher_ft", "student_ft", "l2a")),),
          partial=True, title="Figure 2: target training size"),
    Entry("sensitivity_T", "study", {"study": "sensitivity_T", "values": T_VALUES, "methods": ["l2a"]},
          (StudyNeeds("sensitivity_T", tuple(T_VALUES), ("l2a",)),),
          partial=True, title="Sensitivity to the fill temperature T"),
    Entry("sensitivity_alpha", "study", {"study": "sensitivity_alpha", "values": ALPHA_VALUES,
                                         "methods": ["l2a"]},
          (StudyNeeds("sensitivity_alpha", tuple(ALPHA_VALUES), ("l2a",)),),
          partial=True, title="Sensitivity to the edit-distance temperature alpha"),
    Entry("reproduce", "reproduce"),  # last: it reports the other pages' execution times
]

# Seconds per run on the cpu profile when no cached run of the method says otherwise
DEFAULT_SECONDS = {"teacher_ft": 300, "student_ft": 60, "mlm": 60, "bilstm_soft": 200,
                   "distilbert": 150, "bert_pkd4": 120, "bert_pkd6": 150, "minilm": 90, "eda": 300,
                   "cbert": 400, "tinybert": 500}
L2A_SECONDS = 900


def select(entries: list[Entry], only: list[str] | None) -> list[Entry]:
    if not only:
        return entries
    picked = [e for e in entries if any(o in e.name for o in only)]
    if not picked:
        raise SystemExit(f"--only {only} matches none of {[e.name for e in entries]}")
    return picked


def pending(entries: list[Entry], profile: str, ctx: Context) -> list[ExperimentConfig]:
    """Unique experiment runs of ``entries`` not in the cache, in entry order."""
    seen, out = set(), []
    for e in entries:
        for c in e.configs(profile):
            h = c.hash()
            if h not in seen and not is_cached(c, ctx):
                out.append(c)
            seen.add(h)
    return out


def own_seconds(runs) -> pd.Series:
    """Wall seconds of each run (a results frame, one row per run) less the time it
    spent fine-tuning its teacher (``teacher_seconds``; recorded from the
    ``teacher`` field on, older records count as zero). A Teacher-FT run's
    fine-tuning is its own work: nothing is taken out."""
    wall = runs["wall_seconds"].astype(float)
    if "teacher_seconds" not in runs:
        return wall
    teacher = runs["teacher_seconds"].astype(float).fillna(0.0)
    if "method" in runs:
        teacher = teacher.where(runs["method"] != "teacher_ft", 0.0)
    return wall - teacher


def training_inputs(task: str, method: str, train_per_class, n_train, limit=None,
                    pool_size=None, source_share=None) -> float:
    """Inputs one run trains on per pass, the unit its cost grows with: the target
    training examples (``data.split_target``), or for an L2A method the inputs of
    one episode, which ``distill.run_l2a`` draws as at least one sample of every
    original plus ``pool_size * source_share`` source sentences. So L2A at 320
    examples per class costs 2.5 times its run at 40 (800 inputs per episode
    against 320), not 8 times as a fine-tuning run does."""
    from .data import TASK_REGISTRY
    spec = TASK_REGISTRY[task]
    n = (int(train_per_class) * spec.num_labels if spec.train_sampling == "per_class"
         else int(n_train))
    if limit is not None and limit == limit:  # the smoke profile caps every split (NaN: none)
        n = min(n, int(limit))
    if not method.startswith("l2a") or pool_size is None or pool_size != pool_size:
        return float(n)
    n_source = int(round(pool_size * source_share))
    n_target = (int(pool_size) - n_source) // n
    if source_share < 1.0:
        n_target = max(1, n_target)
    return float(n_target * n + n_source)


def _config_inputs(c: ExperimentConfig) -> float:
    l2a = c.l2a
    return training_inputs(c.task, c.method, c.data.train_per_class, c.data.n_train, c.data.limit,
                           l2a.pool_size if l2a else None, l2a.source_share if l2a else None)


def _row_inputs(row) -> float:
    return training_inputs(row["task"], row["method"], row["data.train_per_class"],
                           row["data.n_train"], row.get("data.limit"), row.get("l2a.pool_size"),
                           row.get("l2a.source_share"))


def _on_processor(rows, cpu: str | None):
    """The rows measured on processor ``cpu`` if there are any, else all of them: a
    cache made on another machine still gives an estimate, but this machine's own
    runs say more about it (an L2A episode on tc, two runs at once, took 27 s on an
    AMD EPYC and 120 s on an Intel Xeon whose bf16 matrix products are slower than
    its fp32 ones)."""
    if cpu is None or "cpu" not in rows or not len(rows):
        return rows
    mine = rows[rows["cpu"] == cpu]
    return mine if len(mine) else rows


def processor_factor(df, cpu: str | None) -> tuple[float, int] | None:
    """(factor, kinds): how many times longer a run takes on processor ``cpu`` than
    on the other processors the cache records, as the median over the kinds of run
    (method, task, profile, training size, threads) timed both here and elsewhere of the
    ratio of their median seconds (teacher fine-tuning aside, :func:`own_seconds`).
    None without such a kind. It scales an estimate that only runs made elsewhere
    can give (an L2A episode took several times longer on the Intel Xeon of the
    later sessions than on the AMD EPYC of the first). Runs with no recorded
    processor are left out: they may have been made on either."""
    if cpu is None or not len(df) or "cpu" not in df:
        return None
    runs = df[df["cpu"].notna()].groupby("config_hash").first()
    if not len(runs):
        return None
    threads = runs["threads"].astype(str) if "threads" in runs else ""
    kind = (runs["method"] + "|" + runs["task"] + "|" + runs["profile"] + "|"
            + runs["data.train_per_class"].astype(str) + "|" + threads)
    seconds = own_seconds(runs)
    here = seconds[runs["cpu"] == cpu].groupby(kind).median()
    there = seconds[runs["cpu"] != cpu].groupby(kind).median()
    ratios = (here / there).dropna()
    return (float(ratios.median()), len(ratios)) if len(ratios) else None


def _made_on(rows, cpu: str | None) -> bool:
    """Whether any of ``rows`` (cached runs) was made on processor ``cpu``."""
    return cpu is not None and "cpu" in rows and bool((rows["cpu"] == cpu).any())


def _timing_runs(c: ExperimentConfig, df, cpu: str | None = None):
    """The cached runs (rows of ``df``) that time ``c``, or None. Runs on ``c``'s task
    come first: of its own method, else, for an L2A method, of L2A itself, else of
    another L2A variant (an episode costs alike across them; tasks differ several
    times over). Among those, the first method with a run on processor ``cpu`` is
    preferred to one timed only elsewhere: reg L2A w/o src is timed by reg w/o tgt run
    here rather than by reg L2A scaled from another processor. With none on the
    task: the method on any task, else L2A on any task.
    A Teacher-FT run is timed by Teacher-FT runs on its task together with the
    fine-tunings other runs made of their teacher on it (:func:`_teacher_timings`)."""
    import pandas as pd
    if not len(df):
        return None
    rows = df[df.profile == c.profile]
    names = [c.method]
    if c.method.startswith("l2a"):
        names += ["l2a"] + sorted(m for m in set(rows.method)
                                  if m.startswith("l2a") and m not in (c.method, "l2a"))
    on_task = [rows[(rows.method == n) & (rows.task == c.task)] for n in names]
    if c.method == "teacher_ft":  # one group: their sizes may differ
        on_task[0] = pd.concat([on_task[0], _teacher_timings(rows[rows.task == c.task])])
    on_task = [r for r in on_task if len(r)]
    on_task = [r for r in on_task if _made_on(r, cpu)] + on_task
    if on_task:
        return on_task[0]
    for name in names[:2]:  # this method on any task, else L2A on any task
        if (rows.method == name).any():
            return rows[rows.method == name]
    return None


def _teacher_timings(rows):
    """The teacher fine-tunings that runs other than Teacher-FT made themselves
    (``teacher_seconds`` > 0), as Teacher-FT rows timed by those seconds: on a
    processor where no Teacher-FT run was made, they are the measure of one there
    (reg's teachers took several times longer on the Intel Xeon than its Teacher-FT
    runs made elsewhere, scaled by the processor ratio, would say), and at other
    training sizes they give the extrapolation a second size."""
    if "teacher_seconds" not in rows or not len(rows):
        return rows.iloc[0:0]
    made = rows[(rows.method != "teacher_ft")
                & (rows["teacher_seconds"].astype(float).fillna(0.0) > 0)].copy()
    made["wall_seconds"] = made["teacher_seconds"].astype(float)
    made["teacher_seconds"] = 0.0
    made["method"] = "teacher_ft"
    return made


def _run_estimate(c: ExperimentConfig, df, cpu: str | None = None,
                  factor: float | None = None) -> float:
    """Seconds of one run, teacher fine-tuning aside (see :func:`estimate_seconds`).
    ``factor`` (:func:`processor_factor`) scales an estimate made only from runs on
    other processors than ``cpu``."""
    use = _timing_runs(c, df, cpu)
    if use is None:
        return 10.0 if c.profile == "smoke" else float(DEFAULT_SECONDS.get(c.method, L2A_SECONDS))
    runs = _on_processor(use, cpu).groupby("config_hash").first()
    timed_here = _made_on(runs, cpu)
    scale = factor if factor is not None and cpu is not None and not timed_here else 1.0
    alike = runs[runs["data.train_per_class"] == c.data.train_per_class]
    if len(alike):  # the same training-set size (Figure 2 varies it)
        return float(own_seconds(alike).median()) * scale
    return size_seconds(own_seconds(runs), runs.apply(_row_inputs, axis=1),
                        _config_inputs(c)) * scale


def size_seconds(seconds, inputs, n: float) -> float:
    """Seconds of a run on ``n`` training inputs from runs of other sizes (``seconds``
    and ``inputs``, one per run). With runs at two or more input counts: the line
    ``a + b * inputs`` through the median seconds of each count (least squares), so
    that what does not grow with the training set (loading the models, the dev and
    test evaluations) is not scaled with it. Without, or when that line has a
    negative part: the median seconds per input times ``n``."""
    import numpy as np
    seconds, inputs = np.asarray(seconds, float), np.asarray(inputs, float)
    counts = np.unique(inputs)
    if len(counts) >= 2:
        medians = [np.median(seconds[inputs == k]) for k in counts]
        b, a = np.polyfit(counts, medians, 1)
        if a >= 0 and b >= 0:
            return float(a + b * n)
    return float(np.median(seconds / inputs)) * n


def teacher_run(c: ExperimentConfig) -> ExperimentConfig:
    """The Teacher-FT run that fine-tunes the teacher ``c`` distils (same data, seed, teacher)."""
    return dataclasses.replace(c, method="teacher_ft", augment=None, distill=None, mlm_steps=None,
                               l2a=None)


def processor_note(df, cpu: str) -> str:
    """One line: which processors the cached run times were measured on, and whether
    the estimates could use this machine's own."""
    if not len(df) or "cpu" not in df:
        return f"this machine: {cpu}; no cached run to time it by (default estimates)"
    counts = df.groupby(df["cpu"].fillna("unrecorded")).config_hash.nunique()
    counts = counts.sort_values(ascending=False)
    where = ", ".join(f"{name} ({n})" for name, n in counts.items())
    factor = processor_factor(df, cpu)
    if cpu not in counts.index:
        own = "none of them ran here, so the times may be off by a large factor"
    elif factor is None:
        own = "its own runs are used where there are any"
    else:
        own = (f"its own runs are used where there are any, and runs made only elsewhere "
               f"are scaled by {factor[0]:.2f} (the median ratio of {factor[1]} kind(s) of run "
               f"timed on both)")
    return f"this machine: {cpu}; cached run times from: {where}; {own}"


_HERE = object()  # estimate_seconds' default: this machine's processor


def estimate_seconds(configs: list[ExperimentConfig], ctx: Context,
                     cpu: str | None = _HERE, df=None,
                     charged: dict[str, tuple[str, float]] | None = None) -> dict[str, float]:
    """Seconds per config hash: the median wall time of the cached runs
    :func:`_timing_runs` picks (profile alike): the same method and task, else for an
    L2A variant (``l2a_wo_*``) L2A or another variant on the task, else the method
    (or L2A) on any task; else a default.
    Of those runs, the ones made on processor ``cpu`` (default: this machine's) are
    used when there are any (``None``: every run alike); when there are none, the
    estimate is scaled by :func:`processor_factor`.
    Runs of the same training-set size are preferred; without any, the seconds are
    extrapolated from the other sizes by training inputs (:func:`training_inputs`,
    :func:`size_seconds`).
    Teacher fine-tuning is counted apart: taken out of the recorded times, and the
    first run that needs a teacher missing from the local cache is charged that
    teacher's Teacher-FT estimate (unless it is that Teacher-FT run itself).
    Runs begun are timed by their own pace: a run with an episode checkpoint (cut
    off earlier, or going on in another process) is charged its episodes still to
    do at its seconds per episode so far (:func:`episode_seconds`), a teacher with an
    epoch checkpoint its epochs left (of the most it may run: early stopping may end
    it sooner) at its seconds per epoch. A run of a kind (:func:`_kind`) with no
    finished run on this processor but with runs begun is charged their median
    seconds per episode times its episodes.
    ``df``: the cached runs (``load_results``), when the caller has read them already.
    ``charged``: if given, filled with each charge (config hash -> (teacher key,
    seconds)), so that a caller can take it off once that teacher is saved
    (:func:`seconds_needed`)."""
    df = load_results(ctx.results_dir) if df is None else df
    cpu = this_machine_kind() if cpu is _HERE else cpu
    factor = (processor_factor(df, cpu) or (None,))[0]
    est = {c.hash(): _run_estimate(c, df, cpu, factor) for c in configs}
    for c in configs:
        done = resumes_from(c, ctx)
        if done is not None:  # no pace recorded: the share of its episodes left
            est[c.hash()] *= 1 - done[0] / done[1]
    est.update(paced_seconds(configs, ctx, df, cpu))
    trained = set()
    for c in configs:
        for key, f in needs(c, ctx).items():
            if not key.startswith("teacher:") or key in trained or f.is_file():
                continue
            trained.add(key)
            epochs = teacher_resumes_from(c, ctx)
            rest = _run_estimate(teacher_run(c), df, cpu, factor)
            pace = teacher_epoch_seconds(c, ctx) if epochs else None
            if pace is not None:  # the epochs left (at most) at the pace of those done
                rest = pace * (epochs[1] - epochs[0])
            if c.method != "teacher_ft":
                est[c.hash()] += rest
            else:
                est[c.hash()] = rest
            if charged is not None:
                charged[c.hash()] = (key, rest)
    return est


def paced_seconds(configs: list[ExperimentConfig], ctx: Context, df,
                  cpu: str | None) -> dict[str, float]:
    """Seconds still to go, teacher fine-tuning aside, of the runs in ``configs`` whose
    pace is measured: a run with an episode checkpoint, its episodes left at its own
    seconds per episode so far (:func:`episode_seconds`); a run of a kind
    (:func:`_kind`) with no finished run on processor ``cpu`` but with runs begun among
    ``configs``, its episodes at their median seconds per episode."""
    rates = {c.hash(): episode_seconds(c, ctx) for c in configs}
    live: dict[tuple, list[float]] = {}  # kind of run -> seconds per episode of its runs begun
    for c in configs:
        if rates[c.hash()] is not None:
            live.setdefault(_kind(c), []).append(rates[c.hash()])
    out = {}
    for c in configs:
        done, rate = resumes_from(c, ctx), rates[c.hash()]
        if done is not None and rate is not None:
            out[c.hash()] = rate * (done[1] - done[0])
        elif done is None and _kind(c) in live and not _timed_here(c, df, cpu):
            # no finished run of its kind here, but some begun: their pace says more
            # than runs of other tasks or methods (an nli L2A w/o src episode, on long
            # target sentences only, took 3 to 6 times one of w/o tgt, on short source ones)
            out[c.hash()] = statistics.median(live[_kind(c)]) * c.l2a.episodes
    return out


def time_left(configs: list[ExperimentConfig], planned: dict[str, float],
              started: dict[str, float], ratio: float, now: float, jobs: int,
              ctx: Context) -> float:
    """Wall seconds the batch still needs for ``configs`` (its runs not finished),
    ``started`` (config hash -> start time) of them running in its ``jobs`` slots.
    A run whose pace is measured (:func:`paced_seconds`: an episode checkpoint of
    its own or of runs of its kind) is timed by it, as ``--dry-run`` does now;
    any other by its estimate when the batch began (``planned``) times ``ratio``
    (how long the finished runs took against theirs), less the time it has run."""
    df = load_results(ctx.results_dir)
    cpu = this_machine_kind()
    fresh = estimate_seconds(configs, ctx, cpu=cpu, df=df)
    paced = paced_seconds(configs, ctx, df, cpu)

    def rest(c: ExperimentConfig) -> float:
        h = c.hash()
        ran = now - started[h] if h in started else 0.0
        if h in paced and resumes_from(c, ctx) is not None:
            return fresh[h]  # measured up to its last checkpoint
        return max(0.0, (fresh[h] if h in paced else planned[h] * ratio) - ran)
    return wall_seconds([rest(c) for c in configs if c.hash() not in started], jobs,
                        busy=[rest(c) for c in configs if c.hash() in started])


def _kind(c: ExperimentConfig) -> tuple:
    """Runs of one kind cost alike: the same method, task, profile and training size."""
    return c.method, c.task, c.profile, c.data.train_per_class


def _timed_here(c: ExperimentConfig, df, cpu: str | None) -> bool:
    """Whether the cache holds a finished run of ``c``'s kind made on processor ``cpu``."""
    if cpu is None or not len(df) or "cpu" not in df:
        return False
    return bool(((df.method == c.method) & (df.task == c.task) & (df.profile == c.profile)
                 & (df["data.train_per_class"] == c.data.train_per_class)
                 & (df["cpu"] == cpu)).any())


def episode_seconds(config: ExperimentConfig, ctx: Context) -> float | None:
    """Seconds per episode of a run cut off (or going on elsewhere) after an episode
    checkpoint: its episodes' own time (``loop_seconds``; checkpoints written before
    it was recorded give the run's whole time, teacher and setup included) over the
    episodes done. None without a checkpoint."""
    p = read_progress(ctx.checkpoint_dir(config))
    if not p or not p.get("episode"):
        return None
    return float(p.get("loop_seconds", p["seconds"])) / p["episode"]


def teacher_epoch_seconds(config: ExperimentConfig, ctx: Context) -> float | None:
    """Seconds per epoch of the teacher fine-tuning ``config`` needs, when it was cut
    off (or goes on elsewhere) after an epoch checkpoint; else None."""
    from .experiment import teacher_checkpoint
    p = read_progress(teacher_checkpoint(config, ctx.cache_dir).folder)
    return float(p["seconds"]) / p["epoch"] if p and p.get("epoch") else None


def resumes_from(config: ExperimentConfig, ctx: Context) -> tuple[int, int] | None:
    """(episodes done, episodes) of a run cut off after an episode checkpoint, else None."""
    p = read_progress(ctx.checkpoint_dir(config))
    return (p["episode"], p["episodes"]) if p else None


def run_label(config: ExperimentConfig) -> str:
    """How progress lines name a run: its task, method, the value a study varies
    (without it the runs of one study would read alike) and its seed."""
    value = varied_text(config)
    return f"{config.task} {config.method}{' ' + value if value else ''} seed={config.seed}"


def _varies_to(config: ExperimentConfig, values: list[float]) -> bool:
    """Whether ``config`` is a study's run whose varied value is one of ``values``."""
    varied = varied_value(config)
    return varied is not None and any(float(varied[1]) == float(v) for v in values)


def varied_text(config: ExperimentConfig) -> str:
    """"T=0.5" for a study's run (the value it varies), "" for any other run."""
    varied = varied_value(config)
    return f"{varied[0]}={varied[1]}" if varied else ""


def teacher_resumes_from(config: ExperimentConfig, ctx: Context) -> tuple[int, int] | None:
    """(epochs done, epochs) of the fine-tuning of the teacher ``config`` needs when it
    was cut off after an epoch checkpoint (and the teacher is not saved yet), else None."""
    from .experiment import teacher_checkpoint, teacher_files
    if config.method in ("student_ft", "mlm") or teacher_files(config, ctx.cache_dir)[1].is_file():
        return None
    p = read_progress(teacher_checkpoint(config, ctx.cache_dir).folder)
    return (p["epoch"], p["epochs"]) if p else None


def progress_text(config: ExperimentConfig, ctx: Context) -> str:
    """How far a run cut off (or being computed elsewhere) has got, from its
    checkpoints: "episode k/N done", "teacher epoch k/N done", or ""."""
    done = resumes_from(config, ctx)
    if done:
        return f"episode {done[0]}/{done[1]} done"
    epochs = teacher_resumes_from(config, ctx)
    return f"teacher epoch {epochs[0]}/{epochs[1]} done" if epochs else ""


def resume_note(config: ExperimentConfig, ctx: Context) -> str:
    """"resumes after episode k/N" for a run cut off after an episode checkpoint,
    "resumes its teacher's fine-tuning after epoch k/N" for one whose teacher was cut
    off after an epoch checkpoint, else ""."""
    done = resumes_from(config, ctx)
    if done:
        return f"resumes after episode {done[0]}/{done[1]}"
    epochs = teacher_resumes_from(config, ctx)
    return f"resumes its teacher's fine-tuning after epoch {epochs[0]}/{epochs[1]}" if epochs else ""


# ------------------------------------------------------------------ scheduling
def needs(config: ExperimentConfig, ctx: Context) -> dict[str, Path]:
    """The trained artefacts a run reads, each with the file that exists once it is
    trained: its fine-tuned teacher (every method but Student-FT and the masked LM
    itself) and the augmentation masked LM (runs with ``mlm_steps``). The masked
    LM counts as present when published with the results (``mlm.publish``)."""
    from . import mlm
    from .experiment import teacher_files, teacher_key
    from .methods import mlm_config
    out = {}
    if config.method not in ("student_ft", "mlm"):
        # the fine-tuning record: get_teacher writes it after the weights, so both are there
        out[f"teacher:{teacher_key(config)}"] = teacher_files(config, ctx.cache_dir)[1]
    if config.mlm_steps is not None:
        cfg = mlm_config(config)
        local, _, shelf = mlm.files(cfg, ctx.cache_dir, paths.results_dir(ctx.results_dir) / "mlm")
        manifest = shelf / mlm.MANIFEST
        out[f"mlm:{cfg.key()}"] = manifest if manifest.is_file() else local
    return out


def choose(queue: list[ExperimentConfig], running: list[ExperimentConfig],
           ctx: Context, in_order: bool = False) -> int | None:
    """Index in ``queue`` of the run to start next beside ``running``, or ``None``
    to wait for a running one to finish.

    First a run cut off after an episode checkpoint (``resumes_from``) or whose
    teacher's fine-tuning was (``teacher_resumes_from``), so that work begun is
    finished first; then the earliest run whose teacher and masked LM are
    all trained already; else the earliest run that trains nothing a running run is training now (two
    overlapping runs never fine-tune the same teacher twice: the second waits and
    then reuses it). On a fresh machine this also groups the runs of one teacher
    together, so a session that ends early has retrained few teachers.

    ``in_order`` (``--time-limit``, whose queue comes longest first): the first run
    that trains nothing a running run is training, with no preference for work begun
    or teachers saved, which would start the short runs first and leave a long one
    no time to end in.

    A run that another process is computing now (it holds the run's lock, e.g. a
    second batch command) is not started again: it waits, then is read from the cache."""

    def missing(c):
        return {k for k, f in needs(c, ctx).items() if not f.is_file()}
    in_flight = set().union(*(missing(c) for c in running)) if running else set()
    lacking = [None if in_progress(c, ctx) else missing(c) for c in queue]
    for i, c in enumerate(queue if not in_order else ()):  # work begun: episodes, else a teacher's epochs
        if lacking[i] is not None and ((resumes_from(c, ctx) and not lacking[i]) or (
                teacher_resumes_from(c, ctx) and not lacking[i] & in_flight)):
            return i
    for i, m in enumerate(lacking if not in_order else ()):
        if m is not None and not m:
            return i
    for i, m in enumerate(lacking):
        if m is not None and not m & in_flight:
            return i
    return None


def run_command(config: ExperimentConfig) -> list[str]:
    return [sys.executable, "-m", "l2a_lib", "run-config", json.dumps(config.to_dict())]


def _rel(path: Path) -> str:
    """A path relative to the repository when inside it (papermill records both paths
    in the executed notebook: a committed page must not name this machine's folders)."""
    try:
        return str(Path(path).resolve().relative_to(paths.REPO_ROOT.resolve()))
    except ValueError:
        return str(path)


def notebook_command(entry: Entry, profile: str, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "papermill", "--log-level", "WARNING", "-k", "python3",
           "--no-progress-bar", _rel(paths.REPO_ROOT / "notebooks" / f"{entry.notebook}.ipynb"),
           _rel(out), "-p", "profile", profile]
    params = dict(entry.params)
    if entry.seeded:
        params["seeds"] = list(PROFILE_SEEDS[profile])
    for k, v in params.items():
        cmd += ["-y", f"{k}: {json.dumps(v)}"]
    return cmd


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _open_log(log: Path, resumes: str = ""):
    """The run's log: new, or, for a run that resumes from a checkpoint (``resumes``
    says where), the log of its earlier pieces continued after a line saying so."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "a" if resumes and log.is_file() else "w")
    if resumes:
        fh.write(f"\n----- {resumes} -----\n")
    return fh


def _run_logged(cmd: list[str], log: Path, env: dict, resumes: str = "") -> int:
    with _open_log(log, resumes) as fh:
        fh.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        fh.flush()
        return subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                               cwd=paths.REPO_ROOT)


def _run_subprocess(config: ExperimentConfig, log: Path, env: dict, ctx: Context,
                    resumes: str = "") -> int:
    return _run_logged(run_command(config), log, env, resumes)


def _run_in_process(config: ExperimentConfig, log: Path, env: dict, ctx: Context,
                    resumes: str = "") -> int:
    """One run in this process (the smoke profile: saves the interpreter start-up
    and imports, which dominate a run of tiny models). Output and any traceback
    go to the run's log; the result file is still written atomically."""
    import contextlib
    import traceback
    from .experiment import run
    with _open_log(log, resumes) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        print(f"in-process run of {json.dumps(config.to_dict())}", flush=True)
        try:
            run(config, data_dir=ctx.data_dir, results_dir=ctx.results_dir)
            return 0
        except Exception:  # noqa: BLE001 - reported at the end with the log, the batch goes on
            traceback.print_exc(file=fh)
            return 1


def notebook_seconds_path(ctx: Context) -> Path:
    return paths.results_dir(ctx.results_dir) / "notebook_seconds.json"


def record_notebook_seconds(ctx: Context, profile: str, name: str, seconds: float) -> None:
    """Keep the last measured execution time of each page (the reproduce page shows them)."""
    from .experiment import atomic_write_text
    path = notebook_seconds_path(ctx)
    table = json.loads(path.read_text()) if path.is_file() else {}
    table.setdefault(profile, {})[name] = round(seconds, 1)
    atomic_write_text(path, json.dumps(table, indent=1, sort_keys=True) + "\n")


def entry_seconds(profile: str = "cpu", ctx: Context | None = None) -> "pd.DataFrame":
    """Per batch entry: its runs (cached / total), their summed recorded wall time, and
    the page's last execution time: what reproducing each page costs on this machine.
    "threads per run" tells the runs computed alone (2 threads on two cores) from
    those computed two at a time (``--jobs 2``, one thread each, longer per run)."""
    import pandas as pd
    ctx = ctx or Context()
    df = load_results(ctx.results_dir)
    walls = df.groupby("config_hash")["wall_seconds"].first() if len(df) else pd.Series(dtype=float)
    threads = (df.groupby("config_hash")["threads"].first()
               if len(df) and "threads" in df else pd.Series(dtype=float))
    nb = json.loads(notebook_seconds_path(ctx).read_text()).get(profile, {}) \
        if notebook_seconds_path(ctx).is_file() else {}
    rows, seen = [], set()
    for e in BATCH:
        hashes = [c.hash() for c in e.configs(profile)]
        new = [h for h in dict.fromkeys(hashes) if h not in seen]  # runs shared with earlier pages
        seen.update(hashes)
        have = [h for h in new if h in walls.index]
        rows.append({"page": e.name, "runs": len(set(hashes)), "new runs": len(new),
                     "new runs cached": len(have),
                     "run hours (measured)": round(float(walls[have].sum()) / 3600, 2),
                 "threads per run": ", ".join(str(int(t)) for t in sorted(
                     set(threads.reindex(have).dropna()))) or None,
                     "page seconds": nb.get(e.name)})
    return pd.DataFrame(rows)


def method_seconds(profile: str = "cpu", table: str = "table1", ctx: Context | None = None):
    """What one run of each method costs: the median recorded wall time in minutes
    per method (rows) and task (columns) of ``table``, less any time a run spent
    fine-tuning its teacher (recorded from the ``teacher`` field on), each cell
    with the torch threads of its runs ("2 thr": computed alone on two cores;
    "1 thr": two at a time with ``--jobs 2``)."""
    import pandas as pd
    ctx = ctx or Context()
    df = load_results(ctx.results_dir)
    if not len(df):
        return pd.DataFrame()
    runs = df[(df.profile == profile) & (df.table == table)].groupby("config_hash").first()
    if not len(runs):
        return pd.DataFrame()
    runs = runs.assign(minutes=own_seconds(runs) / 60)

    def cell(g):
        threads = "/".join(str(int(t)) for t in sorted(g["threads"].dropna().unique()))
        return f"{g['minutes'].median():.1f} ({threads or '?'} thr, n={len(g)})"
    out = runs.groupby(["method", "task"]).apply(cell, include_groups=False).unstack("task")
    order = [m for m in TABLE1_METHODS if m in out.index] + [m for m in out.index
                                                              if m not in TABLE1_METHODS]
    return out.reindex(index=order, columns=[t for t in TASKS if t in out.columns]).fillna("")


def processor_times(profile: str = "cpu", ctx: Context | None = None):
    """One row per processor the cached runs of ``profile`` record: how many runs
    were made on it, and how many times longer a run of the same kind took there
    than elsewhere (:func:`processor_factor`, with how many kinds of run it is the
    median over; empty when no kind was timed on both). Wall times above compare
    only within one processor."""
    import pandas as pd
    ctx = ctx or Context()
    df = load_results(ctx.results_dir)
    df = df[df.profile == profile] if len(df) else df
    if not len(df) or "cpu" not in df:
        return pd.DataFrame()
    runs = df.groupby(df["cpu"].fillna("not recorded")).config_hash.nunique()
    rows = []
    for cpu, n in runs.sort_values(ascending=False).items():
        factor = processor_factor(df, cpu) if cpu != "not recorded" else None
        rows.append({"processor": cpu, "runs": int(n),
                     "time vs the others": f"{factor[0]:.2f}x" if factor else "",
                     "kinds of run compared": factor[1] if factor else ""})
    return pd.DataFrame(rows).set_index("processor")


def pending_page(entry: Entry, missing: list[ExperimentConfig], total: int, profile: str) -> dict:
    """A placeholder page for an entry whose runs are not all computed: what is
    missing and the command that computes it (the book stays complete and
    navigable while the batch runs across sessions)."""
    import nbformat
    rows = "\n".join(f"| {c.table} | {c.task} | {c.method} | {c.seed} |" for c in missing[:40])
    more = f"\n\n... and {len(missing) - 40} more." if len(missing) > 40 else ""
    text = (f"# {entry.title or entry.name}\n\n"
            f":::{{note}}\nThis page is waiting for **{len(missing)} of {total}** experiment runs "
            f"of the {profile} profile, which are not in the result cache yet. Compute them (resumable, "
            f"one run at a time) and re-execute the page with\n\n"
            f"```\npython -m l2a_lib batch --profile {profile} --only {entry.name}\n```\n:::\n\n"
            f"| table | task | method | seed |\n|---|---|---|---|\n{rows}{more}\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def thread_env(jobs: int, env: dict, cores: int | None = None) -> dict:
    """Thread counts for ``jobs`` overlapping runs: the cores split between them, so
    that N runs do not each start one thread per core and oversubscribe the machine.
    Variables the user set are kept; one job keeps the libraries' defaults.

    Measured on two cores (student forward + backward, batch 32): one run with two
    threads 0.25 s/step; two runs with one thread each 0.41 s/step apiece, i.e. about
    a fifth more steps per second in total."""
    if jobs <= 1:
        return {}
    n = str(max(1, (cores or os.cpu_count() or 1) // jobs))
    return {k: n for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k not in env}


def main(args) -> int:
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: give at least 1 (experiment runs at once)")
    ctx = Context(args.data_dir, args.results_dir)
    entries = select(BATCH, args.only)
    if args.notebooks_only:
        args.execute_all = True
    todo = [] if args.notebooks_only else pending(entries, args.profile, ctx)
    todo = [c for c in todo if (not args.methods or c.method in args.methods)
            and (not args.tasks or c.task in args.tasks)
            and (args.seeds is None or c.seed in args.seeds)
            and (args.values is None or _varies_to(c, args.values))]
    cached = load_results(ctx.results_dir)
    charged: dict[str, tuple[str, float]] = {}
    est = estimate_seconds(todo, ctx, df=cached, charged=charged)
    limit = args.time_limit
    book = Path(args.book_dir) if args.book_dir else paths.REPO_ROOT / "book"
    logs = Path(args.log_dir) if args.log_dir else paths.REPO_ROOT / "logs" / "batch"
    todo_hashes = {c.hash() for c in todo}
    notebooks = [e for e in entries
                 if args.execute_all or not (book / f"{e.name}.ipynb").is_file()
                 or any(c.hash() in todo_hashes for c in e.configs(args.profile))]
    if args.print_commands:
        for c in todo:
            print(" ".join(shlex.quote(x) for x in run_command(c)))
        for e in notebooks:
            print(" ".join(shlex.quote(x) for x in notebook_command(e, args.profile, book / f"{e.name}.ipynb")))
        return 0
    total = sum(est.values())
    if args.dry_run:
        busy = {c.hash() for c in todo if in_progress(c, ctx)}
        # teachers a run computed elsewhere is fine-tuning now (not for the others to resume)
        training = {k for c in todo if c.hash() in busy for k, f in needs(c, ctx).items()
                    if k.startswith("teacher:") and not f.is_file()}
        if limit:
            # a run another process computes is not this batch's to start
            mine = [c for c in todo if c.hash() not in busy]
            marks, last = plan([run_parts(c, est, charged, ctx) for c in mine], args.jobs, limit)
            fit = dict(zip((c.hash() for c in mine), marks))
        for c in todo:
            if c.hash() in busy:  # its checkpoint tells how far the other process is
                done = progress_text(c, ctx)
                elsewhere = f"  (being computed by another process{', ' + done if done else ''})"
            elif training & set(needs(c, ctx)):
                done = progress_text(c, ctx)
                elsewhere = (f"  (waits for its teacher, which another process is fine-tuning"
                             f"{': ' + done if done else ''})")
            else:
                note = resume_note(c, ctx)
                elsewhere = f"  ({note})" if note else ""
            if limit and not fit.get(c.hash(), True):
                elsewhere += "  (not started: would end after the time limit)"
            print(f"run      {c.table:18s} {c.task:4s} {c.method:14s} {varied_text(c):20s} seed={c.seed}  "
                  f"~{_fmt(est[c.hash()])}{elsewhere}")
        for e in notebooks:
            print(f"notebook {e.name}")
        print(processor_note(cached, this_machine_kind()))
        print(f"estimated time: {_fmt(total)} for {len(todo)} experiment runs "
              f"(+ {len(notebooks)} notebook{'s' if len(notebooks) != 1 else ''}, about a minute each)")
        if args.jobs > 1 and todo:
            print(f"with --jobs {args.jobs}: about {_fmt(wall_seconds([est[c.hash()] for c in todo], args.jobs))} "
                  f"of wall time (the runs in this order, each in the first free slot)")
        if limit:
            inside = sum(fit.values()) + len(busy)
            print(f"within --time-limit {_fmt(limit)}: {inside} of {len(todo)} runs, longest "
                  f"first: about {_fmt(last)} of wall time; "
                  f"{len(todo) - inside} left for a later call")
        print(f"{len(todo)} runs left")
        return 0

    if any(c.data.source == "local" for c in todo):
        # refused once, here, with the reason: else every run would fail the same way
        paths.data_dir(args.data_dir)
    env = dict(os.environ, L2A_PROGRESS="0")
    if args.data_dir:
        env["L2A_DATA_DIR"] = str(args.data_dir)
    if args.results_dir:
        env["L2A_RESULTS_DIR"] = str(args.results_dir)
    env.update(thread_env(args.jobs, env))
    failures, t0 = [], time.time()
    left_out: list[ExperimentConfig] = []  # not started: they would end after the time limit

    started: dict[str, float] = {}  # config hash -> when its run started
    timed = {"estimated": 0.0, "took": 0.0}  # over the finished runs

    def needed(c: ExperimentConfig) -> float:
        return seconds_needed(c, est, charged, ctx)

    def fits(c: ExperimentConfig) -> bool:
        # at the pace of the runs finished so far when that is slower than the estimates
        # (never faster: a resumed run's short time says nothing of a run begun afresh)
        return time.time() + needed(c) * pace(timed) <= t0 + limit
    unfinished = {c.hash(): est[c.hash()] for c in todo}
    print(f"{len(todo)} experiment runs to compute (~{_fmt(total)}), {len(notebooks)} notebooks",
          flush=True)

    in_process = args.in_process if args.in_process is not None else args.profile == "smoke"
    if in_process:
        os.environ["L2A_PROGRESS"] = "0"

    def one(i_c):
        i, c = i_c
        log = logs / f"{c.table}_{c.task}_{c.method}_s{c.seed}_{c.hash()}.log"
        # one write per line: this runs in a worker thread while the main thread reports
        resumes = resume_note(c, ctx)
        started[c.hash()] = time.time()
        sys.stdout.write(f"  running {c.table} {run_label(c)} (log: {log.name})"
                         f"{f' ({resumes})' if resumes else ''}\n")
        sys.stdout.flush()
        code = (_run_in_process if in_process else _run_subprocess)(c, log, env, ctx, resumes)
        return c, code, log

    # in-process runs go one after another in this thread (their output is redirected
    # to the run's log, so nothing else may print meanwhile); subprocesses may overlap
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs)) if not in_process else None
    # overlapping runs are reported as they finish, not in the order they started
    finished = (_in_order(todo, one, fits if limit else None, left_out, size=needed) if in_process else
                _scheduled(pool, todo, args.jobs, ctx, one, fits=fits if limit else None,
                           left_out=left_out, size=needed))
    executed: list[str] = []

    def page(e: Entry) -> None:
        """Execute one page into book/ (or write its pending page)."""
        executed.append(e.name)
        k = len(executed)
        target = book / f"{e.name}.ipynb"
        tmp = book / f".{e.name}.ipynb.tmp"
        log = logs / f"notebook_{e.name}.log"
        configs = e.configs(args.profile)
        missing = [c for c in configs if not is_cached(c, ctx)]
        if missing and (not e.partial or len(missing) == len(configs)):
            import nbformat
            nbformat.write(pending_page(e, missing, len(configs), args.profile), str(tmp))
            os.replace(tmp, target)
            print(f"[notebook {k}/{len(notebooks)}] {e.name}: pending page ({len(missing)} of "
                  f"{len(configs)} runs missing)", flush=True)
            return
        started = time.time()
        code = _run_logged(notebook_command(e, args.profile, tmp), log, env)
        if code == 0:
            os.replace(tmp, target)  # a good notebook is only ever replaced by a complete one
            record_notebook_seconds(ctx, args.profile, e.name, time.time() - started)
        else:
            failures.append((f"notebook {e.name} (partial output: {tmp})", log))
        print(f"[notebook {k}/{len(notebooks)}] {e.name} {'ok' if code == 0 else 'FAILED'}", flush=True)

    book.mkdir(parents=True, exist_ok=True)
    # a page whose runs are all computed is executed at once, while the other runs go
    # on: a batch that spans sessions updates each page the moment it is complete
    waiting_pages = {e.name: {x.hash() for x in e.configs(args.profile)} & todo_hashes
                     for e in notebooks}
    try:
        for k, (c, code, log) in enumerate(finished, 1):
            now = time.time()
            elapsed = now - t0
            timed["estimated"] += unfinished.pop(c.hash())
            timed["took"] += now - started.pop(c.hash())
            # the rest at the pace of runs begun, else scaled by how long the finished
            # runs took against their estimates
            ratio = timed["took"] / max(timed["estimated"], 1e-9)
            running = dict(started)  # a copy: worker threads add to ``started``
            left = time_left([x for x in todo if x.hash() in unfinished], unfinished, running,
                             ratio, now, args.jobs, ctx)
            state = "ok" if code == 0 else f"FAILED (exit {code})"
            sys.stdout.write(f"[{k}/{len(todo)}] {run_label(c)} {state}; "
                             f"elapsed {_fmt(elapsed)}, ~{_fmt(left)} left\n")
            sys.stdout.flush()
            if code != 0:
                failures.append((f"run {c.table} {run_label(c)}", log))
            for e in notebooks:
                runs = waiting_pages[e.name]
                if c.hash() in runs:
                    runs.discard(c.hash())
                    if not runs and k < len(todo) and all(is_cached(x, ctx)
                                                          for x in e.configs(args.profile)):
                        page(e)
    finally:
        if pool is not None:  # on an interrupt, queued runs must not start
            pool.shutdown(wait=True, cancel_futures=True)
    for e in notebooks:
        if e.name not in executed:
            page(e)
    left = len(pending(entries, args.profile, ctx))
    late, elsewhere = not_started(left_out, ctx)
    if late:
        print(f"{len(late)} run(s) not started: each would have ended after the time limit "
              f"({_fmt(limit)}): " + "; ".join(run_label(c) for c in late))
    if elsewhere:
        print(f"{len(elsewhere)} run(s) not started here: another process is computing them "
              f"now: " + "; ".join(run_label(c) for c in elsewhere))
    for what, log in failures:
        print(f"FAILED: {what}; log: {log}")
    print(f"{left} runs left")
    return 1 if failures else 0


def wall_seconds(seconds: list[float], jobs: int, busy: list[float] = ()) -> float:
    """The wall time of runs lasting ``seconds`` each when ``jobs`` run at once, each
    started in order in the first slot to come free (the batch's own order, teachers
    aside); ``busy``: the time still to go of runs already in slots. The run times are
    taken as they were recorded, under the load of the runs beside them."""
    slots = (list(busy) + [0.0] * max(1, jobs))[:max(1, jobs, len(busy))]
    for s in seconds:
        k = slots.index(min(slots))
        slots[k] += s
    return max(slots)


def parse_duration(text: str) -> float:
    """Seconds in a duration written "2h40m", "90m", "1.5h", "45s" or as a bare number
    of seconds (``--time-limit``)."""
    t = str(text).strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", t)
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        seconds = float(t)
    elif parts and "".join(n + u for n, u in parts) == t:
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    else:
        raise ValueError(f"{text!r} is not a duration: write it like 2h40m, 90m, 1.5h or 45s")
    if seconds <= 0:
        raise ValueError(f"{text!r}: a time limit must be more than zero")
    return seconds


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def run_parts(c: ExperimentConfig, est: dict[str, float], charged: dict[str, tuple[str, float]],
              ctx: Context) -> tuple[float, float, dict[str, float]]:
    """Run ``c``'s time in parts, for :func:`seconds_needed` and :func:`plan`:
    ``(floor, own, missing)``. ``missing``: each artefact it needs that is not saved
    yet (:func:`needs`), with the seconds of training it (a teacher's fine-tuning as
    charged to whichever run, which may not have started; else 0); ``own``: its
    estimate without the fine-tuning it was charged; it takes ``max(floor, own +`` the
    seconds of the missing artefacts still unsaved when it starts ``)``. A Teacher-FT
    run's estimate is its own fine-tuning and is its floor (kept whole even once
    another run has saved its teacher)."""
    h = c.hash()
    teachers = {key: sec for key, sec in charged.values()}
    missing = {k: teachers.get(k, 0.0) for k, f in needs(c, ctx).items() if not f.is_file()}
    if c.method == "teacher_ft":
        return est[h], 0.0, missing
    return 0.0, est[h] - (charged[h][1] if h in charged else 0.0), missing


def seconds_needed(c: ExperimentConfig, est: dict[str, float],
                   charged: dict[str, tuple[str, float]], ctx: Context) -> float:
    """Seconds run ``c`` is expected to take if it starts now: its estimate
    (:func:`estimate_seconds`) without the teacher fine-tuning it was charged, plus the
    fine-tuning of every teacher it needs that is still not saved (whichever run was
    charged it: that run may not have started); a Teacher-FT run at least its own
    estimate (:func:`run_parts`)."""
    floor, own, missing = run_parts(c, est, charged, ctx)
    return max(floor, own + sum(missing.values()))


def not_started(left_out: list[ExperimentConfig],
                ctx: Context) -> tuple[list[ExperimentConfig], list[ExperimentConfig]]:
    """The runs ``--time-limit`` left out that are still not cached when the batch ends
    (another batch may have computed some meanwhile: those are not "left"), as
    ``(late, elsewhere)``: ``elsewhere``, those another process is computing now (they
    were not this batch's to start, whatever the limit); ``late``, the rest, which
    would have ended after the limit."""
    uncached = [c for c in left_out if not is_cached(c, ctx)]
    busy = [in_progress(c, ctx) for c in uncached]
    return ([c for c, b in zip(uncached, busy) if not b],
            [c for c, b in zip(uncached, busy) if b])


def pace(timed: dict[str, float]) -> float:
    """How many times their estimates the finished runs took, if more than once
    (``timed``: their summed ``took`` and ``estimated`` seconds), else 1."""
    return max(1.0, timed["took"] / timed["estimated"]) if timed["estimated"] > 0 else 1.0


def plan(parts: list[tuple[float, float, dict[str, float]]], jobs: int,
         limit: float) -> tuple[list[bool], float]:
    """Which runs a batch with ``--time-limit`` starts, and when the last of them ends
    (seconds from its start), if each takes its estimate: ``parts`` as
    :func:`run_parts` gives them, in the batch's order. The rules are those of
    :func:`_scheduled`: whenever a slot of ``jobs`` is free, of the runs that would end
    within ``limit`` and need nothing a running run is training, the longest starts
    (the earliest in order among equal ones). A run trains what it needs that is not
    saved, one after another from its start; a run that needs it later does not pay
    for it again. Once nothing runs and no run fits, the rest are not started."""
    inf = float("inf")
    saved: dict[str, float] = {}  # artefact -> when the run that trains it saves it
    running: list[tuple[float, int]] = []  # (end, index)
    queue, fit, t, last = list(range(len(parts))), [False] * len(parts), 0.0, 0.0

    def unsaved(i):
        return {k: sec for k, sec in parts[i][2].items() if saved.get(k, inf) > t}

    def needed(i):
        return max(parts[i][0], parts[i][1] + sum(unsaved(i).values()))

    while queue:
        training = {k for _, j in running for k in parts[j][2] if t < saved.get(k, inf) < inf}
        ok = [i for i in queue if not set(unsaved(i)) & training and t + needed(i) <= limit]
        if ok and len(running) < max(1, jobs):
            i = max(ok, key=needed)  # the first of the longest
            end, at = t + needed(i), t
            for k, sec in unsaved(i).items():
                at += sec
                saved[k] = at
            running.append((end, i))
            queue.remove(i)
            fit[i], last = True, max(last, end)
            continue
        if not running:
            break
        t = min(x for x in [e for e, _ in running] + [saved[k] for k in training] if x > t)
        running = [(e, j) for e, j in running if e > t]
    return fit, last


def _startable(queue: list[tuple[int, ExperimentConfig]], fits, size) -> list[int]:
    """Indices in ``queue`` of the runs ``fits`` accepts (all without it); with both
    ``fits`` and ``size``, longest first (the queue's order among equal ones)."""
    ok = [k for k, (_, c) in enumerate(queue) if fits is None or fits(c)]
    if fits is not None and size is not None:
        ok.sort(key=lambda k: -size(queue[k][1]))
    return ok


def _in_order(todo: list[ExperimentConfig], one, fits=None, left_out: list | None = None,
              size=None):
    """The runs one after another in this thread (in-process runs); with ``fits``,
    only runs it accepts start, with ``size`` too the longest of them first (as
    :func:`plan` plans them), and the runs it refuses at the end are put in
    ``left_out``."""
    queue = list(enumerate(todo))
    while queue:
        ok = _startable(queue, fits, size)
        if not ok:
            break
        yield one(queue.pop(ok[0]))
    if left_out is not None:
        left_out.extend(c for _, c in queue)


def _scheduled(pool, todo: list[ExperimentConfig], jobs: int, ctx: Context, one,
               poll: float = 30.0, fits=None, left_out: list | None = None, size=None):
    """Start runs on ``pool`` (at most ``jobs`` at once) in the order :func:`choose`
    gives; yield each ``one(...)`` result as its run finishes. Runs not yet started
    are never submitted, so an interrupt leaves them queued, not running.

    While a slot is free only because the queued runs wait for a teacher that a
    running run is fine-tuning, the queue is looked at again every ``poll`` seconds:
    the next run starts as soon as that teacher is saved, not when the (much longer)
    run that trained it ends. The same holds for a run another process is computing.

    ``fits`` (``--time-limit``): a queued run is only started while ``fits(run)`` is
    true (asked again each time a slot comes free); once nothing runs and no queued
    run fits, the rest are put in ``left_out`` and not started. With ``size`` (a run's
    expected seconds), the runs that fit start longest first, as :func:`plan`
    plans them: the short runs fill the time the long ones leave, instead of taking the
    time a long run needed while it still fitted."""
    queue, running = list(enumerate(todo)), {}
    while queue or running:
        while queue and len(running) < jobs:
            ok = _startable(queue, fits, size)
            pick = (choose([queue[k][1] for k in ok], list(running.values()), ctx,
                           in_order=fits is not None and size is not None) if ok else None)
            if pick is None:
                break
            i, c = queue.pop(ok[pick])
            running[pool.submit(one, (i, c))] = c
        if not running:
            if fits is not None and not any(fits(c) for _, c in queue):
                if left_out is not None:
                    left_out.extend(c for _, c in queue)
                return
            time.sleep(poll)  # every queued run waits for another process: look again later
            continue
        waiting = bool(queue) and len(running) < jobs
        done, _ = wait(list(running), timeout=poll if waiting else None,
                       return_when=FIRST_COMPLETED)
        for future in done:
            running.pop(future)
            yield future.result()


def add_parser(sub) -> None:
    from .config import METHODS, PROFILES, TASKS
    p = sub.add_parser("batch", help="compute every missing run and execute every notebook into book/")
    p.add_argument("--profile", choices=PROFILES, default="cpu")
    p.add_argument("--only", nargs="+", help="entries whose name contains one of these")
    p.add_argument("--methods", nargs="+", choices=METHODS, metavar="METHOD",
                   help="compute only these methods' runs (of the selected pages)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, metavar="TASK",
                   help="compute only these tasks' runs (of the selected pages)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                   help="compute only these seeds' runs (of the selected pages)")
    p.add_argument("--values", nargs="+", type=float, metavar="VALUE",
                   help="compute only the study runs that set the value a study varies to one of "
                        "these (e.g. --only fig2 --values 320: the runs at 320 examples per class)")
    p.add_argument("--time-limit", type=_duration, default=None, metavar="DURATION",
                   help="start no run expected (from the estimates of --dry-run) to end later than "
                        "this after the batch starts, e.g. 2h40m: for a job slot or session with a "
                        "wall-time limit. A run started is never stopped; the others are left for "
                        "the next call")
    p.add_argument("--dry-run", action="store_true", help="list what would run, with estimated time")
    p.add_argument("--jobs", type=int, default=1, help="experiment runs at once; the cores are split between them "
                        "(2 on two cores: about a fifth more runs per hour than 1)")
    p.add_argument("--print-commands", action="store_true",
                   help="print one plain command per run / notebook, for a scheduler")
    p.add_argument("--book-dir", default=None, help="where executed notebooks go (default: book/)")
    p.add_argument("--log-dir", default=None, help="one log per run (default: logs/batch/)")
    p.add_argument("--in-process", dest="in_process", action="store_true", default=None,
                   help="run experiments in this process (default for the smoke profile)")
    p.add_argument("--subprocess", dest="in_process", action="store_false",
                   help="one subprocess per experiment run (default for cpu / paper)")
    p.add_argument("--notebooks-only", action="store_true",
                   help="compute no run: execute the notebooks from the cache (pages whose runs "
                        "are missing become a page that lists them)")
    p.add_argument("--execute-all", action="store_true",
                   help="re-execute every notebook even if nothing changed")
    p.set_defaults(func=main)
