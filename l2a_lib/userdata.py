"""A user's own domain: files (or a hub data set) -> checked, split task frames.

The first part of distilling on one's own data (issue 37): :func:`read_table` reads a
CSV, TSV or JSON Lines file with the ``datasets`` library (or a data set from the
Hugging Face hub, for users with a network) into the companion's frame (``uid``,
``text_a``, ``text_b``, ``label``); :func:`check` refuses, before any training, what
would make a run fail late or mean nothing;  the splits are drawn by the paper
tasks' own code (``data.split_target``) once ``distill.register`` has made the files a
task. Every refusal is a ``DataError`` whose message
names the file or column and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

KINDS = ("classification", "regression")
# file suffix -> (datasets builder, its arguments, what the user called it)
FORMATS = {".csv": ("csv", {}, "CSV"), ".tsv": ("csv", {"delimiter": "\t"}, "TSV"),
           ".tab": ("csv", {"delimiter": "\t"}, "TSV"), ".jsonl": ("json", {}, "JSON Lines"),
           ".json": ("json", {}, "JSON Lines")}
MIN_TEST = 20  # test examples a target must keep after train and dev, at the least


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text, the second text of a pair (None: single texts) and
    the label (``--text-column``, ``--pair-column``, ``--label-column``)."""
    text: str = "text"
    label: str = "label"
    pair: str | None = None


def _load(spec: str, what: str) -> pd.DataFrame:
    import datasets
    path = Path(spec)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is not None:
        if not path.is_file():
            raise DataError(f"the {what} file {spec} does not exist: give the path of a CSV, TSV "
                            "or JSON Lines file")
        builder, kwargs, name = fmt
        bars_on = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # a file of a few thousand rows: no bar on stderr
        level = datasets.logging.get_verbosity()
        datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its reader logs what we raise
        try:
            ds = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
        except Exception as e:  # noqa: BLE001 - any reader failure is the user's file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"cannot read the {what} file {spec} as {name} ({first[:200]}): check "
                            f"that it is {name}, with column names in a header row (CSV, TSV) "
                            "or one JSON object per line") from e
        finally:
            datasets.logging.set_verbosity(level)
            if bars_on:
                datasets.enable_progress_bars()
        return ds.to_pandas()
    if path.exists():
        raise DataError(f"the {what} file {spec} has an unknown suffix {path.suffix!r}: use "
                        f"{', '.join(sorted(FORMATS))}")
    name, _, split = spec.partition(":")
    try:  # a data set on the hub: name or name:split
        return datasets.load_dataset(name, split=split or "train").to_pandas()
    except Exception as e:  # noqa: BLE001
        raise DataError(f"the {what} data {spec!r} is neither a file nor a data set that could be "
                        f"loaded from the hub ({type(e).__name__}): give a file path, or a hub "
                        "name (name or name:split) on a machine with a network") from e


def _rows(mask: pd.Series) -> str:
    idx = [int(i) + 1 for i in np.flatnonzero(mask.to_numpy())]
    return ", ".join(map(str, idx[:5])) + (f" and {len(idx) - 5} more" if len(idx) > 5 else "")


def read_table(spec: str, columns: Columns = Columns(), kind: str = "classification",
               what: str = "target") -> pd.DataFrame:
    """The examples of ``spec`` as ``uid, text_a, text_b, label`` (labels as read: class
    names or numbers; regression labels as floats). Refuses a missing column, an empty
    or non-text row and, for regression, a label that is not a number."""
    if kind not in KINDS:
        raise DataError(f"task type {kind!r}: choose one of {', '.join(KINDS)}")
    df = _load(spec, what)
    if not len(df):
        raise DataError(f"the {what} data {spec} has no rows")
    for col, flag in ((columns.text, "--text-column"), (columns.pair, "--pair-column"),
                      (columns.label, "--label-column")):
        if col is not None and col not in df.columns:
            raise DataError(f"the {what} data {spec} has no column {col!r} (its columns: "
                            f"{', '.join(map(str, df.columns))}): name the right one with {flag}")
    for col in [c for c in (columns.text, columns.pair) if c]:
        bad = ~df[col].map(lambda t: isinstance(t, str) and bool(t.strip()))
        if bad.any():
            raise DataError(f"{int(bad.sum())} row(s) of the {what} data {spec} have an empty or "
                            f"non-text {col!r} (data rows {_rows(bad)}): fill them in or remove them")
    labels = df[columns.label]
    if labels.isna().any():
        raise DataError(f"{int(labels.isna().sum())} row(s) of the {what} data {spec} have no "
                        f"label (data rows {_rows(labels.isna())}): label them or remove them")
    if kind == "regression":
        numbers = pd.to_numeric(labels, errors="coerce")
        if numbers.isna().any():
            raise DataError(f"the {what} data {spec} is a regression task, but {int(numbers.isna().sum())} "
                            f"label(s) are not numbers (data rows {_rows(numbers.isna())}, e.g. "
                            f"{labels[numbers.isna()].iloc[0]!r}): give numeric labels, or use "
                            "--task-type classification")
        labels = numbers.astype(float)
    return pd.DataFrame({"uid": [f"{what}:{i}" for i in range(len(df))],
                         "text_a": df[columns.text].str.strip().to_numpy(),
                         "text_b": (df[columns.pair].str.strip().to_numpy() if columns.pair
                                    else None),
                         "label": labels.to_numpy()})


def check(target: pd.DataFrame, source: pd.DataFrame | None, kind: str, *,
          train_per_class: int = 40, n_train: int = 80, dev_size: int = 100) -> list:
    """Refuse, before any training, a target that cannot give the few-shot splits or a
    source whose classes the target lacks. Returns the class names (sorted; empty for
    regression), which become label ids 0..C-1."""
    if kind == "regression":
        need = n_train + dev_size + MIN_TEST
        if len(target) < need:
            raise DataError(f"the target has {len(target)} examples; {n_train} training, {dev_size} "
                            f"dev and at least {MIN_TEST} test examples need {need}: lower --n-train "
                            "or --dev-size, or give more target data")
        return []
    classes = sorted(pd.unique(target["label"]), key=str)
    if len(classes) < 2:
        raise DataError(f"the target has a single class ({classes[0]!r}): a classifier needs at least "
                        "two; check --label-column")
    need = train_per_class * len(classes) + dev_size + MIN_TEST
    if len(target) < need:
        raise DataError(f"the target has {len(target)} examples; {train_per_class} per class for "
                        f"training, {dev_size} for dev and at least {MIN_TEST} for test need {need}: "
                        "lower --train-per-class or --dev-size, or give more target data")
    counts = target["label"].value_counts()
    # each class gives train_per_class to training, its share of the dev split (as
    # data.split_target draws it) and at least one test example
    need_c = {c: train_per_class + max(1, int(round(dev_size * counts[c] / len(target)))) + 1
              for c in classes}
    short = {c: int(counts[c]) for c in classes if counts[c] < need_c[c]}
    if short:
        raise DataError(f"the few-shot setting takes {train_per_class} training examples per class "
                        f"and leaves some for dev and test, but the target has only "
                        f"{', '.join(f'{n} of {c!r}' for c, n in short.items())}: lower "
                        "--train-per-class or give more examples of those classes")
    if source is not None:
        extra = sorted(set(pd.unique(source["label"])) - set(classes), key=str)
        if extra:
            raise DataError(f"the source has label(s) the target lacks ({', '.join(map(repr, extra[:5]))}): "
                            "the teacher and student predict the target's classes; drop those "
                            "source rows, or map them to target classes")
    return classes


def encode_labels(df: pd.DataFrame, classes: list) -> pd.DataFrame:
    """Class names -> ids 0..C-1 in ``classes`` order (regression: unchanged)."""
    if not classes:
        return df
    ids = {c: i for i, c in enumerate(classes)}
    return df.assign(label=df["label"].map(ids).astype(int))


def check_given(train: pd.DataFrame, dev: pd.DataFrame, test: pd.DataFrame,
                source: pd.DataFrame | None, kind: str) -> list:
    """The user's own splits (``--dev`` and ``--test``): the training file is used
    whole. Refuses a training split with one class and dev or test labels it lacks;
    returns the classes as :func:`check` does."""
    if kind == "regression":
        return []
    classes = sorted(pd.unique(train["label"]), key=str)
    if len(classes) < 2:
        raise DataError(f"the training split has a single class ({classes[0]!r}): a classifier "
                        "needs at least two; check --label-column")
    for what, df in (("dev", dev), ("test", test), ("source", source)):
        if df is None:
            continue
        extra = sorted(set(pd.unique(df["label"])) - set(classes), key=str)
        if extra:
            raise DataError(f"the {what} split has label(s) the training split lacks "
                            f"({', '.join(map(repr, extra[:5]))}): add training examples of "
                            "them, or drop those rows")
    return classes
