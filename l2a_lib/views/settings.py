"""The page "Choosing the settings" (issue 35): each candidate setting's Teacher-FT,
Student-FT and majority baseline, and the rule written before they were run."""
from __future__ import annotations

import dataclasses

import pandas as pd

from .. import candidates as cand
from .. import report
from ..experiment import gather
from ..runs import Context
from .base import View


COMMAND = "`python -m l2a_lib run --candidate NAME --seeds 0 1 2`"


def candidate_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: the headline metric's mean and sd over seeds for each
    method, the two gaps the rule reads, whether the rule holds and which candidate
    of each task the rule chooses (``candidates.chosen``)."""
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
    choice = cand.chosen({r["candidate"]: r["rule holds"] == "yes" for r in rows})
    for i, r in enumerate(rows):
        # the choice is final once every candidate listed before it is decided
        earlier = [x for x in rows[:i] if x["task"] == r["task"] and x["rule holds"] == "pending"]
        r["chosen"] = ("" if choice[r["task"]] != r["candidate"] else
                       "chosen, provisional" if earlier else "chosen")
    return pd.DataFrame(rows).set_index(["task", "candidate"])


def settings(profile="cpu", seeds=cand.SEEDS, allow_training=False, allow_missing=True,
             results_dir=None, data_dir=None) -> View:
    view = View()
    view.value("settings_rule", cand.RULE)
    pairs, df = candidate_runs(profile, seeds, allow_training, allow_missing, results_dir, data_dir)
    view.note(report.coverage_note(df, command=COMMAND))
    table = candidate_table(df)
    view.show("candidates", table)
    flat = table.reset_index()
    for task, rows, pick in chosen_rows(table):
        view.value(f"settings_chosen_{task}", f"{pick.candidate.iloc[0]} "
                   f"({pick['what it changes'].iloc[0]})" + (
                       "; provisional: a candidate listed before it is still pending"
                       if pick["chosen"].iloc[0] != "chosen" else "") if len(pick) else
                   "none yet" + (" (candidates pending)" if (rows["rule holds"] == "pending").any()
                                 else " (no candidate passes)"))
    for name, r in flat.set_index("candidate").iterrows():  # the prose's numbers
        for key, col in (("teacher", "Teacher-FT"), ("student", "Student-FT"),
                         ("majority", "majority")):
            view.value(f"settings_{name}_{key}", r[col])
        for key, col in (("over_majority", "Teacher - majority"), ("over_student", "Teacher - Student")):
            view.value(f"settings_{name}_{key}", "not computed yet" if pd.isna(r[col])
                       else report.number(r[col], signed=True))
    view.show_when("candidates_plot", len(df), lambda: candidate_plot(df, table))
    view.show_when("student_sizes", len(df), lambda: student_sizes(pairs, results_dir))
    _encoders_and_labels(view, profile, data_dir, results_dir, allow_training)
    fixes = [(f.name, c) for f in cand.FIXES for c in f.configs(profile, seeds=seeds)]
    fixed = gather(fixes, Context(data_dir, results_dir), allow_training, allow_missing,
                   column="candidate", what=" of the baseline fixes")
    view.note(report.coverage_note(fixed, command=COMMAND))
    view.show("fixes", fix_table(fixed, [c for _, c in fixes], results_dir))
    return view


def candidate_runs(profile="cpu", seeds=cand.SEEDS, allow_training=False, allow_missing=True,
                   results_dir=None, data_dir=None):
    """The candidates' (name, config) pairs and their cached results (tidy rows with a
    ``candidate`` column)."""
    pairs = [(c.name, cfg) for c in cand.CANDIDATES for cfg in c.configs(profile, seeds=seeds)]
    return pairs, gather(pairs, Context(data_dir, results_dir), allow_training, allow_missing,
                         column="candidate", what=" of the candidate settings")


def chosen_rows(table: pd.DataFrame):
    """Per task of ``candidate_table``, in its order: (task, the task's rows, the rows the
    rule chooses: one, or none while no candidate is chosen)."""
    flat = table.reset_index()
    for task, rows in flat.groupby("task", sort=False):
        yield task, rows, rows[rows["chosen"].str.startswith("chosen")]


def changes_table(table: pd.DataFrame) -> pd.DataFrame:
    """What changed since the previous settings, per task: the setting as first run (the
    first candidate of the task) and the one the rule chooses (``candidate_table``), with
    Teacher-FT, Student-FT, majority and the rule's gaps. A task whose choice is the
    previous setting shows one row, "unchanged"; one with no choice yet says so."""
    rows = []
    for task, g, pick in chosen_rows(table):
        before = g.iloc[0]
        now = pick.iloc[0] if len(pick) else None
        same = now is not None and now["candidate"] == before["candidate"]
        for which, r in (("previous", before), ("chosen", now)):
            if which == "chosen" and same:
                continue
            label = "previous and chosen (unchanged)" if same else which
            if r is None:
                rows.append({"task": task, "settings": label, "candidate": "none yet",
                             "what it changes": "a candidate listed first is pending or none passes"})
                continue
            rows.append({"task": task, "settings": label + (
                ", provisional" if which == "chosen" and r["chosen"] != "chosen" else ""),
                **{k: r[k] for k in ("candidate", "what it changes", "metric", "majority",
                                     "Teacher-FT", "Student-FT", "Teacher - majority",
                                     "Teacher - Student", "rule holds")}})
    return pd.DataFrame(rows).set_index(["task", "settings"]).round(3)


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
            row["seeds predicting one class for >= 95% of items"] = (
                ", ".join(map(str, one_class)) or "none")
            rows.append(row)
    return pd.DataFrame(rows).set_index(["fix", "runs"])


def candidate_plot(df: pd.DataFrame, table: pd.DataFrame):
    """One panel per task: each candidate's Teacher-FT, Student-FT and majority on the
    headline metric (each seed a dot, the mean a bar), the chosen one's name in bold."""
    import matplotlib.pyplot as plt
    tasks = list(dict.fromkeys(c.task for c in cand.CANDIDATES))
    flat = table.reset_index()
    chosen = set(flat.loc[flat["chosen"].str.startswith("chosen"), "candidate"]) if "chosen" in flat else set()
    colours = {"teacher_ft": "tab:blue", "student_ft": "tab:orange", "majority": "tab:grey"}
    labels = {"teacher_ft": "Teacher-FT", "student_ft": "Student-FT", "majority": "majority"}
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    for ax, task in zip(axes.flat, tasks):
        names = [c.name for c in cand.CANDIDATES if c.task == task]
        metric = cand.HEADLINE[task]
        for i, name in enumerate(names):
            for j, m in enumerate(cand.METHODS):
                v = df[(df.candidate == name) & (df.method == m) & (df.split == "test")
                       & (df.metric == metric)].value
                y = i + (j - 1) * 0.22
                if len(v):
                    ax.scatter(v, [y] * len(v), s=12, color=colours[m], alpha=0.6)
                    ax.plot([v.mean()] * 2, [y - 0.09, y + 0.09], color=colours[m], lw=2.5,
                            label=labels[m] if i == 0 else None)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names)
        for tick, name in zip(ax.get_yticklabels(), names):
            if name in chosen:
                tick.set_fontweight("bold")
        ax.invert_yaxis()
        ax.set_xlabel({"acc": "accuracy", "f1": "F1 (positive class)",
                       "pearson": "Pearson r"}.get(metric, metric) + " (test)")
        ax.set_title(report.TASK_LABELS.get(task, task))
        ax.grid(axis="x", alpha=0.3)
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def paper_sizes() -> tuple[float, float]:
    """The paper's student and teacher sizes (parameters), from its Table 1 and 2."""
    paper = report.paper_results()
    size = {m: paper[paper.method == m]["size"].iloc[0] for m in ("student_ft", "teacher_ft")}
    return tuple(float(size[m].rstrip("M")) * 1e6 for m in ("student_ft", "teacher_ft"))


def student_sizes(pairs, results_dir=None) -> pd.DataFrame:
    """The students of the TC candidates that change the student (layers): parameters
    and the ratio to the teacher's, beside the paper's 13%, from the runs' records."""
    from ..records import load_record
    rows = []
    for name, c in pairs:
        if c.task != "tc" or c.method != "student_ft" or c.seed != min(cand.SEEDS):
            continue
        try:
            student = load_record(c, results_dir)["n_params"]
            teacher = load_record(dataclasses.replace(c, method="teacher_ft"), results_dir)["n_params"]
        except report.MissingResults:
            continue
        rows.append({"student": name, "layers": len(c.model.student_layers),
                     "student parameters (M)": student / 1e6,
                     "teacher parameters (M)": teacher / 1e6,
                     "student / teacher": f"{student / teacher:.1%}"})
    student, teacher = paper_sizes()
    rows.append({"student": "the paper's (TinyBERT-4L-312D)", "layers": 4,
                 "student parameters (M)": student / 1e6, "teacher parameters (M)": teacher / 1e6,
                 "student / teacher": f"{student / teacher:.1%}"})
    return pd.DataFrame(rows).set_index("student")


PROBE_TASKS = ("tc", "reg")  # the frozen-feature probe (l2a_lib.frozen_probe) on these


def _encoders_and_labels(view, profile, data_dir, results_dir, allow_training):
    """What each encoder knows before fine-tuning (``frozen_probe``, from its cache) and
    how much of the regression label its text can carry (``label_signals``)."""
    from ..frozen_probe import frozen_probe
    found = []
    for task in PROBE_TASKS:
        try:
            found.append(frozen_probe(task, profile=profile, data_dir=data_dir,
                                      results_dir=results_dir, allow_training=allow_training))
        except report.MissingResults:
            pass
    view.show_when("frozen_probe", found, lambda: pd.concat(found).assign(
        task=lambda d: d.task.map(report.TASK_LABELS),
        **{"L2 strength": lambda d: d["L2 strength"].map("{:g}".format)}).set_index(["task", "encoder"]))
    for task in PROBE_TASKS:  # a page of a partial cache (or the smoke profile) shows "-"
        for key in ("student", "student6", "teacher"):
            view.value(f"frozen_{task}_{key}", "-")
    for key in ("reg_labels_coarse", "reg_length_r", "reg_truncated"):
        view.value(key, "-")
    for r in (pd.concat(found).to_dict("records") if found else []):
        key = {"student": "student", "student, 6 layers": "student6"}.get(r["encoder"], r["encoder"])
        view.value(f"frozen_{r['task']}_{key}", f"{r['test']:.3f}")
    signals = label_signals(data_dir, profile) if profile != "smoke" else pd.DataFrame()
    view.show_when("label_signals", len(signals), lambda: signals)
    if len(signals):
        first = signals.iloc[0]
        view.value("reg_labels_coarse", first["label 0, 1/2 or 1"])
        view.value("reg_length_r", f"{first['r(label, log length)']:.2f}")
        view.value("reg_truncated", first.iloc[-1])


def label_signals(data_dir=None, profile="cpu") -> pd.DataFrame:
    """The regression target's labels (Kitchen helpfulness, the share of "helpful" votes)
    with at least 1 and at least 5 votes: how many are 0, 1/2 or 1 (a ratio of one or two
    votes), Pearson's r of the label with the review's log length in words, and the share
    of reviews longer than the models read (``max_length`` word pieces)."""
    import numpy as np
    from scipy import stats
    from .. import data, models, paths
    from ..profiles import make_config
    config = make_config("reg", "student_ft", 0, profile=profile)
    tok = models.load_tokenizer(config.model)
    rows = []
    for votes in (1, 5):
        df = data.amazon_reviews("kitchen", votes)(paths.data_dir(data_dir))
        words = np.log(df.text_a.str.split().str.len().clip(lower=1))
        pieces = np.array([len(x) for x in tok(df.text_a.tolist(), verbose=False)["input_ids"]])
        rows.append({"reviews with at least": f"{votes} vote" + ("s" if votes > 1 else ""),
                     "reviews": len(df),
                     "label 0, 1/2 or 1": f"{df.label.isin([0.0, 0.5, 1.0]).mean():.0%}",
                     "r(label, log length)": stats.pearsonr(words, df.label)[0],
                     f"longer than {config.data.max_length} word pieces":
                         f"{(pieces > config.data.max_length).mean():.0%}"})
    return pd.DataFrame(rows).set_index("reviews with at least")
