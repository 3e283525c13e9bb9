"""L2A version 2: its diagnostics over episodes, and its learned parts switched off one
at a time (issue 34)."""
from __future__ import annotations

import pandas as pd

from .. import report
from ..config import L2A_CREDIT, L2A_PARTS, L2A_PROBE, L2A_PROBE_LONG
from ..data import get_task
from ..experiment import run_many
from ..l2a import toy
from ..profiles import (PARTS_FEWER_SEEDS, PARTS_PROBE_TASKS, PARTS_SEEDS, PROBE_CONTROLS, PROBE_ORACLES,
                        PROBE_RULES, RATES_OF)
from ..records import load_records, load_test_labels, score_on_test
from ..report import diagnostics as diag
from .base import View, pending
from .final_generator import CONTROL_TASKS, final_generator

TASK_METRICS = report.HEADLINE  # PI's target is imbalanced: the tests compare F1 there


def cached(view: View, tasks, methods, seeds, **kw) -> dict:
    """The version-2 records of a grid (computed first only if ``kw`` allows training),
    with the page's note on the runs not computed yet."""
    view.note(report.coverage_note(run_many(list(tasks), list(methods), list(seeds), version=2, **kw)))
    return load_records(list(tasks), list(methods), list(seeds), profile=kw["profile"],
                        results_dir=kw.get("results_dir"), version=2)


def l2a_diagnostics(profile="cpu", tasks=("tc", "pi"), seeds=PARTS_SEEDS, allow_training=False,
                    allow_missing=True, results_dir=None, data_dir=None,
                    final_tasks=CONTROL_TASKS, final_seeds=(0, 1, 2)) -> View:
    """Version 2's episode logs: the reward and its noise, the selector, the loss terms;
    and on the final grid's settings (``final_tasks``), the generator under its two
    updates (``views.final_generator``)."""
    view = View()
    final_generator(view, final_tasks, final_seeds, profile, results_dir, data_dir)
    records = cached(view, tasks, ["l2a"], seeds, profile=profile, allow_training=allow_training,
                     results_dir=results_dir, data_dir=data_dir, allow_missing=allow_missing)
    frame = diag.diagnostics_frame(records)
    signal = diag.reward_signal(frame)
    view.show("signal", signal)
    for task in signal.index:
        key = task.lower()
        view.value(f"diag_{key}_snr_v2", f"{signal.loc[task].iloc[1]:.2f}")
        view.value(f"diag_{key}_snr_v1", f"{signal.loc[task].iloc[3]:.2f}")
    view.show("selector", diag.selector_summary(frame))
    if len(frame):
        for panel in diag.PANELS:
            view.show(f"{panel}_plot", diag.plot_diagnostics(frame, panel))
    _budget(view, frame, allow_training, results_dir)
    return view


def _budget(view, frame, allow_training, results_dir):
    """The toy selector's budget study (``l2a.toy``): how many episodes the selector
    needs, at rewards well above their noise; read from the cache (a minute to compute)."""
    if not (allow_training or toy.budget_file(toy.budget_grid(), results_dir).is_file()):
        view.show("budget", pending())
        view.show("budget_plot", pending())
        for key in ("toy_snr_low", "toy_snr_high", "toy_pass_20", "toy_pass_20_credit",
                    "toy_pass_20_calibrated", "toy_pass_20_equal", "real_episodes"):
            view.value(key, "-")
        return
    study = toy.budget_study(results_dir=results_dir)
    episodes = int(frame.episode.max()) + 1 if len(frame) else None
    view.show("budget", diag.budget_table(study))
    view.show("budget_plot", diag.plot_budget(study, episodes))
    kind = study.credit.map(str)  # "False" (the step reward), "True", "calibrated", "equal"
    snr = study[kind == "False"].groupby("student_lr").reward_snr.median()
    view.value("toy_snr_low", f"{snr.min():.1f}")
    view.value("toy_snr_high", f"{snr.max():.1f}")
    for key, which in (("toy_pass_20", "False"), ("toy_pass_20_credit", "True"),
                       ("toy_pass_20_calibrated", "calibrated"), ("toy_pass_20_equal", "equal")):
        sub = study[kind == which]
        first = sub[sub.episodes == study.episodes.min()]
        view.value(key, f"{int(first.passed.sum())} of {len(first)}")
    view.value("real_episodes", str(episodes or "-"))


def l2a_parts(profile="cpu", tasks=("tc", "pi"), seeds=PARTS_SEEDS, allow_training=False,
              allow_missing=True, results_dir=None, data_dir=None) -> View:
    """L2A (version 2) against each of its parts switched off: paired differences with
    95% intervals (accuracy on TC, F1 on PI). Some variants and the probe run at the
    first seeds only (``profiles.PARTS_FEWER_SEEDS``)."""
    tasks, seeds = list(tasks), list(seeds)
    methods = ["l2a", *L2A_PARTS]
    view = View()
    kw = dict(profile=profile, allow_training=allow_training, results_dir=results_dir,
              data_dir=data_dir, allow_missing=allow_missing)
    records = cached(view, tasks, [m for m in methods if m not in PARTS_FEWER_SEEDS], seeds, **kw)
    for m in methods:
        if m in PARTS_FEWER_SEEDS:
            records.update(cached(view, tasks, [m], seeds[:PARTS_FEWER_SEEDS[m]], **kw))
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    view.show("means", diag.means_table(records, labels, kinds, methods, TASK_METRICS))
    tests = report.ablation_tests(records, labels, kinds, list(L2A_PARTS), task_metrics=TASK_METRICS)
    view.show("tests", report.paired_table(tests))
    if len(tests):
        view.show("differences", diag.plot_differences(tests))
    for r in tests.to_dict("records"):
        view.value(f"parts_{r['task']}_{_key(r['variant'])}", r["removed part"])
    for task in ("tc", "pi"):  # the page's probe sections
        if task in tasks and task in PARTS_PROBE_TASKS[L2A_PROBE[0]]:
            _probe(view, seeds, records, labels, kinds, kw, task)
        else:  # the page keeps its layout
            sfx = "" if task == "tc" else f"_{task}"
            for key in ("probe_means", "probe_keep", "probe_plot", "probe_by_class", "probe_dose_plot"):
                view.show(key + sfx, pending())
            for name in probe_glue_names():
                view.value(name + sfx, "not computed yet")
            if task in PARTS_PROBE_TASKS[L2A_PROBE_LONG[0]]:
                view.show("probe_long_plot", pending())
                view.value("probe_long_verdict", "not computed yet")
    return view


# the question a reader asks first of L2A's learning: does what it learns matter? Its
# selector against one that keeps at random at the same rate, its trained generator
# against the static masked LM
LEARNED_PARTS = {"l2a_selector_random": "the learned selector (against keeping at random "
                                        "at its rate)",
                 "l2a_generator_off": "the trained generator (against the static masked LM)"}


def learned_parts_words(profile="cpu", tasks=("tc", "pi"), seeds=PARTS_SEEDS, results_dir=None,
                        data_dir=None) -> str:
    """The parts page's verdicts on L2A's two learned parts in one sentence, per part and
    task: the ablation test's word, the difference (L2A minus the variant) with its 95%
    interval and the seeds in which L2A is higher."""
    tasks, parts = list(tasks), list(LEARNED_PARTS)
    records = load_records(tasks, ["l2a", *parts], list(seeds), profile=profile,
                           results_dir=results_dir, version=2)
    labels, kinds = load_test_labels(tasks, profile=profile, data_dir=data_dir)
    tests = report.ablation_tests(records, labels, kinds, parts, task_metrics=TASK_METRICS)
    if not len(tests):
        return "not computed yet"
    words = []
    for m in parts:
        rows = tests[tests.method == m]
        if len(rows):
            words.append(f"{LEARNED_PARTS[m][0].upper()}{LEARNED_PARTS[m][1:]}: " + "; ".join(
                f"{r['removed part']} on {report.TASK_LABELS[r['task']]} "
                f"({report.number(r['difference'], signed=True)} "
                f"{report.interval(r['ci_low'], r['ci_high'])}, "
                f"L2A higher in {r['seeds L2A higher']} seeds)" for r in rows.to_dict("records")))
    return ". ".join(words) + "."


# each learned selector of the probe: the probe table's name, its glue key (L2A's has
# none), the name of the keep rate its random student copies; "(ours)": our extension's
# selectors (l2a.credit)
PROBE_SELECTORS = {L2A_PROBE[0]: ("L2A's selector", "", "learned"),
                   L2A_CREDIT[3]: ("calibrated credit (ours)", "cal", "calibrated"),
                   L2A_CREDIT[5]: ("equal-weight credit (ours)", "eq", "equal-weight"),
                   L2A_CREDIT[7]: ("equal-weight credit, generator off (ours)", "eq_gen_off",
                                   "generator-off equal-weight")}
# ... and the pair that tells what the trained generator does in the probe
PROBE_GENERATOR = (L2A_CREDIT[5], L2A_CREDIT[7])
# each learned selector of a probe -> its student that keeps as many samples at random
RANDOM_OF = {learned: control for control, learned in PROBE_CONTROLS.items()}
# the probe's oracles (``profiles.PROBE_ORACLES``) and its rule (``PROBE_RULES``), generator off
# as in the selector whose random student each is held against: each one's glue key, what it
# does, what the comparison with that random student measures and (but for the perfect
# oracle, held against keep-all) what the learned selector's student minus it measures
KEEPERS = {**PROBE_ORACLES, **PROBE_RULES}  # method -> kind
_KEEPER_WORDS = {
    "perfect": ("probe_oracle_verdict", "drops every corrupted sample", "dropping every corrupted sample", None),
    "rates": ("probe_oracle_rates_verdict", "keeps each group at the selector's rates, at random within it",
              "the selector's separation of the groups", "its choice within each group"),
    "small_loss": ("probe_rule_verdict", "keeps the samples of least teacher-student disagreement, at the "
                   "selector's rate", "the small-loss rule", "what its learning adds over the rule")}
ORACLES = {m: _KEEPER_WORDS[kind] for m, kind in KEEPERS.items()}
KEEPER_NAMES = {"perfect": "perfect oracle", "rates": "rates oracle", "small_loss": "small-loss rule"}
(ORACLE_BASE,) = set(RATES_OF.values())  # the generator-off equal-weight selector, and its random student


def probe_glue(selector: str, random: bool = False) -> str:
    """The glue name (before the task's suffix) of a selector's probe verdict, or of
    its student's against the one that keeps at random at its rate."""
    key = PROBE_SELECTORS[selector][1]
    return "probe" + (f"_{key}" if key else "") + ("_random" if random else "") + "_verdict"


def probe_glue_names() -> list[str]:
    """Every verdict (and figure in words) the probe sections glue (before the task's suffix)."""
    return [*(probe_glue(m) for m in PROBE_SELECTORS),
            *(probe_glue(m, True) for m in PROBE_SELECTORS if m in RANDOM_OF), "probe_generator_verdict",
            *(glue for glue, *_ in ORACLES.values()), "probe_rule_corr", "probe_kept_corrupted"]


def _probe(view, seeds, records, labels, kinds, kw, task="tc"):
    """The probe with a known answer on real data (``l2a.corrupt``): half the augmented
    samples with wrong teacher targets; each learned selector (``PROBE_SELECTORS``: L2A's
    and our extension's) against keeping all and against keeping as many at random;
    L2A's over 60 episodes with the generator off (``L2A_PROBE_LONG``); the generator-off
    selector's two oracles and its small-loss rule against its random student (``ORACLES``); each on the
    tasks of ``profiles.PARTS_PROBE_TASKS``. Glue names end in ``_<task>`` except on TC."""
    sfx = "" if task == "tc" else f"_{task}"
    keep_all = L2A_PROBE[1]

    def probe_runs(m):
        on_task = task in PARTS_PROBE_TASKS.get(m, ())
        return cached(view, [task], [m], seeds[:PARTS_FEWER_SEEDS[m]], **kw) if on_task else {}

    def row(m):  # the keep table's row of a selector's run
        return "20 episodes" + ("" if m == L2A_PROBE[0] else f", {PROBE_SELECTORS[m][0]}")

    selectors = [m for m in PROBE_SELECTORS if task in PARTS_PROBE_TASKS[m]]
    learned = {m: probe_runs(m) for m in selectors}
    # ... the students that keep at random at their selectors' rates, and keep-all
    at_random = {m: RANDOM_OF[m] for m in selectors if task in PARTS_PROBE_TASKS.get(RANDOM_OF.get(m), ())}
    randoms = {m: probe_runs(c) for m, c in at_random.items()}
    kept_all = probe_runs(keep_all)
    # clean L2A at the seeds of L2A_PROBE's runs
    paper_seeds = {k[2] for r in (learned[L2A_PROBE[0]], kept_all, randoms.get(L2A_PROBE[0], {})) for k in r}
    clean = {k: v for k, v in records.items() if k[0] == task and k[2] in paper_seeds}
    shown_methods = [m for m in L2A_PROBE if task in PARTS_PROBE_TASKS[m]]
    oracles = {m: probe_runs(m) for m in ORACLES if task in PARTS_PROBE_TASKS[m]}
    shown_methods += [m for m in [*selectors, *at_random.values(), *oracles] if m not in shown_methods]
    view.show(f"probe_means{sfx}", diag.means_table(
        {**clean, **kept_all, **{k: v for r in [*learned.values(), *randoms.values(), *oracles.values()]
                                 for k, v in r.items()}},
        {task: labels[task]}, {task: kinds[task]}, ["l2a", *shown_methods], TASK_METRICS))
    runs = {}
    for m in selectors:
        runs[row(m)] = diag.diagnostics_frame(learned[m], m)
        if m == L2A_PROBE[0] and task in PARTS_PROBE_TASKS[L2A_PROBE_LONG[0]]:
            longer = diag.diagnostics_frame(probe_runs(L2A_PROBE_LONG[0]), L2A_PROBE_LONG[0])
            runs[f"{longer.episode.max() + 1 if len(longer) else 60} episodes, generator off"] = longer
            view.show_when("probe_long_plot", len(longer), lambda: diag.plot_diagnostics(longer, "probe"))
            view.value("probe_long_verdict", probe_verdict(diag.probe_summary(longer), pd.DataFrame()))
        if m in at_random:
            runs[f"20 episodes, at random at the {PROBE_SELECTORS[m][2]} rate"] = diag.diagnostics_frame(
                randoms[m], at_random[m])
    for m, r in oracles.items():
        runs[f"20 episodes, {'rule' if m in PROBE_RULES else 'oracle'}: {ORACLES[m][1]}"] = diag.diagnostics_frame(r, m)
    keep = {k: diag.probe_summary(f) for k, f in runs.items()}
    shown = {k: v for k, v in keep.items() if len(v)}
    view.show_when(f"probe_keep{sfx}", shown, lambda: pd.concat(shown, names=["run"]))
    frame = runs[row(L2A_PROBE[0])]
    view.show_when(f"probe_plot{sfx}", len(frame), lambda: diag.plot_diagnostics(frame, "probe"))
    names = list(get_task(task).label_names)
    by_class = {PROBE_SELECTORS[m][0]: diag.probe_by_class(learned[m], m, class_names=names) for m in selectors}
    by_class = {k: v for k, v in by_class.items() if len(v)}
    view.show_when(f"probe_by_class{sfx}", by_class, lambda: pd.concat(by_class, names=["selector"]))
    one = {task: labels[task]}, {task: kinds[task]}
    for m in selectors:  # each selector's student, against keeping all and (if run) at random
        controls = [keep_all] + ([at_random[m]] if m in at_random else [])
        vs = report.ablation_tests({**learned[m], **kept_all, **randoms.get(m, {})}, *one, controls,
                                   reference=m, task_metrics=TASK_METRICS)
        view.value(probe_glue(m) + sfx, probe_verdict(keep[row(m)], vs[vs.method == keep_all]))
        if m in RANDOM_OF:
            view.value(probe_glue(m, True) + sfx, random_verdict(vs[vs.method == at_random[m]], m)
                       if m in at_random else _not_here(RANDOM_OF[m]))
    for m in set(PROBE_SELECTORS) - set(selectors):  # the page keeps its sentences
        for random in (False, True) if m in RANDOM_OF else (False,):
            view.value(probe_glue(m, random) + sfx, _not_here(m))
    on, off = PROBE_GENERATOR  # the same selector with its generator trained and off
    view.value(f"probe_generator_verdict{sfx}", generator_verdict(report.ablation_tests(
        {**learned[on], **learned[off]}, *one, [off], reference=on, task_metrics=TASK_METRICS))
               if on in learned and off in learned else _not_here(off))
    base = {**learned.get(ORACLE_BASE, {}), **randoms.get(ORACLE_BASE, {}), **kept_all}
    view.value(f"probe_rule_corr{sfx}", disagreement_corr(learned[ORACLE_BASE]) if ORACLE_BASE in learned
               else _not_here(ORACLE_BASE))
    line = ("its random student", f"the {KEEPER_NAMES['perfect']}")  # the figure's dashed line joins these
    kept_by = {"the learned selector": learned.get(ORACLE_BASE), line[0]: randoms.get(ORACLE_BASE),
               **{f"the {KEEPER_NAMES[KEEPERS[m]]}": r for m, r in oracles.items()}}
    shares = {who: kept_corrupted_share(r) for who, r in kept_by.items() if r}
    view.value(f"probe_kept_corrupted{sfx}", "; ".join(f"{who} {v:.0%}" for who, v in shares.items() if v is not None)
               or _not_here(ORACLE_BASE))
    metric = TASK_METRICS.get(task, "acc")
    points = pd.DataFrame([{"task": task, "student": who, "metric": metric, "share": kept_corrupted_share({k: rec}),
                            "score": score_on_test(rec, metric)}
                           for who, r in kept_by.items() if r for k, rec in r.items()])
    view.show_when(f"probe_dose_plot{sfx}", len(points) and points.student.nunique() > 1,
                   lambda: diag.plot_probe_dose(points.dropna(), line))
    for m, (glue, *_) in ORACLES.items():  # the oracles and the rule against the same random student
        missing = _not_here(m) if m not in oracles or ORACLE_BASE not in randoms else (
            None if oracles[m] else "not computed yet")
        if missing:
            view.value(glue + sfx, missing)
            continue
        perfect = KEEPERS[m] == "perfect"  # its sentence reads keep-all; the others', the selector
        controls = [RANDOM_OF[ORACLE_BASE]] + ([keep_all] if perfect else [])
        vs = report.ablation_tests({**oracles[m], **base}, *one, controls, reference=m, task_metrics=TASK_METRICS)
        learned_vs = pd.DataFrame() if perfect else report.ablation_tests(
            {**oracles[m], **base}, *one, [m], reference=ORACLE_BASE, task_metrics=TASK_METRICS)
        view.value(glue + sfx, oracle_verdict(m, vs, learned_vs))


def oracle_verdict(oracle: str, vs: pd.DataFrame, learned: pd.DataFrame) -> str:
    """An oracle's or the rule's student (``ORACLES``) against the generator-off selector's
    random student (``vs``: the paired tests with the oracle as reference), and then against
    the keep-all student (the perfect oracle) or the learned selector's student against it
    (the oracle at that selector's rates, the rule; ``learned``: the test with the selector
    as reference)."""
    _, does, part, learned_part = ORACLES[oracle]
    if not len(vs):
        return "not computed yet"
    words = _paired_words(vs[vs.method == RANDOM_OF[ORACLE_BASE]], oracle, f"the student that {does} minus the "
                          "student that keeps at random at the generator-off selector's rate", part)
    if KEEPERS[oracle] == "perfect":
        return words + "; " + _paired_words(vs[vs.method == L2A_PROBE[1]], oracle, "minus the keep-all student",
                                            "dropping them")
    return words + "; " + _paired_words(learned, ORACLE_BASE, "the learned selector's student minus it",
                                        learned_part)


def disagreement_corr(records: dict, window: int = 5) -> str:
    """The range, over each seed's last ``window`` episodes, of the correlation between a
    selector's keep probability and the teacher-student disagreement (the episode log's
    ``keep_corr_disagreement``, ``selector.policy_profile``): how much it acts as a small-loss rule."""
    vals = [e["keep_corr_disagreement"] for rec in records.values()
            for e in rec["extra"]["episodes"][-window:] if e.get("keep_corr_disagreement") is not None]
    if not vals:
        return "not computed yet"
    return f"from {min(vals):+.2f} to {max(vals):+.2f} (last {window} episodes of {len(records)} seeds)"


def kept_corrupted_share(records: dict) -> float | None:
    """The share of corrupted samples among those a probe's runs kept, over all their
    episodes and seeds (from each episode's keep rates, corrupted share and pool size)."""
    corrupted = clean = 0.0
    for rec in records.values():
        for e in rec["extra"]["episodes"]:
            if None in (e.get("keep_corrupted"), e.get("keep_clean"), e.get("corrupted_share")):
                continue
            corrupted += e["keep_corrupted"] * e["corrupted_share"] * e["pool"]
            clean += e["keep_clean"] * (1 - e["corrupted_share"]) * e["pool"]
    return corrupted / (corrupted + clean) if corrupted + clean > 0 else None


def _not_here(method: str) -> str:
    """Why a probe's verdict is missing on a task: its runs are on other tasks only, or
    on the final settings only (``profiles.PARTS_PROBE_TASKS``)."""
    return "not run on this task" if PARTS_PROBE_TASKS[method] else "run on the final settings only"


def probe_verdict(keep: pd.DataFrame, test: pd.DataFrame) -> str:
    """The probe's result in a sentence: whether the learned selector drops the corrupted
    samples (last episodes, per seed) and what its student scores against keeping all."""
    if not len(keep):
        return "not computed yet"
    last = [c for c in keep.columns if c.startswith("kept") and "last" in c]
    corrupted, clean = keep[last[0]], keep[last[1]]
    fewer = int((corrupted < clean).sum())
    words = (f"over the last episodes the learned selector kept fewer corrupted than clean "
             f"samples at {fewer} of {len(keep)} seeds (mean keep rate {corrupted.mean():.2f} "
             f"corrupted, {clean.mean():.2f} clean; the toy test of the method page asks for under "
             f"0.30 and over 0.70)")
    if len(test):
        r = test.iloc[0]
        words += (f"; its student minus the keep-all student: {r['difference']:+.3f} "
                  f"{report.interval(r['ci_low'], r['ci_high'])} on {r['metric']}")
    return words


def random_verdict(test: pd.DataFrame, learned: str = L2A_PROBE[0]) -> str:
    """A learned selector's student (``learned``) against the student whose selector
    keeps as many samples at random (the same keep rate in each episode), in a sentence."""
    return _paired_words(test, learned, "its student minus the student that keeps as many samples "
                         "at random", "the learned selection")


def generator_verdict(test: pd.DataFrame) -> str:
    """The probe's student with its generator trained against the same selector's with
    the generator off (``PROBE_GENERATOR``), in a sentence."""
    return _paired_words(test, PROBE_GENERATOR[0], "the student with the trained generator minus the "
                         "one with the generator off", "the trained generator")


def _paired_words(test: pd.DataFrame, reference: str, difference: str, part: str) -> str:
    """A paired test's first row (``report.ablation_tests`` against ``reference``) in a
    sentence: what the difference is, its value and 95% interval, the seeds at which
    ``reference`` is higher, and the test's word on ``part``."""
    if not len(test):
        return "not computed yet"
    r, label = test.iloc[0], report.METHOD_LABELS.get(reference, reference)
    return (f"{difference}: {r['difference']:+.3f} {report.interval(r['ci_low'], r['ci_high'])} on "
            f"{r['metric']}, higher at {r[f'seeds {label} higher']} seeds: {part} "
            f"{'has no clear effect' if r['removed part'] == 'no clear effect' else r['removed part']}")


def _key(label: str) -> str:
    return {report.METHOD_LABELS[m]: m for m in L2A_PARTS}.get(label, label)
