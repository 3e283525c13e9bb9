"""Tables, figures and verdicts from tidy result frames, split by what they draw:

* ``common`` -- labels, the paper's numbers, aggregation over seeds, notes, style;
* ``tables`` -- Table 1 and Table 3's layouts, the L2A training log;
* ``studies`` -- Figure 2 and the T / alpha sensitivity;
* ``significance`` -- paired tests on the shared test set;
* ``claims`` -- the paper's four claims, the teacher's reproducibility;
* ``diagnostics`` -- L2A version 2's episode diagnostics and its learned parts' ablations
  (imported as a module: ``report.diagnostics``).

Every name is importable from ``l2a_lib.report`` directly.
"""
from .claims import CLAIMS, claim_summary, claims, outcome, teacher_consistency
from .common import (BASELINES, COLUMN_ORDER, HEADLINE, METHOD_LABELS, METRICS, PALETTE, TASK_LABELS,
                     aggregate, coverage_note, fmt, paper_results, paper_rows, precision_note,
                     pearson_standard_error, require, set_style, standard_error, version_note)
from .significance import (VERDICTS, ablation_tests, paired_table, decode_predictions, degenerate_seeds, interval_sign, verdict, paired_bootstrap,
                           paired_comparison, same_student, seed_predictions, significance_table)
from .studies import (SHAPE_CLAIMS, not_computed, plot_study, study_by_seed, study_shape,
                      study_table, within_seed_trend)
from .tables import (ablation_table, data_summary, episode_frame, mark_best, mean_table, plot_episodes,
                     plot_vs_paper, policy_summary, results_table, by_size, student_sizes)
from .display import interval, number, readable, tidy
from ..errors import MissingResults

__all__ = [
    "CLAIMS", "HEADLINE", "claim_summary", "claims", "outcome", "teacher_consistency", "BASELINES", "COLUMN_ORDER", "METHOD_LABELS", "METRICS",
    "PALETTE", "TASK_LABELS", "aggregate", "coverage_note", "fmt", "paper_results", "paper_rows",
    "precision_note", "pearson_standard_error", "require", "set_style", "standard_error", "version_note", "ablation_tests",
    "decode_predictions", "degenerate_seeds", "interval_sign", "verdict", "VERDICTS", "paired_bootstrap", "paired_comparison", "same_student",
    "seed_predictions", "significance_table", "paired_table", "SHAPE_CLAIMS", "not_computed", "plot_study",
    "study_by_seed", "study_shape", "study_table", "within_seed_trend", "ablation_table",
    "episode_frame", "mark_best", "mean_table", "plot_episodes", "plot_vs_paper",
    "policy_summary", "results_table", "by_size", "student_sizes", "data_summary", "MissingResults", "interval", "number", "readable", "tidy",
]
