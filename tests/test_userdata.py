"""A user's own files (issue 37): read with the datasets library, checked before any
training (each bad input gets one clear error naming the fix), split by a seed."""
import json

import pandas as pd
import pytest

from l2a_lib import userdata
from l2a_lib.errors import DataError
from l2a_lib.userdata import Columns


def _reviews(n_pos=60, n_neg=60):
    return pd.DataFrame({"review": [f"a good film number {i}" for i in range(n_pos)]
                         + [f"a dull film number {i}" for i in range(n_neg)],
                         "stars": ["pos"] * n_pos + ["neg"] * n_neg})


def test_csv_tsv_and_json_lines_read_alike(tmp_path):
    df = _reviews()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in df.to_dict("records")) + "\n")
    cols = Columns(text="review", label="stars")
    frames = [userdata.read_table(str(tmp_path / f"t.{x}"), cols) for x in ("csv", "tsv", "jsonl")]
    for f in frames:
        assert list(f.columns) == ["uid", "text_a", "text_b", "label"] and len(f) == 120
        assert f["text_a"].tolist() == frames[0]["text_a"].tolist()
        assert f["label"].tolist() == frames[0]["label"].tolist()


def test_sentence_pairs_and_numeric_regression_labels(tmp_path):
    pd.DataFrame({"q1": ["how old are you", "where is it"], "q2": ["what is your age", "who is it"],
                  "score": ["0.5", "1"]}).to_csv(tmp_path / "p.csv", index=False)
    f = userdata.read_table(str(tmp_path / "p.csv"), Columns(text="q1", pair="q2", label="score"),
                            kind="regression")
    assert f["text_b"].tolist() == ["what is your age", "who is it"]
    assert f["label"].tolist() == [0.5, 1.0]


@pytest.mark.parametrize("case,match", [
    ("missing column", r"no column 'text'.*--text-column"),
    ("empty row", r"empty or non-text 'review' \(data rows 3\): fill them in or remove them"),
    ("not numeric", r"not numbers .*--task-type classification"),
    ("unreadable", r"cannot read the target file .* as JSON Lines"),
    ("no such file", r"does not exist"),
    ("unknown suffix", r"unknown suffix '.xlsx'"),
])
def test_bad_files_get_one_clear_error(tmp_path, case, match):
    df = _reviews(3, 3)
    cols, kind, path = Columns(text="review", label="stars"), "classification", tmp_path / "t.csv"
    if case == "missing column":
        cols = Columns()
    elif case == "empty row":
        df.loc[2, "review"] = "   "
    elif case == "not numeric":
        kind = "regression"
    elif case == "unreadable":
        path = tmp_path / "t.jsonl"
        path.write_text('{"review": "fine", "stars": "pos"}\n{not json at all\n')
    elif case == "no such file":
        path = tmp_path / "missing.csv"
    elif case == "unknown suffix":
        path = tmp_path / "t.xlsx"
        path.write_text("x")
    if path.suffix == ".csv" and case != "no such file":
        df.to_csv(path, index=False)
    with pytest.raises(DataError, match=match):
        userdata.read_table(str(path), cols, kind=kind)


def _frame(labels):
    return pd.DataFrame({"uid": range(len(labels)), "text_a": "x", "text_b": None, "label": labels})


@pytest.mark.parametrize("target,source,match", [
    (["pos"] * 200, None, r"single class \('pos'\).*--label-column"),
    (["pos"] * 200 + ["neg"] * 30, None, r"only 30 of 'neg'.*--train-per-class"),
    (["pos"] * 100 + ["neg"] * 50, None, r"need 200.*--dev-size"),
    (["pos"] * 150 + ["neg"] * 150, ["pos", "neg", "mixed"], r"source has label\(s\) the target lacks \('mixed'\)"),
])
def test_targets_that_cannot_give_the_few_shot_splits_are_refused(target, source, match):
    with pytest.raises(DataError, match=match):
        userdata.check(_frame(target), _frame(source) if source else None, "classification",
                       train_per_class=40, dev_size=100)


def test_registered_files_split_by_the_paper_tasks_code(tmp_path):
    """A user's files become a task that load_task splits like the paper's: the few-shot
    train split, a stratified dev split, the rest for test, disjoint and repeatable."""
    from l2a_lib import data, distill
    from l2a_lib.profiles import make_config
    target = pd.DataFrame({"review": [f"film {i}" for i in range(400)],
                           "stars": ["pos"] * 300 + ["neg"] * 100})
    target.to_csv(tmp_path / "t.csv", index=False)
    target.iloc[::4].to_csv(tmp_path / "s.csv", index=False)
    cols = Columns(text="review", label="stars")
    task, classes, settings = distill.register(str(tmp_path / "t.csv"), str(tmp_path / "s.csv"),
                                               "classification", cols)
    assert classes == ["neg", "pos"] and task.startswith("t-")
    cfg = make_config(task, "student_ft", 3, **settings)
    assert cfg.data.max_length == make_config("tc", "student_ft").data.max_length  # tc's settings
    td = data.load_task(task, cfg.data, seed=3)
    assert td.train["label"].value_counts().to_dict() == {0: 40, 1: 40}
    assert td.dev["label"].value_counts().to_dict() == {1: 75, 0: 25}
    ids = [set(x["text_a"]) for x in (td.train, td.dev, td.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == 400 and len(td.source) == 100
    again = data.load_task(task, cfg.data, seed=3)
    assert again.train["text_a"].tolist() == td.train["text_a"].tolist()
    # another file is another task (its runs get their own cache keys)
    target.iloc[:399].to_csv(tmp_path / "t.csv", index=False)
    other, _, _ = distill.register(str(tmp_path / "t.csv"), str(tmp_path / "s.csv"),
                                   "classification", cols)
    assert other != task


def test_given_splits_with_labels_the_training_split_lacks_are_refused():
    train = _frame(["pos", "neg"] * 5)
    with pytest.raises(DataError, match=r"the dev split has label\(s\) the training split lacks \('mixed'\)"):
        userdata.check_given(train, _frame(["pos", "mixed"]), _frame(["pos"]), None, "classification")
    with pytest.raises(DataError, match=r"training split has a single class"):
        userdata.check_given(_frame(["pos"] * 4), _frame(["pos"]), _frame(["pos"]), None,
                             "classification")
    assert userdata.check_given(train, _frame(["pos"]), _frame(["neg"]), None,
                                "classification") == ["neg", "pos"]
