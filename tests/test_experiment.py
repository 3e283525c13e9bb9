"""run(config): tidy rows, cache hit / miss, atomic files, the results CLI."""
import dataclasses
import io
import json
from contextlib import redirect_stdout

import pandas as pd
import pytest

from l2a_lib import studies
from l2a_lib import paths
from l2a_lib import records
from l2a_lib import teacher
from l2a_lib import experiment
from l2a_lib.cli import main
from l2a_lib.profiles import make_config


@pytest.fixture
def dirs(tmp_path, data_dir):
    return dict(data_dir=data_dir, results_dir=tmp_path / "results", cache_dir=tmp_path / "cache")


def test_run_writes_tidy_rows_then_hits_cache(dirs, monkeypatch):
    cfg = make_config("tc", "student_ft", seed=0, profile="smoke")
    df = experiment.run(cfg, **dirs)
    assert set(df.columns) >= {"table", "task", "method", "seed", "split", "metric", "value",
                               "config_hash", "n_params", "code_version"}
    assert sorted(zip(df.split, df.metric)) == [("dev", "acc"), ("dev", "f1"), ("test", "acc"),
                                                ("test", "f1")]
    files = list((dirs["results_dir"] / "runs").iterdir())
    assert [f.name for f in files] == [f"{cfg.hash()}.json"]  # no temporary file left behind

    def boom(*a, **k):
        raise AssertionError("a cached run must not train")
    monkeypatch.setitem(experiment.METHOD_REGISTRY, "student_ft", boom)
    again = experiment.run(cfg, **dirs)
    pd.testing.assert_frame_equal(df, again)
    # a different config is a miss
    other = dataclasses.replace(cfg, seed=1)
    with pytest.raises(AssertionError, match="must not train"):
        experiment.run(other, **dirs)


def test_teacher_is_cached_and_reused(dirs, monkeypatch):
    cfg = make_config("pi", "teacher_ft", seed=0, profile="smoke")
    first = experiment.run(cfg, **dirs)
    assert len(list((dirs["cache_dir"] / "teachers").glob("*.pt"))) == 1
    monkeypatch.setattr(teacher, "fine_tune",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    second = experiment.run(cfg, force=True, **dirs)  # recompute the run, reuse the teacher
    assert first["value"].tolist() == second["value"].tolist()
    # the record says which teacher it used and that this time it was not trained here
    record = records.load_record(cfg, dirs["results_dir"])
    assert record["teacher"]["key"] == teacher.teacher_key(cfg)
    assert record["teacher"]["trained_here"] is False and record["teacher"]["seconds"] == 0.0
    assert record["teacher"]["best_dev"] == record["extra"]["fine_tune"]["best_dev"]
    assert record["environment"]["cpu"]


def test_regression_task_reports_correlations(dirs):
    df = experiment.run(make_config("reg", "student_ft", profile="smoke"), **dirs)
    assert set(df.metric) == {"pearson", "spearman"}


def test_results_csv(dirs, monkeypatch):
    experiment.run(make_config("nli", "student_ft", profile="smoke"), **dirs)
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["--results-dir", str(dirs["results_dir"]), "results", "--csv"]) == 0
    df = pd.read_csv(io.StringIO(buf.getvalue()))
    assert list(df.columns[:8]) == ["table", "task", "method", "seed", "split", "metric", "value",
                                    "n_params"]
    assert (df.task == "nli").all() and len(df) == 4
    assert "data.max_length" in df.columns  # every setting in a column


def test_cli_error_is_one_clear_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("L2A_DATA_DIR", str(tmp_path / "missing"))
    code = main(["--results-dir", str(tmp_path), "run", "--task", "tc", "--method",
                 "student_ft", "--seeds", "0", "--profile", "smoke"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = tmp_path / "x.json"
    paths.atomic_write_text(p, json.dumps({"ok": 1}))

    with pytest.raises(TypeError):
        paths.atomic_write_text(p, None)  # fails while writing
    assert json.loads(p.read_text()) == {"ok": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]


def test_study_with_missing_runs_shows_the_others_and_lists_the_rest(dirs, monkeypatch):
    from l2a_lib.report import MissingResults, coverage_note, study_by_seed, study_table
    # a study over max_length (the smoke profile pins the sizes Figure 2 varies)
    monkeypatch.setitem(studies.STUDIES, "length",
                        ("fig2_data_size", "max_length", lambda v: ({"max_length": v}, None), 48))
    args = ("length", [24, 32], ["tc"], ["student_ft"], [0, 1])
    pairs = studies.study_configs(*args, profile="smoke")
    assert len({c.hash() for _, c in pairs}) == 4
    for v, c in pairs[:3]:  # the run at max_length 32, seed 1 is not computed
        experiment.run(c, **dirs)
    kw = dict(profile="smoke", data_dir=dirs["data_dir"], results_dir=dirs["results_dir"])
    with pytest.raises(MissingResults, match="1 of 4 runs"):
        experiment.run_study(*args, **kw)
    df = experiment.run_study(*args, allow_missing=True, **kw)
    assert df.attrs["missing"] == [("tc", "student_ft", 1, 32)] and df.attrs["n_runs"] == 4
    assert sorted(set(zip(df.max_length, df.seed))) == [(24, 0), (24, 1), (32, 0)]
    note = coverage_note(df)
    assert "1 of 4 runs" in note and "Student-FT, max_length = 32: tc/1" in note
    table = study_table(df, "max_length", ["student_ft"])
    assert table.loc[32].str.endswith("(n=1)").all()
    assert not table.loc[24].str.contains(r"\(n=").any()
    by_seed = study_by_seed(df, "max_length", ["student_ft"], seeds=[0, 1])
    acc = df[(df.split == "test") & (df.metric == "acc")].set_index(["max_length", "seed"])["value"]
    assert by_seed.loc[24, "Student-FT acc (seeds 0 / 1)"] == f"{acc[(24, 0)]:.3f} / {acc[(24, 1)]:.3f}"
    assert by_seed.loc[32, "Student-FT acc (seeds 0 / 1)"] == f"{acc[(32, 0)]:.3f} / -"
    complete = experiment.run_study("length", [24], ["tc"], ["student_ft"], [0, 1],
                                    allow_missing=True, **kw)
    assert coverage_note(complete) == "" and complete.attrs["missing"] == []
    assert complete.attrs["n_runs"] == 2  # counted when none is missing too


def test_random_selector_without_its_reference_run_is_one_clear_error(dirs):
    """l2a_selector_random keeps at the keep rates of the full L2A run of its seed: without
    that run cached it stops before any training, naming the run to compute first."""
    from l2a_lib.errors import MissingResults
    cfg = make_config("tc", "l2a_selector_random", seed=0, profile="smoke")
    ref = make_config("tc", "l2a", seed=0, profile="smoke", version=2)
    with pytest.raises(MissingResults, match=ref.hash()):
        experiment.run(cfg, **dirs)
    assert not (dirs["cache_dir"] / "teachers").exists()  # nothing was trained


def test_the_frozen_probe_fits_known_linear_relations():
    """The probe's linear models recover what is there: ridge a linear signal (Pearson
    near 1 on new data), logistic regression two separated classes; and more L2 strength
    shrinks the ridge fit toward the mean."""
    import numpy as np
    from l2a_lib.frozen_probe import fit_linear
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) + 0.1 * rng.normal(size=200)
    weak, strong = fit_linear(x[:100], y[:100], True, 0.01), fit_linear(x[:100], y[:100], True, 1e6)
    assert np.corrcoef(weak(x[100:])[:, 0], y[100:])[0, 1] > 0.99
    assert strong(x[100:]).std() < 0.05 * weak(x[100:]).std()
    labels = (x[:, 0] > 0).astype(int)
    clf = fit_linear(x[:100], labels[:100], False, 0.01)
    assert (clf(x[100:]).argmax(-1) == labels[100:]).mean() > 0.95


def test_the_frozen_probe_is_cached_and_not_computed_when_asked_not_to(dirs):
    from l2a_lib.errors import MissingResults
    from l2a_lib.frozen_probe import frozen_probe
    kw = dict(profile="smoke", data_dir=dirs["data_dir"], results_dir=dirs["results_dir"])
    with pytest.raises(MissingResults, match="frozen-probe tc"):
        frozen_probe("tc", allow_training=False, **kw)
    df = frozen_probe("tc", **kw)
    assert list(df.encoder) == ["student", "teacher"] and df.metric.eq("acc").all()
    assert df.test.between(0, 1).all()
    again = frozen_probe("tc", allow_training=False, **kw)
    assert again.equals(df)


@pytest.fixture
def ran(monkeypatch):
    """The configurations the CLI's ``run`` hands to ``experiment.run`` (which only
    records them here)."""
    configs = []

    def fake_run(cfg, **kw):
        configs.append(cfg)
        return pd.DataFrame({"split": ["test"], "metric": ["acc"], "value": [0.5],
                             "wall_seconds": [1.0]})
    monkeypatch.setattr(experiment, "run", fake_run)
    return configs


def test_run_candidate_with_method_runs_only_those_methods(tmp_path, ran):
    """``run --candidate NAME --method M``: only the candidate's runs of method M (to
    recompute one Teacher-FT record beside the teacher it shares); without --method,
    all of them."""
    from l2a_lib.candidates import candidate
    args = ["--results-dir", str(tmp_path), "run", "--candidate", "reg_src", "--seeds", "0"]
    assert main(args + ["--method", "teacher_ft"]) == 0
    assert [c.method for c in ran] == ["teacher_ft"]
    assert ran[0].hash() == next(c for c in candidate("reg_src").configs(seeds=(0,))
                                 if c.method == "teacher_ft").hash()
    ran.clear()
    assert main(args) == 0
    assert sorted(c.method for c in ran) == sorted(c.method for c in candidate("reg_src").configs(seeds=(0,)))


def test_run_final_runs_the_final_grids_configuration(tmp_path, ran):
    """``run --final``: the run of ``make_config(..., final=True)`` (the chosen teacher),
    whatever ``profiles.FINAL_GRID`` says; without it, the default configuration."""
    args = ["--results-dir", str(tmp_path), "run", "--task", "nli", "--method", "student_ft",
            "--seeds", "0"]
    assert main(args + ["--final"]) == 0
    assert main(args) == 0
    final, default = (c.hash() for c in ran)
    assert final == make_config("nli", "student_ft", 0, final=True).hash()
    assert default == make_config("nli", "student_ft", 0).hash()
    assert final != make_config("nli", "student_ft", 0, final=False).hash()


def test_a_final_pages_missing_runs_are_named_with_the_command_that_computes_them(tmp_path):
    """The missing-runs note of a page on the final grid gives ``run --final`` (a plain
    ``run`` computes the first settings' run, which that page never reads)."""
    from l2a_lib.views.base import View
    from l2a_lib.views.results import page_runs
    for final in (True, False):
        view = View()
        df = page_runs(view, ["nli"], ["student_ft"], [0], "cpu", False, True, tmp_path, None,
                       final=final)
        assert df.attrs["missing"] == [("nli", "student_ft", 0)]
        assert ("run --final" in view.notes[0]) == final


def test_the_final_pages_prose_names_a_task_whose_runs_are_not_computed_yet(tmp_path,
                                                                              data_dir):
    """A task added to the page before any of its runs is cached still gives the prose
    its numbers' names (the strict book build fails on a missing one), saying so."""
    from l2a_lib import views
    kw = dict(profile="smoke", methods=["majority"], seeds=[0], results_dir=tmp_path,
              data_dir=data_dir)
    views.table1_final(tasks=["tc"], allow_training=True, **kw)  # one task's run cached
    view = views.table1_final(tasks=["tc", "reg"], **kw)
    assert view.values["final_majority_reg_pearson"] == "(not computed yet)"
    assert view.values["final_majority_tc_acc"] not in ("(not computed yet)", "-")


def test_run_smart_runs_the_variant_it_names(tmp_path, ran, capsys):
    """``run --method student_ft_smart --smart bregman``: the SMART page's Bregman run
    (the adversarial variant without ``--smart``); ``--smart`` on a method without SMART
    is refused with the reason."""
    args = ["--results-dir", str(tmp_path), "run", "--task", "reg", "--method",
            "student_ft_smart", "--seeds", "0", "--final"]
    assert main(args + ["--smart", "bregman"]) == 0
    assert main(args) == 0
    bregman, adversarial = (c.hash() for c in ran)
    assert bregman == make_config("reg", "student_ft_smart", 0, final=True, smart="bregman").hash()
    assert adversarial == make_config("reg", "student_ft_smart", 0, final=True).hash() != bregman
    assert main(["--results-dir", str(tmp_path), "run", "--task", "reg", "--method", "student_ft",
                 "--seeds", "0", "--smart", "bregman"]) == 2
    assert "only *_smart methods take it" in capsys.readouterr().err
