"""Every baseline runs end to end on the smoke profile and reports what Table 1 needs."""
import json

import pytest

from l2a_lib import experiment
from l2a_lib.config import make_config

BASELINES = ["eda", "cbert", "tinybert", "bilstm_soft", "distilbert", "bert_pkd4", "bert_pkd6",
             "minilm"]


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
    record = json.loads(experiment.cache_path(cfg, experiment.Context(
        smoke_dirs["data_dir"], smoke_dirs["results_dir"])).read_text())
    extra = record["extra"]
    if "unique_inputs" in extra:
        assert extra["teacher_forward_passes"] == extra["unique_inputs"]
    if cfg.augment is not None:
        n_train = record["sizes"]["train"]
        assert extra["augment"]["pool_size"] == n_train * max(1, cfg.augment.pool_size // n_train)


def test_pair_task_augments_both_sides(smoke_dirs):
    cfg = make_config("pi", "eda", seed=0, profile="smoke")
    experiment.run(cfg, **smoke_dirs)
    record = json.loads(experiment.cache_path(cfg, experiment.Context(
        smoke_dirs["data_dir"], smoke_dirs["results_dir"])).read_text())
    assert all(e["text_b"] for e in record["extra"]["augment"]["examples"])


@pytest.mark.parametrize("method", ["l2a", "l2a_wo_tgt"])
def test_l2a_runs_and_logs_episodes(method, smoke_dirs):
    cfg = make_config("tc", method, seed=0, profile="smoke")
    experiment.run(cfg, **smoke_dirs)
    extra = experiment.load_record(cfg, smoke_dirs["results_dir"])["extra"]
    assert len(extra["episodes"]) == cfg.l2a.episodes
    for e in extra["episodes"]:
        assert 0 <= e["keep_rate"] <= 1 and {"mean_reward", "dev_metric", "acc"} <= set(e)
        n_source = e["source_inputs"]
        assert n_source == (e["pool"] if method == "l2a_wo_tgt" else round(cfg.l2a.pool_size / 2))
    assert extra["teacher_forward_passes"] == extra["unique_inputs"]
    assert {g["from"] for g in extra["gallery"]} == {"P_s (static masked LM)", "G_theta (trained)"}
