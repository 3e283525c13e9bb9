"""The paper's four claims, checked task by task, and whether fine-tuning the
teacher reproduces on another machine."""
from __future__ import annotations

import pandas as pd

from ..config import ExperimentConfig
from ..records import read_record
from ..runs import Context
from ..teacher import teacher_key
from .common import BASELINES, METHOD_LABELS, METRICS, aggregate
from .studies import not_computed


def claims(df: pd.DataFrame, split: str = "test", tolerance: float = 0.01) -> pd.DataFrame:
    """The paper's four claims, checked task by task on the first metric of each task
    (ACC, or Pearson for regression). "matches" allows ``tolerance`` below the teacher.

    Runs listed in ``df.attrs["missing"]`` (``run_many(..., allow_missing=True)``) are
    not silently dropped: a claim whose runs are all missing on a task is "pending",
    and a verdict drawn from part of its runs says how many are missing."""
    agg = aggregate(df, split)
    mean = {(r.task, r.method, r.metric): r.mean for r in agg.itertuples()}
    missing = df.attrs.get("missing", [])
    rows = []

    def m(task, method):
        return mean.get((task, method, METRICS[task][0]))

    def add(claim, task, methods, evidence, verdict):
        gap = not_computed(missing, task, methods)
        if evidence is None:  # nothing computed yet for this claim on this task
            if gap:
                rows.append({"claim": claim, "task": task, "verdict": "pending",
                             "evidence": f"{gap} run(s) not computed yet"})
            return
        if gap:
            verdict += f" (interim: {gap} run(s) not computed yet)"
        rows.append({"claim": claim, "task": task, "evidence": evidence, "verdict": verdict})

    for task in ("nli", "pi", "tc", "reg"):
        l2a = m(task, "l2a")
        if l2a is None:
            add("1. L2A beats every baseline", task, ["l2a"], None, "")
            continue
        base = {b: m(task, b) for b in BASELINES if m(task, b) is not None}
        best = max(base, key=base.get) if base else None
        add("1. L2A beats every baseline", task, ["l2a", *BASELINES],
            f"L2A {l2a:.4f} vs best baseline {METHOD_LABELS[best]} {base[best]:.4f} "
            f"({len(base)} baselines)" if base else None,
            "confirmed" if base and l2a > base[best] else "not confirmed")
        if task in ("nli", "tc"):
            t = m(task, "teacher_ft")
            add("2. L2A's student matches or beats Teacher-FT", task, ["teacher_ft"],
                f"L2A {l2a:.4f} vs Teacher-FT {t:.4f}" if t is not None else None,
                "confirmed" if t is not None and l2a >= t - tolerance else "not confirmed")
        wo = {v: m(task, v) for v in ("l2a_wo_src", "l2a_wo_tgt") if m(task, v) is not None}
        add("3. Source and target augmentation both help", task, ["l2a_wo_src", "l2a_wo_tgt"],
            ", ".join(f"{METHOD_LABELS[v]} {x:.4f}" for v, x in wo.items()) + f" vs L2A {l2a:.4f}"
            if wo else None,
            "confirmed" if all(l2a > x for x in wo.values()) else "not confirmed")
        terms = {v: m(task, v) for v in ("l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark")
                 if m(task, v) is not None}
        helped = [v for v, x in terms.items() if l2a > x]
        add("4. Each of L_att, L_hidden, L_dark helps", task,
            ["l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"],
            ", ".join(f"{METHOD_LABELS[v]} {x:.4f}" for v, x in terms.items()) + f" vs L_KD {l2a:.4f}"
            if terms else None,
            "confirmed" if len(helped) == len(terms) else
            f"partly ({len(helped)} of {len(terms)} terms)")
    return pd.DataFrame(rows, columns=["claim", "task", "evidence", "verdict"])


def teacher_consistency(results_dir=None) -> pd.DataFrame:
    """Is fine-tuning reproducible? One row per teacher that some run fine-tuned again
    (on a machine whose local teacher cache was empty) while a Teacher-FT record of
    the same teacher exists: the committed Teacher-FT's best dev scores beside the
    retrained teacher's, and whether they are equal. Runs record their teacher from
    the ``teacher`` field on (older records lack it and are not counted)."""

    def where(rec):  # processor and torch threads of a run (older records lack the processor)
        env = rec.get("environment") or {}
        return f"{env.get('cpu') or '?'}, {env.get('threads') or '?'} thr"

    def scores(best):  # {"acc": 0.62, "f1": 0.677...} -> "acc 0.6200, f1 0.6780"
        return ", ".join(f"{k} {v:.4f}" for k, v in (best or {}).items())
    committed, retrained = {}, []
    for path in sorted(Context(results_dir=results_dir).runs.glob("*.json")):
        rec = read_record(path)
        cfg = rec["config"]
        if cfg["method"] == "teacher_ft":
            key = teacher_key(ExperimentConfig.from_dict(cfg))
            committed.setdefault(key, (rec, rec["extra"]["fine_tune"]["best_dev"]))
        used = rec.get("teacher")
        if used and used.get("trained_here"):
            retrained.append((cfg, used, rec))
    rows = []
    for cfg, used, rec in retrained:
        base = committed.get(used["key"])
        if base is None or base[0]["started_at"] == rec["started_at"]:
            continue  # no earlier record of this teacher to compare with
        rows.append({"task": cfg["task"], "seed": cfg["seed"], "run": f"{cfg['table']}/{cfg['method']}",
                     "committed best dev": scores(base[1]), "committed on": where(base[0]),
                     "retrained best dev": scores(used["best_dev"]), "retrained on": where(rec),
                     "same": base[1] == used["best_dev"]})
    return pd.DataFrame(rows, columns=["task", "seed", "run", "committed best dev", "committed on",
                                       "retrained best dev", "retrained on", "same"])
