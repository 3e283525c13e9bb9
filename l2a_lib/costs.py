"""What the study cost, from the wall times recorded in the result cache (the
reproduce page): per page, per method and task, per processor."""
from __future__ import annotations

import dataclasses
import json

import pandas as pd

from . import pages
from .config import TABLE1_METHODS, TASKS
from .profiles import make_config
from .records import load_results, read_record
from .runs import Context
from .workflow import Plan, depends_on, mlm_key, needs_teacher


def own_seconds(runs: pd.DataFrame) -> pd.Series:
    """Wall seconds of each run (one row per run) less the time it spent fine-tuning
    its teacher (``teacher_seconds``; older records count as zero). A Teacher-FT
    run's fine-tuning is its own work: nothing is taken out."""
    wall = runs["wall_seconds"].astype(float)
    if "teacher_seconds" not in runs:
        return wall
    teacher = runs["teacher_seconds"].astype(float).fillna(0.0)
    if "method" in runs:
        teacher = teacher.where(runs["method"] != "teacher_ft", 0.0)
    return wall - teacher


def page_seconds(profile: str = "cpu", ctx: Context | None = None) -> pd.DataFrame:
    """Per page: its runs (cached / total), their summed recorded wall time, and the
    page's last execution time: what reproducing each page costs. "threads per run"
    tells runs computed alone (2 threads on two cores) from those computed two at a
    time (one thread each, longer per run)."""
    ctx = ctx or Context()
    df = load_results(ctx.results_dir)
    walls = df.groupby("config_hash")["wall_seconds"].first() if len(df) else pd.Series(dtype=float)
    threads = (df.groupby("config_hash")["threads"].first()
               if len(df) and "threads" in df else pd.Series(dtype=float))
    path = pages.notebook_seconds_path(ctx.results_dir)
    executed = json.loads(path.read_text()).get(profile, {}) if path.is_file() else {}
    rows, seen = [], set()
    for p in pages.PAGES:
        hashes = [c.hash() for c in p.configs(profile)]
        new = [h for h in hashes if h not in seen]  # runs shared with earlier pages count there
        seen.update(hashes)
        have = [h for h in new if h in walls.index]
        rows.append({"page": p.name, "runs": len(hashes), "new runs": len(new),
                     "new runs cached": len(have),
                     "run hours (measured)": round(float(walls[have].sum()) / 3600, 2),
                     "threads per run": ", ".join(str(int(t)) for t in sorted(
                         set(threads.reindex(have).dropna()))) or None,
                     "page seconds": executed.get(p.name)})
    return pd.DataFrame(rows)


def method_seconds(profile: str = "cpu", table: str = "table1",
                   ctx: Context | None = None) -> pd.DataFrame:
    """What one run of each method costs: the median recorded wall time in minutes
    per method (rows) and task (columns) of ``table``, less any time a run spent
    fine-tuning its teacher, each cell with the torch threads of its runs."""
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
    order = [m for m in TABLE1_METHODS if m in out.index] + [
        m for m in out.index if m not in TABLE1_METHODS]
    return out.reindex(index=order, columns=[t for t in TASKS if t in out.columns]).fillna("")


def processor_factor(df: pd.DataFrame, cpu: str | None) -> tuple[float, int] | None:
    """(factor, kinds): how many times longer a run took on processor ``cpu`` than on
    the other processors the cache records, as the median over the kinds of run
    (method, task, profile, training size, threads) timed both here and elsewhere of
    the ratio of their median seconds (teacher fine-tuning aside). None without such a
    kind. Runs with no recorded processor are left out."""
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


def processor_times(profile: str = "cpu", ctx: Context | None = None) -> pd.DataFrame:
    """One row per processor the cached runs of ``profile`` record: how many runs were
    made on it, and how many times longer a run of the same kind took there than
    elsewhere (:func:`processor_factor`). Wall times compare only within one processor."""
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


def phase_seconds(profile: str = "cpu", ctx: Context | None = None) -> pd.DataFrame:
    """Where the runs' time went, by phase (``l2a_lib.ledger``): one row per run that
    records its phases (``extra["phases"]``, runs computed from the ledger on), with
    its method and task. Empty for a cache of older records."""
    from .ledger import PHASES
    ctx = ctx or Context()
    rows = []
    for path in sorted(ctx.runs.glob("*.json")):
        rec = read_record(path)
        phases = rec.get("extra", {}).get("phases")
        if phases and rec["config"].get("profile", profile) == profile:
            rows.append({"method": rec["config"]["method"], "task": rec["config"]["task"],
                         **{p: float(phases.get(p, 0.0)) for p in PHASES}})
    return pd.DataFrame(rows)


def hours_by_method(profile: str = "cpu", ctx: Context | None = None) -> pd.DataFrame:
    """Recorded wall hours of every cached run of ``profile``, summed per method (rows)
    and task (columns), over every table and study."""
    ctx = ctx or Context()
    df = load_results(ctx.results_dir)
    if not len(df):
        return pd.DataFrame()
    runs = df[df.profile == profile].groupby("config_hash").first()
    hours = runs.groupby(["method", "task"])["wall_seconds"].sum().unstack("task") / 3600
    order = [m for m in TABLE1_METHODS if m in hours.index] + sorted(
        m for m in hours.index if m not in TABLE1_METHODS)
    return hours.reindex(index=order, columns=[t for t in TASKS if t in hours.columns]).fillna(0.0)


def run_seconds(rec: dict, config) -> float:
    """A run's own wall seconds: its record's, less the fine-tuning of its teacher
    (a Teacher-FT run's fine-tuning is the teacher's job, counted once per teacher)."""
    teacher = float((rec.get("teacher") or {}).get("seconds") or 0.0)
    if config.method == "teacher_ft":
        teacher = float((rec.get("extra") or {}).get("fine_tune", {}).get("seconds", 0.0))
    return max(float(rec.get("wall_seconds") or 0.0) - teacher, 0.0)


def grid_status(profile: str = "cpu", ctx: Context | None = None) -> dict:
    """The grid of this process's settings (``profiles.FINAL_GRID``) against the cache:
    its runs; those cached and their recorded hours (the sum of each cached run's wall
    seconds, a teacher's fine-tuning included where the run did it) and, per task, how
    many were computed on each processor kind (``processors``); the missing ones,
    those whose configuration has a cached seed-0 run and their hours projected from it
    (its own time, without a teacher), and those with no measurement yet."""
    ctx = ctx or Context()
    plan = Plan(profile, ctx.results_dir)
    cached, recorded, projected, measured, unmeasured = 0, 0.0, 0.0, 0, 0
    processors: dict[str, dict[str, int]] = {}
    for h, c in plan.runs.items():
        if plan.result(h).is_file():
            cached += 1
            record = read_record(plan.result(h))
            recorded += float(record.get("wall_seconds") or 0.0)
            cpu = (record.get("environment") or {}).get("cpu") or "not recorded"
            processors.setdefault(c.task, {}).setdefault(cpu, 0)
            processors[c.task][cpu] += 1
            continue
        seed0 = plan.result(dataclasses.replace(c, seed=0).hash())
        if seed0.is_file():
            measured += 1
            projected += run_seconds(read_record(seed0), c)
        else:
            unmeasured += 1
    return {"runs": len(plan.runs), "cached": cached, "recorded_hours": round(recorded / 3600, 2),
            "missing": len(plan.runs) - cached, "missing_measured": measured,
            "missing_projected_hours": round(projected / 3600, 2), "missing_unmeasured": unmeasured,
            "processors": processors}


def final_grid_status(profile: str = "cpu") -> dict:
    """:func:`grid_status` of the final grid (issue 35), whatever this process's grid: the
    grid is a setting of the process (``L2A_FINAL_GRID``), so it is read in a child."""
    import os
    import subprocess
    import sys
    probe = ("import json; from l2a_lib.costs import grid_status; "
             f"print(json.dumps(grid_status({profile!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=dict(os.environ, L2A_FINAL_GRID="1"))
    if out.returncode != 0:
        raise RuntimeError(f"the final grid's status failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def grid_projection(profile: str = "cpu", ctx: Context | None = None) -> dict:
    """The whole grid's compute (every run of every page, all seeds), projected from
    measurement: each run costs the measured wall time of its configuration's seed-0
    run (its own time, without fine-tuning a teacher), each fine-tuned teacher the
    measured fine-tuning of its task's seed-0 teacher at the same training size, and
    the augmentation masked LM its recorded training time, once.

    A configuration counts as measured when its seed-0 run is in the cache; a
    measurement made beside another job (one thread; ``threads`` != 2) is counted and
    flagged (``grid_shared_measurements``). Also returned: ``grid_critical_path_hours``,
    the longest chain of dependent jobs (masked LM and teacher, then the run, then a run
    that reads its result): the wall time with one node per job."""
    ctx = ctx or Context()
    plan = Plan(profile, ctx.results_dir)
    runs = list(plan.runs.values())

    def record_of(config):
        path = ctx.runs / f"{config.hash()}.json"
        return read_record(path) if path.is_file() else None

    measured, shared = {}, 0
    for c in runs:
        c0 = dataclasses.replace(c, seed=0)
        if c0.hash() in measured:
            continue
        rec = record_of(c0)
        measured[c0.hash()] = None if rec is None else run_seconds(rec, c0)
        shared += rec is not None and ((rec.get("environment") or {}).get("threads") or 2) != 2
    teacher_s = {}
    for c in runs:
        if c.method == "teacher_ft" and c.seed == 0:
            rec = record_of(c)
            if rec is not None:
                key = (c.task, c.data.train_per_class, c.data.n_train)
                teacher_s[key] = float(rec["extra"]["fine_tune"]["seconds"])
    mlm_rec = record_of(make_config("tc", "mlm", 0, profile=profile))
    mlm_s = float(mlm_rec["extra"]["mlm"]["seconds"]) if mlm_rec else 0.0

    def own(c):
        return measured.get(dataclasses.replace(c, seed=0).hash())

    def teacher_time(c):
        return teacher_s.get((c.task, c.data.train_per_class, c.data.n_train), 0.0)

    total = sum(own(c) or 0.0 for c in runs)
    total += sum(teacher_time(t) for t in plan.teachers.values()) + mlm_s
    finish: dict[str, float] = {}

    def end(c) -> float:
        if c.hash() not in finish:
            start = max(mlm_s if mlm_key(c) else 0.0, teacher_time(c) if needs_teacher(c) else 0.0)
            ref = depends_on(c)
            if ref is not None and ref.hash() in plan.runs:
                start = max(start, end(ref))
            finish[c.hash()] = start + (own(c) or 0.0)
        return finish[c.hash()]

    path = max((end(c) for c in runs), default=0.0)
    return {"grid_hours": round(total / 3600, 2), "grid_runs": len(runs),
            "grid_configurations": len(measured),
            "grid_sample_runs": sum(v is not None for v in measured.values()),
            "grid_unmeasured": sum(v is None for v in measured.values()),
            "grid_shared_measurements": shared,
            "grid_teachers": len(plan.teachers), "grid_critical_path_hours": round(path / 3600, 2)}
