"""The studies (Figure 2's data size, the T and alpha sensitivity) and the claims page."""
from __future__ import annotations

import pandas as pd

from .. import pages, report
from ..config import TABLE1_METHODS
from ..experiment import run_many, run_study
from ..l2a.static import edit_rate
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
    view.show("plot", report.plot_study(df, column, methods, tasks[0]))
    summary = report.study_table(df, column, methods, tasks[0])
    if column == "alpha":
        summary.insert(0, "expected edit rate", [f"{edit_rate(a, VOCAB):.2f}" for a in summary.index])
    view.show("by_value", summary)
    view.show("by_seed", report.study_by_seed(df, column, methods, tasks[0], seeds=seeds))
    view.show("shape", report.study_shape(df, study, tasks[0]).drop(columns=["study"]).round(4))
    return view


def claims(profile="cpu", tasks=("tc", "pi", "nli", "reg"), seeds=(0, 1, 2),
           allow_training=False, allow_missing=True, results_dir=None, data_dir=None) -> View:
    """The paper's four claims task by task, the paired tests of L2A against every
    baseline, and the studies' shapes."""
    tasks, seeds = list(tasks), list(seeds)
    view = View()
    table1 = list(TABLE1_METHODS)
    kw = dict(profile=profile, allow_training=allow_training, results_dir=results_dir,
              data_dir=data_dir, allow_missing=allow_missing)
    frames = [run_many(tasks, table1 + ["l2a_wo_src", "l2a_wo_tgt"], seeds, **kw),
              run_many(["tc"], ["l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark"], seeds, **kw)]
    df = pd.concat(frames, ignore_index=True)
    df.attrs = {"missing": [x for f in frames for x in f.attrs.get("missing", [])],
                "n_runs": sum(f.attrs.get("n_runs", f[["task", "method", "seed"]]
                                          .drop_duplicates().shape[0]) for f in frames)}
    view.note(report.coverage_note(df, shown="a claim they decide shows as pending, or as interim"))
    student_params = df[df.method == "student_ft"]["n_params"].dropna()
    view.value("student_params_m", f"{student_params.iloc[0] / 1e6:.1f}M" if len(student_params)
               else "not counted")
    view.options["display.max_colwidth"] = 200
    view.show("verdicts", report.claims(df))
    records = load_records(tasks, [m for m in table1 if m != "teacher_ft"], seeds,
                           profile=profile, results_dir=results_dir)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    view.show("paired", report.significance_table(records, labels, kinds).round(4))
    # read only: the study pages' runs are computed by the workflow (or by those pages)
    shape = pd.concat([report.study_shape(run_study(
        name, list(values), ["tc"], list(pages.STUDY_METHODS[name]), seeds, **{
            **kw, "allow_training": False}), name)
        for name, values in pages.STUDY_VALUES.items()], ignore_index=True)
    view.show("shapes", shape.round(4))
    return view
