"""The batch runner: dry run, resumption after kill -9, nothing half-written."""
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes import killed_after_save

REPO = Path(__file__).resolve().parent.parent


def _batch(tmp: Path, *args, profile="smoke"):
    cmd = [sys.executable, "-m", "l2a_lib", "--results-dir", str(tmp / "results"), "batch",
           "--profile", profile, "--book-dir", str(tmp / "book"), "--log-dir", str(tmp / "logs"), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


@pytest.fixture
def env(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("L2A_DATA_DIR", str(data_dir))
    (tmp_path / "book").mkdir()
    return tmp_path


def test_dry_run_lists_runs_and_ends_with_runs_left(env):
    out = _batch(env, "--dry-run", "--only", "table3", profile="cpu")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "12 runs left"  # 4 variants x 3 seeds on tc
    assert sum(l.startswith("run ") for l in lines) == 12 and "estimated time" in out.stdout
    smoke = _batch(env, "--dry-run", "--only", "table3").stdout.strip().splitlines()
    assert smoke[-1] == "4 runs left"  # the smoke profile runs one seed


def test_notebooks_only_writes_pending_pages(env):
    out = _batch(env, "--notebooks-only", "--only", "table3", "sensitivity_T")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (env / "results" / "runs").exists() or not list((env / "results" / "runs").glob("*"))
    import nbformat
    for name, n in (("table3", 4), ("sensitivity_T", 4)):
        nb = nbformat.read(str(env / "book" / f"{name}.ipynb"), as_version=4)
        text = nb.cells[0].source
        assert f"**{n} of {n}**" in text and f"--only {name}" in text


def test_print_commands_one_per_line(env):
    out = _batch(env, "--print-commands", "--only", "mlm")
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 4 + 1 and all("l2a_lib run-config" in l for l in lines[:4])
    assert "papermill" in lines[-1]


@pytest.mark.parametrize("mode", ["--in-process", "--subprocess"])
def test_kill_minus_nine_then_resume(env, mode):
    cmd = [sys.executable, "-m", "l2a_lib", "--results-dir", str(env / "results"), "batch",
           "--profile", "smoke", "--only", "table3", "--book-dir", str(env / "book"),
           "--log-dir", str(env / "logs"), mode]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs = env / "results" / "runs"
    deadline = time.time() + 600
    while time.time() < deadline and len(list(runs.glob("*.json"))) < 2:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch and the run it is in the middle of
    proc.wait()
    finished = {p: p.read_bytes() for p in runs.glob("*.json")}
    assert len(finished) >= 2
    assert not list(runs.glob(".*")), "a temporary result file was left behind"
    assert not (env / "book" / "table3.ipynb").exists()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 runs left"
    for p, content in finished.items():  # finished runs were read, not recomputed
        assert p.read_bytes() == content
    assert len(list(runs.glob("*.json"))) == 4
    assert (env / "book" / "table3.ipynb").is_file() and not list((env / "book").glob(".*tmp"))


def test_a_page_is_executed_as_soon_as_its_runs_are_done(env):
    out = _batch(env, "--only", "mlm", "table3")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    runs = [i for i, l in enumerate(lines) if l.startswith("[") and "seed=" in l]
    assert len(runs) == 8 and lines[-1] == "0 runs left"  # 4 masked LMs, L2A and 3 variants
    assert all(", ~" in lines[i] and lines[i].endswith(" left") for i in runs)
    assert lines[runs[-1]].endswith("~0m00s left")  # nothing after the last run
    mlm_page = lines.index("[notebook 1/2] mlm ok")
    # the masked-LM page ran after its four runs, before the Table 3 runs that followed
    assert runs[3] < mlm_page < runs[4]
    assert lines.index("[notebook 2/2] table3 ok") > runs[-1]
    assert (env / "book" / "mlm.ipynb").is_file() and (env / "book" / "table3.ipynb").is_file()


def test_thread_env_splits_cores_between_jobs():
    from l2a_lib.batch import thread_env
    assert thread_env(1, {}, cores=2) == {}  # one job: the libraries' defaults
    assert thread_env(2, {}, cores=2) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert thread_env(2, {}, cores=8)["OMP_NUM_THREADS"] == "4"
    assert thread_env(4, {}, cores=2)["OMP_NUM_THREADS"] == "1"  # never zero threads
    assert thread_env(2, {"OMP_NUM_THREADS": "3"}, cores=2) == {"MKL_NUM_THREADS": "1"}  # user's kept


def test_jobs_below_one_is_refused(env):
    out = _batch(env, "--dry-run", "--jobs", "0", profile="cpu")
    assert out.returncode != 0 and "--jobs" in out.stderr


def _fake_record(ctx, config, wall: float, threads: int = 2, teacher_seconds=None,
                 cpu: str | None = None, bf16: bool | None = None) -> None:
    """A cached run with a given wall time (its metric value is irrelevant here)."""
    import json
    from l2a_lib.experiment import CODE_VERSION, cache_path
    path = cache_path(config, ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "config": config.to_dict(), "config_hash": config.hash(), "code_version": CODE_VERSION,
        "rows": [{"split": "test", "metric": "acc", "value": 0.5}], "n_params": 1,
        "sizes": {}, "wall_seconds": wall, "environment": {"threads": threads, "cpu": cpu, "bf16": bf16}}
    if teacher_seconds is not None:
        record["teacher"] = {"key": "k", "trained_here": teacher_seconds > 0,
                             "seconds": teacher_seconds}
    path.write_text(json.dumps(record))


def test_method_seconds_medians_without_teacher_time(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results")
    for seed, wall, teacher in ((0, 900.0, 600.0), (1, 360.0, 0.0), (2, 240.0, None)):
        _fake_record(ctx, make_config("tc", "eda", seed=seed), wall, threads=1,
                     teacher_seconds=teacher)
    _fake_record(ctx, make_config("pi", "l2a", seed=0), 1200.0, threads=2)
    table = batch.method_seconds("cpu", ctx=ctx)
    # eda on tc: 300 s (teacher time taken out), 360 s, 240 s -> median 5.0 minutes
    assert table.loc["eda", "tc"] == "5.0 (1 thr, n=3)"
    assert table.loc["l2a", "pi"] == "20.0 (2 thr, n=1)"
    assert table.loc["l2a", "tc"] == "" and list(table.index) == ["eda", "l2a"]


def test_entry_seconds_sums_wall_time_and_reports_threads(tmp_path):
    import pandas as pd
    from l2a_lib import batch
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results")
    entry = next(e for e in batch.BATCH if e.name == "mlm")
    configs = entry.configs("cpu")
    for c, wall, threads in zip(configs[:2], (1800.0, 5400.0), (2, 1)):
        _fake_record(ctx, c, wall, threads)
    pages = batch.entry_seconds("cpu", ctx).set_index("page")
    assert len(configs) == 4  # the masked LM of each task
    assert pages.loc["mlm", "new runs cached"] == 2
    assert pages.loc["mlm", "run hours (measured)"] == 2.0
    assert pages.loc["mlm", "threads per run"] == "1, 2"
    assert pages.loc["table1", "new runs cached"] == 0
    assert pd.isna(pages.loc["table1", "threads per run"])


def test_estimates_come_from_cached_runs_and_l2a_variants_from_l2a(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    for seed, wall in enumerate((100.0, 300.0, 200.0)):
        _fake_record(ctx, make_config("tc", "l2a", seed=seed, table="table1"), wall)
    _fake_record(ctx, make_config("pi", "eda", seed=0, table="table1"), 50.0)
    # a run that fine-tuned its teacher: those 600 s are not the method's
    _fake_record(ctx, make_config("pi", "eda", seed=1, table="table1"), 650.0, teacher_seconds=600.0)
    _fake_record(ctx, make_config("tc", "teacher_ft", seed=0, table="table1"), 120.0)
    todo = [make_config("tc", "l2a", seed=5, table="table1"),        # same method and task: median
            make_config("nli", "l2a", seed=0, table="table1"),       # same method, other task
            make_config("tc", "l2a_wo_att", seed=0, table="table3"),  # a variant: from l2a
            make_config("nli", "eda", seed=0, table="table1"),
            make_config("tc", "cbert", seed=0, table="table1")]      # nothing cached: the default
    _touch(next(iter(batch.needs(todo[1], ctx).values())))  # nli seed 0's teacher is trained
    est = batch.estimate_seconds(todo, ctx)
    # + 120 s: the first run of a teacher missing from the local cache fine-tunes it
    # (as long as tc's Teacher-FT took); later runs of the same teacher do not
    assert [est[c.hash()] for c in todo[:4]] == [200.0 + 120.0, 200.0, 200.0 + 120.0, 50.0]
    assert est[todo[4].hash()] == batch.DEFAULT_SECONDS.get("cbert", batch.L2A_SECONDS)
    # Figure 2's sizes: the same size is preferred, else the time scales with the inputs a
    # run trains on. L2A draws 160 source + max(1, 160 // n) samples of each of n originals
    # per episode: 320 inputs at 40 and at 80 per class, 800 at 320 per class
    big, huge = (make_config("tc", "l2a", seed=0, table="fig2_data_size", train_per_class=k)
                 for k in (80, 320))
    for c in (big, huge):
        _touch(next(iter(batch.needs(c, ctx).values())))
    est = batch.estimate_seconds([big, huge], ctx)
    assert (est[big.hash()], est[huge.hash()]) == (200.0, 500.0)  # 200 s at 40 per class
    _fake_record(ctx, dataclasses.replace(big, seed=1), 1000.0)
    assert batch.estimate_seconds([big], ctx)[big.hash()] == 1000.0
    # fine-tuning grows with the examples themselves: 8 x the 120 s of 40 per class
    teacher = make_config("tc", "teacher_ft", seed=0, table="fig2_data_size", train_per_class=320)
    assert batch.estimate_seconds([teacher], ctx)[teacher.hash()] == 960.0


def test_estimates_prefer_runs_made_on_this_processor(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context, load_results
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    for seed, (wall, cpu) in enumerate(((100.0, "Fast"), (120.0, "Fast"), (450.0, "Slow"))):
        _fake_record(ctx, make_config("tc", "l2a", seed=seed, table="table1"), wall, cpu=cpu)
    todo = make_config("tc", "l2a", seed=0, table="sensitivity_T", l2a_overrides={"temperature": 2.0})
    _touch(next(iter(batch.needs(todo, ctx).values())))  # its teacher is trained
    est = lambda cpu: batch.estimate_seconds([todo], ctx, cpu=cpu)[todo.hash()]
    assert est("Slow") == 450.0     # this machine's own run
    assert est("Fast") == 110.0     # the median of the two made there
    assert est("Other") == 120.0    # none made here: every run counts (median of 3)
    assert est(None) == 120.0
    df = load_results(ctx.results_dir)
    assert "none of them ran here" in batch.processor_note(df, "Other")
    note = batch.processor_note(df, "Slow")
    assert "Fast (2), Slow (1)" in note and "its own runs are used" in note


def test_runs_timed_only_elsewhere_are_scaled_by_the_processor_ratio(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context, load_results
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    # tc L2A timed on both processors: 3 times longer on "Slow"; pi only on "Fast"
    for seed, wall in enumerate((100.0, 120.0)):
        _fake_record(ctx, make_config("tc", "l2a", seed=seed, table="table1"), wall, cpu="Fast")
    _fake_record(ctx, make_config("tc", "l2a", seed=2, table="table1"), 330.0, cpu="Slow")
    _fake_record(ctx, make_config("pi", "l2a", seed=0, table="table1"), 200.0, cpu="Fast")
    _fake_record(ctx, make_config("pi", "eda", seed=0, table="table1"), 50.0)  # no processor
    df = load_results(ctx.results_dir)
    assert batch.processor_factor(df, "Slow") == (3.0, 1)      # 330 / median(100, 120)
    assert batch.processor_factor(df, "Fast") == (pytest.approx(1 / 3.0), 1)
    assert batch.processor_factor(df, "Other") is None         # nothing timed here
    todo = [make_config("pi", "l2a", seed=1, table="table1"),
            make_config("tc", "l2a", seed=3, table="table1")]
    for c in todo:
        _touch(next(iter(batch.needs(c, ctx).values())))  # teachers trained
    est = batch.estimate_seconds(todo, ctx, cpu="Slow")
    assert est[todo[0].hash()] == 600.0    # timed on Fast only: 200 s x 3
    assert est[todo[1].hash()] == 330.0    # this machine's own run, unscaled
    assert batch.estimate_seconds(todo, ctx, cpu="Other")[todo[0].hash()] == 200.0
    assert "scaled by 3.00" in batch.processor_note(df, "Slow")
    table = batch.processor_times("cpu", ctx=ctx)
    assert table.loc["Fast", "runs"] == 3 and table.loc["Slow", "time vs the others"] == "3.00x"
    assert table.loc["not recorded", "time vs the others"] == ""


def test_an_l2a_variant_is_timed_by_its_task_before_another_task(tmp_path):
    """An L2A variant with no run yet is timed by L2A runs on its own task (an episode
    of reg costs several times one of pi), and of those by a variant made on this
    processor before L2A made elsewhere and scaled."""
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    # the method itself on another task, made here; L2A on reg made on a processor
    # twice as fast (tc timed on both says so); w/o tgt on reg made here
    _fake_record(ctx, make_config("pi", "l2a_wo_src", seed=0, table="table2"), 100.0, cpu="Here")
    _fake_record(ctx, make_config("tc", "l2a", seed=0, table="table1"), 50.0, cpu="Fast")
    _fake_record(ctx, make_config("tc", "l2a", seed=1, table="table1"), 100.0, cpu="Here")
    _fake_record(ctx, make_config("reg", "l2a", seed=0, table="table1"), 1000.0, cpu="Fast")
    todo, other = (make_config(task, "l2a_wo_src", seed=0, table="table2") for task in ("reg", "nli"))
    for c in (todo, other):
        _touch(next(iter(batch.needs(c, ctx).values())))  # its teacher is trained
    est = lambda c=todo: batch.estimate_seconds([c], ctx, cpu="Here")[c.hash()]
    assert est(other) == 100.0  # no L2A run of any kind on nli: the method on pi
    assert est() == 2000.0  # reg L2A, x 2 for this processor (not pi's 100 s)
    _fake_record(ctx, make_config("reg", "l2a_wo_tgt", seed=0, table="table2"), 3000.0,
                 cpu="Here")
    assert est() == 3000.0  # a variant on reg made here, unscaled
    _fake_record(ctx, make_config("reg", "l2a_wo_src", seed=1, table="table2"), 2500.0,
                 cpu="Here")
    assert est() == 2500.0  # the method's own run on reg comes first


def test_other_sizes_are_extrapolated_by_a_line_through_the_sizes_run(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    # one size: seconds per input (through zero); two: a fixed part plus a part per input
    assert batch.size_seconds([100.0, 140.0], [20, 20], 640) == pytest.approx(120.0 * 32)
    assert batch.size_seconds([300.0, 400.0, 500.0], [20, 40, 40], 640) == pytest.approx(
        150.0 + 7.5 * 640)  # medians 300 at 20 and 450 at 40
    # a line that falls with the inputs is not trusted: per input again
    assert batch.size_seconds([400.0, 300.0], [20, 40], 80) == pytest.approx(
        (20.0 + 7.5) / 2 * 80)
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    for k, wall in ((10, 300.0), (20, 450.0)):  # 20 and 40 inputs (2 classes)
        _fake_record(ctx, make_config("tc", "teacher_ft", seed=0, table="fig2_data_size",
                                      train_per_class=k), wall)
    big = make_config("tc", "teacher_ft", seed=0, table="fig2_data_size", train_per_class=320)
    assert batch.estimate_seconds([big], ctx)[big.hash()] == pytest.approx(150.0 + 7.5 * 640)


def test_a_teacher_is_timed_by_the_fine_tunings_other_runs_made_here(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    # Teacher-FT on reg made only on a processor twice as fast (tc says so)
    _fake_record(ctx, make_config("tc", "l2a", seed=0, table="table1"), 50.0, cpu="Fast")
    _fake_record(ctx, make_config("tc", "l2a", seed=1, table="table1"), 100.0, cpu="Here")
    _fake_record(ctx, make_config("reg", "teacher_ft", seed=0, table="table1"), 200.0, cpu="Fast")
    todo = make_config("reg", "l2a_wo_src", seed=2, table="table2")
    charged = {}
    assert batch.estimate_seconds([todo], ctx, cpu="Here", charged=charged) == {
        todo.hash(): 100.0 + 400.0}  # L2A (none on reg: tc's 100 s here) + the teacher, scaled
    assert charged[todo.hash()][1] == 400.0
    # two runs here fine-tuned their teacher (900 and 1100 s of their wall time) and a
    # third loaded it (0 s): the teacher is charged the median of the two
    for seed, teacher in ((0, 900.0), (1, 1100.0), (2, 0.0)):
        _fake_record(ctx, make_config("reg", "l2a_wo_tgt", seed=seed, table="table2"),
                     3000.0 + teacher, cpu="Here", teacher_seconds=teacher)
    est = batch.estimate_seconds([todo], ctx, cpu="Here")[todo.hash()]
    assert est == 3000.0 + 1000.0
    # a Teacher-FT run at a size never run: a line through the sizes of both kinds
    # (tc: 2 classes, so 20, 40 and 160 inputs)
    for k, teacher in ((10, 300.0), (20, 450.0)):
        _fake_record(ctx, make_config("tc", "l2a", seed=0, table="fig2_data_size",
                                      train_per_class=k), 2000.0, cpu="Here",
                     teacher_seconds=teacher)
    _fake_record(ctx, make_config("tc", "teacher_ft", seed=1, table="fig2_data_size",
                                  train_per_class=10), 300.0, cpu="Here")
    big = make_config("tc", "teacher_ft", seed=0, table="fig2_data_size", train_per_class=80)
    assert batch.estimate_seconds([big], ctx, cpu="Here")[big.hash()] == pytest.approx(
        150.0 + 7.5 * 160)


def test_training_inputs_follow_run_l2a():
    from l2a_lib.batch import training_inputs
    assert training_inputs("tc", "teacher_ft", 40, 80) == 80.0        # 40 per class, 2 classes
    assert training_inputs("pi", "student_ft", 40, 300) == 300.0      # PI keeps its natural n_train
    assert training_inputs("tc", "l2a", 10, 80, None, 320, 0.5) == 320.0   # 8 x 20 + 160
    assert training_inputs("tc", "l2a", 320, 80, None, 320, 0.5) == 800.0  # 1 x 640 + 160
    assert training_inputs("tc", "l2a_wo_tgt", 40, 80, None, 320, 1.0) == 320.0  # source only
    assert training_inputs("tc", "eda", 40, 80, 48) == 48.0           # smoke: capped by limit


def test_methods_and_tasks_filters_restrict_the_runs(env):
    out = _batch(env, "--dry-run", "--only", "table2", "--methods", "l2a_wo_src", "--tasks", "pi",
                 profile="cpu")
    assert out.returncode == 0, out.stderr
    runs = [ln.split() for ln in out.stdout.splitlines() if ln.startswith("run ")]
    assert len(runs) == 3 and {(r[2], r[3]) for r in runs} == {("pi", "l2a_wo_src")}
    assert out.stdout.strip().splitlines()[-1] == "3 runs left"
    bad = _batch(env, "--dry-run", "--methods", "no_such_method", profile="cpu")
    assert bad.returncode != 0 and "no_such_method" in bad.stderr


def test_study_runs_are_listed_with_the_value_they_vary(env):
    out = _batch(env, "--dry-run", "--only", "sensitivity_T", "--methods", "l2a", profile="cpu")
    assert out.returncode == 0, out.stderr
    runs = [ln.split() for ln in out.stdout.splitlines() if ln.startswith("run ")]
    study = [r for r in runs if r[1] == "sensitivity_T"]
    values = {r[4] for r in study}
    assert all(v.startswith("T=") for v in values) and len(values) >= 3
    # without the value, runs of one seed would read alike: with it, each line is one run
    assert len({(r[4], r[5]) for r in study}) == len(study)
    # the default T is Table 1's L2A run, shared by the study and listed once under table1
    assert {r[1] for r in runs} == {"sensitivity_T", "table1"}
    from l2a_lib.batch import run_label
    from l2a_lib.config import make_config
    assert run_label(make_config("tc", "teacher_ft", seed=1, table="fig2_data_size",
                                 train_per_class=80)) == "tc teacher_ft train_per_class=80 seed=1"
    assert run_label(make_config("pi", "l2a", seed=0, table="table1")) == "pi l2a seed=0"


def test_a_run_cut_off_after_a_checkpoint_is_listed_and_estimated_as_resuming(env):
    from l2a_lib import batch
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=env / "results", cache_dir=env / "cache")
    entry = next(e for e in batch.BATCH if e.name == "table2")
    cut = next(c for c in entry.configs("cpu") if c.method == "l2a_wo_src" and c.task == "pi")
    _touch(next(iter(batch.needs(cut, ctx).values())))  # its teacher is trained
    folder = ctx.checkpoint_dir(cut)
    folder.mkdir(parents=True)
    (folder / "progress.json").write_text('{"episode": 15, "episodes": 20, "seconds": 900.0}')
    assert batch.resumes_from(cut, ctx) == (15, 20)
    # the 5 episodes left at its own pace: 900 s over 15 episodes
    assert batch.estimate_seconds([cut], ctx)[cut.hash()] == pytest.approx(300.0)
    out = _batch(env, "--dry-run", "--only", "table2", "--methods", "l2a_wo_src", "--tasks", "pi",
                 profile="cpu")
    runs = [ln for ln in out.stdout.splitlines() if ln.startswith("run ")]
    marked = [ln for ln in runs if "(resumes after episode 15/20)" in ln]
    assert len(runs) == 3 and len(marked) == 1 and f"seed={cut.seed}" in marked[0]


def test_runs_begun_are_timed_by_their_own_pace_and_time_their_siblings(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    runs = [make_config("nli", "l2a_wo_src", seed=s, table="table2") for s in range(3)]
    other = make_config("nli", "l2a_wo_tgt", seed=0, table="table2")
    for c in runs + [other]:
        _touch(next(iter(batch.needs(c, ctx).values())))  # teachers trained
    # a pi run of the same method, made here: without anything begun, nli is timed by it
    _fake_record(ctx, make_config("pi", "l2a_wo_src", seed=0, table="table2"), 1000.0, cpu="Here")
    before = batch.estimate_seconds(runs + [other], ctx, cpu="Here")
    assert before[runs[1].hash()] == 1000.0
    folder = ctx.checkpoint_dir(runs[0])
    folder.mkdir(parents=True)
    # 10 of 20 episodes: 5000 s in all, 4000 s of them in the episodes (teacher, set-up aside)
    (folder / "progress.json").write_text(
        '{"episode": 10, "episodes": 20, "seconds": 5000.0, "loop_seconds": 4000.0}')
    assert batch.episode_seconds(runs[0], ctx) == 400.0
    est = batch.estimate_seconds(runs + [other], ctx, cpu="Here")
    assert est[runs[0].hash()] == 4000.0                          # 10 episodes left x 400 s
    assert est[runs[1].hash()] == est[runs[2].hash()] == 8000.0   # 20 episodes x 400 s
    assert est[other.hash()] == before[other.hash()]              # another method: as before
    # a finished run of the kind made here is preferred to the pace of runs begun
    _fake_record(ctx, dataclasses.replace(runs[2], seed=7), 6000.0, cpu="Here")
    assert batch.estimate_seconds(runs, ctx, cpu="Here")[runs[1].hash()] == 6000.0
    # a checkpoint written before loop_seconds was recorded: the whole time
    (folder / "progress.json").write_text('{"episode": 10, "episodes": 20, "seconds": 5000.0}')
    assert batch.estimate_seconds(runs[:1], ctx, cpu="Here")[runs[0].hash()] == 5000.0


def test_the_time_left_paces_runs_begun_and_scales_the_others(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    begun, sibling = (make_config("nli", "l2a_wo_src", seed=s, table="table2") for s in (0, 1))
    fresh, other = (make_config("tc", "l2a_wo_tgt", seed=s, table="table2") for s in (0, 1))
    configs = [begun, sibling, fresh, other]
    for c in configs:
        _touch(next(iter(batch.needs(c, ctx).values())))  # teachers trained
    folder = ctx.checkpoint_dir(begun)
    folder.mkdir(parents=True)
    (folder / "progress.json").write_text(
        '{"episode": 10, "episodes": 20, "seconds": 5000.0, "loop_seconds": 4000.0}')
    planned = {begun.hash(): 600.0, sibling.hash(): 600.0, fresh.hash(): 500.0,
               other.hash(): 1000.0}
    now = 10_000.0
    started = {begun.hash(): now - 4500.0, fresh.hash(): now - 300.0}  # running
    # running: begun 10 episodes x 400 s = 4000; fresh 500 x 2 - 300 = 700
    # queued, in order: sibling 20 x 400 = 8000 (after fresh), other 1000 x 2 (after begun)
    left = batch.time_left(configs, planned, started, 2.0, now, 2, ctx)
    assert left == max(700.0 + 8000.0, 4000.0 + 2000.0) == 8700.0
    # without any pace, the planned estimates x the ratio as before
    folder.joinpath("progress.json").unlink()
    left = batch.time_left(configs, planned, started, 2.0, now, 2, ctx)
    # running: begun 600 x 2 - 4500 -> 0, fresh 700; queued: sibling 1200 (after begun),
    # other 2000 (after fresh)
    assert left == max(0.0 + 1200.0, 700.0 + 2000.0) == 2700.0


def test_the_batch_resumes_an_l2a_run_from_its_checkpoint_and_keeps_its_log(env, monkeypatch):
    from l2a_lib import checkpoint, experiment
    from l2a_lib.config import make_config
    cfg = make_config("tc", "l2a_wo_att", seed=0, table="table3", profile="smoke")
    # a kill right after the checkpoint of episode 1
    with killed_after_save(monkeypatch, checkpoint.EpisodeCheckpoint, exc=KeyboardInterrupt):
        experiment.run(cfg, results_dir=env / "results")
    log = env / "logs" / f"table3_tc_l2a_wo_att_s0_{cfg.hash()}.log"
    log.parent.mkdir()
    log.write_text("the first piece's log\n")
    out = _batch(env, "--only", "table3", "--methods", "l2a_wo_att")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(resumes after episode 1/2)" in out.stdout
    text = log.read_text()
    assert text.startswith("the first piece's log") and "----- resumes after episode 1/2 -----" in text
    assert "resumed after episode 1/2 from its checkpoint" in text
    assert experiment.load_record(cfg, env / "results")["extra"]["resumed_at_episode"] == [1]
    assert not (env / "results" / ".checkpoints" / cfg.hash()).exists()


def test_choose_finishes_a_run_cut_off_after_a_checkpoint_first(tmp_path):
    from l2a_lib.batch import choose, needs
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    queue = [make_config("tc", "l2a", seed=s, profile="smoke") for s in (0, 1, 2)]
    for c in queue:
        for f in needs(c, ctx).values():
            _touch(f)
    assert choose(queue, [], ctx) == 0
    folder = ctx.checkpoint_dir(queue[2])
    folder.mkdir(parents=True)
    (folder / "progress.json").write_text('{"episode": 1, "episodes": 2, "seconds": 5.0}')
    assert choose(queue, [], ctx) == 2
    (tmp_path / "cache" / "teachers").rename(tmp_path / "gone")  # its teacher is not here
    assert choose(queue, [], ctx) == 0


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_choose_prefers_trained_teachers_and_never_trains_one_twice(tmp_path):
    from l2a_lib.batch import choose, needs
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    tc0, tc1 = (make_config("tc", "distilbert", seed=s, profile="smoke") for s in (0, 1))
    tc0_ft = make_config("tc", "teacher_ft", seed=0, profile="smoke")
    student = make_config("pi", "student_ft", seed=0, profile="smoke")
    assert set(needs(student, ctx)) == set()  # Student-FT reads no teacher
    assert needs(tc0, ctx) == needs(tc0_ft, ctx)  # one teacher per task, seed and data
    # the very file get_teacher writes once the teacher is fine-tuned
    from l2a_lib.experiment import teacher_files
    assert list(needs(tc0, ctx).values()) == [teacher_files(tc0, ctx.cache_dir)[1]]
    assert choose([tc0, tc1], [], ctx) == 0  # nothing trained: queue order
    _touch(next(iter(needs(tc1, ctx).values())))
    assert choose([tc0, tc1], [], ctx) == 1  # seed 1's teacher exists: that run first
    # tc seed 0's teacher is being trained by a running run: wait rather than train it twice
    assert choose([tc0], [tc0_ft], ctx) is None
    assert choose([tc0, student], [tc0_ft], ctx) == 1
    l2a = make_config("tc", "l2a", seed=1, profile="smoke")
    from l2a_lib import mlm
    from l2a_lib.methods import mlm_config
    local = mlm.files(mlm_config(l2a), ctx.cache_dir)[0]  # where mlm.train caches it
    assert needs(l2a, ctx)[f"mlm:{mlm_config(l2a).key()}"] == local
    assert choose([l2a], [make_config("tc", "cbert", seed=0, profile="smoke")], ctx) is None


def test_scheduled_runs_of_one_teacher_do_not_overlap(tmp_path):
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from l2a_lib.batch import _scheduled, needs
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    todo = [make_config("tc", m, seed=s, profile="smoke")
            for s in (0, 1) for m in ("teacher_ft", "distilbert", "bert_pkd4")]
    lock, active, events = threading.Lock(), [], []

    def one(i_c):
        i, c = i_c
        with lock:
            active.append(c)
            events.append(("start", c.seed, len({x.seed for x in active}) == len(active)))
        time.sleep(0.05)
        teacher = next(iter(needs(c, ctx).values()))
        if not teacher.is_file():
            _touch(teacher)  # this run trained the teacher
        with lock:
            active.remove(c)
        return c, 0, None

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(_scheduled(pool, todo, 2, ctx, one))
    assert sorted(c.hash() for c, _, _ in done) == sorted(c.hash() for c in todo)
    # the first two starts are one run per seed (two teachers trained at once, each once)
    assert [e[1] for e in events[:2]] == [0, 1] and all(ok for _, _, ok in events[:2])


def test_a_run_waiting_for_a_teacher_starts_once_it_is_saved(tmp_path):
    """A run that needs the teacher a running run is fine-tuning starts when the
    teacher is saved, while that run still goes on (not when it ends)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from l2a_lib.batch import _scheduled, needs
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    todo = [make_config("tc", m, seed=0, profile="smoke") for m in ("l2a", "distilbert")]
    saved, finished, starts = threading.Event(), threading.Event(), {}

    def one(i_c):
        i, c = i_c
        starts[c.method] = finished.is_set()
        if c.method == "l2a":
            for f in needs(c, ctx).values():
                _touch(f)  # fine-tuned its teacher (and trained its masked LM)...
            saved.set()
            time.sleep(1.5)  # ... and goes on distilling
            finished.set()
        return c, 0, None

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(_scheduled(pool, todo, 2, ctx, one, poll=0.05))
    assert [c.method for c, _, _ in done] == ["distilbert", "l2a"]
    assert starts == {"l2a": False, "distilbert": False}  # started while L2A was running


def test_a_run_another_process_computes_waits_and_is_not_started_twice(tmp_path):
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from l2a_lib.batch import _scheduled, choose
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context, run_lock
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    a, b = (make_config("pi", "student_ft", seed=s, profile="smoke") for s in (0, 1))
    release = threading.Event()
    started: list[str] = []

    def hold():  # another process computing run a (flock: another open file conflicts)
        with run_lock(a, ctx):
            locked.set()
            release.wait(5)

    locked = threading.Event()
    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(5)
    try:
        assert choose([a, b], [], ctx) == 1 and choose([a], [], ctx) is None

        def one(i_c):
            started.append(f"{i_c[1].seed}:{'locked' if not release.is_set() else 'free'}")
            if i_c[1] is b:
                release.set()  # the other process finishes run a meanwhile
            return i_c[1], 0, None

        with ThreadPoolExecutor(max_workers=1) as pool:
            done = list(_scheduled(pool, [a, b], 1, ctx, one, poll=0.05))
    finally:
        release.set()
        holder.join()
    assert started == ["1:locked", "0:free"]  # a started only once its lock was released
    assert [c.seed for c, _, _ in done] == [1, 0]


def test_teacher_ft_keeps_its_own_fine_tuning_time(tmp_path):
    """A Teacher-FT record names its teacher with the seconds it fine-tuned it: that is
    the run's own work, not time to take out (as it is for a run that distils it)."""
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context, load_results
    ctx = Context(results_dir=tmp_path / "results")
    _fake_record(ctx, make_config("tc", "teacher_ft", seed=0), 300.0, teacher_seconds=290.0)
    _fake_record(ctx, make_config("tc", "eda", seed=0), 400.0, teacher_seconds=290.0)
    runs = load_results(ctx.results_dir).groupby("config_hash").first()
    own = dict(zip(runs["method"], batch.own_seconds(runs)))
    assert own == {"teacher_ft": 300.0, "eda": 110.0}


def test_missing_teacher_is_charged_once_at_its_own_size(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context, teacher_key
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    _fake_record(ctx, make_config("tc", "teacher_ft", seed=0), 120.0)  # 40 per class
    _fake_record(ctx, make_config("tc", "l2a", seed=0), 200.0)
    l2a, teacher = (make_config("tc", m, seed=1, table="fig2_data_size", train_per_class=320)
                    for m in ("l2a", "teacher_ft"))
    assert teacher_key(batch.teacher_run(l2a)) == teacher_key(l2a)
    # alone, the L2A run fine-tunes its 320-per-class teacher: 500 s + 8 x 120 s
    assert batch.estimate_seconds([l2a], ctx)[l2a.hash()] == 500.0 + 960.0
    # after the Teacher-FT run that trains it, it is charged nothing more
    est = batch.estimate_seconds([teacher, l2a], ctx)
    assert (est[teacher.hash()], est[l2a.hash()]) == (960.0, 500.0)


def _write_epoch_5(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "progress.json").write_text('{"epoch": 5, "epochs": 20, "seconds": 600.0}')


def _largest_fig2_runs(ctx):
    """(size, Teacher-FT run, L2A run, their teacher's checkpoint folder) of Figure 2's
    largest training size, seed 1."""
    from l2a_lib import batch
    from l2a_lib.experiment import teacher_checkpoint
    entry = next(e for e in batch.BATCH if e.name == "fig2_data_size")
    size = max(c.data.train_per_class for c in entry.configs("cpu"))
    ft, l2a = (next(c for c in entry.configs("cpu") if c.method == m and c.seed == 1
                    and c.data.train_per_class == size) for m in ("teacher_ft", "l2a"))
    return size, ft, l2a, teacher_checkpoint(ft, ctx.cache_dir).folder


def test_a_teacher_cut_off_after_an_epoch_is_resumed_first_and_estimated_by_its_epochs_left(env):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=env / "results", cache_dir=env / "cache")
    size, ft, l2a, folder = _largest_fig2_runs(ctx)
    other = make_config("tc", "teacher_ft", seed=0, table="table1")
    for c in (ft, l2a, other):
        for key, f in batch.needs(c, ctx).items():
            if key.startswith("mlm:"):
                _touch(f)
    whole = batch.estimate_seconds([ft, l2a], ctx)
    assert batch.choose([other, l2a, ft], [], ctx) == 0  # nothing begun: queue order
    _write_epoch_5(folder)
    assert batch.teacher_resumes_from(l2a, ctx) == batch.teacher_resumes_from(ft, ctx) == (5, 20)
    assert batch.teacher_resumes_from(other, ctx) is None
    assert batch.choose([other, l2a, ft], [], ctx) == 1  # the run that resumes the teacher
    assert batch.choose([other, l2a], [ft], ctx) == 0  # ... but never beside the one resuming it
    cut = batch.estimate_seconds([ft, l2a], ctx)
    assert cut[ft.hash()] == pytest.approx(1800.0)  # 15 epochs left x 120 s (600 s over 5)
    assert cut[l2a.hash()] == pytest.approx(whole[l2a.hash()])  # the teacher is charged to ft
    assert batch.resume_note(l2a, ctx) == "resumes its teacher's fine-tuning after epoch 5/20"
    out = _batch(env, "--dry-run", "--only", "fig2_data_size", "--methods", "teacher_ft", "l2a",
                 profile="cpu")
    marked = [ln for ln in out.stdout.splitlines() if "fine-tuning after epoch 5/20" in ln]
    assert len(marked) == 2 and all(f"={size} " in ln and "seed=1" in ln for ln in marked)
    _touch(batch.needs(ft, ctx)[next(iter(batch.needs(ft, ctx)))])  # the teacher is saved now
    assert batch.teacher_resumes_from(l2a, ctx) is None and batch.resume_note(l2a, ctx) == ""


def test_the_wall_time_of_parallel_runs_fills_the_first_free_slot():
    from l2a_lib.batch import wall_seconds
    assert wall_seconds([10, 10, 10, 10], 2) == 20
    assert wall_seconds([30, 10, 10, 10], 2) == 30  # the long run's slot is busy meanwhile
    assert wall_seconds([5, 7], 1) == 12 and wall_seconds([5, 7], 4) == 7
    assert wall_seconds([], 2) == 0
    # slots still busy for 25 and 5: the queued 10 goes in the second
    assert wall_seconds([10], 2, busy=[25, 5]) == 25 and wall_seconds([30], 2, busy=[25, 5]) == 35


def test_the_dry_run_tells_a_run_computed_elsewhere_from_one_waiting_for_its_teacher(env):
    from l2a_lib import batch
    from l2a_lib.experiment import Context, run_lock
    ctx = Context(results_dir=env / "results", cache_dir=env / "cache")
    size, ft, l2a, folder = _largest_fig2_runs(ctx)
    _write_epoch_5(folder)
    with run_lock(ft, ctx):  # another process fine-tunes the teacher in its Teacher-FT run
        out = _batch(env, "--dry-run", "--only", "fig2_data_size", "--methods", "teacher_ft",
                     "l2a", profile="cpu")
    assert out.returncode == 0, out.stderr
    mine = {m: [ln for ln in out.stdout.splitlines() if f" {m} " in ln and f"={size} " in ln
                and "seed=1" in ln] for m in ("teacher_ft", "l2a")}
    assert mine["teacher_ft"][0].endswith(
        "(being computed by another process, teacher epoch 5/20 done)")
    assert mine["l2a"][0].endswith(
        "(waits for its teacher, which another process is fine-tuning: teacher epoch 5/20 done)")
    others = [ln for ln in out.stdout.splitlines() if ln.startswith("run ") and "seed=1" not in ln]
    assert others and not any("another process" in ln for ln in others)
    folder.joinpath("progress.json").unlink()  # no epoch done yet: nothing to count
    with run_lock(ft, ctx):
        out = _batch(env, "--dry-run", "--only", "fig2_data_size", "--methods", "teacher_ft",
                     "l2a", profile="cpu")
    mine = {m: [ln for ln in out.stdout.splitlines() if f" {m} " in ln and f"={size} " in ln
                and "seed=1" in ln] for m in ("teacher_ft", "l2a")}
    assert mine["teacher_ft"][0].endswith("(being computed by another process)")
    assert mine["l2a"][0].endswith("(waits for its teacher, which another process is fine-tuning)")


def test_durations_are_parsed_and_a_bad_one_is_refused_with_its_form(env):
    from l2a_lib.batch import parse_duration
    assert parse_duration("2h40m") == 9600 and parse_duration("90m") == 5400
    assert parse_duration("1.5h") == 5400 and parse_duration("45s") == 45
    assert parse_duration("3600") == 3600 and parse_duration(" 1h 30s ") == 3630
    for bad in ("2x", "h", "1h-5m", "0m", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)
    out = _batch(env, "--dry-run", "--time-limit", "2x", profile="cpu")
    assert out.returncode != 0 and "--time-limit" in out.stderr and "2h40m" in out.stderr


def within_limit(seconds, jobs, limit):
    from l2a_lib.batch import plan
    return plan([(0.0, s, {}) for s in seconds], jobs, limit)[0]


def test_runs_that_would_end_after_the_time_limit_leave_their_slot_to_later_ones():
    assert within_limit([10, 10, 10, 10], 2, 20) == [True] * 4
    # 30 does not fit in 25 and takes no slot time: the 10s after it still do
    assert within_limit([10, 30, 10, 10], 1, 25) == [True, False, True, False]
    assert within_limit([10, 30, 10, 10], 2, 25) == [True, False, True, True]
    assert within_limit([5], 1, 4) == [False] and within_limit([], 2, 10) == []
    # longest first, as the batch starts them: the 20 is not starved by the 10 before it
    assert within_limit([10, 20], 1, 25) == [False, True]
    assert within_limit([10, 20, 10, 5], 2, 20) == [True, True, True, False]


def test_the_plan_lets_a_run_wait_for_the_teacher_another_run_fine_tunes():
    from l2a_lib.batch import plan
    # Teacher-FT (its own fine-tuning, 50 s) and a run of 80 s that needs the same teacher
    tf, run = (50.0, 0.0, {"teacher:k": 50.0}), (0.0, 80.0, {"teacher:k": 50.0})
    # room for both: the longer (with the fine-tuning, 130 s) first; Teacher-FT waits
    # for the teacher it would have fine-tuned (saved at 50 s) and keeps its own estimate
    assert plan([tf, run], 2, 140) == ([True, True], 130.0)
    # the run with its teacher does not fit: Teacher-FT fine-tunes it, the run still does not fit
    assert plan([tf, run], 2, 120) == ([True, False], 50.0)
    # ... but after it in a longer limit, without paying for the teacher again
    assert plan([tf, run], 1, 140) == ([False, True], 130.0)
    assert plan([(0.0, 10.0, {}), tf, run], 1, 150) == ([True, False, True], 140.0)
    # a saved teacher (not missing) costs nothing: 50 + 80 one after another
    assert plan([(50.0, 0.0, {}), (0.0, 80.0, {})], 1, 130) == ([True, True], 130.0)


def test_with_a_time_limit_the_runs_start_longest_first_whatever_their_teachers(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    from l2a_lib.batch import _in_order, _scheduled, choose, needs
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    # a long L2A run whose teacher is not saved, and short runs whose needs all are
    l2a = make_config("tc", "l2a", seed=0, profile="smoke")
    short = [make_config("pi", "student_ft", seed=s, profile="smoke") for s in (0, 1)]
    for c in short:
        for f in needs(c, ctx).values():
            _touch(f)
    todo = [short[0], l2a, short[1]]
    size = {short[0].hash(): 2.0, l2a.hash(): 9.0, short[1].hash(): 1.0}
    # without a limit the short runs whose teachers are saved go first
    assert choose(todo, [], ctx) == 0 and choose(todo, [], ctx, in_order=True) == 0
    assert choose([l2a, short[1]], [], ctx) == 1
    assert choose([l2a, short[1]], [], ctx, in_order=True) == 0
    for jobs in (1, 2):
        started = []

        def one(i_c):
            started.append(i_c[1].hash())
            return i_c[1], 0, None

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(_scheduled(pool, todo, jobs, ctx, one, poll=0.01, fits=lambda c: True,
                            size=lambda c: size[c.hash()], left_out=[]))
        assert started == [l2a.hash(), short[0].hash(), short[1].hash()]
    started = []
    list(_in_order(todo, one, lambda c: True, [], size=lambda c: size[c.hash()]))
    assert started == [l2a.hash(), short[0].hash(), short[1].hash()]


def test_the_time_limit_counts_at_the_pace_of_slow_finished_runs_and_names_apart_the_runs_computed_elsewhere(tmp_path):
    from l2a_lib.batch import not_started, pace
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context, run_lock
    assert pace({"took": 0.0, "estimated": 0.0}) == 1.0  # nothing finished yet
    assert pace({"took": 300.0, "estimated": 100.0}) == 3.0
    assert pace({"took": 50.0, "estimated": 100.0}) == 1.0  # quick (resumed) runs: never below 1
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    left = [make_config("tc", "student_ft", seed=s, profile="smoke") for s in range(4)]
    _fake_record(ctx, left[1], 10.0)  # another batch cached it meanwhile
    assert not_started(left, ctx) == ([left[0], left[2], left[3]], [])
    with run_lock(left[2], ctx):  # another batch is computing it: not "after the time limit"
        assert not_started(left, ctx) == ([left[0], left[3]], [left[2]])
    assert not_started(left, ctx) == ([left[0], left[2], left[3]], [])  # its lock let go


def test_a_charged_teacher_counts_until_it_is_saved_whichever_run_trains_it(tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    _fake_record(ctx, make_config("tc", "teacher_ft", seed=0), 120.0)
    _fake_record(ctx, make_config("tc", "l2a", seed=0), 200.0)
    _fake_record(ctx, make_config("tc", "eda", seed=0), 50.0)
    l2a, eda = make_config("tc", "l2a", seed=1), make_config("tc", "eda", seed=1)
    for c in (l2a, eda):
        for key, f in batch.needs(c, ctx).items():
            if not key.startswith("teacher:"):
                _touch(f)
    charged = {}
    est = batch.estimate_seconds([l2a, eda], ctx, charged=charged)
    assert est == {l2a.hash(): 320.0, eda.hash(): 50.0}  # the first in order is charged
    assert set(charged) == {l2a.hash()} and charged[l2a.hash()][1] == 120.0
    # EDA started first would fine-tune the teacher itself: it needs it as well
    assert batch.seconds_needed(eda, est, charged, ctx) == 170.0
    assert batch.seconds_needed(l2a, est, charged, ctx) == 320.0
    teacher = next(f for k, f in batch.needs(l2a, ctx).items() if k.startswith("teacher:"))
    _touch(teacher)  # saved: neither pays for it any more
    assert batch.seconds_needed(l2a, est, charged, ctx) == 200.0
    assert batch.seconds_needed(eda, est, charged, ctx) == 50.0


def test_scheduled_runs_only_start_while_they_fit_and_the_rest_are_left_out(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    from l2a_lib.batch import _in_order, _scheduled
    from l2a_lib.config import make_config
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")
    todo = [make_config("tc", "student_ft", seed=s, profile="smoke") for s in range(4)]
    need = {todo[0].hash(): 1, todo[1].hash(): 99, todo[2].hash(): 1, todo[3].hash(): 99}
    started = []

    def one(i_c):
        started.append(i_c[1].seed)
        return i_c[1], 0, None

    def fits(c):  # as --time-limit asks: a run fits while its time is short enough
        return need[c.hash()] < 10

    for jobs in (1, 2):
        started.clear()
        left = []
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            done = list(_scheduled(pool, todo, jobs, ctx, one, poll=0.01, fits=fits, left_out=left))
        assert sorted(started) == [0, 2] and sorted(c.seed for c, _, _ in done) == [0, 2]
        assert sorted(c.seed for c in left) == [1, 3]
    left = []
    assert [c.seed for c, _, _ in _in_order(todo, one, fits, left)] == [0, 2]
    assert [c.seed for c in left] == [1, 3]
    assert len(list(_in_order(todo, one))) == 4  # no limit: every run


def test_the_dry_run_with_a_time_limit_marks_the_runs_it_leaves_and_filters_by_seed_and_value(env):
    out = _batch(env, "--dry-run", "--only", "fig2_data_size", "--methods", "teacher_ft", "l2a",
                 "--values", "320", "20", "--seeds", "1", "--jobs", "2", profile="cpu")
    assert out.returncode == 0, out.stderr
    runs = [ln for ln in out.stdout.splitlines() if ln.startswith("run ")]
    assert len(runs) == 4 and all("seed=1" in ln for ln in runs)
    assert {ln.split()[4] for ln in runs} == {"train_per_class=320", "train_per_class=20"}
    assert out.stdout.strip().splitlines()[-1] == "4 runs left"
    from l2a_lib.batch import parse_duration

    def dry(*args):
        timed = _batch(env, "--dry-run", "--only", "fig2_data_size", "--values", "320", "20",
                       "--seeds", "1", *args, profile="cpu")
        assert timed.returncode == 0, timed.stderr
        lines = timed.stdout.strip().splitlines()
        assert lines[-1] == f"{len([x for x in lines if x.startswith('run ')])} runs left"
        # (the estimate the dry run prints, "~12m24s"; marked not started?) in its order
        return [(parse_duration(x.split("~")[1].split()[0]), "not started" in x)
                for x in lines if x.startswith("run ")], lines
    # the two L2A runs (no cached teacher: each with its own teacher's fine-tuning),
    # timed by a seed-0 record of each size
    from l2a_lib.batch import BATCH, select
    from l2a_lib.experiment import Context
    ctx = Context(results_dir=env / "results", cache_dir=env / "cache")
    for c in select(BATCH, ["fig2_data_size"])[0].configs("cpu"):
        if c.method == "l2a" and c.seed == 0 and c.data.train_per_class in (20, 320):
            _fake_record(ctx, c, 100.0 if c.data.train_per_class == 20 else 2000.0)
    (short, _), (long, _) = sorted(dry("--methods", "l2a")[0])
    assert short < long
    marks, lines = dry("--methods", "l2a", "--jobs", "1", "--time-limit", f"{int(short) + 1}s")
    assert {s: m for s, m in marks} == {short: False, long: True}  # only the short one fits
    summary = next(x for x in lines if x.startswith("within --time-limit"))
    assert "1 of 2 runs" in summary and "1 left" in summary
    marks, _ = dry("--methods", "l2a", "--jobs", "2", "--time-limit", f"{int(long) + 1}s")
    assert not any(m for _, m in marks)  # two slots: both
    marks, _ = dry("--methods", "l2a", "--jobs", "1", "--time-limit", f"{int(long) + 1}s")
    assert {s: m for s, m in marks} == {short: True, long: False}  # longest first, alone
    # a run another process computes is not this batch's to start: never "not started"
    from l2a_lib.experiment import run_lock
    other = next(c for c in select(BATCH, ["fig2_data_size"])[0].configs("cpu")
                 if c.method == "l2a" and c.seed == 1 and c.data.train_per_class == 320)
    with run_lock(other, ctx):
        marks, lines = dry("--methods", "l2a", "--jobs", "1", "--time-limit", "1s")
    busy = [x for x in lines if "being computed by another process" in x]
    assert len(busy) == 1 and "train_per_class=320" in busy[0] and "not started" not in busy[0]
    assert [m for _, m in marks].count(True) == 1  # the 20-per-class run


def test_a_batch_with_no_time_for_any_run_starts_none_and_says_so(env):
    out = _batch(env, "--only", "table3", "--time-limit", "1s")  # each smoke run: ~10 s
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert "running" not in out.stdout
    assert any(ln.startswith("4 run(s) not started: each would have ended after the time limit")
               for ln in lines)
    assert lines[-1] == "4 runs left"
    assert not list((env / "results").rglob("*.json"))


@pytest.mark.parametrize("data", [None, "missing"])
def test_a_batch_without_its_data_folder_is_refused_before_any_run_starts(env, monkeypatch, data):
    if data is None:
        monkeypatch.delenv("L2A_DATA_DIR")
        expected = "L2A_DATA_DIR"
    else:
        monkeypatch.setenv("L2A_DATA_DIR", str(env / data))
        expected = "does not exist"
    out = _batch(env, "--only", "table3")
    assert out.returncode == 2, out.stdout + out.stderr
    assert expected in out.stderr and "running" not in out.stdout
    assert not (env / "logs").exists() or not list((env / "logs").iterdir())
    # the dry run needs no data: it only reads the cache
    dry = _batch(env, "--only", "table3", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.strip().splitlines()[-1] == "4 runs left"


def test_runs_whose_bf16_fell_back_to_fp32_are_timed_apart_from_bf16_runs_on_that_processor(
        tmp_path):
    from l2a_lib import batch
    from l2a_lib.config import make_config
    from l2a_lib.experiment import FP32_FALLBACK, Context, load_results, machine_kind
    ctx = Context(results_dir=tmp_path / "results")
    _fake_record(ctx, make_config("tc", "l2a", seed=0, table="table1"), 100.0, cpu="EPYC", bf16=True)
    _fake_record(ctx, make_config("tc", "l2a", seed=1, table="table1"), 120.0, cpu="EPYC")  # older
    _fake_record(ctx, make_config("tc", "l2a", seed=2, table="table1"), 400.0, cpu="EPYC", bf16=False)
    kinds = load_results(ctx.results_dir).groupby("seed").cpu.first().to_dict()
    assert kinds == {0: "EPYC", 1: "EPYC", 2: "EPYC" + FP32_FALLBACK}
    todo = make_config("tc", "l2a", seed=0, table="table3")  # not cached: same kind of run
    def run_seconds(cpu):  # its estimate without the teacher's fine-tuning it is charged
        charged = {}
        est = batch.estimate_seconds([todo], ctx, cpu=cpu, charged=charged)[todo.hash()]
        return est - charged.get(todo.hash(), ("", 0.0))[1]
    assert run_seconds("EPYC") == 110.0  # the median of the bf16 and unrecorded runs
    assert run_seconds(machine_kind("EPYC", False)) == 400.0  # the fp32 run alone
    assert machine_kind(None, False) is None and machine_kind("EPYC", None) == "EPYC"
