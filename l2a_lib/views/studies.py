"""The studies (Figure 2's data size, the T and alpha sensitivity) and the claims page."""
from __future__ import annotations

import pandas as pd

from .. import pages, report
from ..config import TABLE1_METHODS, TASKS
from ..experiment import run_many, run_study
from ..l2a.static import edit_rate
from ..profiles import PAGES_V1, l2a_version
from ..records import load_records, load_test_labels
from ..studies import STUDIES
from .base import View

VOCAB = 30522  # the shared word-piece vocabulary (alpha's expected edit rate)


def study(study="fig2_data_size", values=(10, 20, 40, 80, 320),
          methods=("teacher_ft", "student_ft", "l2a"), profile="cpu", tasks=("tc",),
          seeds=(0, 1, 2), allow_training=False, allow_missing=True, results_dir=None,
          data_dir=None) -> View:
    """One study: its plot, the table by value (alpha with its expected edit rate), the
    seeds one by one, and the trends the paper's statements predict."""
    tasks, methods, seeds, values = list(tasks), list(methods), list(seeds), list(values)
    view = View()
    df = run_study(study, values, tasks, methods, seeds, profile=profile,
                   allow_training=allow_training, results_dir=results_dir, data_dir=data_dir,
                   allow_missing=allow_missing)
    column = STUDIES[study][1]
    view.note(report.coverage_note(df))
    view.note(report.precision_note(df, column))
    reference = {}
    if "student_ft" not in methods:  # the baseline at the default setting, for scale
        base = run_many(tasks[:1], ["student_ft"], seeds, profile=profile, allow_training=False,
                        results_dir=results_dir, data_dir=data_dir, allow_missing=True)
        base = base[base.split == "test"]
        reference = {("Student-FT (default setting)", m): float(g.value.mean())
                     for m, g in base.groupby("metric")}
    view.show("plot", report.plot_study(df, column, methods, tasks[0], reference=reference))
    _study_values(view, df, column, tasks[0], study)
    summary = report.study_table(df, column, methods, tasks[0])
    if column == "alpha":
        summary.insert(0, "expected edit rate", [f"{edit_rate(a, VOCAB):.2f}" for a in summary.index])
    view.show("by_value", summary)
    view.show("by_seed", report.study_by_seed(df, column, methods, tasks[0], seeds=seeds))
    view.show("shape", report.study_shape(df, study, tasks[0]).drop(columns=["study", "change", "ci_low", "ci_high"]))
    return view


def _claim_tests(profile, tasks, seeds, allow_training, allow_missing, results_dir, data_dir):
    """The runs the claims read, and their paired tests (``report.claims``)."""
    table1 = list(TABLE1_METHODS)
    kw = dict(profile=profile, allow_training=allow_training, results_dir=results_dir,
              data_dir=data_dir, allow_missing=allow_missing)
    frames = [run_many(tasks, table1, seeds, **kw),
              run_many(tasks, ["l2a_wo_src", "l2a_wo_tgt"], seeds, **kw),
              run_many(["tc"], ["l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"], seeds, **kw)]
    if any(l2a_version(t, "l2a", "table1") == 2 for t in tasks):  # Table 2's own reference
        frames.append(run_many(tasks, ["l2a"], seeds, version=PAGES_V1, **kw))
    df = pd.concat(frames, ignore_index=True)
    df.attrs = {"missing": [x for f in frames for x in f.attrs["missing"]],
                "n_runs": sum(f.attrs["n_runs"] for f in frames)}  # set by run_many
    records = load_records(tasks, table1, seeds, profile=profile, results_dir=results_dir)
    records.update(load_records(["tc"], ["l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"], seeds,
                                profile=profile, results_dir=results_dir))
    # claim 3 reads Table 2, whose L2A is version 1 until the whole grid is recomputed
    table2 = load_records(tasks, ["l2a", "l2a_wo_src", "l2a_wo_tgt"], seeds, profile=profile,
                          results_dir=results_dir, version=PAGES_V1)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    return df, records, labels, kinds, report.claims(records, labels, kinds, df.attrs["missing"],
                                                     table2_records=table2)


def outcome(profile="cpu", tasks=("tc", "pi", "nli", "reg"), seeds=(0, 1, 2), allow_training=False,
            allow_missing=True, results_dir=None, data_dir=None) -> View:
    """The front page's summary: each claim's verdict per task and the comparisons
    behind it (effect and 95% interval), the outcome in one sentence, the same claims
    on the chosen settings so far (``final_claims_outcome``, ``final_summary``), and the
    parts page's verdicts on L2A's learned parts (``learned_parts``)."""
    tasks, seeds = list(tasks), list(seeds)
    view = View()
    df, _, _, _, rows = _claim_tests(profile, tasks, seeds, allow_training, allow_missing,
                                     results_dir, data_dir)
    view.note(report.coverage_note(df, shown="a claim they decide shows as pending"))
    summary = report.claim_summary(rows)
    view.value("outcome", report.outcome(summary))
    view.show("summary", summary.rename(columns=report.TASK_LABELS).rename_axis("claim"))
    view.show("tests", rows.drop(columns=["note"]))
    _final_claims(view, profile, seeds, results_dir, data_dir)
    from .parts import learned_parts_words
    view.value("learned_parts", learned_parts_words(profile, results_dir=results_dir,
                                                    data_dir=data_dir))
    return view


def _study_values(view, df, column, task, study):
    """The numbers a study page's prose quotes, named ``{study}_...``: L2A minus
    Student-FT and minus Teacher-FT on the main metric at each value (mean over seeds),
    L2A's best and worst value."""
    metric = report.METRICS[task][0]
    d = df[(df.split == "test") & (df.task == task) & (df.metric == metric)]
    means = d.groupby([column, "method"])["value"].mean().unstack()
    for other in ("student_ft", "teacher_ft"):
        if "l2a" in means and other in means:
            for v, gap in (means["l2a"] - means[other]).dropna().items():
                view.value(f"{study}_l2a_minus_{other}_at_{v:g}", report.number(gap, signed=True))
    if "l2a" in means:
        best = means["l2a"].idxmax()
        view.value(f"{study}_l2a_best_value", f"{best:g}")
        view.value(f"{study}_l2a_best_score", report.number(means["l2a"].max()))
        view.value(f"{study}_l2a_worst_score", report.number(means["l2a"].min()))


def claims(profile="cpu", tasks=("tc", "pi", "nli", "reg"), seeds=(0, 1, 2),
           allow_training=False, allow_missing=True, results_dir=None, data_dir=None) -> View:
    """The paper's four claims, by claim: every comparison with its paired test, the
    one-line summary, and the studies' shapes."""
    tasks, seeds = list(tasks), list(seeds)
    view = View()
    df, records, labels, kinds, rows = _claim_tests(profile, tasks, seeds, allow_training,
                                                    allow_missing, results_dir, data_dir)
    view.note(report.coverage_note(df, shown="a claim they decide shows as pending, or as interim"))
    student_params = df[df.method == "student_ft"]["n_params"].dropna()
    view.value("student_ft_params_m", f"{student_params.iloc[0] / 1e6:.1f}M" if len(student_params)
               else "not counted")
    summary = report.claim_summary(rows)
    view.value("outcome", report.outcome(summary))
    view.show("summary", summary.rename(columns=report.TASK_LABELS).rename_axis("claim"))
    view.show("verdicts", rows)
    kw = dict(profile=profile, allow_training=False, results_dir=results_dir, data_dir=data_dir,
              allow_missing=allow_missing)
    # read only: the study pages' runs are computed by the workflow (or by those pages)
    shape = pd.concat([report.study_shape(run_study(
        name, list(values), ["tc"], list(pages.STUDY_METHODS[name]), seeds, **kw), name)
        for name, values in pages.STUDY_VALUES.items()], ignore_index=True)
    shape["study"] = shape["study"].map(STUDY_TITLES)
    view.show("shapes", shape.drop(columns=["change", "ci_low", "ci_high"]))
    _settings_changes(view, profile, results_dir, data_dir)
    _final_claims(view, profile, seeds, results_dir, data_dir)
    return view


# the ablations of claims 3 and 4 on the final grid, by task (Table 3's other variants: TC)
FINAL_ABLATIONS = {"l2a_wo_src": TASKS, "l2a_wo_tgt": TASKS, "l2a_wo_att": TASKS,
                   "l2a_wo_hidden": ("tc",), "l2a_wo_dark": ("tc",)}


def _final_claims(view: View, profile, seeds, results_dir, data_dir) -> None:
    """The four claims decided on the chosen settings (the final grid's runs), for the
    tasks whose final Table 1 is shown, by the same function as above; a claim whose
    runs are not all computed is "pending" or its comparison "interim". Glued:
    ``final_claims_tasks``, ``final_claims_runs`` (cached of all), ``final_claims_outcome``,
    and the size-matched tests and learning controls of the final Table 1
    (:func:`_final_sizes`)."""
    tasks = list(pages.FINAL_TABLE1_TASKS)
    kw = dict(profile=profile, results_dir=results_dir, final=True)
    frames = [run_many(tasks, list(TABLE1_METHODS), seeds, data_dir=data_dir,
                       allow_missing=True, **kw)]
    frames += [run_many([t for t in tasks if t in on], [m], seeds, data_dir=data_dir,
                        allow_missing=True, **kw)
               for m, on in FINAL_ABLATIONS.items() if any(t in on for t in tasks)]
    missing = [x for f in frames for x in f.attrs.get("missing", [])]
    records = load_records(tasks, list(TABLE1_METHODS), seeds, **kw)
    for m, on in FINAL_ABLATIONS.items():
        records.update(load_records([t for t in tasks if t in on], [m], seeds, **kw))
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    rows = report.claims(records, labels, kinds, missing)
    n_runs = sum(f.attrs["n_runs"] for f in frames)  # complete frames count too
    view.value("final_claims_tasks", ", ".join(report.TASK_LABELS[t] for t in tasks))
    view.value("final_claims_runs", f"{n_runs - len(missing)} of {n_runs}")
    summary = report.claim_summary(rows)
    view.value("final_claims_outcome", report.outcome(summary))
    view.show("final_summary", summary.rename(columns=report.TASK_LABELS).rename_axis("claim"))
    view.show("final_verdicts", rows)
    _final_sizes(view, tasks, seeds, labels, kinds, data_dir, kw)


def _final_sizes(view: View, tasks, seeds, labels, kinds, data_dir, kw) -> None:
    """The final Table 1's size-matched tests in words: L2A against the best baseline
    that distils into its own student (``final_size_matched``), and L2A on BERT6-PKD's
    student against the best baseline of that size (``final_size_matched_6``); and each
    L2A method against its own learned-parts-off control (``final_learning_control``,
    ``_6``), and L2A against the same KD with no augmentation (``final_augment_control``):
    the rows of ``views.final.PAIRED_CONTROLS``."""
    from .results import LARGER, size_matched_tests, size_matched_words
    methods = list(pages.FINAL_TABLE1_METHODS)
    df = run_many(tasks, methods, seeds, data_dir=data_dir, allow_missing=True, **kw)
    records = load_records(tasks, [m for m in methods if m != "teacher_ft"], seeds, **kw)
    for name, method in (("final_size_matched", "l2a"), ("final_size_matched_6", LARGER)):
        view.value(name, size_matched_words(size_matched_tests(df, records, labels, kinds, tasks,
                                                               method), method))
    from .final import control_words, paired_controls
    for row, sig, *_ in paired_controls(records, labels, kinds, tasks, seeds, kw["profile"],
                                        kw["results_dir"]):
        view.value(row.words, control_words(sig, row.method))


def _settings_changes(view: View, profile, results_dir, data_dir) -> None:
    """What changed since the previous settings (the page "Choosing the settings"): the
    table, and in words which tasks' verdicts above are on the chosen setting."""
    from .. import candidates as cand
    from .settings import candidate_runs, candidate_table, changes_table, chosen_rows
    _, df = candidate_runs(profile, results_dir=results_dir, data_dir=data_dir)
    table = candidate_table(df)
    view.show("settings_changes", changes_table(table))
    words = []
    for task, _, pick in chosen_rows(table):
        name = report.TASK_LABELS.get(task, task)
        if not len(pick):
            words.append(f"{name}: no setting chosen yet, the verdicts are on the previous one")
        elif cand.in_use(pick.candidate.iloc[0], profile):
            words.append(f"{name}: on the chosen setting ({pick.candidate.iloc[0]})")
        elif task in pages.FINAL_TABLE1_TASKS:
            words.append(f"{name}: on the previous setting; Table 1 on the chosen one "
                         f"({pick.candidate.iloc[0]}) is on the page 'Table 1 on the chosen "
                         "settings', the other pages are not recomputed yet")
        else:
            words.append(f"{name}: on the previous setting; the chosen one "
                         f"({pick.candidate.iloc[0]}) is not recomputed yet")
    view.value("claims_settings_status", "; ".join(words))


STUDY_TITLES = {"fig2_data_size": "Figure 2 (data size)", "sensitivity_T": "T",
                "sensitivity_alpha": "alpha"}
