"""The trained masked LM is published with the results and reused from there."""
import json

import pytest
import torch

from l2a_lib import paths
from l2a_lib import mlm


def _trained_looking(tokenizer, shift: float):
    torch.manual_seed(0)
    model = mlm.build(mlm.SMOKE_MLM, tokenizer)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(shift)
    return model


def test_publish_round_trip_in_parts(tokenizer, tmp_path, monkeypatch):
    state = _trained_looking(tokenizer, 0.25).trainable_state()
    monkeypatch.setattr(paths, "PART_BYTES", 64 * 1024)  # force several parts
    paths.publish_state(state, {"scores": {"tc": {"top1": 0.5}}}, tmp_path / "key")
    manifest = json.loads((tmp_path / "key" / "manifest.json").read_text())
    assert len(manifest["parts"]) > 1
    assert sorted(t for p in manifest["parts"] for t in p["tensors"]) == sorted(state)
    loaded, info = paths.load_published_state(tmp_path / "key")
    assert info == {"scores": {"tc": {"top1": 0.5}}}
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary folder was renamed away


def test_absent_folder_is_none_and_a_changed_part_is_an_error(tokenizer, tmp_path):
    assert paths.load_published_state(tmp_path / "nothing") is None
    paths.publish_state(_trained_looking(tokenizer, 0.1).trainable_state(), {}, tmp_path / "key")
    part = tmp_path / "key" / "part-00.pt"
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(OSError, match="sha256"):
        paths.load_published_state(tmp_path / "key")


def test_train_loads_published_weights_without_training(tokenizer, tmp_path):
    cfg = mlm.SMOKE_MLM
    state = _trained_looking(tokenizer, 0.5).trainable_state()
    paths.publish_state(state, {"scores": {"tc": {"top1": 0.3}}}, tmp_path / "shelf" / cfg.key())
    # no data folder: training would fail, so a returned model was loaded
    model, info = mlm.train(cfg, tokenizer, data_dir=tmp_path / "no-data",
                            cache=tmp_path / "cache", published=tmp_path / "shelf")
    assert info["scores"]["tc"]["top1"] == 0.3
    got = model.trainable_state()
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert (tmp_path / "cache" / "mlm" / f"{cfg.key()}.pt").is_file()  # now cached locally


def test_a_locally_cached_model_gets_published(tokenizer, tmp_path):
    cfg = mlm.SMOKE_MLM
    state = _trained_looking(tokenizer, -0.2).trainable_state()
    paths.publish_state(state, {"from": "shelf one"}, tmp_path / "one" / cfg.key())
    mlm.train(cfg, tokenizer, data_dir=tmp_path / "no-data", cache=tmp_path / "cache",
              published=tmp_path / "one")
    # a second results folder without the weights receives them from the local cache
    mlm.train(cfg, tokenizer, data_dir=tmp_path / "no-data", cache=tmp_path / "cache",
              published=tmp_path / "two")
    loaded, info = paths.load_published_state(tmp_path / "two" / cfg.key())
    assert info == {"from": "shelf one"}
    assert all(torch.equal(loaded[k], state[k]) for k in state)
