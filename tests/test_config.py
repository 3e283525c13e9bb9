"""Validation errors name the bad value and the allowed ones; hashes are stable."""
import dataclasses

import pytest

from l2a_lib.config import ConfigError, DataConfig, ExperimentConfig, L2AConfig, ModelConfig, TrainConfig
from l2a_lib.profiles import make_config


@pytest.mark.parametrize("build,match", [
    (lambda: DataConfig(task="qa"), r"task='qa'.*\['tc', 'pi', 'nli', 'reg'\]"),
    (lambda: DataConfig(train_per_class=0), r"train_per_class=0 must be > 0"),
    (lambda: DataConfig(train_per_class="40"), r"train_per_class='40' must be an int"),
    (lambda: DataConfig(max_length=4), r"max_length=4 must be in \[8, 512\]"),
    (lambda: TrainConfig(lr=-1.0), r"lr=-1.0 must be > 0"),
    (lambda: TrainConfig(bf16="yes"), r"bf16='yes' must be True or False"),
    (lambda: TrainConfig(warmup_ratio=1.5), r"warmup_ratio=1.5"),
    (lambda: ModelConfig(student_layers=(3, 1)), r"strictly increasing"),
    (lambda: ModelConfig(teacher="gpt2"), r"teacher='gpt2'.*all-mpnet-base-v2"),
    (lambda: ExperimentConfig(method="magic"), r"method='magic'.*teacher_ft"),
    (lambda: ExperimentConfig(seed=-1), r"seed=-1"),
    (lambda: ExperimentConfig(task="pi"), r"data.task='tc' differs from task='pi'"),
    (lambda: L2AConfig(version=2, corrupt_share=0.5, selector_oracle="best"), r"selector_oracle='best'.*perfect"),
    (lambda: L2AConfig(version=2, selector_oracle="perfect"), r"selector_oracle needs l2a.corrupt_share"),
    (lambda: L2AConfig(version=2, corrupt_share=0.5, selector_oracle="rates", selector_random=True),
     r"selector_random and l2a.selector_oracle: at most one"),
    (lambda: L2AConfig(version=2, corrupt_share=0.5, selector_oracle="rates", selector=False),
     r"selector_oracle need the selector on"),
    (lambda: L2AConfig(selector_oracle="perfect", corrupt_share=0.5), r"need l2a.version=2"),
    (lambda: L2AConfig(version=2, selector_rule="big_loss"), r"selector_rule='big_loss'.*small_loss"),
    (lambda: L2AConfig(version=2, selector_rule="small_loss", selector_credit="equal"),
     r"selector_rule and l2a.selector_credit: at most one"),
    (lambda: L2AConfig(version=2, selector_rule="small_loss", selector=False), r"selector_rule need the selector on"),
    (lambda: L2AConfig(selector_rule="small_loss"), r"need l2a.version=2"),
    (lambda: L2AConfig(version=2, selector_credit="equal", selector_random=True),
     r"selector_random and l2a.selector_credit: at most one"),
])
def test_bad_values_are_named(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


def test_hash_is_stable_and_sensitive():
    a = make_config("tc", "teacher_ft", seed=0)
    assert a.hash() == make_config("tc", "teacher_ft", seed=0).hash()
    assert a.hash() != make_config("tc", "teacher_ft", seed=1).hash()
    b = dataclasses.replace(a, teacher_train=dataclasses.replace(a.teacher_train, lr=3e-5))
    assert a.hash() != b.hash()


def test_dict_round_trip():
    a = make_config("nli", "student_ft", seed=2, profile="smoke")
    assert ExperimentConfig.from_dict(a.to_dict()) == a


def test_profiles_are_complete():
    for profile in ("smoke", "cpu", "paper"):
        for task in ("tc", "pi", "nli", "reg"):
            cfg = make_config(task, "teacher_ft", profile=profile)
            assert cfg.profile == profile and cfg.data.task == task
    paper = make_config("tc", "teacher_ft", profile="paper")
    assert paper.model.teacher == "bert-base-uncased" and paper.data.source == "hub"


def test_round_trip_of_every_method():
    from l2a_lib.config import METHODS
    for m in METHODS:
        for profile in ("smoke", "cpu"):
            a = make_config("tc", m, seed=1, profile=profile)
            assert ExperimentConfig.from_dict(a.to_dict()) == a


def test_l2a_variants_differ_only_where_named():
    base = make_config("tc", "l2a", version=1)  # Table 2's version (wo_src, wo_tgt)
    assert make_config("tc", "l2a_wo_src").l2a == dataclasses.replace(base.l2a, source_share=0.0)
    assert make_config("tc", "l2a_wo_tgt").l2a == dataclasses.replace(base.l2a, source_share=1.0)
    base = make_config("tc", "l2a")  # Table 1 and Table 3 on TC: version 2
    assert make_config("tc", "l2a_wo_att").distill == dataclasses.replace(base.distill, att=False)
    assert make_config("tc", "l2a_wo_dark").distill == dataclasses.replace(base.distill, dark=False)
    assert make_config("tc", "l2a_wo_att").l2a == base.l2a


def test_the_version_switch_moves_table_1_and_3_and_leaves_table_2_on_version_1(monkeypatch):
    from l2a_lib import pages, profiles
    assert profiles.make_config("tc", "l2a", 0).l2a.version == 2
    assert profiles.make_config("pi", "l2a", 0).l2a.version == 2
    v1_tc = profiles.make_config("tc", "l2a", 0, version=1).hash()
    monkeypatch.setattr(profiles, "V2_PAGES", ())  # before the switch: version 1 everywhere
    assert profiles.make_config("tc", "l2a", 0).hash() == v1_tc
    monkeypatch.undo()
    assert profiles.make_config("tc", "l2a_wo_dark", 0).l2a.version == 2
    assert profiles.make_config("nli", "l2a", 0).l2a.version is None
    assert profiles.make_config("tc", "l2a_wo_src", 0).l2a.version is None
    table2 = {c.method: c for c in pages.page("table2").configs("cpu") if c.task == "tc" and c.seed == 0}
    assert table2["l2a"].hash() == v1_tc  # Table 2 keeps comparing version 1 with version 1


def test_the_final_grid_applies_the_chosen_settings_and_leaves_the_candidates_alone(monkeypatch):
    """profiles.FINAL_GRID (issue 35): the chosen teachers on NLI and regression (a
    source stage first), version 2 of L2A everywhere, Table 1's extra scores and
    BiLSTM-soft's fixed schedule on the cpu profile; text classification and PI keep
    their teachers, a user's task and the smoke profile are untouched, and every
    candidate of the settings page keeps its cache key whichever grid is on."""
    from l2a_lib import candidates as cand
    from l2a_lib import profiles
    from l2a_lib.profiles import make_config
    before = {c.name: [x.hash() for x in c.configs()] for c in cand.CANDIDATES}
    fixes = {f.name: [x.hash() for x in f.configs()] for f in cand.FIXES}
    for task in ("nli", "reg"):
        old, new = make_config(task, "teacher_ft", final=False), make_config(task, "teacher_ft", final=True)
        assert old.teacher_train.source_epochs is None and new.teacher_train.source_epochs == 2
        assert new.hash() != old.hash()
    for task in ("tc", "pi"):
        assert (make_config(task, "teacher_ft", final=True).teacher_train
                == make_config(task, "teacher_ft", final=False).teacher_train)
    assert make_config("nli", "l2a", final=True).l2a.version == 2
    assert make_config("nli", "l2a", final=False).l2a.version in (None, 1)  # None: version 1
    assert make_config("tc", "l2a", table="table2", final=True).l2a.version == 2
    assert make_config("tc", "eda", final=True).extra_scores is not None
    assert make_config("tc", "eda", final=False).extra_scores is None
    assert make_config("tc", "eda", profile="smoke", final=True).teacher_train == \
        make_config("tc", "eda", profile="smoke", final=False).teacher_train
    bilstm = make_config("pi", "bilstm_soft", final=True).distill.train
    assert (bilstm.lr, bilstm.epochs, bilstm.patience) == (1e-3, 20, 5)
    assert make_config("pi", "bilstm_soft", final=False).distill.train.lr != 1e-3
    monkeypatch.setattr(profiles, "FINAL_GRID", True)
    assert make_config("reg", "student_ft").hash() == make_config("reg", "student_ft", final=True).hash()
    assert {c.name: [x.hash() for x in c.configs()] for c in cand.CANDIDATES} == before
    assert {f.name: [x.hash() for x in f.configs()] for f in cand.FIXES} == fixes
    # the chosen candidates are then the book's settings, the previous ones not
    assert cand.in_use("nli_src") and cand.in_use("reg_src") and cand.in_use("tc")
    assert not cand.in_use("nli") and not cand.in_use("reg")


def test_the_chosen_settings_page_reads_the_final_grids_runs_of_its_tasks():
    """The page "Table 1 on the chosen settings" (issue 35, while the final grid is
    computed task by task): its runs are the final grid's (``final=True``) for the
    tasks in ``pages.FINAL_TABLE1_TASKS`` only, so its NLI rows distil the teacher
    that saw the source first, and none of them is a run of Table 1's page."""
    from l2a_lib import pages
    from l2a_lib.profiles import FINAL_GRID
    if FINAL_GRID:
        pytest.skip("the final grid is on: Table 1 shows these runs itself")
    runs = pages.FINAL_TABLE1_NEEDS.configs("cpu")
    assert pages.page("table1_final").configs("cpu") == (runs if pages.FINAL_TABLE1_CACHED else [])
    assert {c.task for c in runs} == set(pages.FINAL_TABLE1_TASKS)
    assert {c.method for c in runs} == set(pages.FINAL_TABLE1_METHODS)
    for c in runs:
        assert c.hash() == make_config(c.task, c.method, c.seed, final=True).hash()
    teachers = [c for c in runs if c.method == "teacher_ft"]
    assert teachers and all(c.teacher_train.source_epochs == 2 for c in teachers if c.task in ("nli", "reg"))
    first = {c.hash() for c in pages.page("table1").configs("cpu")}
    assert not first & {c.hash() for c in runs if c.method != "majority"}


def test_the_same_student_controls_run_on_tc_and_pi_only_and_are_never_missing_elsewhere(tmp_path):
    """A page listing Table 1's methods on every task reads the same-student controls on
    TC and PI only: no run of them is planned, read or counted as missing on NLI or
    regression (the final grid's Table 1 lists them beside the other methods)."""
    from l2a_lib import pages
    from l2a_lib.config import SAME_STUDENT_METHODS
    from l2a_lib.experiment import run_many
    from l2a_lib.profiles import runs_on
    assert all(runs_on(t, m) == (t in ("tc", "pi")) for t in ("tc", "pi", "nli", "reg")
               for m in SAME_STUDENT_METHODS)
    assert runs_on("nli", "l2a") and runs_on("reg", "eda")
    planned = {(c.task, c.method) for c in pages.FINAL_TABLE1_NEEDS.configs("cpu")}
    assert {t for t, m in planned if m in SAME_STUDENT_METHODS} == {"tc", "pi"}
    assert {t for t, m in planned if m == "l2a"} == {"tc", "pi", "nli", "reg"}
    df = run_many(["nli", "tc"], ["bert_pkd_same", "l2a"], [0], results_dir=tmp_path,
                  allow_missing=True, final=True)
    assert sorted(df.attrs["missing"]) == [("nli", "l2a", 0), ("tc", "bert_pkd_same", 0),
                                           ("tc", "l2a", 0)]
