"""The fine-tuning loop on a tiny random model: determinism, early stopping, NaN."""
import numpy as np
import pandas as pd
import pytest
import torch

from l2a_lib import encoding
from l2a_lib import errors
from l2a_lib import models, train
from l2a_lib.config import ModelConfig, TrainConfig

from fakes import killed_after_save

TINY = ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert", student_layers=(0, 1))
CFG = TrainConfig(epochs=3, batch_size=4, lr=1e-3, patience=3, bf16=False)


@pytest.fixture
def toy(tokenizer):
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    df = pd.DataFrame({"text_a": [f"a {w} movie" for w in words * 3], "text_b": None,
                       "label": [1, 1, 1, 0, 0, 0] * 3})
    return encoding.encode(df, tokenizer, 16)


def _run(toy, tokenizer, seed):
    model = models.build_student(TINY, 2, seed=seed)
    res = train.fine_tune(model, toy, toy, "classification", CFG, seed=seed,
                          pad_id=tokenizer.pad_token_id, dev_metric="acc_f1")
    logits = train.predict(model, toy, pad_id=tokenizer.pad_token_id, bf16=False)
    return res, logits


def test_same_seed_same_result(toy, tokenizer):
    (r1, l1), (r2, l2) = _run(toy, tokenizer, 0), _run(toy, tokenizer, 0)
    assert r1.history == r2.history
    np.testing.assert_array_equal(l1, l2)


def test_history_and_best_epoch(toy, tokenizer):
    res, _ = _run(toy, tokenizer, 1)
    assert res.epochs_run == 3 and len(res.history) == 3
    scores = [(h["acc"] + h["f1"]) / 2 for h in res.history]
    assert res.best_epoch == scores.index(max(scores))
    assert res.best_dev == {k: res.history[res.best_epoch][k] for k in ("acc", "f1")}


def test_predict_restores_original_order(toy, tokenizer):
    model = models.build_student(TINY, 2).eval()
    out = train.predict(model, toy, pad_id=tokenizer.pad_token_id, batch_size=5, bf16=False)
    b = encoding.collate(toy, [7], tokenizer.pad_token_id, False)
    with torch.no_grad():
        one = model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
    np.testing.assert_allclose(out[7], one[0].numpy(), atol=1e-5)


def test_nan_loss_is_reported_with_step(toy, tokenizer):
    model = models.build_student(TINY, 2)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(errors.TrainingDiverged, match=r"epoch 0, step 0"):
        train.fine_tune(model, toy, toy, "classification", CFG, seed=0,
                        pad_id=tokenizer.pad_token_id, dev_metric="acc")


def test_collate_pads_and_masks(toy, tokenizer):
    b = encoding.collate(toy, [0, 1], tokenizer.pad_token_id, regression=False)
    n0 = len(toy.input_ids[0])
    assert b["attention_mask"][0, :n0].all() and b["input_ids"].shape[0] == 2
    assert b["labels"].dtype == torch.long


def _fit(toy, tokenizer, cfg, checkpoint=None):
    model = models.build_student(TINY, 2, seed=3)
    res = train.fine_tune(model, toy, toy, "classification", cfg, seed=3,
                          pad_id=tokenizer.pad_token_id, dev_metric="acc_f1", checkpoint=checkpoint)
    return res, train.predict(model, toy, pad_id=tokenizer.pad_token_id, bf16=False)


@pytest.mark.parametrize("smart_on", [False, True], ids=["plain", "smart"])
@pytest.mark.parametrize("cut_after", [0, 2])
def test_a_fine_tuning_cut_off_resumes_after_its_last_epoch_with_the_same_result(
        toy, tokenizer, tmp_path, monkeypatch, smart_on, cut_after):
    from l2a_lib.checkpoint import EpochCheckpoint, read_progress
    from l2a_lib.config import SmartConfig
    cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-3, patience=4, bf16=False,
                      smart=SmartConfig() if smart_on else None)
    whole, whole_logits = _fit(toy, tokenizer, cfg)

    ck = EpochCheckpoint(tmp_path / "ck", run_id="t")
    with killed_after_save(monkeypatch, EpochCheckpoint, lambda s: s["epoch"] == cut_after):
        _fit(toy, tokenizer, cfg, ck)
    assert read_progress(ck.folder)["epoch"] == cut_after + 1
    assert len(list(ck.folder.glob("best-*.pt"))) == 1  # superseded best states removed

    cut, cut_logits = _fit(toy, tokenizer, cfg, ck)  # a fresh model: everything from the file
    assert cut.resumed_at_epoch == [cut_after + 1] and whole.resumed_at_epoch == []
    assert cut.history == whole.history
    assert (cut.best_epoch, cut.best_dev, cut.epochs_run) == (whole.best_epoch, whole.best_dev,
                                                              whole.epochs_run)
    np.testing.assert_array_equal(cut_logits, whole_logits)  # the best state was restored


def test_a_fine_tuning_cut_off_after_it_stopped_early_trains_no_further(toy, tokenizer, tmp_path,
                                                                         monkeypatch):
    from l2a_lib.checkpoint import EpochCheckpoint
    cfg = TrainConfig(epochs=6, batch_size=4, lr=1e-12, patience=1, bf16=False)  # no gain
    whole, whole_logits = _fit(toy, tokenizer, cfg)
    assert whole.epochs_run == 2  # epoch 1 is no better than epoch 0: stopped

    ck = EpochCheckpoint(tmp_path / "ck", run_id="t")
    with killed_after_save(monkeypatch, EpochCheckpoint, lambda s: s["epoch"] == 1):
        _fit(toy, tokenizer, cfg, ck)
    cut, cut_logits = _fit(toy, tokenizer, cfg, ck)
    assert cut.epochs_run == 2 and cut.history == whole.history
    np.testing.assert_array_equal(cut_logits, whole_logits)


def test_an_unreadable_epoch_checkpoint_is_reported_and_the_fine_tuning_starts_again(
        toy, tokenizer, tmp_path):
    from l2a_lib.checkpoint import EpochCheckpoint
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, patience=2, bf16=False)
    ck = EpochCheckpoint(tmp_path / "ck", run_id="t")
    _fit(toy, tokenizer, cfg, ck)  # finished: the caller would clear it
    with pytest.warns(UserWarning, match="belongs to t, not other"):
        assert EpochCheckpoint(ck.folder, run_id="other").load() is None
    assert not ck.folder.exists()
    _fit(toy, tokenizer, cfg, ck)
    for best in ck.folder.glob("best-*.pt"):
        best.write_bytes(b"cut off")
    with pytest.warns(UserWarning, match="cannot be read"):
        res, _ = _fit(toy, tokenizer, cfg, ck)
    assert res.resumed_at_epoch == [] and res.epochs_run == 2


def test_without_a_progress_bar_each_epoch_and_an_early_stop_is_one_log_line(
        toy, tokenizer, monkeypatch, capsys):
    monkeypatch.setenv("L2A_PROGRESS", "0")  # as in the workflow's run logs
    cfg = TrainConfig(epochs=6, batch_size=4, lr=1e-12, patience=1, bf16=False)  # no gain
    model = models.build_student(TINY, 2, seed=0)
    res = train.fine_tune(model, toy, toy, "classification", cfg, seed=0,
                          pad_id=tokenizer.pad_token_id, dev_metric="acc", desc="teacher tc s0")
    lines = capsys.readouterr().out.splitlines()
    assert res.epochs_run == 2
    assert [ln.split(":")[0] for ln in lines] == ["teacher tc s0 epoch 1/6", "teacher tc s0 epoch 2/6",
                                                  "teacher tc s0"]
    assert f"dev acc {res.history[0]['acc']:.4f} (best so far)" in lines[0]
    assert "best so far" not in lines[1]
    assert lines[2].endswith("stopped early, no better dev acc for 1 epochs; keeps epoch 1")

    monkeypatch.setenv("L2A_PROGRESS", "1")  # an interactive run shows its bar instead
    train.fine_tune(models.build_student(TINY, 2, seed=0), toy, toy, "classification", cfg,
                    seed=0, pad_id=tokenizer.pad_token_id, dev_metric="acc", desc="teacher tc s0")
    assert "epoch 1/6" not in capsys.readouterr().out


def test_bf16_is_used_only_where_the_cpu_has_it_unless_forced(monkeypatch):
    from l2a_lib.config import ConfigError
    a, b = torch.randn(4, 8), torch.randn(8, 3)

    def product_dtype():
        with train.autocast(True):
            return (a @ b).dtype

    monkeypatch.setattr(train, "bf16_native", lambda: False)
    monkeypatch.delenv("L2A_BF16", raising=False)
    assert not train.bf16_in_use() and product_dtype() == torch.float32  # auto: fp32 here
    monkeypatch.setenv("L2A_BF16", "on")
    assert train.bf16_in_use() and product_dtype() == torch.bfloat16
    assert not train.bf16_in_use(False)  # a config without bf16 never gets it
    monkeypatch.setattr(train, "bf16_native", lambda: True)
    monkeypatch.setenv("L2A_BF16", "auto")
    assert train.bf16_in_use() and product_dtype() == torch.bfloat16
    monkeypatch.setenv("L2A_BF16", "off")
    assert not train.bf16_in_use() and product_dtype() == torch.float32
    monkeypatch.setenv("L2A_BF16", "fast")
    with pytest.raises(ConfigError, match="L2A_BF16='fast'"):
        train.bf16_in_use()


# ------------------------------------------- the candidate settings of issue 35
def test_select_on_picks_the_epoch_best_on_that_metric(toy, tokenizer):
    import dataclasses
    model = models.build_student(TINY, 2, seed=1)
    res = train.fine_tune(model, toy, toy, "classification",
                          dataclasses.replace(CFG, epochs=4, select_on="f1"), seed=1,
                          pad_id=tokenizer.pad_token_id, dev_metric="acc_f1")
    f1 = [h["f1"] for h in res.history]
    assert res.best_epoch == f1.index(max(f1))


def test_balanced_class_weights():
    w = train.balanced_weights([0, 0, 0, 1], 2)
    torch.testing.assert_close(w, torch.tensor([4 / 6, 4 / 2]))
    # weighted cross-entropy: the rare class's errors count more
    logits, labels = torch.zeros(4, 2), torch.tensor([0, 0, 0, 1])
    assert train.task_loss(logits, labels, False, w) == pytest.approx(np.log(2))


def test_head_bias_starts_regression_at_the_label_mean(tokenizer):
    import dataclasses
    df = pd.DataFrame({"text_a": ["a b c", "d e f", "g h i", "j k l"], "text_b": None,
                       "label": [0.7, 0.9, 0.8, 0.6]})
    enc = encoding.encode(df, tokenizer, 16)
    model = models.build_student(TINY, 1, seed=0)
    seen = {}
    real = train.train_loop

    def spy(model, *a, **k):  # the bias the training starts from
        seen["bias"] = float(model.head.bias.detach())
        return real(model, *a, **k)
    import unittest.mock as mock
    with mock.patch.object(train, "train_loop", spy):
        train.fine_tune(model, enc, enc, "regression",
                        dataclasses.replace(CFG, epochs=1, head_bias="label_mean"),
                        seed=0, pad_id=tokenizer.pad_token_id, dev_metric="pearson")
    assert seen["bias"] == pytest.approx(0.75)


def test_a_teacher_with_source_epochs_sees_the_source_first(tmp_path, data_dir, monkeypatch):
    import dataclasses
    from l2a_lib import experiment
    from l2a_lib.profiles import make_config
    from l2a_lib.records import load_record
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    base = make_config("tc", "teacher_ft", 0, profile="smoke")
    config = dataclasses.replace(base, teacher_train=dataclasses.replace(base.teacher_train,
                                                                         source_epochs=1))
    assert config.hash() != base.hash()
    experiment.run(config, results_dir=tmp_path / "results", data_dir=data_dir)
    info = load_record(config, tmp_path / "results")["extra"]["fine_tune"]
    assert info["source"]["epochs_run"] == 1
