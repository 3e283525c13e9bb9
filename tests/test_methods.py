"""Every baseline runs end to end on the smoke profile and reports what Table 1 needs."""
import json

import pytest
import torch

from l2a_lib import runs
from l2a_lib import records
from l2a_lib import teacher
from l2a_lib import experiment
from l2a_lib.profiles import make_config

from fakes import killed_after_save

BASELINES = ["eda", "cbert", "tinybert", "bilstm_soft", "distilbert", "bert_pkd4", "bert_pkd6",
             "minilm", "distilbert_same", "bert_pkd_same"]


@pytest.fixture(scope="module")
def smoke_dirs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("methods")
    return dict(data_dir=data_dir, results_dir=root / "results", cache_dir=root / "cache")


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_runs_and_uses_teacher_once_per_input(method, smoke_dirs):
    cfg = make_config("tc", method, seed=0, profile="smoke")
    df = experiment.run(cfg, **smoke_dirs)
    assert set(df.metric) == {"acc", "f1"} and df["value"].between(0, 1).all()
    assert df["n_params"].iloc[0] > 0
    record = json.loads(records.cache_path(cfg, runs.Context(
        smoke_dirs["data_dir"], smoke_dirs["results_dir"])).read_text())
    extra = record["extra"]
    if "unique_inputs" in extra:
        assert extra["teacher_forward_passes"] == extra["unique_inputs"]
    if cfg.augment is not None:
        n_train = record["sizes"]["train"]
        assert extra["augment"]["pool_size"] == n_train * max(1, cfg.augment.pool_size // n_train)


def test_same_student_controls_train_the_other_methods_students(smoke_dirs):
    """Issue 36: DistilBERT and BERT-PKD on L2A's student (same size as Student-FT, with
    the width map W trained), and L2A on BERT-PKD's student (the teacher's bottom layers)."""
    size = {}
    for method in ("student_ft", "distilbert_same", "bert_pkd_same", "l2a_pkd6_student"):
        cfg = make_config("tc", method, seed=0, profile="smoke")
        size[method] = int(experiment.run(cfg, **smoke_dirs)["n_params"].iloc[0])
    assert size["distilbert_same"] == size["bert_pkd_same"] == size["student_ft"]
    pkd6 = make_config("tc", "l2a_pkd6_student", seed=0, profile="smoke")
    assert pkd6.model.student == "teacher" and pkd6.l2a.version == 2
    assert size["l2a_pkd6_student"] != size["student_ft"]
    from l2a_lib import models
    teacher_layers = models.build_student_from_teacher(
        pkd6.model, pkd6.model.student_layers, 2, models.load_tokenizer(pkd6.model))
    assert size["l2a_pkd6_student"] == teacher_layers.n_params()
    # its learned-parts-off control: the same student, keeping at the learned run's rates
    control = make_config("tc", "l2a_pkd6_control", seed=0, profile="smoke")
    assert int(experiment.run(control, **smoke_dirs)["n_params"].iloc[0]) == size["l2a_pkd6_student"]
    from l2a_lib.l2a.reference import keep_rates_of_learned_selector
    learned = [e["keep_rate"] for e in records.load_record(pkd6, smoke_dirs["results_dir"])["extra"]["episodes"]]
    ctx = runs.Context(smoke_dirs["data_dir"], smoke_dirs["results_dir"])
    assert keep_rates_of_learned_selector(control, ctx) == learned  # not the small student's L2A


def test_the_width_map_starts_at_its_least_squares_fit():
    """FitNets' first stage in closed form: on states related by a linear map, the
    fitted W maps the student's directions onto the teacher's (cosine near 1 from a
    random start near 0), and it is the ridge solution, not just any good map."""
    from l2a_lib.layer_kd import RIDGE, fit_width_map
    g = torch.Generator().manual_seed(0)
    X, M = torch.randn(200, 8, generator=g), torch.randn(8, 12, generator=g)
    W = torch.nn.Parameter(torch.randn(8, 12, generator=g))
    fit = fit_width_map(W, [(X[:120], X[:120] @ M), (X[120:], X[120:] @ M)])
    assert fit["rows"] == 200 and abs(fit["cos_before"]) < 0.3 and fit["cos_after"] > 0.99
    Xn = torch.nn.functional.normalize(X, dim=-1)
    Yn = torch.nn.functional.normalize(X @ M, dim=-1)
    ridge = torch.linalg.solve(Xn.T @ Xn + RIDGE * torch.eye(8), Xn.T @ Yn)
    assert torch.allclose(W.data, ridge, atol=1e-5)


def test_the_same_student_controls_record_their_width_maps_fit(smoke_dirs):
    for method in ("distilbert_same", "bert_pkd_same"):
        cfg = make_config("tc", method, seed=0, profile="smoke")
        experiment.run(cfg, **smoke_dirs)
        fit = json.loads(records.cache_path(cfg, runs.Context(
            smoke_dirs["data_dir"], smoke_dirs["results_dir"])).read_text())["extra"]["width_map_fit"]
        assert fit["rows"] > 0 and fit["cos_after"] > fit["cos_before"], (method, fit)


def test_pair_task_augments_both_sides(smoke_dirs):
    cfg = make_config("pi", "eda", seed=0, profile="smoke")
    experiment.run(cfg, **smoke_dirs)
    record = json.loads(records.cache_path(cfg, runs.Context(
        smoke_dirs["data_dir"], smoke_dirs["results_dir"])).read_text())
    assert all(e["text_b"] for e in record["extra"]["augment"]["examples"])


@pytest.mark.parametrize("method", ["l2a", "l2a_wo_tgt"])
def test_l2a_runs_and_logs_episodes(method, smoke_dirs):
    """Version 1's episode log (Table 2's L2A; version 2's: tests/test_l2a_learns.py)."""
    cfg = make_config("tc", method, seed=0, profile="smoke", version=1)
    experiment.run(cfg, **smoke_dirs)
    extra = records.load_record(cfg, smoke_dirs["results_dir"])["extra"]
    assert len(extra["episodes"]) == cfg.l2a.episodes
    for e in extra["episodes"]:
        assert 0 <= e["keep_rate"] <= 1 and {"mean_reward", "dev_metric", "acc"} <= set(e)
        n_source = e["source_inputs"]
        assert n_source == (e["pool"] if method == "l2a_wo_tgt" else round(cfg.l2a.pool_size / 2))
    assert extra["teacher_forward_passes"] == extra["unique_inputs"]
    assert {g["from"] for g in extra["gallery"]} == {"P_s (static masked LM)", "G_theta (trained)"}


@pytest.mark.parametrize("method,smart", [("l2a", None), ("l2a_smart", "bregman")])
def test_an_l2a_run_cut_off_resumes_from_its_checkpoint_with_the_same_result(
        smoke_dirs, tmp_path, monkeypatch, method, smart):
    """(With SMART's proximal point, its momentum copy and noise stream resume too.)"""
    from l2a_lib import checkpoint
    cfg = make_config("tc", method, seed=0, profile="smoke", smart=smart)
    experiment.run(cfg, **smoke_dirs)  # the teacher and the masked LM are cached from here on
    shared = dict(data_dir=smoke_dirs["data_dir"], cache_dir=smoke_dirs["cache_dir"])
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    experiment.run(cfg, results_dir=whole, **shared)

    with killed_after_save(monkeypatch, checkpoint.EpisodeCheckpoint):
        experiment.run(cfg, results_dir=cut, **shared)
    folder = runs.Context(results_dir=cut).checkpoint_dir(cfg)
    progress = checkpoint.read_progress(folder)
    assert progress["episode"] == 1
    # the episodes' own time, recorded beside the whole run time, within the whole
    assert 0 < progress["loop_seconds"] <= progress["seconds"]
    assert not records.cache_path(cfg, runs.Context(results_dir=cut)).exists()

    experiment.run(cfg, results_dir=cut, **shared)  # resumes after episode 1
    assert not folder.exists()  # removed once the record is written
    a, b = (records.load_record(cfg, d)["extra"] for d in (whole, cut))
    assert a["resumed_at_episode"] == [] and b["resumed_at_episode"] == [1]
    timing = {"seconds", "sample_seconds"}
    strip = lambda eps: [{k: v for k, v in e.items() if k not in timing} for e in eps]  # noqa: E731
    assert strip(a["episodes"]) == strip(b["episodes"])
    assert a["gallery"] == b["gallery"]
    assert (a["teacher_forward_passes"], a["unique_inputs"]) == (b["teacher_forward_passes"],
                                                                 b["unique_inputs"])
    rows = [records.load_record(cfg, d)["rows"] for d in (whole, cut)]
    assert rows[0] == rows[1]


def test_a_teacher_fine_tuning_cut_off_resumes_in_the_next_run_that_needs_the_teacher(
        data_dir, tmp_path, monkeypatch):
    from l2a_lib import checkpoint
    cfg = make_config("tc", "teacher_ft", seed=0, profile="smoke")
    runs = {name: dict(data_dir=data_dir, results_dir=tmp_path / name / "results",
                       cache_dir=tmp_path / name / "cache") for name in ("whole", "cut")}
    experiment.run(cfg, **runs["whole"])

    with killed_after_save(monkeypatch, checkpoint.EpochCheckpoint):
        experiment.run(cfg, **runs["cut"])
    folder = teacher.teacher_checkpoint(cfg, runs["cut"]["cache_dir"]).folder
    before = checkpoint.read_progress(folder)
    assert before["epoch"] == 1 and before["epochs"] == cfg.teacher_train.epochs

    experiment.run(cfg, **runs["cut"])  # resumes the teacher after epoch 1
    assert not folder.exists()  # removed once the teacher is saved
    a, b = (records.load_record(cfg, r["results_dir"]) for r in runs.values())
    assert a["rows"] == b["rows"]
    assert a["extra"]["fine_tune"]["history"] == b["extra"]["fine_tune"]["history"]
    assert b["extra"]["fine_tune"]["resumed_at_epoch"] == [1]
    assert b["wall_seconds"] >= before["seconds"]  # the earlier piece counts


def test_an_unreadable_checkpoint_is_reported_and_the_run_starts_again(tmp_path):
    from l2a_lib.checkpoint import EpisodeCheckpoint
    ck = EpisodeCheckpoint(tmp_path / "ck", run_id="abc")
    ck.save({"episode": 1, "episodes": 2, "seconds": 1.0, "x": torch.ones(2)},
            [((1, 2), {"logits": torch.zeros(2)})], shard=0)
    state, entries = ck.load()
    assert state["episode"] == 1 and entries[0][0] == (1, 2)
    with pytest.warns(UserWarning, match="belongs to abc"):  # another run's: not resumed
        assert EpisodeCheckpoint(tmp_path / "ck", run_id="other").load() is None
    ck.save({"episode": 1, "episodes": 2, "seconds": 1.0}, [], shard=0)
    (tmp_path / "ck" / "teacher-0.pt").write_bytes(b"cut off")
    with pytest.warns(UserWarning, match="cannot be read"):
        assert ck.load() is None
    assert not (tmp_path / "ck").exists()


def test_episode_states_are_saved_after_the_first_episode_then_at_most_every_interval(
        tmp_path, monkeypatch):
    """L2A_CHECKPOINT_SECONDS: the first state is saved at once, later ones when the
    interval has passed; the teacher outputs of the skipped episodes go into the next
    shard, so a resumed run gets every output computed before its last save."""
    from l2a_lib.checkpoint import EpisodeCheckpoint
    monkeypatch.setenv("L2A_CHECKPOINT_SECONDS", "3600")
    ck = EpisodeCheckpoint(tmp_path / "ck", run_id="abc")
    assert ck.due()
    ck.save({"episode": 1, "episodes": 9, "seconds": 1.0}, [((1,), {"v": torch.zeros(1)})], shard=0)
    assert not ck.due()  # within the interval: the episode's state is not written
    monkeypatch.setenv("L2A_CHECKPOINT_SECONDS", "0")
    assert ck.due()
    ck.save({"episode": 4, "episodes": 9, "seconds": 4.0},
            [((2,), {"v": torch.ones(1)}), ((3,), {"v": torch.ones(1)})], shard=1)
    state, entries = ck.load()
    assert state["episode"] == 4 and [k for k, _ in entries] == [(1,), (2,), (3,)]


_ONE_RUN = """
import json, sys, time
from pathlib import Path
from l2a_lib import experiment, teacher
from l2a_lib.profiles import make_config
data, root, me, other = sys.argv[1:5]
real = teacher.fine_tune
def slow(*a, **k):  # the first fine-tuning lasts long enough for the other run to arrive
    time.sleep(5)
    return real(*a, **k)
teacher.fine_tune = slow
Path(root, f"ready-{me}").touch()
while not Path(root, f"ready-{other}").exists():  # both start fine-tuning together
    time.sleep(0.05)
experiment.run(make_config("tc", "teacher_ft", seed=0, profile="smoke"), data_dir=data,
               results_dir=Path(root, me), cache_dir=Path(root, "cache"))
"""


def test_two_runs_that_need_one_teacher_at_once_fine_tune_it_once(data_dir, tmp_path):
    """The second run waits for the first's teacher (a lock beside the teacher's files),
    then loads it: no second fine-tuning on the same checkpoint."""
    import subprocess
    import sys
    procs = [subprocess.Popen([sys.executable, "-c", _ONE_RUN, str(data_dir), str(tmp_path), me,
                               other], stderr=subprocess.PIPE, text=True)
             for me, other in (("a", "b"), ("b", "a"))]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    cfg = make_config("tc", "teacher_ft", seed=0, profile="smoke")
    used = [records.load_record(cfg, tmp_path / me)["teacher"] for me in ("a", "b")]
    assert sorted(u["trained_here"] for u in used) == [False, True]
    assert used[0]["sha256"] == used[1]["sha256"]
    assert sum("waiting for another process" in e for e in errs) == 1


def test_a_file_lock_lets_one_holder_in_at_a_time(tmp_path):
    import threading
    import time
    from l2a_lib.paths import file_lock
    events = []

    def hold(name):
        with file_lock(tmp_path / "x.lock"):
            events.append(f"{name} in")
            time.sleep(0.3)
            events.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert events == ["a in", "a out", "b in", "b out"]


@pytest.mark.parametrize("learned, random", [("l2a_corrupted", "l2a_corrupted_random"),
                                             ("l2a_credit_eq_corrupted", "l2a_credit_eq_corrupted_random"),
                                             ("l2a_credit_eq_corrupted_gen_off",
                                              "l2a_credit_eq_corrupted_gen_off_random")])
def test_the_probes_random_student_keeps_at_its_selectors_rates_end_to_end(learned, random, smoke_dirs):
    """The parts page's probe controls, run as the final grid runs them: the student that
    keeps at random reads the keep rate of each episode of its learned selector's run,
    keeps about as many samples (not all of them), and logs the corrupted and clean keep
    rates; the generator-off pair trains no generator in either run (its logs hold no
    generator loss), the other learned runs train theirs."""
    from l2a_lib.l2a.reference import keep_rates_of_learned_selector
    ref, control = (make_config("tc", m, seed=0, profile="smoke", final=True) for m in (learned, random))
    experiment.run(ref, **smoke_dirs)
    experiment.run(control, **smoke_dirs)
    episodes = {m: records.load_record(c, smoke_dirs["results_dir"])["extra"]["episodes"]
                for m, c in ((learned, ref), (random, control))}
    rates = [e["keep_rate"] for e in episodes[learned]]
    ctx = runs.Context(smoke_dirs["data_dir"], smoke_dirs["results_dir"])
    assert keep_rates_of_learned_selector(control, ctx) == rates
    kept = [e["keep_rate"] for e in episodes[random]]
    assert len(kept) == len(rates) and all(0 < k < 1 for k in kept)
    assert abs(sum(kept) / len(kept) - sum(rates) / len(rates)) < 0.15, (kept, rates)
    assert all({"keep_corrupted", "keep_clean"} <= set(e) for e in episodes[random])
    trained = {m: any(e.get("generator_loss") for e in episodes[m]) for m in episodes}
    assert trained == {learned: not learned.endswith("_gen_off"), random: False}, trained


def test_the_probes_oracles_keep_by_the_known_answer_end_to_end(smoke_dirs):
    """The probe's oracles and its rule (``l2a.reference.keep_rule``), run as the final grid
    runs them, with the generator off like the selector whose rates they copy: the perfect
    oracle keeps every clean sample and no corrupted one in every episode; the rates oracle
    keeps a corrupted sample with the learned run's keep rate of the corrupted samples in that
    episode and a clean one with its rate of the clean ones; the small-loss rule keeps, in each
    batch, the learned run's keep rate of the episode, the samples of least disagreement first;
    and the jobs of the last two wait for the learned run."""
    import numpy as np
    from l2a_lib.l2a.reference import keep_rule
    from l2a_lib.workflow import depends_on
    names = ("l2a_credit_eq_corrupted_gen_off", "l2a_credit_eq_corrupted_gen_off_oracle",
             "l2a_credit_eq_corrupted_gen_off_rates", "l2a_credit_eq_corrupted_gen_off_small_loss")
    configs = [make_config("tc", m, seed=0, profile="smoke", final=True) for m in names]
    learned, perfect, rates, rule = configs
    assert depends_on(rates).hash() == learned.hash() == depends_on(rule).hash() and depends_on(perfect) is None
    assert perfect.l2a.selector_oracle == "perfect" and rates.l2a.selector_oracle == "rates"
    assert rule.l2a.selector_rule == "small_loss" and rule.l2a.selector_oracle is None
    for c in configs:
        experiment.run(c, **smoke_dirs)
    episodes = {c.method: records.load_record(c, smoke_dirs["results_dir"])["extra"]["episodes"]
                for c in configs}
    assert all(e["keep_corrupted"] == 0.0 and e["keep_clean"] == 1.0 for e in episodes[names[1]])
    assert all(e.get("keep_corrupted") is not None for e in episodes[names[2]])
    assert not any(e.get("generator_loss") for m in names for e in episodes[m])
    # the rule keeps the learned rate, up to one sample per batch (its fractional remainder)
    for e, r in zip(episodes[names[3]], episodes[names[0]]):
        assert abs(e["keep_rate"] - r["keep_rate"]) <= e["steps"] / e["pool"] + 1e-9

    class Flags:  # the teacher cache's known answer: samples 0 and 2 corrupted
        def flags(self, enc, idx):
            return np.array([i in (0, 2) for i in idx])

    ctx = runs.Context(smoke_dirs["data_dir"], smoke_dirs["results_dir"])
    keep_at = keep_rule(rates, ctx)
    disagreement = torch.tensor([0.3, 0.1, 0.4, 0.2])
    for k, e in enumerate(episodes[names[0]] + episodes[names[0]][-1:]):  # and one episode past the last
        p = keep_at(k, Flags(), None, [0, 1, 2, 3], disagreement).tolist()
        assert p == pytest.approx([e["keep_corrupted"], e["keep_clean"], e["keep_corrupted"], e["keep_clean"]])
        q = keep_rule(rule, ctx)(k, Flags(), None, [0, 1, 2, 3], disagreement)
        assert float(q.sum()) == pytest.approx(4 * e["keep_rate"])
        assert q[1] >= q[3] >= q[0] >= q[2]  # least disagreement first, whatever the known answer
    assert keep_rule(perfect, ctx)(5, Flags(), None, [2, 3], disagreement[:2]).tolist() == [0.0, 1.0]
    assert keep_rule(learned, ctx) is None


def test_lowest_first_keeps_the_rate_lowest_score_first():
    from l2a_lib.l2a.reference import lowest_first
    score = torch.tensor([0.5, 0.1, 0.9, 0.3])
    assert lowest_first(score, 0.5).tolist() == [0.0, 1.0, 0.0, 1.0]
    assert lowest_first(score, 0.625).tolist() == pytest.approx([0.5, 1.0, 0.0, 1.0])
    assert lowest_first(score, 0.0).tolist() == [0.0] * 4
    assert lowest_first(score, 1.0).tolist() == [1.0] * 4
    assert lowest_first(torch.zeros(0), 0.5).tolist() == []
