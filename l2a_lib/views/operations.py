"""The pages about the companion itself: performance, reliability, reproducing."""
from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path

import pandas as pd

from .. import audit, costs, paths, profiles, reliability as reliability_mod, report
from ..experiment import run
from ..profiles import make_config
from ..records import is_cached, load_record
from ..runs import Context
from .base import View

BENCHMARK_FIGURES = [
    "augment_speedup_vs_nlpaug", "augment_speedup_vs_nlpaug_fp32", "l2a_ps_sentences_per_second_bf16",
    "l2a_ps_sentences_per_second_fp32", "nlpaug_sentences_per_second",
    "distill_epoch_over_student_epoch", "teacher_forward_passes_over_unique_inputs",
    "bf16_speedup_teacher_inference", "bf16_speedup_teacher_training",
    "bf16_max_abs_logit_difference", "bf16_prediction_agreement",
    "teacher_inference_fraction_of_peak", "teacher_inference_fraction_of_peak_fp32",
    "matmul_peak_gflops_bf16", "matmul_peak_gflops_fp32", "teacher_inference_gflops_bf16",
    "teacher_inference_gflops_fp32", "smoke_workflow_seconds", "jobs_alone_seconds_per_step",
    "jobs_parallel_seconds_per_step", "jobs_throughput_gain"]
BENCHMARK_COUNTS = ["augment_sentences", "nlpaug_sentences", "unique_inputs",
                    "teacher_forward_passes", "jobs_alone_threads", "jobs_parallel",
                    "jobs_parallel_threads"]


def performance(results_file=None) -> View:
    """The benchmark's figures (``benchmarks/results.json``): every figure by name for
    the prose, the processors measured, and when each section was measured."""
    view = View()
    path = Path(results_file or paths.REPO_ROOT / "benchmarks" / "results.json")
    R = json.loads(path.read_text()) if path.is_file() else {}
    if not R:
        view.note("`benchmarks/results.json` not found: run `python benchmarks/run.py`")
    for key in BENCHMARK_FIGURES:
        view.value(key, f"{R[key]:.2f}" if key in R else "not measured")
    for key in BENCHMARK_COUNTS:
        view.value(key, f"{R[key]:,}" if key in R else "not measured")
    view.show("processors", _processors(R))
    view.show("measured", pd.DataFrame([{"section": k, **v} for k, v in R.get("measured", {}).items()]))
    return view


def _processors(R: dict) -> pd.DataFrame | None:
    rows = [{"processor": k, **v} for k, v in R.get("by_processor", {}).items()]
    if "matmul_peak_gflops_fp32" in R:  # the machine of the figures above, for comparison
        when = R.get("measured", {}).get("peak", {})
        found = re.search(r"(\d+) threads", when.get("machine", ""))
        rows.insert(0, {"processor": f"the figures above ({when.get('machine', '?').split(',')[0]})",
                        "date": when.get("date"), "threads": int(found.group(1)) if found else None,
                        "matmul_peak_gflops_fp32": R["matmul_peak_gflops_fp32"],
                        "matmul_peak_gflops_bf16": R["matmul_peak_gflops_bf16"],
                        "bf16_over_fp32_matmul_peak": round(
                            R["matmul_peak_gflops_bf16"] / R["matmul_peak_gflops_fp32"], 2),
                        "bf16_speedup_teacher_inference": R.get("bf16_speedup_teacher_inference")})
    if not rows:
        return None
    procs = pd.DataFrame(rows).set_index("processor")[[
        "date", "threads", "matmul_peak_gflops_fp32", "matmul_peak_gflops_bf16",
        "bf16_over_fp32_matmul_peak", "bf16_speedup_teacher_inference"]]
    procs.columns = ["date", "threads", "fp32 peak (GFLOP/s)", "bf16 peak (GFLOP/s)",
                     "bf16 / fp32 peak", "bf16 speed-up, teacher inference"]
    return procs


def reliability(data_dir=None, audit_runs=("student_ft", "eda", "l2a")) -> View:
    """Every bad-input case provoked, and a determinism audit: smoke runs computed in a
    scratch folder, then recomputed from scratch (teachers and masked LM too)."""
    view = View()
    cases = reliability_mod.catalogue(data_dir)
    view.value("n_bad_inputs", str(int((cases.error != "(none: handled)").sum())))
    view.value("n_as_expected", f"{int(cases['as expected'].sum())} of {len(cases)}")
    view.options["display.max_colwidth"] = 400
    view.show("cases", cases.style.hide(axis="index").set_properties(**{"text-align": "left"}))
    # the runs' progress lines are a log, not a result: kept off the page
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        ctx = Context(data_dir, Path(tmp) / "results", Path(tmp) / "cache")
        for m in audit_runs:
            run(make_config("tc", m, 0, profile="smoke"), data_dir=data_dir,
                results_dir=ctx.results_dir, cache_dir=ctx.cache_dir)
        diffs = audit.audit(ctx, "smoke", n=len(audit_runs), fresh_cache=True)
    per_run = diffs.groupby(["task", "method", "seed"])["abs_diff"].max().rename("largest |difference|")
    view.value("audit_identical", f"{int((per_run == 0).sum())} of {len(per_run)}")
    view.show("audit", per_run.to_frame())
    return view


PAGE_TITLES = {"intro": "Front page", "data": "Data", "reliability": "Reliability",
               "performance": "Performance", "mlm": "Masked LM", "table1": "Table 1",
               "table2": "Table 2", "table3": "Table 3", "l2a_training": "Training L2A",
               "fig2_data_size": "Figure 2", "sensitivity_T": "Sensitivity to T",
               "sensitivity_alpha": "Sensitivity to alpha", "claims": "Claims",
               "compute": "Compute", "reproduce": "Reproduce"}


def reproduce(profile="cpu") -> View:
    """What reproducing costs: hours per page and per method, by processor, and
    whether retrained teachers reproduce the committed ones."""
    view = View()
    pages = costs.page_seconds(profile)
    view.value("runs_total", f"{int(pages['new runs'].sum()):,}")
    view.value("runs_cached", f"{int(pages['new runs cached'].sum()):,}")
    view.value("run_hours_measured", f"{pages['run hours (measured)'].sum():.1f}")
    view.show("pages", pages.assign(page=pages.page.map(PAGE_TITLES)))
    view.show("methods", costs.method_seconds(profile))
    view.show("processors", costs.processor_times(profile))
    mlm_config = make_config("tc", "mlm", 0, profile=profile)
    view.value("repro_mlm_minutes",
               f"{load_record(mlm_config)['extra']['mlm']['seconds'] / 60:.0f}"
               if is_cached(mlm_config, Context()) else "(not yet measured)")
    retrained = report.teacher_consistency()
    view.value("teachers_retrained_summary", (
        f"{int(retrained['same'].sum())} of the {len(retrained)} retrained teachers reached "
        "exactly the best dev scores of their committed Teacher-FT record." if len(retrained) else
        "No run in the cache has fine-tuned a teacher again yet: every teacher was trained "
        "once, by the first run that needed it."))
    view.show("teachers", retrained if len(retrained) else None)
    return view


def widest_phases(frame: pd.DataFrame, keep: int = 5) -> pd.DataFrame:
    """The table beside the phase plot: the ``keep`` phases that take the most time,
    the rest summed into "other", so that a new phase never widens it past the page."""
    if frame.shape[1] <= keep + 1:
        return frame
    top = [c for c in frame.sum().sort_values(ascending=False).index if c != "other"][:keep]
    top = [c for c in frame.columns if c in top]
    return frame[top].assign(other=frame.drop(columns=top).sum(axis=1))


GRID_BUDGET_HOURS = 12.0  # the final grid's budget of recorded compute (issue 35)
GRID_COLUMNS = {"runs": "runs", "cached": "cached", "recorded_hours": "recorded hours",
                "missing": "missing", "missing_measured": "missing, measured configuration",
                "missing_projected_hours": "their projected hours",
                "missing_unmeasured": "missing, not measured yet"}


def grids_table(profile: str, view: View) -> pd.DataFrame:
    """The grid the book shows and the final grid (issue 35), against the cache: runs
    cached and their recorded hours, runs missing and what is known of their cost
    (``costs.grid_status``); the final grid's figures are glued (``final_grid_*``)."""
    rows = {"the book's grid": costs.grid_status(profile)}
    if not profiles.FINAL_GRID:
        rows["the final grid (issue 35)"] = costs.final_grid_status(profile)
    final = rows.get("the final grid (issue 35)", rows["the book's grid"])
    for key in ("runs", "cached", "recorded_hours", "missing_unmeasured"):
        view.value(f"final_grid_{key}", f"{final[key]:.1f}" if key.endswith("hours") else f"{final[key]:,}")
    over = final["recorded_hours"] > GRID_BUDGET_HOURS
    view.value("final_grid_budget", (
        f"the runs cached already recorded more than {GRID_BUDGET_HOURS:g} hours, so the whole "
        "grid cannot fit in that budget" if over else
        f"the runs cached recorded less than {GRID_BUDGET_HOURS:g} hours so far; whether the "
        "rest fits is not known until the missing runs are measured"))
    # where the final grid's runs were computed: a task's runs share its teachers, which
    # differ by processor kind (the reproduce page), so a task goes on where it started
    kinds = pd.DataFrame(final["processors"]).fillna(0).astype(int)
    view.show("final_grid_processors", kinds.rename(columns=report.TASK_LABELS).rename_axis(
        "processor") if len(kinds) else pd.DataFrame({"runs": ["none cached yet"]}))
    return pd.DataFrame({name: {GRID_COLUMNS[k]: f"{v:.1f}" if k.endswith("hours") else f"{v:,}"
                                for k, v in row.items() if k in GRID_COLUMNS}
                         for name, row in rows.items()}).T


def compute(profile="cpu", results_file=None) -> View:
    """What the study costs, from the cache: hours per page and per method and task, the
    phases of an L2A run (the benchmark's, and any cached run that records them), the
    grid's total, and the processors it was measured on."""
    import matplotlib.pyplot as plt
    from ..ledger import PHASES
    view = View()
    pages = costs.page_seconds(profile)
    view.value("compute_runs", f"{int(pages['new runs cached'].sum()):,}")
    view.value("compute_hours", f"{pages['run hours (measured)'].sum():.1f}")
    report.set_style()
    shown = pages[pages["run hours (measured)"] > 0]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(shown) + 1.2))
    ax.barh([PAGE_TITLES.get(p, p) for p in shown.page][::-1], shown["run hours (measured)"][::-1])
    ax.set_xlabel("recorded wall hours of the page's runs (2 CPU cores)")
    ax.set_title("Hours per page (runs shared with an earlier page counted there)", fontsize=10)
    fig.tight_layout()
    view.show("pages_plot", fig)
    hours = costs.hours_by_method(profile)
    hours.index = [report.METHOD_LABELS.get(m, m) for m in hours.index]
    view.value("compute_l2a_family_hours", f"{hours.loc[[m for m in hours.index if m.startswith(('L2A', 'w/o'))]].values.sum():.1f}"
               if len(hours) else "0")
    view.show("methods", hours.rename(columns=report.TASK_LABELS).rename_axis("method (hours)")
              .map(lambda h: f"{h:.2f}"))
    grid = costs.grid_projection(profile)
    for key in ("grid_hours", "grid_critical_path_hours"):
        view.value(key, f"{grid[key]:.1f}")
    for key in ("grid_runs", "grid_configurations", "grid_teachers"):
        view.value(key, f"{grid[key]:,}")
    view.value("grid_shared", f"{grid['grid_shared_measurements']} of {grid['grid_sample_runs']}")
    view.show("grids", grids_table(profile, view))
    # the phases of an L2A run: the benchmark's (benchmarks/run.py --only l2a_phases)
    path = Path(results_file or paths.REPO_ROOT / "benchmarks" / "results.json")
    bench = json.loads(path.read_text()) if path.is_file() else {}
    recorded = costs.phase_seconds(profile)
    bars = {}
    if "l2a_phases" in bench:
        bars[f"L2A, {bench.get('l2a_phases_run', '')} (benchmark)"] = bench["l2a_phases"]
    if len(recorded):
        for (m, t), g in recorded.groupby(["method", "task"]):
            bars[f"{report.METHOD_LABELS.get(m, m)}, {report.TASK_LABELS.get(t, t)} "
                 f"(median of {len(g)} cached)"] = g[list(PHASES)].median().to_dict()
    view.value("phases_source", "the benchmark's L2A run" if bars else "no run yet")
    if bars:
        frame = pd.DataFrame(bars).T.reindex(columns=list(PHASES)).fillna(0.0) / 60
        frame = frame.loc[:, frame.sum() > 0]
        fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(frame) + 2.6))
        frame.plot.barh(stacked=True, ax=ax, width=0.6, colormap="tab20", legend=False)
        ax.set_xlabel("minutes")
        ax.set_title("Where a run's time goes, by phase", fontsize=10)
        handles, labels = ax.get_legend_handles_labels()
        fig.tight_layout(rect=(0, 0.3, 1, 1))
        fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=8)
        view.show("phases_plot", fig)
        view.show("phases", widest_phases(frame).rename_axis("run (minutes per phase)")
                  .map(lambda m: f"{m:.1f}"))
    else:
        view.note("No run records its phases yet: `python benchmarks/run.py --only l2a_phases` "
                  "measures one L2A run; runs computed from now on record theirs.")
        view.show("phases_plot", None)
        view.show("phases", None)
    view.show("processors", costs.processor_times(profile))
    return view
