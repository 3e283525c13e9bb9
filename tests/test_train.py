"""The fine-tuning loop on a tiny random model: determinism, early stopping, NaN."""
import numpy as np
import pandas as pd
import pytest
import torch

from l2a_lib import models, train
from l2a_lib.config import ModelConfig, TrainConfig

TINY = ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert", student_layers=(0, 1))
CFG = TrainConfig(epochs=3, batch_size=4, lr=1e-3, patience=3, bf16=False)


@pytest.fixture
def toy(tokenizer):
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    df = pd.DataFrame({"text_a": [f"a {w} movie" for w in words * 3], "text_b": None,
                       "label": [1, 1, 1, 0, 0, 0] * 3})
    return train.encode(df, tokenizer, 16)


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
    b = train.collate(toy, [7], tokenizer.pad_token_id, False)
    with torch.no_grad():
        one = model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
    np.testing.assert_allclose(out[7], one[0].numpy(), atol=1e-5)


def test_nan_loss_is_reported_with_step(toy, tokenizer):
    model = models.build_student(TINY, 2)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(train.TrainingDiverged, match=r"epoch 0, step 0"):
        train.fine_tune(model, toy, toy, "classification", CFG, seed=0,
                        pad_id=tokenizer.pad_token_id, dev_metric="acc")


def test_collate_pads_and_masks(toy, tokenizer):
    b = train.collate(toy, [0, 1], tokenizer.pad_token_id, regression=False)
    n0 = len(toy.input_ids[0])
    assert b["attention_mask"][0, :n0].all() and b["input_ids"].shape[0] == 2
    assert b["labels"].dtype == torch.long
