"""The page "Choosing the settings" (issue 35): each candidate setting's Teacher-FT,
Student-FT and majority baseline, and the rule written before they were run."""
from __future__ import annotations

import pandas as pd

from .. import candidates as cand
from .. import report
from ..experiment import gather
from ..runs import Context
from .base import View


def candidate_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: the headline metric's mean and sd over seeds for each
    method, the two gaps the rule reads, and whether the rule holds."""
    rows = []
    for c in cand.CANDIDATES:
        metric = cand.HEADLINE[c.task]
        sub = df[(df["candidate"] == c.name) & (df["split"] == "test") & (df["metric"] == metric)]
        by = sub.groupby("method")["value"]
        mean, sd, n = by.mean(), by.std(), by.count()
        row = {"task": c.task, "candidate": c.name, "what it changes": c.what, "metric": metric}
        for m, label in (("majority", "majority"), ("teacher_ft", "Teacher-FT"),
                         ("student_ft", "Student-FT")):
            row[label] = (report.number(mean[m]) + " ± " + report.number(sd[m])
                          if m in mean and n[m] > 1 else (report.number(mean[m])
                                                          if m in mean else "-"))
        t, s, maj = (mean.get(m) for m in ("teacher_ft", "student_ft", "majority"))
        row["Teacher - majority"] = None if t is None or maj is None else t - maj
        row["Teacher - Student"] = None if t is None or s is None else t - s
        complete = all(n.get(m, 0) == len(cand.SEEDS) for m in cand.METHODS)
        if not complete:
            row["rule holds"] = "pending"
        elif c.task == "reg":
            row["rule holds"] = "yes" if t - s >= 0.05 else "no"
        else:
            row["rule holds"] = "yes" if t - maj >= 0.10 and t - s >= 0.05 else "no"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["task", "candidate"])


def settings(profile="cpu", seeds=cand.SEEDS, allow_training=False, allow_missing=True,
             results_dir=None, data_dir=None) -> View:
    view = View()
    view.value("settings_rule", cand.RULE)
    pairs = [(c.name, cfg) for c in cand.CANDIDATES for cfg in c.configs(profile, seeds=seeds)]
    df = gather(pairs, Context(data_dir, results_dir), allow_training, allow_missing,
                 column="candidate", what=" of the candidate settings")
    view.note(report.coverage_note(df))
    view.show("candidates", candidate_table(df))
    fixes = [(f.name, c) for f in cand.FIXES for c in f.configs(profile, seeds=seeds)]
    fixed = gather(fixes, Context(data_dir, results_dir), allow_training, allow_missing,
                   column="candidate", what=" of the baseline fixes")
    view.note(report.coverage_note(fixed))
    view.show("fixes", fix_table(fixed, [c for _, c in fixes], results_dir))
    return view


def fix_table(df: pd.DataFrame, configs, results_dir=None) -> pd.DataFrame:
    """Each baseline fix before (Table 1's runs) and after: accuracy and the headline
    metric (mean ± sd over seeds), and the seeds whose test predictions are one class."""
    from ..records import load_record
    rows = []
    for f in cand.FIXES:
        for when, table in (("before (Table 1)", "table1"), ("after", "settings")):
            runs = [c for c in configs if c.method == f.method and c.task == f.task
                    and c.table == table]
            sub = df[df.config_hash.isin([c.hash() for c in runs]) & (df.split == "test")] \
                if "config_hash" in df else df.iloc[:0]
            row = {"fix": f.name, "what": f.what if when == "after" else "as in Table 1",
                   "runs": when, "seeds": int(sub.seed.nunique()) if len(sub) else 0}
            for metric in dict.fromkeys(("acc", cand.HEADLINE[f.task])):
                v = sub[sub.metric == metric].value
                row[metric] = report.fmt(v.mean(), v.std()) if len(v) else "-"
            one_class = []
            for c in runs:
                try:
                    preds = report.decode_predictions("classification", load_record(
                        c, results_dir)["extra"]["test_predictions"])
                except (report.MissingResults, KeyError):
                    continue
                one_class += [c.seed] if report.degenerate_seeds("classification", {0: preds}) else []
            row["seeds predicting one class"] = ", ".join(map(str, one_class)) or "none"
            rows.append(row)
    return pd.DataFrame(rows).set_index(["fix", "runs"])
