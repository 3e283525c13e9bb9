"""The paper's four claims, checked task by task, and whether fine-tuning the
teacher reproduces on another machine."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import ExperimentConfig
from ..records import read_record
from ..runs import Context
from ..tasks import TASKS, USER_TASKS
from ..teacher import teacher_key
from . import significance as sig
from .common import BASELINES, HEADLINE, METHOD_LABELS, TASK_LABELS
from .studies import not_computed


CLAIMS = {1: "L2A beats every baseline",
          2: "L2A's student matches or beats Teacher-FT (NLI, TC)",
          3: "Source and target augmentation both help",
          4: "Each of L_att, L_hidden, L_dark helps"}
CLAIM_COLUMNS = ["claim", "task", "comparison", "metric", "difference", "ci_low", "ci_high",
                 "seeds L2A higher", "note", "verdict"]


def _row(claim, task, comparison, kind, res, verdict, note=""):
    metric = sig.metric_name(kind, HEADLINE.get(task))
    if not res:
        return {"claim": claim, "task": task, "comparison": comparison, "metric": metric,
                "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "seeds L2A higher": "",
                "note": note, "verdict": "not tested"}
    return {"claim": claim, "task": task, "comparison": comparison, "metric": metric,
            "difference": res["difference"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
            "seeds L2A higher": res["seeds a higher"], "note": note, "verdict": verdict}


def claims(records: dict, labels: dict, kinds: dict, missing=(), tolerance: float = 0.01,
           n_boot: int = 2000, table2_records: dict | None = None) -> pd.DataFrame:
    """The paper's four claims, one row per comparison, ordered by claim then task.

    Every verdict comes from :func:`~.significance.paired_comparison` (paired by seed and
    by test item) through :func:`~.significance.verdict`, the test Table 1, 2 and 3 use:
    a comparison is "better" / "worse" / "no clear difference" (an ablation "helps" /
    "hurts" / "no clear effect"), and the claim's ``verdict`` for that comparison is
    "supported", "contradicted" or "not shown". Claim 2 ("matches or beats") is also
    supported where the 95% interval of L2A minus Teacher-FT lies above ``-tolerance``.
    A variant whose predictions are constant on some seed (``degenerate_seeds``) supports
    nothing: its row says "degenerate". "not tested": a side has no stored test
    predictions; "pending": runs not computed yet (``missing``: (task, method, seed)); an
    ablation whose variant has no run on a task, cached or missing, has no row there.

    records: {(task, method, seed): record}; labels: {task: test labels};
    kinds: {task: "classification" | "regression"}; ``table2_records``: the runs claim 3
    compares (Table 2's, whose L2A may be another version than Table 1's; default:
    ``records``)."""
    rows = []
    by_claim = {3: table2_records if table2_records is not None else records}
    gap = lambda task, methods: not_computed(list(missing), task, methods)  # noqa: E731

    def compare(task, a, b):
        return sig.paired_comparison(labels[task], kinds[task],
                                     sig.seed_predictions(records, task, a, kinds[task]),
                                     sig.seed_predictions(records, task, b, kinds[task]), n_boot,
                                     metric=HEADLINE.get(task))

    for task in labels:
        kind = kinds[task]
        # 1. against the best baseline (by mean test metric), the test Table 1 shows
        best = sig.significance_table({k: r for k, r in records.items() if k[0] == task},
                                      {task: labels[task]}, {task: kind}, baselines=BASELINES,
                                      n_boot=n_boot)
        if len(best):
            b = best.iloc[0]
            res = {"difference": b["difference"], "ci_low": b["ci_low"], "ci_high": b["ci_high"],
                   "seeds a higher": b["seeds L2A higher"]}
            row = _row(1, task, f"L2A - {b['best baseline']} (best baseline)", kind, res,
                       sig.verdict(b["sign"], "claim"))
            if gap(task, ["l2a", *BASELINES]):
                row["note"] = f"interim: {gap(task, ['l2a', *BASELINES])} run(s) not computed yet"
            rows.append(row)
        elif gap(task, ["l2a", *BASELINES]):
            rows.append({**_row(1, task, "L2A - best baseline", kind, {}, ""), "verdict": "pending",
                         "note": f"{gap(task, ['l2a', *BASELINES])} run(s) not computed yet"})
        # 2. against the teacher: "matches" within the tolerance, or beats
        if task in ("nli", "tc"):
            res = compare(task, "l2a", "teacher_ft")
            if res:
                sign = res["sign"] if res["sign"] else (1 if res["ci_low"] > -tolerance else 0)
                row = _row(2, task, "L2A - Teacher-FT", kind, res, sig.verdict(sign, "claim"),
                           f"matches: 95% CI above -{tolerance}" if res["sign"] == 0 and sign else "")
                if gap(task, ["l2a", "teacher_ft"]):
                    row["note"] = "; ".join(x for x in (row["note"], f"interim: {gap(task, ['l2a', 'teacher_ft'])} "
                                                        "run(s) not computed yet") if x)
                rows.append(row)
            elif gap(task, ["l2a", "teacher_ft"]):
                rows.append({**_row(2, task, "L2A - Teacher-FT", kind, {}, ""), "verdict": "pending",
                             "note": f"{gap(task, ['l2a', 'teacher_ft'])} run(s) not computed yet"})
            else:
                rows.append(_row(2, task, "L2A - Teacher-FT", kind, {}, "",
                                 "the Teacher-FT records store no test predictions (they predate "
                                 "it): no paired test"))
        # 3. and 4. ablations: L2A minus the variant without the part, Table 2's and 3's test
        for claim, variants in ((3, ("l2a_wo_src", "l2a_wo_tgt")),
                                (4, ("l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"))):
            tests = sig.ablation_tests(by_claim.get(claim, records), {task: labels[task]},
                                       {task: kind}, variants, n_boot=n_boot).set_index("method")
            for v in variants:
                label = f"L2A - {METHOD_LABELS[v]}"
                waiting = gap(task, ["l2a", v])
                ran = gap(task, [v]) or any(k[:2] == (task, v) for k in by_claim.get(claim, records))
                if v not in tests.index:
                    if waiting and ran:  # a variant not run on this task is no comparison
                        rows.append({**_row(claim, task, label, kind, {}, ""),
                                     "note": f"{waiting} run(s) not computed yet", "verdict": "pending"})
                    continue
                t = tests.loc[v]
                res = {"difference": t["difference"], "ci_low": t["ci_low"], "ci_high": t["ci_high"],
                       "seeds a higher": t["seeds L2A higher"]}
                if t["degenerate seeds"] and t["sign"] == 1:
                    row = {**_row(claim, task, label, kind, res, "not shown"),
                           "note": f"degenerate: {METHOD_LABELS[v]} predicts one class on "
                                   f"seed(s) {', '.join(map(str, t['degenerate seeds']))}"}
                else:
                    row = _row(claim, task, label, kind, res, sig.verdict(t["sign"], "claim"))
                if waiting:
                    row["note"] = "; ".join(x for x in (row["note"], f"interim: {waiting} run(s) not computed yet") if x)
                rows.append(row)
    out = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    if len(out):
        out = out.sort_values(["claim", "task"], key=lambda c: c.map(
            {t: i for i, t in enumerate(TASK_ORDER)}) if c.name == "task" else c,
            kind="stable").reset_index(drop=True)
    return out


TASK_ORDER = ("nli", "pi", "tc", "reg")


def claim_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One verdict per claim and task from :func:`claims`' rows: "supported" when every
    comparison of the claim on the task is, "contradicted" when one is, "not shown"
    otherwise (a degenerate comparison counts as not shown), "not tested" when none
    was tested; " (interim)" is added where a comparison's runs are not all computed
    yet. Rows: the four claims; columns: the tasks."""
    out = {}
    for claim, text in CLAIMS.items():
        cells = {}
        for task in TASK_ORDER:
            r = rows[(rows.claim == claim) & (rows.task == task)]
            if not len(r):
                continue
            v = set(r.verdict)
            cells[task] = ("contradicted" if "contradicted" in v else
                           "pending" if "pending" in v else
                           "not tested" if v == {"not tested"} else
                           "supported" if v == {"supported"} else "not shown")
            if cells[task] not in ("pending", "not tested") and r.note.str.contains("interim").any():
                cells[task] += " (interim)"
        out[f"{claim}. {text}"] = cells
    return pd.DataFrame.from_dict(out, orient="index").reindex(
        columns=[t for t in TASK_ORDER if any(t in c for c in out.values())])


def outcome(summary: pd.DataFrame) -> str:
    """The reproduction in one sentence, from :func:`claim_summary`."""
    cells = summary.stack()
    cells = cells[cells.notna() & (cells != "–")]  # a dash: the paper makes no such claim there
    interim = int(cells.str.endswith(" (interim)").sum())
    cells = cells.str.removesuffix(" (interim)")
    counts = cells.value_counts()
    supported = [f"claim {c.split('.')[0]} on {TASK_LABELS[t]}" for (c, t), v in cells.items()
                 if v == "supported"]
    contradicted = [f"claim {c.split('.')[0]} on {TASK_LABELS[t]}" for (c, t), v in cells.items()
                    if v == "contradicted"]
    head = (f"Of {len(cells)} claim-and-task checks, {counts.get('supported', 0)} "
            f"{'is' if counts.get('supported', 0) == 1 else 'are'} supported, "
            f"{counts.get('contradicted', 0)} contradicted, {counts.get('not shown', 0)} not shown "
            f"(no clear difference) and {counts.get('not tested', 0)} not tested"
            + (f"; {counts['pending']} wait for runs not computed yet." if counts.get("pending")
               else "."))
    more = [f"{interim} of these verdicts {'is' if interim == 1 else 'are'} interim: some of "
            "their runs are not computed yet."] if interim else []
    if supported:
        more.append("Supported: " + ", ".join(supported) + ".")
    if contradicted:
        more.append("Contradicted: " + ", ".join(contradicted) + ".")
    return " ".join([head, *more])


def known_task(task: str) -> bool:
    return task in TASKS or task in USER_TASKS


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
        return ", ".join(f"{k} {v:.3f}" for k, v in (best or {}).items())
    committed, retrained = {}, []
    for path in sorted(Context(results_dir=results_dir).runs.glob("*.json")):
        rec = read_record(path)
        cfg = rec["config"]
        if cfg["method"] == "teacher_ft":
            # the key the run recorded; older records lack it and are keyed here, except
            # those of a task variant this process has not registered (a candidate's)
            key = (rec.get("teacher") or {}).get("key")
            if key is None and known_task(cfg["task"]):
                key = teacher_key(ExperimentConfig.from_dict(cfg))
            if key is not None:
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
