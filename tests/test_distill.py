"""Distilling a user's own files (issue 37): one command, the paper runs' code, the
student saved as a standard Hugging Face model that predicts what the in-memory
student predicts."""
import numpy as np
import pandas as pd
import pytest
import torch

from l2a_lib import cli
from l2a_lib.errors import ConfigError


def _write_domain(folder, n_pos=120, n_neg=120, seed=0):
    rng = np.random.default_rng(seed)
    good = ["a warm and funny film", "the cast is superb", "a moving story, well told",
            "i loved every minute", "sharp writing and great acting"]
    bad = ["a dull and lifeless film", "the plot makes no sense", "badly acted throughout",
           "i was bored the whole time", "a tedious mess"]
    texts = [f"{good[i % 5]} {rng.integers(1000)}" for i in range(n_pos)] + \
            [f"{bad[i % 5]} {rng.integers(1000)}" for i in range(n_neg)]
    df = pd.DataFrame({"review": texts, "stars": ["pos"] * n_pos + ["neg"] * n_neg})
    folder.mkdir(parents=True, exist_ok=True)
    df.sample(frac=1.0, random_state=seed).to_csv(folder / "target.csv", index=False)
    df.iloc[::2].to_json(folder / "source.jsonl", orient="records", lines=True)
    return folder / "target.csv", folder / "source.jsonl"


@pytest.fixture()
def isolated(tmp_path, monkeypatch, data_dir):
    """A scratch cache and results folder; the paper's data stays reachable because the
    smoke profile trains its augmentation masked LM on the paper's four domains (the cpu
    profile's is committed with the results)."""
    monkeypatch.setenv("L2A_DATA_DIR", str(data_dir))
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("L2A_PROGRESS", "0")
    from l2a_lib import tasks
    yield tmp_path
    for name in list(tasks.USER_REGISTRY):  # leave no user task behind for other tests
        tasks.USER_REGISTRY.pop(name)
        tasks.USER_TASKS.pop(name, None)


@pytest.mark.parametrize("method", ["student_ft", "l2a"])
def test_a_saved_student_predicts_what_the_trained_one_predicts(isolated, method):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from l2a_lib.distill import distill
    from l2a_lib.userdata import Columns
    target, source = _write_domain(isolated / "files")
    out = isolated / "student"
    res = distill(str(target), str(source), kind="classification", method=method, out=out,
                  columns=Columns(text="review", label="stars"), profile="smoke",
                  results_dir=isolated / "results")
    assert res.student is not None and res.classes == ["neg", "pos"]
    saved = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert saved.config.id2label == {0: "neg", 1: "pos"}
    texts = ["a warm and funny film", "a tedious mess of a plot", "the cast is superb"]
    enc = tok(texts, padding=True, return_tensors="pt")
    student = res.student.cpu().eval()
    with torch.no_grad():
        ours = student(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).logits
        theirs = saved(**enc).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)
    card = (out / "README.md").read_text()
    assert method in card and "test:" in card and "sizes:" in card
    # asked again: read from the cache and copied, nothing trained
    again = distill(str(target), str(source), kind="classification", method=method,
                    out=isolated / "again", columns=Columns(text="review", label="stars"),
                    profile="smoke", results_dir=isolated / "results")
    assert again.student is None and again.record["config_hash"] == res.record["config_hash"]
    assert (isolated / "again" / "model.safetensors").read_bytes() == \
        (out / "model.safetensors").read_bytes()
    if method != "student_ft":
        return
    # in float16 (the book's example), then on a "fresh clone" without the local cache:
    # the out folder that holds the run's student is used as it is, nothing trained
    kw = dict(kind="classification", method=method, columns=Columns(text="review", label="stars"),
              profile="smoke", results_dir=isolated / "results", dtype="float16")
    distill(str(target), str(source), out=isolated / "half", **kw)
    import shutil
    shutil.rmtree(isolated / "cache" / "students")
    third = distill(str(target), str(source), out=isolated / "half", **kw)
    assert third.student is None
    half = AutoModelForSequenceClassification.from_pretrained(isolated / "half").eval()
    with torch.no_grad():
        torch.testing.assert_close(half(**enc).logits, ours, atol=2e-2, rtol=2e-2)
    from safetensors.torch import load_file
    assert {v.dtype for v in load_file(isolated / "half" / "model.safetensors").values()} == \
        {torch.float16}


def test_the_command_line_distils_and_reports(isolated, capsys):
    target, source = _write_domain(isolated / "files")
    rc = cli.main(["--results-dir", str(isolated / "results"), "distill", "--target", str(target),
                   "--source", str(source), "--text-column", "review", "--label-column", "stars",
                   "--method", "student_ft", "--profile", "smoke", "--out", str(isolated / "out")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "test acc" in printed and "from_pretrained" in printed
    assert (isolated / "out" / "config.json").is_file()


@pytest.mark.parametrize("argv,match", [
    (["--method", "bilstm_soft"], r"bilstm_soft cannot be saved.*BiLSTM.*choose one of"),
    (["--method", "teacher_ft"], r"teacher_ft cannot be saved.*MPNet teacher"),
    (["--method", "nonsense"], r"'nonsense' is not a method"),
    (["--method", "l2a_pkd6_control"], r"'l2a_pkd6_control' is a variant of the study's pages that "
                                       r"distill does not offer; choose one of student_ft"),
    (["--label-column", "rating"], r"no column 'rating'.*--label-column"),
    (["--few-negatives"], r"only 5 of 'neg'.*--train-per-class"),
])
def test_bad_requests_are_refused_before_training(isolated, capsys, argv, match):
    few = argv == ["--few-negatives"]
    target, source = _write_domain(isolated / "files", n_neg=5 if few else 120)
    argv = [] if few else argv
    base = ["--results-dir", str(isolated / "results"), "distill", "--target", str(target),
            "--source", str(source), "--text-column", "review", "--label-column", "stars",
            "--profile", "smoke", "--out", str(isolated / "out")]
    rc = cli.main(base + argv)
    assert rc == 2
    err = capsys.readouterr().err
    import re
    assert re.search(match, err), err
    assert not (isolated / "results" / "runs").exists() or not any((isolated / "results" / "runs").iterdir())


def test_a_user_task_is_refused_by_name_until_registered():
    from l2a_lib.profiles import make_config
    with pytest.raises(ConfigError, match="not allowed"):
        make_config("reviews-0000", "student_ft", 0)


def test_a_given_fine_tuned_teacher_is_used_as_it_is(isolated):
    """--teacher DIR: a saved BertForSequenceClassification (here a student saved by an
    earlier distill) becomes the teacher without fine-tuning; on the same dev split it
    scores what it scored as that student."""
    from l2a_lib.distill import distill
    from l2a_lib.userdata import Columns
    target, source = _write_domain(isolated / "files")
    kw = dict(kind="classification", columns=Columns(text="review", label="stars"),
              profile="smoke", results_dir=isolated / "results")
    first = distill(str(target), str(source), method="student_ft", out=isolated / "t", **kw)
    res = distill(str(target), str(source), method="l2a", out=isolated / "s",
                  teacher=str(isolated / "t"), **kw)
    used = res.record["teacher"]
    assert used["trained_here"] is False and res.config.model.teacher.startswith("given-")
    dev = {r["metric"]: r["value"] for r in first.record["rows"] if r["split"] == "dev"}
    assert used["best_dev"]["acc"] == pytest.approx(dev["acc"])
    assert "given, fine-tuned by the user" in (isolated / "s" / "README.md").read_text()


def test_a_given_teacher_that_cannot_work_is_refused(isolated, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification
    from l2a_lib.distill import register_teacher
    with pytest.raises(ConfigError, match="or a folder saved with save_pretrained"):
        register_teacher(str(tmp_path / "nothing"), ["neg", "pos"])
    folder = tmp_path / "three"
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=3)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    with pytest.raises(ConfigError, match="no tokenizer"):
        register_teacher(str(folder), ["neg", "pos"])
    from l2a_lib.config import ModelConfig
    from l2a_lib.models import load_tokenizer
    load_tokenizer(ModelConfig()).save_pretrained(folder)
    with pytest.raises(ConfigError, match="has 3 outputs; the target needs 2"):
        register_teacher(str(folder), ["neg", "pos"])


@pytest.mark.parametrize("shape", ["pairs", "regression"])
def test_sentence_pairs_and_regression_round_trip(isolated, shape):
    """Pairs take PI's settings and regression the regression task's; both save and
    load as BertForSequenceClassification with the trained student's outputs."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from l2a_lib.distill import distill
    from l2a_lib.userdata import Columns
    rng = np.random.default_rng(1)
    n = 240
    a = [f"is the film {w} {i}" for i, w in zip(range(n), rng.choice(["good", "long", "new"], n))]
    b = [f"was the movie {w} {i}" for i, w in zip(range(n), rng.choice(["good", "long", "new"], n))]
    if shape == "pairs":
        df = pd.DataFrame({"q1": a, "q2": b, "same": rng.choice(["yes", "no"], n)})
        cols, kind = Columns(text="q1", pair="q2", label="same"), "classification"
    else:
        df = pd.DataFrame({"q1": a, "score": rng.random(n).round(3)})
        cols, kind = Columns(text="q1", label="score"), "regression"
    df.to_csv(isolated / "t.csv", index=False)
    df.iloc[::2].to_csv(isolated / "s.csv", index=False)
    res = distill(str(isolated / "t.csv"), str(isolated / "s.csv"), kind=kind, method="student_ft",
                  out=isolated / "out", columns=cols, profile="smoke",
                  results_dir=isolated / "results")
    assert res.config.data.max_length == 48  # the smoke profile's cap
    saved = AutoModelForSequenceClassification.from_pretrained(isolated / "out").eval()
    tok = AutoTokenizer.from_pretrained(isolated / "out")
    enc = tok(a[:3], b[:3], padding=True, return_tensors="pt") if shape == "pairs" else \
        tok(a[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = res.student.cpu().eval()(enc["input_ids"], enc["attention_mask"],
                                        enc["token_type_ids"]).logits
        torch.testing.assert_close(saved(**enc).logits, ours, atol=1e-5, rtol=1e-4)
    assert saved.config.num_labels == (2 if shape == "pairs" else 1)
    if shape == "regression":
        assert saved.config.problem_type == "regression"


def test_the_users_own_splits_are_used_as_given(isolated):
    """--dev and --test: the target file is the training split as it is (no draw)."""
    from l2a_lib.distill import distill
    from l2a_lib.userdata import Columns
    target, source = _write_domain(isolated / "files")
    df = pd.read_csv(target)
    train, dev, test = df.iloc[:30], df.iloc[30:60], df.iloc[60:100]
    for name, part in (("train", train), ("dev", dev), ("test", test)):
        part.to_csv(isolated / f"{name}.csv", index=False)
    res = distill(str(isolated / "train.csv"), str(source), method="student_ft",
                  out=isolated / "out", columns=Columns(text="review", label="stars"),
                  profile="smoke", results_dir=isolated / "results",
                  dev=str(isolated / "dev.csv"), test=str(isolated / "test.csv"))
    sizes = res.record["sizes"]
    assert (sizes["train"], sizes["dev"], sizes["test"]) == (30, 30, 40)  # smoke's cap is 48
    with pytest.raises(ConfigError, match="both --dev and --test"):
        distill(str(isolated / "train.csv"), str(source), out=isolated / "o2",
                columns=Columns(text="review", label="stars"), profile="smoke",
                dev=str(isolated / "dev.csv"))


def test_a_mean_pooled_student_saves_with_its_code_and_round_trips(isolated):
    """--pooling mean: the paper pages' pooling, saved with hf_mean_pooled.py; loaded with
    trust_remote_code=True it predicts what the trained student predicts."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from l2a_lib.distill import distill
    from l2a_lib.userdata import Columns
    target, source = _write_domain(isolated / "files")
    res = distill(str(target), str(source), method="student_ft", out=isolated / "out",
                  columns=Columns(text="review", label="stars"), profile="smoke",
                  results_dir=isolated / "results", pooling="mean")
    assert (isolated / "out" / "hf_mean_pooled.py").is_file()
    assert "trust_remote_code=True" in (isolated / "out" / "README.md").read_text()
    saved = AutoModelForSequenceClassification.from_pretrained(isolated / "out",
                                                               trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(isolated / "out")
    enc = tok(["a warm film", "a tedious and very long mess"], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = res.student.cpu().eval()(enc["input_ids"], enc["attention_mask"],
                                        enc["token_type_ids"]).logits
        torch.testing.assert_close(saved(**enc).logits, ours, atol=1e-5, rtol=1e-4)
