"""The Snakemake workflow: the page list it reads, its dry runs (local and SLURM),
and a kill -9 in the middle of a run."""
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2a_lib import pages
from l2a_lib.profiles import make_config

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _snakemake(*args, cwd=REPO, env=None, **kw):
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True,
                          env=env, **kw)


def _job_counts(stdout: str) -> dict[str, int]:
    """The "Job stats" table of a dry run: rule -> number of jobs ({} when everything
    is up to date)."""
    if "Job stats:" not in stdout:
        assert "Nothing to be done" in stdout, stdout[-2000:]
        return {}
    lines = stdout[stdout.index("Job stats:"):].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def _env(data_dir, cache_dir):
    return dict(os.environ, L2A_DATA_DIR=str(data_dir), L2A_CACHE_DIR=str(cache_dir),
                L2A_PROGRESS="0")


@pytest.fixture
def env(tmp_path, data_dir):
    return _env(data_dir, tmp_path / "cache")


# ------------------------------------------------------------------ the page list
def test_every_page_has_its_notebook_and_a_unique_name():
    names = [p.name for p in pages.PAGES]
    assert len(names) == len(set(names))
    for p in pages.PAGES:
        assert (REPO / "notebooks" / f"{p.notebook}.ipynb").is_file(), p.notebook
    assert [p.name for p in pages.PAGES if p.last] == ["reproduce"]


def test_a_page_lists_its_runs_once_each_with_the_profile_seeds():
    table3 = pages.page("table3")
    assert len(table3.configs("cpu")) == 12  # 4 variants x 3 seeds on tc
    assert len(table3.configs("smoke")) == 4   # the smoke profile has one seed
    assert table3.parameters("smoke") == {"profile": "smoke", "seeds": [0]}
    claims = pages.page("claims").configs("cpu")
    assert len({c.hash() for c in claims}) == len(claims)
    # Figure 2's default size reuses Table 1's runs rather than computing them again
    fig2 = {c.hash() for c in pages.page("fig2_data_size").configs("cpu")}
    assert make_config("tc", "l2a", 0).hash() in fig2


def test_the_settings_page_lists_every_candidate_and_fix_run_at_the_profile_seeds():
    from l2a_lib.candidates import CANDIDATES, FIXES
    needs = pages.CandidateNeeds()
    for profile in ("smoke", "cpu"):
        got = {c.hash() for c in needs.configs(profile)}
        want = {c.hash() for x in CANDIDATES + FIXES
                for c in x.configs(profile, seeds=pages.PROFILE_SEEDS[profile])}
        assert got == want and len(got) > len(CANDIDATES)
    assert pages.page("settings").seeded  # the notebook takes the profile's seeds


def test_an_unknown_page_is_refused_with_the_list_of_pages():
    with pytest.raises(pages.UnknownPage, match=r"no page 'tabel1'; the pages are: data, "):
        pages.page("tabel1")


def test_a_page_whose_runs_are_missing_becomes_a_page_that_lists_them(tmp_path):
    import nbformat
    out = tmp_path / "book" / "table3.ipynb"
    assert pages.execute("table3", "smoke", out, results_dir=tmp_path / "results") == "pending"
    text = nbformat.read(str(out), as_version=4).cells[0].source
    assert "**4 of 4**" in text and "-- book/table3.ipynb" in text and "profile=smoke" in text
    assert not list(out.parent.glob(".*"))  # written through a temporary file, renamed


def test_an_unknown_run_hash_is_one_clear_error_line(env):
    out = subprocess.run([sys.executable, "-m", "l2a_lib", "run", "--profile", "smoke", "--hash",
                          "0123456789abcdef"], cwd=REPO, capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: no run 0123456789abcdef among the pages")


# ------------------------------------------------------------------ resources
def _record(path: Path, config, wall: float, rss: float | None = None, teacher: float = 0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "config": config.to_dict(), "config_hash": config.hash(), "rows": [],
        "wall_seconds": wall, "environment": {"max_rss_mb": rss},
        "teacher": {"seconds": teacher, "trained_here": teacher > 0}}))


def test_job_resources_come_from_the_recorded_run_times(tmp_path):
    from l2a_lib.workflow import FALLBACK_MEM_MB, RUNTIME_FLOOR_MIN, RUNTIME_MARGIN, Plan
    runs = tmp_path / "results" / "runs"
    a, b = make_config("tc", "eda", 0), make_config("tc", "eda", 1)
    _record(runs / "a.json", a, 600.0, rss=2000.0)
    _record(runs / "b.json", b, 1500.0, teacher=900.0)  # 600 s of its own, 900 s its teacher's
    _record(runs / "c.json", make_config("pi", "l2a", 0), 3000.0)
    plan = Plan("cpu", tmp_path / "results", tmp_path / "cache")
    todo = make_config("tc", "eda", 2).hash()
    assert plan.runtime(todo) == math.ceil(RUNTIME_MARGIN * 600 / 60) + RUNTIME_FLOOR_MIN
    assert plan.mem_mb(todo) == 3000  # 1.5 x the largest recorded peak
    # no L2A run on tc: the longest L2A run on another task
    assert plan.runtime(make_config("tc", "l2a", 1).hash()) == 75 + RUNTIME_FLOOR_MIN
    assert plan.mem_mb(make_config("tc", "l2a", 1).hash()) == FALLBACK_MEM_MB["cpu"]
    # the teacher's fine-tuning recorded by run b times the teacher job of tc at 40/class
    from l2a_lib.teacher import teacher_key
    assert plan.teacher_runtime(teacher_key(a)) == math.ceil(1.5 * 900 / 60) + RUNTIME_FLOOR_MIN


def test_a_cached_run_waits_for_no_teacher_and_a_missing_one_for_its_own(tmp_path):
    from l2a_lib.teacher import teacher_key
    from l2a_lib.workflow import Plan, needs_teacher
    plan = Plan("smoke", tmp_path / "results", tmp_path / "cache")
    l2a = make_config("tc", "l2a", 0, profile="smoke")
    needs = plan.run_inputs(l2a.hash())
    assert needs["teacher"].endswith(f"teachers/{teacher_key(l2a)}.json")
    assert needs["mlm"].endswith("manifest.json")
    # Student-FT distils no teacher, but where it is scored against the teacher's attention
    # (the smoke profile, the final grid) it waits for that teacher's job, not fine-tuning
    # a second copy beside it, and for the noisy test copies (the robustness page)
    student_ft = make_config("tc", "student_ft", 0, profile="smoke")
    assert "attention" in student_ft.extra_scores
    student = plan.run_inputs(student_ft.hash())
    assert set(student) == {"noise", "teacher"} and student["noise"].endswith("robustness/tc-smoke.json")
    assert student["teacher"] == needs["teacher"]
    plain = dataclasses.replace(student_ft, extra_scores=None)
    assert not needs_teacher(plain) and needs_teacher(student_ft)
    assert not needs_teacher(make_config("tc", "majority", 0, profile="smoke"))
    _record(plan.result(l2a.hash()), l2a, 1.0)
    assert plan.run_inputs(l2a.hash()) == {}
    # every run of one task, seed and size distils one teacher
    keys = {teacher_key(c) for c in pages.page("table3").configs("smoke")}
    assert keys == {teacher_key(l2a)}


# ------------------------------------------------------------------ dry runs
def test_the_dry_run_on_the_committed_cache_lists_no_run(env):
    started = time.time()
    out = _snakemake("-n", "--cores", "2", env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    counts = _job_counts(out.stdout)
    assert "run" not in counts and "teacher" not in counts and "mlm" not in counts, counts
    print(f"snakemake -n on the committed cache: {time.time() - started:.1f}s, jobs {counts}")


def test_a_slurm_dry_run_lists_the_jobs_with_resources_from_the_cache(tmp_path, env):
    """With one committed run taken away, the SLURM profile's dry run lists that run and
    the teacher it needs (a new machine has none), each with its threads, memory and
    wall time; no cluster is needed for a dry run."""
    work = tmp_path / "work"
    (work / "results" / "runs").mkdir(parents=True)
    gone = make_config("tc", "l2a", 0)
    for p in (REPO / "results" / "runs").glob("*.json"):
        if p.stem != gone.hash():
            shutil.copy(p, work / "results" / "runs")
    (work / "results" / "mlm").symlink_to(REPO / "results" / "mlm")
    out = _snakemake("-n", "--cores", "8", "--workflow-profile",
                     str(REPO / "workflow" / "profiles" / "slurm"), "--directory", str(work),
                     "--", "book/table3.ipynb", env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert _job_counts(out.stdout) == {"teacher": 1, "run": 1, "page": 1, "total": 3}
    from l2a_lib.workflow import Plan
    plan = Plan("cpu", work / "results", tmp_path / "cache")
    blocks = out.stdout.split("\nrule ")
    run = next(b for b in blocks if b.startswith("run:"))
    assert f"wildcards: hash={gone.hash()}" in run and "threads: 2" in run
    assert f"runtime={plan.runtime(gone.hash())}," in run + ","
    assert f"mem_mb={plan.mem_mb(gone.hash())}," in run
    # the longest recorded L2A run on tc, its teacher aside, sets the wall time
    assert plan.runtime(gone.hash()) > 60
    teacher = next(b for b in blocks if b.startswith("teacher:"))
    assert "runtime=" in teacher and "mem_mb=" in teacher and "threads: 2" in teacher


# ------------------------------------------------------------------ kill -9
def _finished_runs(log: str) -> set[str]:
    """The runs whose job Snakemake reported finished, from its output: each job's
    block ("rule run:" ...) names its jobid and hash; "Finished jobid: N" follows when
    the job is done."""
    hashes = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", log):
        jobid = re.search(r"jobid: (\d+)", block)
        run = re.search(r"wildcards: hash=([0-9a-f]{16})", block)
        if re.match(r"(?:local)?rule run:", block) and jobid and run:
            hashes[jobid.group(1)] = run.group(1)
    return {hashes[j] for j in re.findall(r"Finished jobid: (\d+) \(Rule: run\)", log)
            if j in hashes}


def test_kill_minus_nine_in_the_middle_of_a_run_then_resume(tmp_path, env):
    """Kill the workflow (snakemake and its jobs) while a run computes. Every run that
    Snakemake had reported finished keeps its file (same bytes, same mtime); the
    interrupted one is computed again; no half-written result ever exists. (A result
    written in the last instant before the kill, before Snakemake marked its job
    finished, counts as interrupted: Snakemake may compute it again.)"""
    work = tmp_path / "work"
    work.mkdir()
    cmd = [SNAKEMAKE, "--cores", "2", "--directory", str(work), "--config", "profile=smoke",
           "--", "book/table3.ipynb"]
    out = tmp_path / "snakemake.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    runs, logs = work / "results" / "runs", work / "logs" / "runs"

    def running():  # runs whose job has started (its log exists) and has no result yet
        return [p.stem for p in logs.glob("*.log") if not (runs / f"{p.stem}.json").exists()] \
            if logs.is_dir() else []
    deadline = time.time() + 600
    while time.time() < deadline and not (_finished_runs(out.read_text()) and running()):
        assert proc.poll() is None, "the workflow ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the run it is in the middle of
    proc.wait()
    done = _finished_runs(out.read_text())
    interrupted = [h for h in running() if h not in done]
    finished = {runs / f"{h}.json": ((runs / f"{h}.json").read_bytes(),
                                     (runs / f"{h}.json").stat().st_mtime_ns) for h in done}
    assert finished and interrupted, (finished, interrupted)
    assert not list(runs.glob(".*")), "a temporary result file was left"
    assert not (work / "book" / "table3.ipynb").exists()

    # Snakemake's lock outlives a killed process: --unlock, as its message says
    unlock = subprocess.run(cmd[:1] + ["--unlock"] + cmd[1:], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for p, (content, mtime) in finished.items():  # read, never recomputed nor touched
        assert p.read_bytes() == content and p.stat().st_mtime_ns == mtime, p.name
    recomputed = _finished_runs(again.stdout + again.stderr)
    assert set(interrupted) <= recomputed and not recomputed & done
    assert len(list(runs.glob("*.json"))) == 4
    assert (work / "book" / "table3.ipynb").is_file()
    assert not list(runs.glob(".*")) and not list((work / "book").glob(".*tmp"))
    for h in interrupted:  # the interrupted run was computed again, to the end
        record = json.loads((runs / f"{h}.json").read_text())
        assert record["config_hash"] == h and record["rows"]


def test_a_page_for_the_book_hides_code_and_parameters():
    import nbformat
    from l2a_lib.pages import for_the_book
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell('page["results"]'),
                nbformat.v4.new_markdown_cell("text")]
    for_the_book(nb)  # one parameters cell (the values the page ran with), code folded
    assert [c.source for c in nb.cells] == ["x = 2", 'page["results"]', "text"]
    assert [c.metadata.get("tags") for c in nb.cells] == [
        ["injected-parameters", "hide-input"], ["hide-input"], None]
    plain = nbformat.v4.new_notebook()  # run without parameters: the notebook's own cell stays
    plain.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})]
    for_the_book(plain)
    assert plain.cells[0].metadata["tags"] == ["parameters", "hide-input"]


def test_the_random_selector_run_waits_for_the_full_l2a_run_of_its_seed():
    from l2a_lib.workflow import depends_on
    random = make_config("pi", "l2a_selector_random", 3)
    ref = depends_on(random)
    assert ref.method == "l2a" and ref.seed == 3 and ref.task == "pi"
    assert ref.hash() == make_config("pi", "l2a", 3, version=2).hash()
    assert depends_on(make_config("pi", "l2a", 3)) is None
    assert depends_on(make_config("pi", "l2a_selector_off", 3)) is None
    # a final-grid run waits for the final grid's L2A, whatever the process's grid
    # (``run --final`` computes final runs in a process of the first grid)
    final = make_config("reg", "l2a_selector_random", 1, final=True)
    assert depends_on(final).hash() == make_config("reg", "l2a", 1, final=True).hash()
    assert depends_on(final).extra_scores  # the final Table 1's L2A records its extra scores




def test_the_larger_students_control_copies_l2a_on_that_student():
    """``l2a_pkd6_control``: L2A on BERT6-PKD's student with its learned parts off. Its
    reference is the cached ``l2a_pkd6_student`` run of its seed (same student, same
    learning rate), not L2A on the small student; it runs on TC and PI only."""
    from l2a_lib.profiles import runs_on
    from l2a_lib.workflow import depends_on
    control = make_config("tc", "l2a_pkd6_control", 2, final=True)
    six = make_config("tc", "l2a_pkd6_student", 2, final=True)
    assert control.l2a.selector_random and not six.l2a.selector_random
    assert control.model == six.model and control.distill == six.distill
    assert control.table == "l2a_parts" and six.table == "table1"
    assert depends_on(control).hash() == six.hash()
    assert depends_on(control).hash() != make_config("tc", "l2a", 2, final=True).hash()
    assert runs_on("pi", "l2a_pkd6_control") and not runs_on("nli", "l2a_pkd6_control")


@pytest.mark.parametrize("random, learned, credit", [("l2a_corrupted_random", "l2a_corrupted", None),
                                                      ("l2a_credit_eq_corrupted_random",
                                                       "l2a_credit_eq_corrupted", "equal"),
                                                      ("l2a_credit_eq_corrupted_gen_off_random",
                                                       "l2a_credit_eq_corrupted_gen_off", "equal")])
def test_the_probes_random_student_copies_the_learned_selectors_run_of_its_seed(random, learned, credit):
    """``l2a_corrupted_random``: the probe of ``l2a.corrupt`` (same corrupted share) with
    its selector at random, at the keep rates of the ``l2a_corrupted`` run of the same
    task and seed, which is filed under the parts page, not Table 1; its job waits for
    that run. ``l2a_credit_eq_corrupted_random`` is the same for the equal-weight
    credit's probe: it computes no credit (no selector learns) and waits for the credit
    run, whose settings its reference carries; the ``_gen_off`` pair is that pair with
    the generator off in both runs."""
    import dataclasses
    from l2a_lib.profiles import PROBE_CONTROLS
    from l2a_lib.workflow import depends_on
    assert PROBE_CONTROLS[random] == learned
    for task, seed in (("tc", 1), ("pi", 2)):
        c, ref = (make_config(task, m, seed, final=True) for m in (random, learned))
        assert c.l2a.selector_random and not ref.l2a.selector_random
        assert c.l2a.corrupt_share == ref.l2a.corrupt_share == 0.5
        assert c.l2a.generator == ref.l2a.generator == (not learned.endswith("_gen_off"))
        assert c.l2a.selector_credit is None and ref.l2a.selector_credit == credit
        assert dataclasses.replace(c.l2a, selector_random=None, selector_credit=credit) == ref.l2a
        assert c.table == ref.table == "l2a_parts"
        assert depends_on(c).hash() == ref.hash()
        others = ("l2a", "l2a_corrupted", "l2a_credit_eq_corrupted", "l2a_credit_eq_corrupted_gen_off")
        assert depends_on(c).hash() not in {make_config(task, m, seed, final=True).hash()
                                            for m in others if m != learned}


def test_every_learning_control_copies_its_own_l2a_run_and_is_on_the_final_page():
    """``profiles.LEARNING_CONTROLS`` is the one table pairing a learned-parts-off control
    with the L2A run it copies: each control is that run (same data, student, training,
    augmentation and KD) with its selector at random, its job waits for that run, the
    final Table 1 page asks for it on every task where it runs and glues its verdicts."""
    import dataclasses
    from l2a_lib import pages
    from l2a_lib.profiles import LEARNING_CONTROLS, runs_on
    from l2a_lib.views.final import PAIRED_CONTROLS
    from l2a_lib.workflow import depends_on
    asked = {(c.task, c.method) for n in pages.LEARNING_NEEDS for c in n.configs("cpu")}
    assert {m for _, m in asked} == set(LEARNING_CONTROLS)
    for control, learned in LEARNING_CONTROLS.items():
        c, ref = (make_config("tc", m, 1, final=True) for m in (control, learned))
        assert c.l2a.selector_random and not ref.l2a.selector_random
        same = ("data", "model", "student_train", "augment", "distill", "mlm_steps")
        assert all(getattr(c, f) == getattr(ref, f) for f in same), control
        assert dataclasses.replace(c.l2a, selector_random=None) == ref.l2a, control
        assert depends_on(c).hash() == ref.hash()
        assert pages.LEARNING_CONTROLS[learned] == control
        assert [r.key for r in PAIRED_CONTROLS if (r.method, r.control) == (learned, control)] == [
            "parts_off"]
        assert ({t for t, m in asked if m == control}
                == {t for t in pages.FINAL_TABLE1_TASKS if runs_on(t, control)})


def test_the_final_page_asks_for_l2a_with_no_augmentation_on_every_task():
    """What L2A's augmentation adds (the final Table 1 page's "KD on the originals
    only"): the same run as L2A (data, student, training, KD) with no augmented input,
    asked on every task of the page at the seeds of its other rows."""
    from l2a_lib import pages
    configs = [c for n in pages.AUGMENT_NEEDS for c in n.configs("cpu")]
    assert {c.method for c in configs} == {pages.AUGMENT_CONTROL}
    from l2a_lib.views.final import PAIRED_CONTROLS
    paired = {(r.method, r.control, r.key) for r in PAIRED_CONTROLS}
    assert ("l2a", pages.AUGMENT_CONTROL, "kd_only") in paired
    assert {c.task for c in configs} == set(pages.FINAL_TABLE1_TASKS)
    assert {c.seed for c in configs} == set(pages.PROFILE_SEEDS["cpu"])
    for c in configs:
        ref = make_config(c.task, "l2a", c.seed, final=True)
        same = ("data", "model", "student_train", "augment", "distill", "mlm_steps")
        assert all(getattr(c, f) == getattr(ref, f) for f in same), c.task
        assert c.l2a.augment is False and ref.l2a.augment is not False


# ------------------------------------------------------------------ the final grid
@pytest.fixture(scope="module")
def grid_runs(data_dir, tmp_path_factory):
    """Each grid's pages and runs, ``{"0": ..., "1": ...}`` (``L2A_FINAL_GRID`` is read at
    import, so each grid is listed by a child interpreter, once for this module)."""
    env = _env(data_dir, tmp_path_factory.mktemp("cache"))
    probe = ("import json; from l2a_lib import pages; print(json.dumps({'pages': [p.name for p in "
             "pages.PAGES], 'runs': sorted({(p.name, c.task, c.method, c.seed) for p in pages.PAGES "
             "for c in p.configs('cpu')})}))")
    listed = {}
    for final in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                             text=True, env=dict(env, L2A_FINAL_GRID=final))
        assert out.returncode == 0, out.stderr[-2000:]
        got = json.loads(out.stdout)
        listed[final] = {"pages": set(got["pages"]), "runs": {tuple(r) for r in got["runs"]}}
    return listed


def test_every_executed_page_of_the_books_contents_is_a_page_of_either_grid(grid_runs):
    """The table of contents lists the same executed pages whether the final grid is on
    or off, and with it on, the pages of issue 36 read all four tasks: the attention
    page's control (L2A w/o L_att) and the SMART page's runs are in the workflow."""
    toc = re.findall(r"file: (\w+)", (REPO / "book" / "_toc.yml").read_text())
    executed = {name for name in toc if not (REPO / "book" / f"{name}.md").is_file()}
    for final, listed in grid_runs.items():
        assert executed <= listed["pages"], (final, executed - listed["pages"])
        for page, method in (("attention", "l2a_wo_att"), ("smart_results", "l2a_smart"),
                             ("smart_results", "student_ft_smart"), ("robustness", "l2a")):
            tasks = {t for p, t, m, _ in listed["runs"] if p == page and m == method}
            assert tasks == ({"tc", "pi", "nli", "reg"} if final == "1" else set()), (final, page, method)


def test_the_final_parts_page_asks_three_seeds_of_the_variants_that_one_seed_cannot_decide(grid_runs):
    """The variant without labelled originals was the best single run on both tasks at
    one seed, and on PI one seed of the probe's learned selector separated the corrupted
    samples: the final grid's parts page asks three seeds of each, on TC and PI, with the
    probe's keep-all student and the student that keeps at random at the selector's
    rate; and five of the equal-weight credit's probe and its random student (the first
    settings' committed page keeps its runs: one seed, the keep-all probe on TC only, no
    random one); and three of that probe's pair with the generator off and of its two
    oracles (the first settings have none)."""
    oracles = ("l2a_credit_eq_corrupted_gen_off_oracle", "l2a_credit_eq_corrupted_gen_off_rates")
    three = ("l2a_originals_off", "l2a_corrupted", "l2a_corrupted_keep_all", "l2a_corrupted_random",
             "l2a_credit_eq_corrupted_gen_off", "l2a_credit_eq_corrupted_gen_off_random") + oracles
    five = ("l2a_credit_eq_corrupted", "l2a_credit_eq_corrupted_random")
    for final, n, keep_all, random in (("0", (1, 1), {"tc"}, set()), ("1", (3, 5), {"tc", "pi"},
                                                                        {"tc", "pi"})):
        runs = {(m, t, s) for p, t, m, s in grid_runs[final]["runs"] if p == "l2a_parts" and m in three + five}
        only = {"l2a_corrupted_keep_all": keep_all, "l2a_corrupted_random": random,
                "l2a_credit_eq_corrupted_random": random, "l2a_credit_eq_corrupted_gen_off": random,
                "l2a_credit_eq_corrupted_gen_off_random": random, **dict.fromkeys(oracles, random)}
        assert runs == {(m, t, s) for k, methods in zip(n, (three, five)) for m in methods
                        for t in ("tc", "pi") for s in range(k) if t in only.get(m, {"tc", "pi"})}, final


def test_the_final_grids_runs_are_one_target_and_the_book_follows_the_code(env):
    """``--config final=1 runs`` lists the final grid's missing runs (each job inherits
    L2A_FINAL_GRID=1, so ``run --hash`` finds them); the book, whose table of contents
    follows the code's FINAL_GRID, refuses that flag with the reason."""
    probe = ("from l2a_lib import profiles; from l2a_lib.workflow import Plan; "
             "p = Plan('cpu'); gone = [h for h in p.runs if not p.result(h).is_file()]; "
             "l2a = [p.runs[h] for h in gone if p.runs[h].method == 'l2a']; "
             "print(profiles.FINAL_GRID, len(gone), l2a[0].task, l2a[0].seed)")
    flagged = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                             text=True, env=dict(env, L2A_FINAL_GRID="1"))
    final, missing, task, seed = flagged.stdout.split()  # one L2A run the grid still lacks
    assert final == "True" and int(missing) > 0, flagged.stderr[-2000:]
    out = _snakemake("-n", "--cores", "2", "--config", "final=1", "--", "runs", env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert _job_counts(out.stdout)["run"] == int(missing)
    assert f"hash={make_config(task, 'l2a', int(seed), final=True).hash()}" in out.stdout
    book = _snakemake("-n", "--cores", "2", "--config", "final=1", env=env)
    assert book.returncode != 0 and "the book's table of contents" in book.stdout + book.stderr
    bad = subprocess.run([sys.executable, "-c", "import l2a_lib.profiles"], cwd=REPO,
                         capture_output=True, text=True, env=dict(env, L2A_FINAL_GRID="yes"))
    assert bad.returncode != 0 and "L2A_FINAL_GRID='yes': use 1" in bad.stderr
