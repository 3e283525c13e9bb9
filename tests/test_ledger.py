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
