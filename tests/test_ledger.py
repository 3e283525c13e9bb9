"""The cost ledger: each run's time by phase, adding up to its wall time."""
import time

import pytest

from l2a_lib import ledger


def test_time_goes_to_the_innermost_phase_and_adds_up_to_the_wall_time():
    t0 = time.perf_counter()
    with ledger.recording() as led:
        with ledger.phase("student training"):
            time.sleep(0.05)
            with ledger.phase("evaluation"):  # an evaluation inside a step is evaluation
                time.sleep(0.1)
        time.sleep(0.03)                       # in no phase: "other"
    wall = time.perf_counter() - t0
    got = led.totals(digits=3)
    assert got["evaluation"] == pytest.approx(0.1, abs=0.03)
    assert got["student training"] == pytest.approx(0.05, abs=0.03)
    assert got["other"] == pytest.approx(0.03, abs=0.03)
    assert sum(got.values()) == pytest.approx(wall, abs=0.05)


def test_a_whole_phase_takes_the_time_of_the_phases_inside_it():
    with ledger.recording() as led:
        with ledger.phase("teacher fine-tuning", whole=True):
            with ledger.phase("evaluation"):   # the teacher's own dev evaluations
                time.sleep(0.05)
        with ledger.phase("evaluation"):       # and after it, phases count again
            time.sleep(0.05)
    got = led.totals(digits=3)
    assert got["teacher fine-tuning"] == pytest.approx(0.05, abs=0.03)
    assert got["evaluation"] == pytest.approx(0.05, abs=0.03)


def test_phases_cost_nothing_outside_a_recording_and_unknown_names_are_refused():
    with ledger.phase("evaluation"):
        pass  # no recording: nothing happens
    with ledger.recording(), pytest.raises(ValueError, match="unknown phase"):
        with ledger.phase("coffee"):
            pass


def test_a_computed_run_records_its_phases(tmp_path, data_dir, monkeypatch):
    from l2a_lib.experiment import run
    from l2a_lib.profiles import make_config
    from l2a_lib.records import load_record
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    config = make_config("tc", "student_ft", 0, profile="smoke")
    run(config, data_dir=data_dir, results_dir=tmp_path / "results")
    rec = load_record(config, tmp_path / "results")
    phases = rec["extra"]["phases"]
    assert {"student training", "evaluation", "data and tokenisation"} <= set(phases)
    assert set(phases) <= set(ledger.PHASES)
    assert sum(phases.values()) == pytest.approx(rec["wall_seconds"], rel=0.2, abs=1.0)


# ------------------------------------------------------------ the grid's projection
def test_an_empty_cache_projects_nothing_and_says_every_configuration_is_unmeasured(tmp_path):
    from l2a_lib import costs, pages
    from l2a_lib.runs import Context
    out = costs.grid_projection("smoke", Context(results_dir=tmp_path))
    assert out["grid_runs"] == len(pages.configs("smoke"))
    assert out["grid_hours"] == 0 and out["grid_critical_path_hours"] == 0
    assert out["grid_unmeasured"] == out["grid_configurations"] > 0


def test_the_grid_status_sums_the_cached_runs_and_projects_a_missing_seed_from_its_seed_0(tmp_path):
    import dataclasses
    import json
    from l2a_lib import costs
    from l2a_lib.runs import Context
    from l2a_lib.workflow import Plan
    plan = Plan("cpu", tmp_path)
    l2a = next(c for c in plan.runs.values() if c.method == "l2a" and c.seed == 0)
    teacher = next(c for c in plan.runs.values() if c.method == "teacher_ft" and c.seed == 0)
    runs = tmp_path / "runs"
    runs.mkdir()
    for c, wall, extra, cpu in ((l2a, 7200.0, {}, "CPU A"),
                                (teacher, 900.0, {"fine_tune": {"seconds": 600.0}}, None)):
        (runs / f"{c.hash()}.json").write_text(json.dumps({
            "config": c.to_dict(), "config_hash": c.hash(), "rows": [], "wall_seconds": wall,
            "teacher": {"seconds": 1800.0 if c is l2a else 0.0}, "extra": extra,
            **({"environment": {"cpu": cpu}} if cpu else {})}))
    out = costs.grid_status("cpu", Context(results_dir=tmp_path))
    assert out["runs"] == len(plan.runs) and out["cached"] == 2
    # each cached run counted under its task and the processor kind it records
    expected_kinds = {}
    for c, cpu in ((l2a, "CPU A"), (teacher, "not recorded")):
        expected_kinds.setdefault(c.task, {})[cpu] = expected_kinds.get(c.task, {}).get(cpu, 0) + 1
    assert out["processors"] == expected_kinds
    assert out["recorded_hours"] == round((7200 + 900) / 3600, 2)  # wall time as recorded
    siblings = [h for h, c in plan.runs.items() if c.seed != 0 and
                dataclasses.replace(c, seed=0).hash() in (l2a.hash(), teacher.hash())]
    assert out["missing_measured"] == len(siblings) > 0
    n_l2a = sum(plan.runs[h].method == "l2a" for h in siblings)
    # each sibling costs its seed-0 run less the teacher's fine-tuning (L2A: 7200 - 1800)
    expected = n_l2a * 5400 + (len(siblings) - n_l2a) * 300
    assert out["missing_projected_hours"] == round(expected / 3600, 2)
    assert out["missing"] == out["missing_measured"] + out["missing_unmeasured"] == len(plan.runs) - 2


def test_the_committed_grid_is_measured_and_its_critical_path_is_a_chain_within_it():
    import json
    from l2a_lib import costs, pages
    from l2a_lib.runs import Context
    ctx = Context()
    out = costs.grid_projection("cpu", ctx)
    assert out["grid_unmeasured"] == 0 and out["grid_sample_runs"] == out["grid_configurations"]
    longest = max(float(json.loads((ctx.runs / f"{c.hash()}.json").read_text())["wall_seconds"])
                  for c in pages.configs("cpu") if c.seed == 0)
    # the chain holds at least the longest seed-0 run less its teacher, and at most the grid
    assert 0 < out["grid_critical_path_hours"] <= out["grid_hours"]
    assert out["grid_critical_path_hours"] * 3600 >= 0.5 * longest


def test_the_compute_pages_phase_table_keeps_the_largest_phases_and_sums_the_rest():
    import pandas as pd
    from l2a_lib.views.operations import widest_phases
    frame = pd.DataFrame({p: [float(i), 1.0] for i, p in enumerate(ledger.PHASES)},
                         index=["run a", "run b"])
    table = widest_phases(frame, keep=3)
    assert list(table.columns) == ["selector", "generator", "checkpoints", "other"]
    assert table.sum(axis=1).tolist() == pytest.approx(frame.sum(axis=1).tolist())
    assert table.loc["run a", "other"] == pytest.approx(sum(range(7)) + 10.0)
    small = frame.iloc[:, :4]
    assert widest_phases(small, keep=3).equals(small)
