"""Loaders against the real shared files, the splits, and errors on bad input."""
import shutil

import pytest

from l2a_lib import data
from l2a_lib.config import DataConfig
from l2a_lib.paths import DataDirError

EXPECTED_ROWS = {  # from the data README / PROVENANCE
    ("tc", "source"): 67349, ("tc", "target"): 10662,
    ("pi", "source"): 23497, ("pi", "target"): 1400,
    ("nli", "source"): 9927, ("nli", "target"): 1244 + 139 + 1384,
    ("reg", "source"): 1596, ("reg", "target"): 1686,
}


@pytest.mark.parametrize("task,domain", sorted(EXPECTED_ROWS))
def test_row_counts(data_dir, task, domain):
    df = data.load_domain(task, domain, data_dir=data_dir)
    assert len(df) == EXPECTED_ROWS[(task, domain)]
    assert df["uid"].is_unique
    assert df["text_a"].str.strip().ne("").all()
    if data.get_task(task).pair:
        assert df["text_b"].str.strip().ne("").all()
    if data.get_task(task).kind == "classification":
        assert set(df["label"]) == {0, 1}
    else:
        assert df["label"].between(0, 1).all()


def test_label_balance_matches_readme(data_dir):
    cikm = data.load_domain("pi", "target", data_dir=data_dir)
    assert (cikm.label == 1).sum() == 209
    sick = data.load_domain("nli", "source", data_dir=data_dir)
    assert (sick.label == 1).sum() == 2857  # ENTAILMENT; NEUTRAL + CONTRADICTION -> 0


@pytest.mark.parametrize("task", ["tc", "pi", "nli", "reg"])
def test_splits_disjoint_sized_and_deterministic(data_dir, task):
    spec = data.get_task(task)
    cfg = DataConfig(task=task)
    a = data.load_task(task, cfg, seed=0, data_dir=data_dir)
    b = data.load_task(task, cfg, seed=0, data_dir=data_dir)
    c = data.load_task(task, cfg, seed=1, data_dir=data_dir)
    uids = [set(getattr(a, s)["uid"]) for s in ("train", "dev", "test")]
    assert not (uids[0] & uids[1]) and not (uids[0] & uids[2]) and not (uids[1] & uids[2])
    assert len(a.test) == spec.test_size and len(a.dev) == cfg.dev_size
    if spec.train_sampling == "per_class":
        assert a.train["label"].value_counts().to_dict() == {0: 40, 1: 40}
    else:
        assert len(a.train) == cfg.n_train
    for s in ("train", "dev", "test"):  # same seed -> same examples in the same order
        assert list(getattr(a, s)["uid"]) == list(getattr(b, s)["uid"])
    assert list(a.test["uid"]) == list(c.test["uid"])  # the test set is fixed per task
    assert set(a.train["uid"]) != set(c.train["uid"])  # the few-shot draw follows the seed


def test_pi_train_keeps_natural_balance(data_dir):
    from l2a_lib.profiles import make_config
    cfg = make_config("pi", "student_ft").data
    td = data.load_task("pi", cfg, seed=0, data_dir=data_dir)
    assert len(td.train) == 300
    assert td.train["label"].sum() == round(300 * 209 / 1400)  # 15% paraphrases, as the target


def test_limit_caps_every_split(data_dir):
    td = data.load_task("tc", DataConfig(task="tc", limit=10), data_dir=data_dir)
    assert {k: v for k, v in td.sizes().items()} == {"source": 40, "train": 10, "dev": 10,
                                                     "test": 10}


# ------------------------------------------------------------------ bad input
@pytest.fixture
def fake_data(tmp_path, data_dir):
    """A writable copy of the small data folders."""
    for sub in ("rte", "sick", "rt_polarity"):
        shutil.copytree(data_dir / sub, tmp_path / sub)
    return tmp_path


def test_missing_directory_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("L2A_DATA_DIR", raising=False)
    with pytest.raises(DataDirError, match="L2A_DATA_DIR"):
        data.load_domain("tc", "target")
    with pytest.raises(DataDirError, match="does not exist"):
        data.load_domain("tc", "target", data_dir=tmp_path / "nope")


def test_missing_file_names_the_file(fake_data):
    (fake_data / "rte" / "dev.tsv").unlink()
    with pytest.raises(data.DataError, match=r"rte/dev\.tsv"):
        data.load_domain("nli", "target", data_dir=fake_data)


def test_malformed_row_names_file_and_line(fake_data):
    p = fake_data / "sick" / "SICK.txt"
    lines = p.read_text().splitlines()
    lines[4] = "5\tonly two fields"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(data.DataError, match=r"SICK\.txt, line 5: malformed row"):
        data.load_domain("nli", "source", data_dir=fake_data)


def test_unknown_label_names_allowed_labels(fake_data):
    p = fake_data / "rte" / "train.tsv"
    lines = p.read_text().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tmaybe"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(data.DataError, match=r"line 3: unknown label 'maybe'.*entailment"):
        data.load_domain("nli", "target", data_dir=fake_data)


def test_empty_text_is_dropped_and_counted(fake_data):
    p = fake_data / "rt_polarity" / "rt-polarity.pos"
    lines = p.read_bytes().split(b"\n")  # bytes: latin-1 text holds other line-break chars
    lines[0], lines[1] = b"   ", b""
    p.write_bytes(b"\n".join(lines))
    df = data.load_domain("tc", "target", data_dir=fake_data)
    assert len(df) == 10662 - 2
    assert df.attrs["dropped_empty"] == 2


def test_unknown_task():
    with pytest.raises(data.DataError, match="known tasks"):
        data.get_task("qa")


def test_hub_source_without_network_gives_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(data.DataError, match="rotten_tomatoes.*source='local'"):
        data.load_domain("tc", "target", source="hub")


def test_targets_without_a_hub_copy_fall_back_to_local_files(data_dir):
    # CIKM and the Amazon reviews are not on the hub: every profile reads the files
    df = data.load_domain("pi", "target", source="hub", data_dir=data_dir)
    assert len(df) == 1400
