"""Tables as a reader sees them: 3 decimals, "mean ± sd" in one cell, an interval in
one cell, readable column names and method names, no index column, no NaN.

Every table a page shows goes through :func:`readable` (``views.View.show`` calls it),
so the same quantity prints the same digits on every page."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import METHOD_LABELS, TASK_LABELS

DIGITS = 3
MISSING = "–"  # a cell with no value (en dash), never "NaN"
# internal column names -> what the reader sees
COLUMN_NAMES = {
    "p_value": "p (one-sided)", "difference": "difference", "best baseline score": "baseline",
    "variant score": "variant", "paper difference": "paper's difference",
    "removed part": "the removed part", "degenerate seeds": "constant predictions (seeds)",
    "n": "examples", "task": "task", "metric": "metric", "change": "change", "paper": "the paper says",
    "dropped_empty_in_domain": "empty rows dropped", "positive_share": "positive share",
    "label_mean": "label mean", "label_sd": "label sd", "split": "split", "seed": "seed",
    "method": "method",
}
# verdict words (``significance.VERDICTS``) -> the CSS class that colours them
VERDICT_CLASS = {**{w: "verdict-good" for w in ("better", "helps", "supported")},
                 **{w: "verdict-bad" for w in ("worse", "hurts", "contradicted")},
                 **{w: "verdict-none" for w in ("no clear difference", "no clear effect", "not shown",
                                                "not tested", "pending", "cannot be judged")}}
LABELLED = ("method", "variant", "best baseline", "run")  # columns holding method ids


def number(x, digits: int = DIGITS, signed: bool = False) -> str:
    """One number as every page prints it."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return MISSING
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def interval(low, high, digits: int = DIGITS) -> str:
    """A 95% interval in one cell: ``[-0.096, -0.077]``."""
    if low is None or (isinstance(low, float) and np.isnan(low)):
        return MISSING
    return f"[{low:+.{digits}f},\u00a0{high:+.{digits}f}]"  # no-break space: one line


def _digits(column: str) -> int:
    """Decimals by what a column holds: seconds and minutes 1, hours 2, else 3."""
    c = column.lower()
    return 1 if ("seconds" in c or "minutes" in c) else 2 if "hours" in c else DIGITS


def _cell(x, column: str):
    if isinstance(x, (list, tuple)):
        return ", ".join(map(str, x)) if x else "none"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        if np.isnan(x):
            return MISSING
        signed = column in ("difference", "paper's difference", "change")
        return number(float(x), _digits(column), signed=signed)
    if x is None or (isinstance(x, str) and x in ("nan", "NaN", "-")):
        return MISSING
    if column in LABELLED and isinstance(x, str):
        return METHOD_LABELS.get(x, x)
    if column == "task" and isinstance(x, str):
        return TASK_LABELS.get(x, x)
    return x


def tidy(df: pd.DataFrame, keep_index: bool = False) -> pd.DataFrame:
    """The frame with readable cells and names (strings only), the index made columns
    when it carries information (a named index), interval columns merged."""
    d = df.copy()
    if d.empty:  # a test whose runs are not computed: say so rather than draw an empty frame
        return pd.DataFrame({"": ["(nothing to show yet: the runs it needs are not computed)"]})
    if keep_index or any(n is not None for n in d.index.names) or not isinstance(d.index, pd.RangeIndex):
        if all(n is None for n in d.index.names) and d.index.nlevels == 1:
            d.index.name = ""  # labels without a name (e.g. tasks): a column with no header
        d = d.reset_index()
        if isinstance(d.columns, pd.MultiIndex):  # a single-level index joins a 2-level header
            d.columns = pd.MultiIndex.from_tuples(
                [c if c[1] or not isinstance(c, tuple) else (c[0], "") for c in d.columns])
    if "ci_low" in d.columns and "ci_high" in d.columns:
        at = list(d.columns).index("ci_low")
        ci = [interval(lo, hi) for lo, hi in zip(d["ci_low"], d["ci_high"])]
        d = d.drop(columns=["ci_low", "ci_high"])
        d.insert(at, "95% CI", ci)
    d = d.drop(columns=[c for c in ("sign", "col") if c in d.columns])
    if not isinstance(d.columns, pd.MultiIndex):
        d.columns = [COLUMN_NAMES.get(str(c), TASK_LABELS.get(str(c), str(c))) for c in d.columns]
        for c in d.columns:
            d[c] = [_cell(x, c) for x in d[c]]
    else:
        for c in d.columns:
            d[c] = [_cell(x, c[0]) for x in d[c]]
    # a method's name once per group of rows (Table 1: "ours" and "paper" rows)
    first = d.columns[0]
    if len(d) > 1 and d[first].duplicated().any() and not d[first].is_unique:
        d[first] = [x if i == 0 or x != prev else "" for i, (x, prev) in
                    enumerate(zip(d[first], [None, *d[first][:-1]]))]
    return d.reset_index(drop=True)


def readable(df, bold=None, keep_index: bool = False, caption: str | None = None):
    """A styled table for a page: :func:`tidy` cells, no index column, the book's table
    class (``book/_static/l2a.css``: small type, cells wrap). ``bold``: a boolean frame
    of ``df``'s shape (after :func:`tidy`) marking cells to set in bold."""
    from pandas.io.formats.style import Styler
    if isinstance(df, Styler):
        return df
    d = tidy(df, keep_index)
    style = d.style.hide(axis="index").set_table_attributes('class="l2a-table"')
    classes = d.map(lambda x: VERDICT_CLASS.get(str(x).split(" (")[0], "") if isinstance(x, str) else "")
    if classes.ne("").any().any():
        style = style.set_td_classes(classes)
    if bold is not None:
        style = style.apply(lambda _: np.where(bold, "font-weight: bold", ""), axis=None)
    if caption:
        style = style.set_caption(caption)
    return style
