"""Paired tests on the shared test set: bootstrap confidence intervals of the
difference between two methods' seeds, the significance tables of Table 1 and the
ablations."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import metrics
from ..config import L2A_METHODS
from .common import HEADLINE, METHOD_LABELS, paper_rows


# The words of a verdict, by what is compared. Every "better / helps / supported ..."
# on any page is ``verdict(sign, kind)`` of a ``sign`` from :func:`paired_comparison`
# (or, for a study's trend, of its interval), so no two pages can word one test apart.
VERDICTS = {"comparison": {1: "better", -1: "worse", 0: "no clear difference"},
            "ablation": {1: "helps", -1: "hurts", 0: "no clear effect"},
            "claim": {1: "supported", -1: "contradicted", 0: "not shown"}}


# an ablation whose variant predicts (almost) one class (``degenerate_seeds``)
DEGENERATE = "cannot be judged (the variant predicts one class)"


def verdict(sign: int, kind: str = "comparison") -> str:
    """The word for a test's ``sign`` (+1 A above B, -1 below, 0 neither) in ``kind``."""
    return VERDICTS[kind][int(sign)]


def interval_sign(low: float, high: float) -> int:
    """+1 when a 95% interval lies above 0, -1 below, else 0."""
    return 1 if low > 0 else -1 if high < 0 else 0


def degenerate_seeds(kind: str, preds: dict, share: float = 0.95) -> list[int]:
    """The seeds whose test predictions are (almost) constant: one class for at least
    ``share`` of the items, or regression outputs with no spread. Such a model answers
    without reading its input; a comparison with it says nothing about the part removed."""
    out = []
    for seed, p in sorted(preds.items()):
        p = np.asarray(p)
        if len(p) == 0:
            continue
        if kind == "classification":
            flat = np.bincount(p.astype(int)).max() / len(p) >= share
        else:
            flat = float(np.std(p)) < 1e-6
        if flat:
            out.append(seed)
    return out


def decode_predictions(kind: str, compact) -> np.ndarray:
    """Inverse of ``experiment.compact_predictions``."""
    if kind == "classification":
        return np.frombuffer(compact.encode(), dtype=np.uint8) - ord("0")
    return np.asarray(compact, dtype=float)


def metric_of(kind: str, labels, preds, metric: str | None = None) -> float:
    """``metric`` ("acc", "f1" of the positive class, "pearson"; default by ``kind``,
    :func:`metric_name`) of ``preds`` against ``labels``."""
    metric = metric_name(kind, metric)
    if metric == "f1" and kind == "classification":
        return metrics.f1_positive(labels, preds)
    if metric == "acc" and kind == "classification":
        return metrics.accuracy(labels, preds)
    if metric == "pearson" and kind == "regression":
        return metrics.pearson(labels, preds)
    raise ValueError(f"no metric {metric!r} for a {kind} task (classification: acc, f1; "
                     "regression: pearson)")


def metric_name(kind: str, metric: str | None = None) -> str:
    """The metric a test compares: ``metric`` if given, else ACC or Pearson by kind."""
    return metric or ("acc" if kind == "classification" else "pearson")


def paired_bootstrap(labels, preds_a: list, preds_b: list, kind: str, n_boot: int = 2000,
                     seed: int = 0, metric: str | None = None) -> dict:
    """Paired bootstrap over test items (the same resampled items for both methods,
    each seed's predictions averaged): mean difference of the metric (ACC or
    Pearson; F1 of the positive class with ``metric="f1"``) of A minus B, its 95%
    interval, and the one-sided p-value of A <= B."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    n = len(labels)
    diffs = []
    base = np.mean([metric_of(kind, labels, a, metric) for a in preds_a]) - np.mean(
        [metric_of(kind, labels, b, metric) for b in preds_b])
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        da = np.mean([metric_of(kind, labels[idx], a[idx], metric) for a in preds_a])
        db = np.mean([metric_of(kind, labels[idx], b[idx], metric) for b in preds_b])
        diffs.append(da - db)
    diffs = np.asarray(diffs)
    return {"difference": float(base), "ci_low": float(np.quantile(diffs, 0.025)),
            "ci_high": float(np.quantile(diffs, 0.975)), "p_value": float((diffs <= 0).mean())}


def paired_comparison(labels, kind: str, preds_a: dict, preds_b: dict, n_boot: int = 2000,
                      metric: str | None = None) -> dict:
    """A against B on the seeds both have ({seed: test predictions} each), paired twice:
    by seed (same few-shot draw, same teacher) and by test item (:func:`paired_bootstrap`
    of each one's metric averaged over those seeds). The bootstrap interval covers the
    sampling of test items only, with the seeds held fixed, so ``sign`` asks both:
    +1 when the 95% interval is above 0 and A is higher in every seed, -1 when the
    interval is below 0 and B is higher in every seed, else 0 (so a seed where both score
    the same, counted as tied in ``seeds a higher``, leaves the sign 0). Empty without a
    shared seed."""
    seeds = sorted(set(preds_a) & set(preds_b))
    if not seeds:
        return {}
    a, b = [preds_a[s] for s in seeds], [preds_b[s] for s in seeds]
    res = paired_bootstrap(labels, a, b, kind, n_boot, metric=metric)
    per_seed = [(metric_of(kind, labels, x, metric), metric_of(kind, labels, y, metric))
                for x, y in zip(a, b)]
    wins, losses_ = sum(x > y for x, y in per_seed), sum(x < y for x, y in per_seed)
    sign = (1 if res["ci_low"] > 0 and wins == len(seeds) else
            -1 if res["ci_high"] < 0 and losses_ == len(seeds) else 0)
    ties = len(seeds) - wins - losses_  # a seed where both score the same is neither's
    return {"a": float(np.mean([x for x, _ in per_seed])),
            "b": float(np.mean([y for _, y in per_seed])), **res,
            "seeds a higher": f"{wins} of {len(seeds)}" + (f" ({ties} tied)" if ties else ""), "sign": sign}


def significance_table(records: dict, labels: dict, kinds: dict, method: str = "l2a",
                       baselines=None, n_boot: int = 2000,
                       task_metrics: dict | None = None) -> pd.DataFrame:
    """``method`` against the best baseline per task (by its mean test metric over its
    seeds: ACC, Pearson, or the task's ``task_metrics`` entry, default ``HEADLINE``: F1
    on PI), paired by seed and by test item (:func:`paired_comparison`): "better" /
    "worse" where the interval and every seed agree, else "no clear difference".

    records: {(task, method, seed): record}; labels: {task: test labels};
    kinds: {task: "classification" | "regression"}. Without ``baselines`` every method
    in ``records`` but the teacher, the majority baseline and L2A's own variants
    (``config.L2A_METHODS``: L2A on another student is not a baseline) is one.
    """
    task_metrics = HEADLINE if task_metrics is None else task_metrics
    label = METHOD_LABELS.get(method, method)
    rows = []
    for task in labels:
        kind = kinds[task]
        have = {m for (t, m, _) in records if t == task}
        cands = [m for m in (baselines or sorted(have - set(L2A_METHODS))) if m in have and m != method
                 and m not in ("teacher_ft", "majority")]
        metric = task_metrics.get(task)
        preds = {m: seed_predictions(records, task, m, kind) for m in cands + [method]}
        scored = {m: np.mean([metric_of(kind, labels[task], p, metric) for p in ps.values()])
                  for m, ps in preds.items() if ps}
        if method not in scored or len(scored) < 2:
            continue
        best = max((m for m in scored if m != method), key=scored.get)
        res = paired_comparison(labels[task], kind, preds[method], preds[best], n_boot, metric=metric)
        if not res:
            continue
        rows.append({"task": task, "best baseline": METHOD_LABELS.get(best, best),
                     "metric": metric_name(kind, metric),
                     label: res["a"], "best baseline score": res["b"],
                     **{k: res[k] for k in ("difference", "ci_low", "ci_high", "p_value")},
                     f"seeds {label} higher": res["seeds a higher"],
                     "verdict": verdict(res["sign"], "comparison"), "sign": res["sign"]})
    return pd.DataFrame(rows)


def same_student(df: pd.DataFrame, task: str, method: str = "l2a") -> list[str]:
    """The methods whose model on ``task`` has exactly ``method``'s parameter count:
    the baselines that distil into the same student (not the larger PKD / DistilBERT
    students built from teacher layers, nor the BiLSTM, nor L2A's own variants)."""
    sizes = df[df.task == task].groupby("method")["n_params"].first().dropna()
    if method not in sizes:
        return []
    return [m for m in sizes.index if m != method and sizes[m] == sizes[method]
            and m not in L2A_METHODS]


def seed_predictions(records: dict, task: str, method: str, kind: str) -> dict[int, np.ndarray]:
    """{seed: test predictions} of ``method`` on ``task`` from {(task, method, seed): record}
    (runs that stored no predictions are left out)."""
    return {s: decode_predictions(kind, r["extra"]["test_predictions"])
            for (t, m, s), r in sorted(records.items())
            if t == task and m == method and "test_predictions" in r.get("extra", {})}


def ablation_tests(records: dict, labels: dict, kinds: dict, variants, reference: str = "l2a",
                   n_boot: int = 2000, paper_table: str | None = None,
                   task_metrics: dict | None = None) -> pd.DataFrame:
    """Each variant (a part of ``reference`` removed) against ``reference`` itself
    (:func:`paired_comparison`). ``difference`` is reference minus variant (ACC, or
    Pearson for regression): the removed part "helps" where the 95% interval is above
    0 and the reference is higher in every seed, "hurts" in the mirror case, and
    otherwise has "no clear effect"; it "cannot be judged" (``DEGENERATE``) where the
    variant answers one class on some seed.

    records: {(task, method, seed): record}; labels: {task: test labels};
    kinds: {task: "classification" | "regression"}. With ``paper_table``, the
    paper's own difference on the same metric is added beside ours; ``task_metrics``
    ({task: "f1"}, default ``HEADLINE``) compares a task on another metric than ACC /
    Pearson."""
    task_metrics = HEADLINE if task_metrics is None else task_metrics
    ref_label = METHOD_LABELS.get(reference, reference)
    paper = paper_rows(paper_table) if paper_table else None

    def paper_difference(task, variant, metric):
        if paper is None:
            return {}
        at = paper[(paper.task == task) & (paper.metric == metric)].set_index("method")["value"]
        return {"paper difference": float(at[reference] - at[variant])
                if reference in at and variant in at else np.nan}
    rows = []
    for task in labels:
        kind = kinds[task]
        ref = seed_predictions(records, task, reference, kind)
        for variant in variants:
            metric = metric_name(kind, task_metrics.get(task))
            res = paired_comparison(labels[task], kind, ref,
                                    seed_predictions(records, task, variant, kind), n_boot,
                                    metric=metric)
            if not res:
                continue
            # a variant that answers one class tells nothing about the removed part
            flat = degenerate_seeds(kind, seed_predictions(records, task, variant, kind))
            rows.append({"task": task, "variant": METHOD_LABELS.get(variant, variant), "metric": metric,
                         ref_label: res["a"], "variant score": res["b"],
                         **{k: res[k] for k in ("difference", "ci_low", "ci_high", "p_value")},
                         **paper_difference(task, variant, metric),
                         f"seeds {ref_label} higher": res["seeds a higher"],
                         "removed part": (DEGENERATE if flat else verdict(res["sign"], "ablation")),
                         "degenerate seeds": flat, "sign": res["sign"], "method": variant})
    columns = ["task", "variant", "metric", ref_label, "variant score", "difference", "ci_low",
               "ci_high", "p_value", *(["paper difference"] if paper is not None else []),
               f"seeds {ref_label} higher", "removed part", "degenerate seeds", "sign", "method"]
    return pd.DataFrame(rows, columns=columns)  # the same columns when no variant has a run yet


def paired_table(tests: pd.DataFrame) -> pd.DataFrame:
    """A paired-test table as a page shows it: the difference and its interval (the two
    methods' scores are in the results table above it, printed once)."""
    return tests.drop(columns=[c for c in tests.columns if c in (
        "L2A", "best baseline score", "variant score", "metric", "method")])
