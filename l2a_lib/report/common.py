"""What every page's report shares: labels, the paper's numbers, aggregation over
seeds, the notes on missing or fp32 runs, the figure style."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from ..config import TABLE1_METHODS, TASKS
from ..errors import MissingResults
from ..machine import FP32_FALLBACK
from ..tasks import HEADLINE_METRICS

METRICS = {"tc": ("acc", "f1"), "pi": ("acc", "f1"), "nli": ("acc", "f1"),
           "reg": ("pearson", "spearman")}
METHOD_LABELS = {
    "majority": "Majority (no model)", "teacher_ft": "Teacher-FT", "student_ft": "Student-FT", "bilstm_soft": "BiLSTM-soft",
    "distilbert": "DistilBERT", "bert_pkd4": "BERT4-PKD", "bert_pkd6": "BERT6-PKD",
    "minilm": "MiniLM", "tinybert": "TinyBERT", "eda": "EDA", "cbert": "CBERT", "l2a": "L2A",
    "l2a_wo_src": "L2A w/o src", "l2a_wo_tgt": "L2A w/o tgt", "l2a_wo_att": "w/o L_att",
    "l2a_wo_hidden": "w/o L_hidden", "l2a_wo_dark": "w/o L_dark", "mlm": "masked LM (augmentation)",
    "l2a_selector_off": "selector off (keep all)", "l2a_selector_random": "selector at random",
    "l2a_generator_off": "generator off (P_s only)", "l2a_originals_off": "no originals",
    "kd_only": "KD on the originals only",
    "distilbert_same": "DistilBERT, L2A's student", "bert_pkd_same": "BERT-PKD, L2A's student",
    "l2a_pkd6_student": "L2A, BERT6-PKD's student", "nlpaug_ctx": "nlpaug (contextual)",
    "l2a_pkd6_control": "L2A parts off, BERT6-PKD's student",
    "l2a_credit": "L2A, per-sample credit (ours)",
    "l2a_credit_cal": "L2A, calibrated credit (ours)",
    "l2a_credit_eq": "L2A, equal-weight credit (ours)",
    "student_ft_smart": "Student-FT + SMART", "l2a_smart": "L2A + SMART",
}
TASK_LABELS = {"nli": "NLI", "pi": "PI", "tc": "TC", "reg": "Reg"}
# the metric every paired test and verdict reads, where it is not ACC (classification) or
# Pearson (regression): PI's target is 85% negative, so its accuracy ranks almost nothing
HEADLINE = {t: m for t, m in HEADLINE_METRICS.items() if m not in ("acc", "pearson")}
# a study's varied setting, as a reader reads it
VALUE_NAMES = {"train_per_class": "examples per class", "T": "T", "alpha": "alpha"}
COLUMN_ORDER = [(t, m) for t in ("nli", "pi", "tc", "reg") for m in METRICS[t]]


def paper_results() -> pd.DataFrame:
    with resources.files("l2a_lib").joinpath("paper_results.csv").open() as fh:
        return pd.read_csv(fh)


def paper_rows(table: str) -> pd.DataFrame:
    """The paper's numbers of ``table``, plus methods the paper reports only in another
    table (Teacher-FT is in its Table 2, but belongs beside Table 1 too)."""
    paper = paper_results()
    own = paper[paper.table == table]
    other = paper[(paper.table != table) & ~paper.method.isin(own.method)]
    return pd.concat([own, other.drop_duplicates(["task", "method", "metric"])])


def aggregate(df: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean, sd and number of seeds per (table, task, method, metric)."""
    d = df[df["split"] == split]
    g = d.groupby(["task", "method", "metric"])["value"]
    return g.agg(mean="mean", sd="std", n="count").reset_index()


def require(df: pd.DataFrame, methods, tasks=TASKS, seeds=None) -> None:
    """Raise ``MissingResults`` naming each missing (task, method, seed)."""
    missing = []
    for t in tasks:
        for m in methods:
            have = set(df[(df.task == t) & (df.method == m)]["seed"])
            want = set(seeds) if seeds is not None else {0}
            missing += [(t, m, s) for s in sorted(want - have)]
    if missing:
        raise MissingResults(f"{len(missing)} run(s) are not cached, e.g. {missing[:6]}. Run "
                             "`make results` (or python -m l2a_lib run ...) first.")


RUN_COMMAND = ("`snakemake --cores 2` (a page of the book: every run it reads) or one by one "
               "with `python -m l2a_lib run --task T --method M --seeds S`")


def coverage_note(df: pd.DataFrame, shown: str | None = None, command: str = RUN_COMMAND) -> str:
    """Markdown saying which runs of a page are not computed yet (``run_many(...,
    allow_missing=True)`` lists them in ``df.attrs``); empty when all are there.
    ``shown`` says what the page does in their place (default: by the kind of page);
    ``command`` how to compute them."""
    missing = df.attrs.get("missing", [])
    if not missing:
        return ""
    column = df.attrs.get("column")  # a study's missing runs also carry the varied value
    by_method: dict[str, list[str]] = {}
    for task, method, seed, *value in missing:
        label = METHOD_LABELS.get(method, method) + (
            f", {VALUE_NAMES.get(column, column)} = {value[0]}" if value else "")
        by_method.setdefault(label, []).append(f"{task}/{seed}")
    shown = shown or ("the table and the plot leave them out; a cell from fewer seeds says so"
                      if column else "their cells show `-`")
    lines = [f"**{len(missing)} of {df.attrs.get('n_runs', len(missing))} runs of this page are "
             f"not computed yet**; {shown}. Compute them with {command} (resumable). "
             "Missing (task/seed):", ""]
    lines += [f"* {m}: {', '.join(v)}" for m, v in by_method.items()]
    return "\n".join(lines)


def precision_note(df: pd.DataFrame, column: str | None = None) -> str:
    """Markdown naming the runs of a page computed in fp32 because their CPU had no
    native bf16 (the ``cpu`` column marked ``experiment.FP32_FALLBACK``: the config's
    bf16 autocast fell back, ``train.bf16_in_use``), with a study's varied ``column``;
    empty when there are none."""
    if "cpu" not in df or not len(df):
        return ""
    runs = df.groupby("config_hash").first()
    fp32 = runs[runs["cpu"].fillna("").str.endswith(FP32_FALLBACK)]
    if not len(fp32):
        return ""
    by_method: dict[str, list[str]] = {}
    for _, r in fp32.sort_values(["method", "task", "seed"]).iterrows():
        value = (f", {VALUE_NAMES.get(column, column)} = {r[column]:g}" if column and column in r
                 else "")
        by_method.setdefault(METHOD_LABELS.get(r["method"], r["method"]) + value,
                             []).append(f"{r['task']}/{r['seed']}")
    lines = [f"**{len(fp32)} of {len(runs)} runs of this page were computed in fp32**: the "
             "processor they ran on has no native bf16, so the configuration's bf16 autocast "
             "fell back to fp32 (`train.bf16_in_use`; `environment.bf16` in each record). All "
             "other runs used bf16 autocast as configured. fp32 only rounds less; the method "
             "and every setting are the same. Runs in fp32 (task/seed):", ""]
    lines += [f"* {m}: {', '.join(v)}" for m, v in by_method.items()]
    return "\n".join(lines)


def fmt(mean: float, sd: float) -> str:
    """``mean ± sd`` in one cell (3 decimals, no-break spaces: it never wraps)."""
    if np.isnan(mean):
        return "-"
    return f"{mean:.3f}" if np.isnan(sd) else f"{mean:.3f}\u00a0±\u00a0{sd:.3f}"


PALETTE = "colorblind"


def set_style() -> None:
    """The one figure style of the book."""
    import seaborn as sns
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE, font_scale=0.9)


def pearson_standard_error(r: float, n: int) -> float:
    """Large-sample standard error of a Pearson ``r`` measured on ``n`` pairs,
    ``(1 - r^2) / sqrt(n - 1)`` (every page uses this one)."""
    return float((1 - r * r) / np.sqrt(n - 1))


def standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy ``p`` measured on ``n`` examples."""
    return float(np.sqrt(p * (1 - p) / n))




# Table 1's methods but the teacher and L2A (the list is written once, in config.py)
BASELINES = [m for m in TABLE1_METHODS if m not in ("majority", "teacher_ft", "l2a")]


def version_note(df: pd.DataFrame) -> str:
    """Markdown naming the version of L2A behind a page's L2A rows, per task (version 2:
    ``l2a_lib.l2a.algorithm``); empty for a page without L2A runs."""
    if not len(df) or "method" not in df:
        return ""
    l2a = df[df.method.astype(str).str.startswith("l2a") | (df.method == "kd_only")]
    if not len(l2a):
        return ""
    version = (l2a["l2a.version"] if "l2a.version" in l2a else pd.Series(np.nan, index=l2a.index))
    by_task = {t: sorted({2 if v == 2 else 1 for v in version[l2a.task == t]}) for t in
               l2a.task.unique()}
    parts = []
    for v in (1, 2):
        tasks = [TASK_LABELS.get(t, t) for t, vs in by_task.items() if v in vs]
        if tasks:
            parts.append(f"version {v} on {', '.join(tasks)}")
    # a notebook's output is commonmark: the link is to the built page
    return ("L2A on this page: " + "; ".join(parts) + " ([the two versions](method.html#version-2-"
            "the-learned-parts-made-to-learn)).")
