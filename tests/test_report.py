"""Tables and the paired bootstrap."""
import numpy as np
import pandas as pd
import pytest

from l2a_lib import report
from l2a_lib.runs import compact_predictions


def test_predictions_round_trip():
    logits = np.array([[0.1, 0.9], [2.0, 1.0], [0.0, 3.0]])
    c = compact_predictions("classification", logits)
    assert c == "101"
    assert report.decode_predictions("classification", c).tolist() == [1, 0, 1]
    r = compact_predictions("regression", np.array([[0.123456], [0.5]]))
    assert report.decode_predictions("regression", r).tolist() == [0.1235, 0.5]


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    good = np.where(rng.random(2000) < 0.85, labels, 1 - labels)   # ~85% correct
    bad = np.where(rng.random(2000) < 0.75, labels, 1 - labels)    # ~75% correct
    res = report.paired_bootstrap(labels, [good], [bad], "classification", n_boot=300)
    assert res["difference"] == pytest.approx((good == labels).mean() - (bad == labels).mean())
    assert res["p_value"] < 0.01 and res["ci_low"] > 0
    same = report.paired_bootstrap(labels, [good], [good], "classification", n_boot=100)
    assert same["difference"] == 0 and same["p_value"] == 1.0


def test_a_metric_is_named_by_the_tasks_headline_and_a_name_that_does_not_fit_the_task_is_refused():
    from l2a_lib.report.significance import metric_of
    labels, preds = np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0])
    assert metric_of("classification", labels, preds, "acc") == metric_of("classification", labels, preds) == 0.5
    assert metric_of("classification", labels, preds, "f1") == pytest.approx(2 / 3)
    y, p = np.array([0.1, 0.4, 0.2, 0.9]), np.array([0.2, 0.3, 0.1, 0.8])
    assert metric_of("regression", y, p, "pearson") == metric_of("regression", y, p)
    for kind, bad in (("regression", "acc"), ("regression", "f1"), ("classification", "pearson"),
                      ("classification", "F1")):
        with pytest.raises(ValueError, match="no metric"):
            metric_of(kind, labels, preds, bad)


def test_results_table_has_ours_and_paper_rows():
    df = pd.DataFrame([{"task": "tc", "method": "student_ft", "metric": "acc", "split": "test",
                        "value": v, "seed": s} for s, v in enumerate([0.6, 0.7])])
    t = report.results_table(df, ["student_ft"])
    assert t.loc[("Student-FT", "ours"), ("TC", "acc")] == "0.650\u00a0±\u00a00.071"
    assert t.loc[("Student-FT", "paper"), ("TC", "acc")] == "0.719"
    assert t.loc[("Student-FT", "ours"), ("NLI", "acc")] == "-"


def _records(task, accuracy: dict, labels, seeds=(0, 1, 2)):
    """{(task, method, seed): record} whose test predictions reach ``accuracy[method]``."""
    out = {}
    for k, (m, acc) in enumerate(accuracy.items()):
        for s in seeds:
            r = np.random.default_rng(100 * k + s).random(len(labels))
            out[(task, m, s)] = {"extra": {"test_predictions": "".join(
                map(str, np.where(r < acc, labels, 1 - labels)))}}
    return out


def test_claims_verdicts_follow_the_paired_tests():
    labels = np.random.default_rng(0).integers(0, 2, 2000)
    records = _records("tc", {"l2a": 0.80, "eda": 0.70, "student_ft": 0.65, "teacher_ft": 0.75,
                              "l2a_wo_src": 0.80, "l2a_wo_tgt": 0.90, "l2a_wo_att": 0.70}, labels)
    rows = report.claims(records, {"tc": labels}, {"tc": "classification"}, n_boot=300)
    v = rows.set_index("comparison")["verdict"]
    assert v["L2A - EDA (best baseline)"] == "supported"      # 0.80 vs 0.70 on every seed
    assert v["L2A - Teacher-FT"] == "supported"                 # beats it
    assert v["L2A - L2A w/o tgt"] == "contradicted"             # w/o tgt is higher
    assert v["L2A - L2A w/o src"] == "not shown"                # the same accuracy
    assert v["L2A - w/o L_att"] == "supported"
    summary = report.claim_summary(rows)
    assert list(summary["tc"]) == ["supported", "supported", "contradicted", "supported"]
    assert list(rows.claim) == sorted(rows.claim)               # ordered by claim
    assert "1 contradicted" in report.outcome(summary)


def test_claims_with_missing_runs_are_pending_or_interim():
    labels = np.random.default_rng(1).integers(0, 2, 1000)
    records = {**_records("tc", {"l2a": 0.8, "eda": 0.7, "l2a_wo_src": 0.6}, labels, seeds=(0,)),
               **_records("pi", {"l2a": 0.8, "eda": 0.7}, labels, seeds=(0,))}
    missing = [("tc", "l2a_wo_src", 1), ("tc", "l2a_wo_tgt", 0), ("tc", "l2a_wo_tgt", 1),
               ("pi", "l2a_wo_src", 0), ("pi", "l2a_wo_tgt", 0)]
    labels_of = {"tc": labels, "pi": labels}
    kinds = {"tc": "classification", "pi": "classification"}
    rows = report.claims(records, labels_of, kinds, missing, n_boot=200)
    r = rows.set_index(["task", "comparison"])
    assert "interim: 1 run(s) not computed yet" in r.loc[("tc", "L2A - L2A w/o src"), "note"]
    assert r.loc[("tc", "L2A - L2A w/o tgt"), "verdict"] == "pending"
    assert r.loc[("pi", "L2A - L2A w/o src"), "verdict"] == "pending"
    assert report.claim_summary(rows).loc[report.claim_summary(rows).index[2], "pi"] == "pending"
    assert "wait for runs not computed yet" in report.outcome(report.claim_summary(rows))
    # without missing runs nothing is pending
    assert "pending" not in report.claims(records, labels_of, kinds, n_boot=200).verdict.tolist()
    # a verdict made while a baseline's seed is missing is marked interim, and so counted
    rows = report.claims(records, labels_of, kinds, [("pi", "eda", 1)], n_boot=200)
    summary = report.claim_summary(rows)
    assert summary.loc[summary.index[0], "pi"] == "supported (interim)"
    assert summary.loc[summary.index[0], "tc"] == "supported"
    assert "1 of these verdicts is interim" in report.outcome(summary)
    two = pd.DataFrame({"tc": ["supported (interim)", "contradicted (interim)"]}, index=["1. a", "2. b"])
    assert "2 of these verdicts are interim" in report.outcome(two)
    # claim 2 made with an L2A seed missing is interim too
    both = _records("tc", {"l2a": 0.8, "teacher_ft": 0.7}, labels, seeds=(0, 1))
    rows = report.claims(both, {"tc": labels}, {"tc": "classification"}, [("tc", "l2a", 2)], n_boot=200)
    assert "interim: 1 run(s)" in rows.set_index("comparison").loc["L2A - Teacher-FT", "note"]
    assert report.claim_summary(rows).loc[report.claim_summary(rows).index[1], "tc"] == "supported (interim)"
    # a check is a cell with a claim: PI has no claim 2 and no ablation run here (3, 4)
    assert summary["pi"].isna().sum() == 3
    assert report.outcome(summary).startswith(f"Of {int(summary.notna().sum().sum())} claim-and-task checks")
    assert "Supported: claim 1 on PI" in report.outcome(summary)


def test_claims_wait_for_l2a_and_skip_a_variant_the_task_does_not_run():
    """L2A not computed yet: claim 2 is pending (not "not tested", which means a side
    stores no predictions); an ablation run on another task only has no row here."""
    labels = np.random.default_rng(2).integers(0, 2, 500)
    records = {**_records("nli", {"teacher_ft": 0.8, "eda": 0.7}, labels),
               **_records("tc", {"l2a": 0.8, "l2a_wo_hidden": 0.7}, labels)}
    missing = [("nli", "l2a", s) for s in (0, 1, 2)] + [("nli", "l2a_wo_att", s) for s in (0, 1, 2)]
    rows = report.claims(records, {"nli": labels, "tc": labels},
                         {"nli": "classification", "tc": "classification"}, missing, n_boot=100)
    r = rows.set_index(["task", "comparison"])
    assert r.loc[("nli", "L2A - Teacher-FT"), "verdict"] == "pending"
    assert r.loc[("nli", "L2A - Teacher-FT"), "note"] == "3 run(s) not computed yet"
    assert r.loc[("nli", "L2A - w/o L_att"), "verdict"] == "pending"   # its runs are missing
    assert ("nli", "L2A - w/o L_hidden") not in r.index               # run on TC only
    assert r.loc[("tc", "L2A - w/o L_hidden"), "verdict"] == "supported"
    # the control: Teacher-FT and L2A computed but without stored predictions: not tested
    bare = {k: {"extra": {}} for k in records if k[0] == "nli"}
    bare.update({("nli", "l2a", s): {"extra": {}} for s in (0, 1, 2)})
    rows = report.claims(bare, {"nli": labels}, {"nli": "classification"}, n_boot=100)
    assert rows.set_index("comparison").loc["L2A - Teacher-FT", "verdict"] == "not tested"


def test_teacher_consistency_compares_retrained_with_committed(tmp_path):
    import json
    from l2a_lib.profiles import make_config
    from l2a_lib.teacher import teacher_key
    runs = tmp_path / "runs"
    runs.mkdir()

    def write(name, method, seed, best, started, teacher=None):
        cfg = make_config("tc", method, seed=seed, profile="cpu")
        rec = {"config": cfg.to_dict(), "rows": [], "started_at": started,
               "extra": {"fine_tune": {"best_dev": best}} if method == "teacher_ft" else {}}
        if teacher is not None:
            rec["teacher"] = {"key": teacher_key(cfg), "best_dev": teacher, "trained_here": True}
        if name == "d":
            rec["environment"] = {"cpu": "Some CPU", "threads": 1}
        (runs / f"{name}.json").write_text(json.dumps(rec))

    write("a", "teacher_ft", 0, {"acc": 0.9}, "t0")          # old record: no teacher field
    write("b", "teacher_ft", 1, {"acc": 0.8}, "t1", teacher={"acc": 0.8})  # trained in its own run
    write("c", "l2a", 0, None, "t2", teacher={"acc": 0.9})    # retrained elsewhere: same
    write("d", "eda", 1, None, "t3", teacher={"acc": 0.79})   # retrained elsewhere: differs
    write("e", "eda", 2, None, "t4", teacher={"acc": 0.7})    # no Teacher-FT record of seed 2
    out = report.teacher_consistency(tmp_path).sort_values("seed")
    assert out["seed"].tolist() == [0, 1]
    assert out["same"].tolist() == [True, False]
    assert out["run"].tolist() == ["table1/l2a", "table1/eda"]
    assert out["retrained on"].tolist() == ["?, ? thr", "Some CPU, 1 thr"]
    assert out["retrained best dev"].tolist() == ["acc 0.900", "acc 0.790"]
    # a Teacher-FT record of a task variant this process has not registered (a settings
    # candidate's) is keyed by the key it recorded, or left out without one
    other = json.loads((runs / "b.json").read_text())
    other["config"]["task"] = "nli_unregistered"
    (runs / "f.json").write_text(json.dumps({**other, "started_at": "t5"}))
    del other["teacher"]
    (runs / "g.json").write_text(json.dumps({**other, "started_at": "t6"}))
    again = report.teacher_consistency(tmp_path)  # no error; f retrained b's teacher: one more row
    assert len(again) == 3 and again["run"].tolist().count("table1/teacher_ft") == 1


def test_ablation_tests_pair_by_seed_and_item_and_name_the_effect():
    """L2A against each variant on the seeds both have: removing a part that helps gives
    a positive difference whose interval excludes 0; identical predictions give
    "no clear effect"; a variant better than L2A "hurts"; a seed where both score the
    same counts as tied, not as higher."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 1500)

    def preds(p_correct, seed):  # ~p_correct accurate, different errors per seed
        r = np.random.default_rng(seed)
        return np.where(r.random(len(labels)) < p_correct, labels, 1 - labels)

    def rec(p):
        return {"extra": {"test_predictions": compact_predictions(
            "classification", np.eye(2)[p])}}
    records = {}
    for s in (0, 1, 2):
        full = preds(0.85, 10 + s)
        records[("tc", "l2a", s)] = rec(full)
        records[("tc", "l2a_wo_att", s)] = rec(preds(0.70, 20 + s))   # att helps
        records[("tc", "l2a_wo_hidden", s)] = rec(full)               # hidden: no effect
    records[("tc", "l2a_wo_dark", 0)] = rec(preds(0.95, 30))          # one seed only, better
    # far worse in two seeds, better in the third: the item interval excludes 0, but the
    # seeds disagree, so no verdict
    for s, p in ((0, 0.60), (1, 0.60), (2, 0.90)):
        records[("tc", "l2a_wo_src", s)] = rec(preds(p, 40 + s))
    # far worse in two seeds and the same as L2A in the third: a tie is not a win, so no verdict
    for s in (0, 2):
        records[("tc", "l2a_wo_tgt", s)] = rec(preds(0.60, 50 + s))
    records[("tc", "l2a_wo_tgt", 1)] = records[("tc", "l2a", 1)]
    out = report.ablation_tests(records, {"tc": labels}, {"tc": "classification"},
                                ["l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark", "l2a_wo_src", "l2a_wo_tgt"],
                                n_boot=200)
    out = out.set_index("variant")
    assert out.loc["w/o L_att", "removed part"] == "helps"
    assert out.loc["w/o L_att", "ci_low"] > 0 and out.loc["w/o L_att", "seeds L2A higher"] == "3 of 3"
    assert out.loc["w/o L_hidden", "difference"] == 0
    assert out.loc["w/o L_hidden", "removed part"] == "no clear effect"
    assert out.loc["w/o L_hidden", "seeds L2A higher"] == "0 of 3 (3 tied)"  # neither is higher
    # only the shared seed 0 is compared: L2A's seed-0 accuracy against the variant's
    acc0 = (report.decode_predictions("classification",
                                      records[("tc", "l2a", 0)]["extra"]["test_predictions"])
            == labels).mean()
    assert out.loc["w/o L_dark", "L2A"] == pytest.approx(acc0)
    assert out.loc["w/o L_dark", "removed part"] == "hurts"
    assert out.loc["w/o L_dark", "seeds L2A higher"] == "0 of 1"
    mixed = out.loc["L2A w/o src"]
    assert mixed["ci_low"] > 0 and mixed["seeds L2A higher"] == "2 of 3"
    assert mixed["removed part"] == "no clear effect"
    tied = out.loc["L2A w/o tgt"]
    assert tied["ci_low"] > 0 and tied["seeds L2A higher"] == "2 of 3 (1 tied)"
    assert tied["removed part"] == "no clear effect"
    # the paper's own difference beside ours, from paper_results.csv (Table 3, TC ACC)
    paper = report.paper_results()
    acc = paper[(paper.table == "table3") & (paper.metric == "acc")].set_index("method")["value"]
    with_paper = report.ablation_tests(records, {"tc": labels}, {"tc": "classification"},
                                       ["l2a_wo_att"], n_boot=50, paper_table="table3")
    assert with_paper["paper difference"].iloc[0] == pytest.approx(acc["l2a"] - acc["l2a_wo_att"])
    assert "paper difference" not in out.columns
    # no variant run yet (a page rendered while the workflow runs): no rows, the same columns
    only_l2a = {k: v for k, v in records.items() if k[1] == "l2a"}
    none = report.ablation_tests(only_l2a, {"tc": labels}, {"tc": "classification"},
                                 ["l2a_wo_src"], n_boot=50, paper_table="table2")
    assert none.empty and list(none.columns) == list(with_paper.columns)


def test_significance_table_picks_the_best_baseline_and_needs_every_seed():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 1500)

    def rec(p_correct, seed):
        r = np.random.default_rng(seed)
        p = np.where(r.random(len(labels)) < p_correct, labels, 1 - labels)
        return {"extra": {"test_predictions": compact_predictions("classification", np.eye(2)[p])}}
    records = {}
    for s in (0, 1, 2):
        records[("tc", "l2a", s)] = rec(0.85, 10 + s)
        records[("tc", "eda", s)] = rec(0.75, 20 + s)         # the best baseline
        records[("tc", "student_ft", s)] = rec(0.65, 30 + s)
        records[("tc", "teacher_ft", s)] = rec(0.95, 40 + s)  # never a baseline
    out = report.significance_table(records, {"tc": labels}, {"tc": "classification"}, n_boot=200)
    row = out.iloc[0]
    assert row["best baseline"] == "EDA" and row["verdict"] == "better"
    assert row["seeds L2A higher"] == "3 of 3" and row["ci_low"] > 0
    assert row["L2A"] - row["best baseline score"] == pytest.approx(row["difference"])
    # a baseline better in one seed only: the interval alone no longer decides
    records[("tc", "eda", 2)] = rec(0.95, 50)
    row = report.significance_table(records, {"tc": labels}, {"tc": "classification"},
                                    n_boot=200).iloc[0]
    assert row["seeds L2A higher"] == "2 of 3" and row["verdict"] == "no clear difference"


def test_same_student_is_chosen_by_parameter_count():
    df = pd.DataFrame({"task": ["tc"] * 5 + ["pi"], "n_params": [19, 19, 66, 19, 19, 7],
                       "method": ["l2a", "eda", "bert_pkd6", "student_ft", "l2a_wo_att", "l2a"]})
    assert report.same_student(df, "tc") == ["eda", "student_ft"]  # not L2A's own variant
    assert report.same_student(df, "pi") == [] and report.same_student(df, "nli") == []


def test_l2a_on_the_larger_student_is_compared_with_the_baselines_of_that_size_only():
    """Table 1's size-matched test at BERT6-PKD's size: L2A on that student against the
    best baseline with its parameter count (not the larger-scoring baseline of another
    size), glued as ``{prefix}_l2a6_better``; with no such run the section says so. And
    L2A's own best-baseline test does not take L2A on the larger student as a baseline."""
    from l2a_lib.views.base import View
    from l2a_lib.views.results import paired_sections
    labels = np.random.default_rng(1).integers(0, 2, 1500)
    records = _records("tc", {"l2a": 0.70, "bert_pkd_same": 0.66, "l2a_pkd6_student": 0.95,
                              "bert_pkd6": 0.74, "distilbert": 0.72, "eda": 0.90}, labels)
    size = {"l2a": 19, "bert_pkd_same": 19, "l2a_pkd6_student": 66, "bert_pkd6": 66,
            "distilbert": 66, "eda": 7}  # EDA scores highest but has another size
    df = pd.DataFrame({"task": "tc", "method": list(size), "n_params": list(size.values())})
    view = View()
    paired_sections(view, df, records, {"tc": labels}, {"tc": "classification"}, ["tc"], "x")
    six = view["paired_pkd6_student"].data
    assert six["best baseline"].tolist() == [report.METHOD_LABELS["bert_pkd6"]]
    assert six.verdict.tolist() == ["better"] and float(six.difference.iloc[0]) > 0
    assert report.METHOD_LABELS["l2a_pkd6_student"] not in six.columns
    assert view.values["x_l2a6_better"] == "1 of 1" and view.values["x_l2a6_worse"] == "0 of 1"
    assert view.values["x_l2a6_better_tasks"] == "TC"
    # L2A on another student is no baseline of L2A's, however high it scores
    assert view["paired"].data["best baseline"].tolist() == [report.METHOD_LABELS["eda"]]
    # the same test in words, for the front page; a missing run makes it interim
    from l2a_lib.views.results import size_matched_tests, size_matched_words
    sig = size_matched_tests(df, records, {"tc": labels}, {"tc": "classification"}, ["tc"],
                             "l2a_pkd6_student")
    words = size_matched_words(sig, "l2a_pkd6_student")
    assert words.startswith(f"better on TC than {report.METHOD_LABELS['bert_pkd6']} (+")
    assert words.endswith("higher in 3 of 3 seeds)")
    df.attrs["missing"] = [("tc", "bert_pkd6", 3)]
    words = size_matched_words(size_matched_tests(df, records, {"tc": labels}, {"tc": "classification"},
                                                  ["tc"], "l2a_pkd6_student"), "l2a_pkd6_student")
    assert words.endswith("; interim, 1 run(s) not computed yet)")
    df.attrs["missing"] = []
    assert size_matched_words(pd.DataFrame()) == "not computed yet on any task"
    even = sig.assign(verdict="no clear difference")
    assert size_matched_words(even, "l2a_pkd6_student").startswith(
        f"no clear difference on TC from {report.METHOD_LABELS['bert_pkd6']} (")
    del records[("tc", "l2a_pkd6_student", 0)], records[("tc", "l2a_pkd6_student", 1)], \
        records[("tc", "l2a_pkd6_student", 2)]
    view = View()
    paired_sections(view, df[df.method != "l2a_pkd6_student"], records, {"tc": labels},
                    {"tc": "classification"}, ["tc"], "x")
    assert "runs" in view["paired_pkd6_student"].data.columns
    assert view.values["x_l2a6_better"] == "0 of 0"


def test_within_seed_trend_removes_seed_offsets_and_matches_a_hand_fit():
    rng = np.random.default_rng(0)
    x = np.tile([0.0, 1.0, 2.0, 3.0], 3)
    seeds = np.repeat([0, 1, 2], 4)
    noise = rng.normal(0, 0.01, len(x))
    y = -0.05 * x + np.array([0.0, 0.3, -0.2])[seeds] + noise  # seeds shift every run alike
    slope, low, high = report.within_seed_trend(x, y, seeds)
    xc = x - np.array([x[seeds == s].mean() for s in seeds])
    yc = y - np.array([y[seeds == s].mean() for s in seeds])
    assert slope == pytest.approx(np.polyfit(xc, yc, 1)[0])
    assert slope == pytest.approx(-0.05, abs=0.01) and low < slope < high < 0
    # a seed measured only at large x with a low offset: pooled, the slope would fall;
    # within seeds it rises, as each seed's own runs do
    x2, s2 = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [0, 0, 0, 1, 1, 1]
    y2 = [0.80, 0.81, 0.82, 0.60, 0.61, 0.62 + 1e-3]
    assert np.polyfit(x2, y2, 1)[0] < 0 < report.within_seed_trend(x2, y2, s2)[1]
    assert report.within_seed_trend([0.0, 1.0], [0.5, 0.4], [0, 0]) is None  # no degree of freedom


def _study_frame(values, scores, column="alpha", method="l2a"):
    rows = [{"split": "test", "task": "tc", "metric": "acc", "method": method, "seed": s,
             column: v, "value": y} for (v, s), y in zip(values, scores)]
    return pd.DataFrame(rows)


def test_study_shape_verdicts_follow_the_trend_and_count_missing_runs():
    vals = [(a, s) for a in (0.07, 0.08, 0.09) for s in (0, 1)]
    falling = [0.80 - 5.0 * (a - 0.07) + 0.01 * s for a, s in vals]
    out = report.study_shape(_study_frame(vals, falling), "sensitivity_alpha")
    assert out.verdict[0] == "supported" and out.change[0] == pytest.approx(-0.1)
    rising = [0.70 + 5.0 * (a - 0.07) + [0.0, 0.002, -0.001][i % 3] for i, (a, s) in enumerate(vals)]
    assert report.study_shape(_study_frame(vals, rising), "sensitivity_alpha").verdict[0] == "contradicted"
    flat = [0.7, 0.72, 0.71, 0.69, 0.70, 0.72]
    part = _study_frame(vals, flat)
    part.attrs["missing"] = [("tc", "l2a", 2, 0.07)]
    assert report.study_shape(part, "sensitivity_alpha").verdict[0] == "not shown (interim: 1 run(s) not computed yet)"
    few = _study_frame(vals[:2], flat[:2])
    few.attrs["missing"] = [("tc", "l2a", 0, 0.09)]
    got = report.study_shape(few, "sensitivity_alpha")
    assert got.verdict[0] == "pending" and got.evidence[0] == "1 run(s) not computed yet"


def test_study_shape_pairs_l2a_with_the_teacher_at_the_smallest_size():
    vals = [(n, s) for n in (10, 40) for s in (0, 1, 2)]
    frame = pd.concat([_study_frame(vals, [0.70, 0.72, 0.71, 0.80, 0.81, 0.79], "train_per_class", "l2a"),
                       _study_frame(vals, [0.60, 0.61, 0.60, 0.70, 0.72, 0.71], "train_per_class", "student_ft"),
                       _study_frame(vals, [0.50, 0.55, 0.52, 0.90, 0.91, 0.90], "train_per_class", "teacher_ft")])
    out = report.study_shape(frame, "fig2_data_size").set_index("paper")
    beat = out.loc["at small sizes the student even beats the teacher"]
    assert beat.verdict == "supported" and beat.change == pytest.approx(np.mean([0.20, 0.17, 0.19]))
    assert "higher in 3 of 3 seeds" in beat.evidence
    gain = out.loc["the smaller the target set, the larger L2A's gain"]
    assert gain.change == pytest.approx(np.mean([0.10, 0.09, 0.08]) - np.mean([0.10, 0.11, 0.11]))


def test_the_precision_note_names_the_runs_whose_bf16_fell_back_to_fp32():
    from l2a_lib.machine import FP32_FALLBACK
    rows = [  # two rows (metrics) per run, as the tidy frame has them
        {"config_hash": h, "method": m, "task": "tc", "seed": s, "train_per_class": v, "cpu": cpu,
         "metric": metric}
        for h, m, s, v, cpu in [("a", "l2a", 0, 80, "EPYC" + FP32_FALLBACK),
                                ("b", "l2a", 1, 80, "EPYC"), ("c", "l2a", 2, 320, None),
                                ("d", "teacher_ft", 2, 320, "Xeon" + FP32_FALLBACK)]
        for metric in ("acc", "f1")]
    note = report.precision_note(pd.DataFrame(rows), column="train_per_class")
    assert note.startswith("**2 of 4 runs of this page were computed in fp32**")
    assert "* L2A, examples per class = 80: tc/0" in note
    assert "* Teacher-FT, examples per class = 320: tc/2" in note and "tc/1" not in note
    assert report.precision_note(pd.DataFrame(rows[2:6])) == ""  # only bf16 / unrecorded runs


@pytest.mark.parametrize("column, values, scale", [("train_per_class", (10, 20, 40), "log"),
                                                   ("T", (0.25, 0.5, 1.0, 2.0), "log"),
                                                   ("alpha", (0.0754, 0.0829, 0.0914), "linear")])
def test_a_study_is_plotted_on_the_scale_its_trend_is_fitted_on(column, values, scale):
    import matplotlib.pyplot as plt
    vals = [(v, s) for v in values for s in (0, 1)]
    acc = _study_frame(vals, [0.7 + 0.01 * i for i in range(len(vals))], column)
    fig = report.plot_study(pd.concat([acc, acc.assign(metric="f1")]), column, ["l2a"], "tc")
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert axes and all(ax.get_xscale() == scale for ax in axes)
    if scale == "log":  # each value is a labelled tick, as the values were given
        assert [t.get_text() for t in axes[0].get_xticklabels()] == [f"{v:g}" for v in values]
    plt.close(fig)


def test_the_settings_rule_reads_the_headline_metric_gaps():
    """candidate_table applies the rule: Teacher-FT >= majority + 0.10 and >= Student-FT
    + 0.05 (F1 on PI; Pearson gap 0.05 on regression), only with every seed in."""
    import pandas as pd
    from l2a_lib import candidates as cand
    from l2a_lib.views.settings import candidate_table
    rows = []
    values = {("tc", "teacher_ft"): 0.80, ("tc", "student_ft"): 0.70, ("tc", "majority"): 0.5,
              ("tc_6l", "teacher_ft"): 0.80, ("tc_6l", "student_ft"): 0.77, ("tc_6l", "majority"): 0.5,
              ("reg", "teacher_ft"): 0.30, ("reg", "student_ft"): 0.26, ("reg", "majority"): 0.0,
              ("pi", "teacher_ft"): 0.60, ("pi", "student_ft"): 0.50, ("pi", "majority"): 0.0}
    for (name, method), v in values.items():
        metric = cand.HEADLINE[cand.candidate(name).task]
        for seed in cand.SEEDS:
            rows.append({"candidate": name, "method": method, "seed": seed, "split": "test",
                         "metric": metric, "value": v})
    rows.append({"candidate": "pi", "method": "teacher_ft", "seed": 0, "split": "test",
                 "metric": "acc", "value": 0.99})  # another metric: not read
    table = candidate_table(pd.DataFrame(rows)).reset_index().set_index("candidate")
    assert table.loc["tc", "rule holds"] == "yes"
    assert table.loc["tc_6l", "rule holds"] == "no"      # teacher only 0.03 above the student
    assert table.loc["reg", "rule holds"] == "no"        # Pearson gap 0.04 < 0.05
    assert table.loc["pi", "rule holds"] == "yes"
    assert table.loc["nli", "rule holds"] == "pending"   # no runs
    assert table.loc["tc", "chosen"] == "chosen" and table.loc["tc_6l", "chosen"] == ""
    assert table.loc["pi", "chosen"] == "chosen"
    assert (table.loc[table.task == "reg", "chosen"] == "").all()  # none passes
    # a passing candidate after a pending one is chosen provisionally
    later = [r for r in rows if r["candidate"] == "tc_6l"]
    first_pending = pd.DataFrame([{**r, "candidate": "tc_6l", "value": 0.9 if r["method"] == "teacher_ft"
                                   else r["value"]} for r in later]
                                 + [r for r in rows if r["candidate"] not in ("tc", "tc_6l")])
    again = candidate_table(first_pending).reset_index().set_index("candidate")
    assert again.loc["tc", "rule holds"] == "pending"
    assert again.loc["tc_6l", "chosen"] == "chosen, provisional"
    # the claims page's old-vs-new table: one row for an unchanged task, two for a
    # changed one, "none yet" where nothing passes
    from l2a_lib.views.settings import changes_table
    changes = changes_table(candidate_table(first_pending.assign(
        value=lambda d: d.value.where(~((d.candidate == "pi") & (d.method == "teacher_ft")), 0.55))))
    assert list(changes.loc["tc"].index) == ["previous", "chosen, provisional"]
    assert list(changes.loc["tc"].candidate) == ["tc", "tc_6l"]
    assert list(changes.loc["reg"].candidate) == ["reg", "none yet"]
    assert list(changes.loc["pi"].index) == ["previous and chosen (unchanged)"]
    assert changes.loc[("pi", "previous and chosen (unchanged)"), "Teacher - Student"] == pytest.approx(0.05)
    from l2a_lib.candidates import chosen
    # the first passing candidate in the listed order, whatever the order of the input
    assert chosen({"pi_f1_400": True, "pi_f1": True, "pi": False})["pi"] == "pi_f1"
    assert chosen({})["nli"] is None


def test_every_candidate_setting_builds_and_loads_its_data(data_dir):
    """Each candidate of the settings page gives valid configurations whose data load;
    an unchanged candidate is Table 1's own runs (no recomputation)."""
    from l2a_lib import candidates as cand
    from l2a_lib.data import load_task
    from l2a_lib.profiles import make_config
    names = [c.name for c in cand.CANDIDATES]
    assert len(set(names)) == len(names)
    for c in cand.CANDIDATES:
        configs = c.configs("cpu")
        assert len({x.hash() for x in configs}) == len(cand.METHODS) * len(cand.SEEDS)
        student = c.config("student_ft", 0)
        td = load_task(student.task, student.data, seed=0, data_dir=data_dir)
        assert len(td.train) and len(td.dev) and len(td.test)
        unchanged = not (c.data or c.teacher or c.student or c.model or c.register)
        assert (student.hash() == make_config(c.task, "student_ft", 0).hash()) == unchanged
    assert cand.candidate("tc_6l").config("student_ft", 0).model.student_layers == cand.SIX_LAYERS
    # the book runs on a candidate's setting when its configurations are Table 1's
    assert cand.in_use("tc") and cand.in_use("pi")
    assert not cand.in_use("tc_6l") and not cand.in_use("reg_src") and not cand.in_use("nli_rte_sick")


def test_the_probe_verdict_counts_the_seeds_where_the_corrupted_are_kept_less():
    """The sentence under the probe on the parts page: per seed, corrupted against clean
    keep rates of the last episodes, then the paired test against keeping all."""
    import pandas as pd
    from l2a_lib.report.diagnostics import probe_summary
    from l2a_lib.views.parts import probe_verdict
    rows = [{"task": "tc", "seed": s, "episode": e, "keep_corrupted": kc, "keep_clean": 0.5}
            for s, kc in ((0, 0.2), (1, 0.6), (2, 0.1)) for e in range(10)]
    keep = probe_summary(pd.DataFrame(rows))
    words = probe_verdict(keep, pd.DataFrame())
    assert "at 2 of 3 seeds" in words and "0.30 corrupted, 0.50 clean" in words
    test = pd.DataFrame([{"difference": 0.012, "ci_low": -0.004, "ci_high": 0.03, "metric": "acc"}])
    assert probe_verdict(keep, test).endswith("+0.012 [-0.004,\u00a0+0.030] on acc")  # report.interval
    assert probe_verdict(pd.DataFrame(), test) == "not computed yet"


def test_the_random_control_verdict_reads_the_seeds_of_the_selector_it_names():
    """Each learned selector of the probe has its student that keeps at random at its
    rate (``PROBE_CONTROLS``); the sentence reads the paired test's seeds column of the
    selector it is given (L2A's or our equal-weight credit's)."""
    import pandas as pd
    from l2a_lib.views.parts import RANDOM_OF, random_verdict
    assert RANDOM_OF == {"l2a_corrupted": "l2a_corrupted_random",
                         "l2a_credit_eq_corrupted": "l2a_credit_eq_corrupted_random",
                         "l2a_credit_eq_corrupted_gen_off": "l2a_credit_eq_corrupted_gen_off_random"}
    for learned, wins in (("l2a_corrupted", "1 of 3"), ("l2a_credit_eq_corrupted", "3 of 3")):
        label = report.METHOD_LABELS.get(learned, learned)
        test = pd.DataFrame([{"difference": 0.031, "ci_low": 0.004, "ci_high": 0.06, "metric": "F1",
                              f"seeds {label} higher": wins, "removed part": "helps"}])
        words = random_verdict(test, learned)
        assert words.startswith("its student minus the student that keeps as many samples at random: +0.031")
        assert f"higher at {wins} seeds: the learned selection helps" in words
    assert random_verdict(pd.DataFrame(), "l2a_credit_eq_corrupted") == "not computed yet"


def test_the_probe_generator_verdict_compares_the_same_selector_with_its_generator_on_and_off():
    """The probe's generator pair: the equal-weight credit's probe with its generator
    trained (the reference) against the same with the generator off; the sentence
    reads the reference's seeds column and says what the trained generator does."""
    import pandas as pd
    from l2a_lib.profiles import L2A_PART_SETTINGS
    from l2a_lib.views.parts import PROBE_GENERATOR, generator_verdict
    on, off = PROBE_GENERATOR
    assert L2A_PART_SETTINGS[off] == {**L2A_PART_SETTINGS[on], "generator": False}
    label = report.METHOD_LABELS.get(on, on)
    test = pd.DataFrame([{"difference": -0.02, "ci_low": -0.03, "ci_high": -0.01, "metric": "acc",
                          f"seeds {label} higher": "0 of 3", "removed part": "hurts"}])
    words = generator_verdict(test)
    assert words.startswith("the student with the trained generator minus the one with the generator off: -0.020")
    assert words.endswith("higher at 0 of 3 seeds: the trained generator hurts")
    test.loc[0, "removed part"] = "no clear effect"
    assert generator_verdict(test).endswith("the trained generator has no clear effect")
    assert generator_verdict(pd.DataFrame()) == "not computed yet"


def test_the_probe_oracle_verdicts_read_each_comparison_off_its_own_row():
    """The probe's oracles: the perfect one's student against the generator-off selector's
    random student, then against the keep-all student; the one at that selector's group
    rates against the same random student, then the learned selector's student against it
    (its own test, with the selector's seeds column). Each oracle copies that selector's
    settings with its generator off, and only the rates oracle reads its run. The small-loss
    rule reads the same, and its second sentence is the learned selector's student minus it."""
    import pandas as pd
    from l2a_lib.profiles import L2A_PART_SETTINGS, RATES_OF
    from l2a_lib.views.parts import ORACLE_BASE, ORACLES, RANDOM_OF, oracle_verdict
    perfect, rates, rule = ORACLES
    assert RATES_OF == {rates: ORACLE_BASE, rule: ORACLE_BASE}
    for m, kind in ((perfect, "perfect"), (rates, "rates")):
        assert L2A_PART_SETTINGS[m] == {"corrupt_share": 0.5, "selector_oracle": kind, "generator": False}
        assert L2A_PART_SETTINGS[ORACLE_BASE]["generator"] is False
    assert L2A_PART_SETTINGS[rule] == {"corrupt_share": 0.5, "selector_rule": "small_loss", "generator": False}

    def row(method, reference, diff, wins, word):
        label = report.METHOD_LABELS.get(reference, reference)
        return {"method": method, "difference": diff, "ci_low": diff - 0.01, "ci_high": diff + 0.01,
                "metric": "acc", f"seeds {label} higher": wins, "removed part": word}
    for m in ORACLES:
        vs = pd.DataFrame([row(RANDOM_OF[ORACLE_BASE], m, 0.05, "3 of 3", "helps"),
                           row("l2a_corrupted_keep_all", m, 0.04, "2 of 3", "no clear effect")])
        learned = pd.DataFrame([row(m, ORACLE_BASE, -0.02, "0 of 3", "hurts")])
        words = oracle_verdict(m, vs, learned)
        first, second = words.split("; ")
        assert first.startswith(f"the student that {ORACLES[m][1]} minus the student that keeps at random at the "
                                "generator-off")
        assert first.endswith(f"+0.050 {report.interval(0.04, 0.06)} on acc, higher at 3 of 3 seeds: "
                              f"{ORACLES[m][2]} helps")
        if m == perfect:
            assert second == (f"minus the keep-all student: +0.040 {report.interval(0.03, 0.05)} on acc, higher "
                              "at 2 of 3 seeds: dropping them has no clear effect")
        else:
            part = "its choice within each group" if m == rates else "what its learning adds over the rule"
            assert second == ("the learned selector's student minus it: -0.020 "
                              f"{report.interval(-0.03, -0.01)} on acc, higher at 0 of 3 seeds: {part} hurts")
        assert oracle_verdict(m, pd.DataFrame(), learned) == "not computed yet"


def test_the_probe_by_class_averages_the_last_episodes_and_leaves_out_runs_without_the_split():
    """The PI probe's per-class table: keep rates of corrupted and clean samples within
    each class of the target, last episodes only; a run logged before the split is not
    shown, and a class with no sample in an episode does not count in its mean."""
    from l2a_lib.report.diagnostics import probe_by_class
    eps = [{"keep_corrupted_by_class": [1.0, 0.2], "keep_clean_by_class": [0.9, 0.8]}] * 3
    eps += [{"keep_corrupted_by_class": [1.0, None], "keep_clean_by_class": [0.5, 0.6]}] * 2
    records = {("pi", "l2a_corrupted", 0): {"extra": {"episodes": eps}},
               ("pi", "l2a_corrupted", 1): {"extra": {"episodes": [{"keep_rate": 0.5}]}}}
    out = probe_by_class(records, "l2a_corrupted", window=4, class_names=["no", "yes"])
    assert len(out) == 1 and out.index[0][1] == 0  # seed 1 logged no split
    row = out.iloc[0]
    assert row[("target: yes", "kept, corrupted")] == pytest.approx(0.2)  # 2 of 4 have it
    assert row[("target: no", "kept, clean")] == pytest.approx((0.9 * 2 + 0.5 * 2) / 4)
    assert row[("target: yes", "kept, clean")] == pytest.approx((0.8 * 2 + 0.6 * 2) / 4)
    assert len(probe_by_class(records, "l2a", window=4)) == 0
    never = {("pi", "l2a_corrupted", 0): {"extra": {"episodes": [
        {"keep_corrupted_by_class": [None, 0.5], "keep_clean_by_class": [0.9, 0.8]}]}}}
    assert probe_by_class(never, "l2a_corrupted").iloc[0][("target: class 0", "kept, corrupted")] == "no sample"


def test_the_change_table_sets_first_and_final_settings_side_by_side():
    """views.final.change_table: per task, on its headline metric, the rows on the first
    and on the final settings; a row missing on one side reads '-', and the best other
    method is named with its score (Teacher-FT, majority and L2A, on any student, are
    not candidates)."""
    from l2a_lib.views.final import change_table

    def rows(scores):
        return pd.DataFrame([{"task": "nli", "method": m, "seed": s, "split": "test",
                              "metric": "acc", "value": v + 0.01 * s}
                             for m, v in scores.items() for s in (0, 1, 2)])
    old = rows({"majority": 0.49, "teacher_ft": 0.50, "student_ft": 0.50, "eda": 0.52})
    new = rows({"majority": 0.49, "teacher_ft": 0.60, "student_ft": 0.50, "eda": 0.52,
                "l2a": 0.58, "tinybert": 0.55, "l2a_pkd6_student": 0.57})
    t = change_table(old, new, ["nli"]).set_index("row")
    assert t.loc["Teacher-FT", "first settings"] == report.number(0.51)
    assert t.loc["Teacher-FT", "final settings"] == report.number(0.61)
    assert t.loc["L2A", "first settings"] == "-" and t.loc["L2A", "final settings"] == report.number(0.59)
    assert t.loc["best other method", "first settings"] == f"EDA {report.number(0.53)}"
    assert t.loc["best other method", "final settings"] == f"TinyBERT {report.number(0.56)}"
    assert set(t.metric) == {"acc"}


def test_a_run_computed_again_is_paired_with_its_first_computation_and_no_other(tmp_path):
    """The final Table 1's "same runs computed twice": a final run whose configuration
    is a first-settings run's but for the extra scores is paired with it (difference,
    epochs, where each ran); a final run of a task whose settings changed, or one whose
    first run is not cached, has no pair."""
    import dataclasses
    import json
    from l2a_lib.profiles import make_config
    from l2a_lib.views.final import recomputed_pairs
    runs = tmp_path / "runs"
    runs.mkdir()

    def write(cfg, acc, epoch, env):
        (runs / f"{cfg.hash()}.json").write_text(json.dumps({
            "config": cfg.to_dict(), "rows": [{"split": "test", "metric": "acc", "value": acc}],
            "extra": {"fine_tune": {"best_epoch": epoch}}, "environment": env}))
    final = make_config("tc", "student_ft", 0, final=True)
    assert final.extra_scores  # the final grid's runs score more after training
    write(dataclasses.replace(final, extra_scores=None), 0.60, 3, {"threads": 2})
    write(final, 0.625, 9, {"cpu": "CPU B", "threads": 1, "transformers": "9.9"})
    # NLI's final teacher sees the source first: its first-settings run is another run
    write(make_config("nli", "teacher_ft", 0, final=True), 0.6, 1, {})
    write(make_config("nli", "teacher_ft", 0, final=False), 0.5, 1, {})
    write(make_config("tc", "student_ft", 1, final=True), 0.7, 1, {})  # no first run cached
    pairs = recomputed_pairs(["tc", "nli"], ["student_ft", "teacher_ft"], [0, 1],
                             results_dir=tmp_path)
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert (row.task, row.seed, row.first, row.again) == ("TC", 0, 0.60, 0.625)
    assert row.difference == pytest.approx(0.025)
    assert row["dev-chosen epoch"] == "3 -> 9"
    assert row["first computed on"].startswith("processor not recorded, 2 thread(s)")
    assert row["again on"] == "CPU B, 1 thread(s), transformers 9.9"


def test_each_method_is_tested_against_the_majority_baseline_on_classification_only():
    """The final Table 1's sanity check: a method that learnt the task is "better" than
    answering the majority class, one at chance is not; regression has no such row."""
    from l2a_lib.views.final import majority_tests
    labels = np.random.default_rng(3).integers(0, 2, 800)
    records = _records("nli", {"teacher_ft": 0.8, "student_ft": 0.5}, labels)
    majority = int(np.bincount(labels).argmax())
    records.update({("nli", "majority", s): {"extra": {"test_predictions": str(majority) * len(labels)}}
                    for s in (0, 1, 2)})
    y = np.random.default_rng(4).random(50)
    reg = {("reg", m, s): {"extra": {"test_predictions": y.tolist()}}
           for m in ("majority", "teacher_ft") for s in (0, 1, 2)}
    out = majority_tests({**records, **reg}, {"nli": labels, "reg": y},
                         {"nli": "classification", "reg": "regression"}, ["nli", "reg"],
                         ["majority", "teacher_ft", "student_ft"], n_boot=200)
    v = out.set_index("method")["verdict"]
    assert list(out.task.unique()) == ["NLI"] and len(out) == 2   # no row for majority itself
    assert v["Teacher-FT"] == "better" and v["Student-FT"] == "no clear difference"


def test_l2a_is_tested_against_its_learned_parts_off_control_per_task(tmp_path):
    """The control of the final Table 1 (and its sentence on the front page and the
    claims page): L2A against the cached runs of the learned-parts-off control, paired;
    a task without control runs has no row, and none at all says so."""
    import json
    from l2a_lib.pages import LEARNING_CONTROL
    from l2a_lib.profiles import make_config
    from l2a_lib.records import cache_path
    from l2a_lib.runs import Context
    from l2a_lib.views.final import control_words, paired_control
    labels = np.random.default_rng(5).integers(0, 2, 2000)
    records = _records("tc", {"l2a": 0.70, LEARNING_CONTROL: 0.80}, labels)
    for (t, m, s), rec in records.items():
        if m == LEARNING_CONTROL:
            path = cache_path(make_config(t, m, s, final=True), Context(results_dir=tmp_path))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"config": {}, "rows": [], **rec}))
    l2a = {k: v for k, v in records.items() if k[1] == "l2a"}
    sig, n, asked = paired_control(l2a, {"tc": labels}, {"tc": "classification"}, ["tc", "pi"],
                                   [0, 1, 2], "l2a", LEARNING_CONTROL, results_dir=tmp_path)
    assert (n, asked) == (3, 6) and sig.task.tolist() == ["tc"]
    words = control_words(sig)
    assert words.startswith("worse on TC (-0.1") and words.endswith("L2A higher in 0 of 3 seeds)")
    assert control_words(sig.iloc[:0]) == "not computed yet on any task"
    # L2A on BERT6-PKD's student against its own control (not the small student's)
    six = _records("tc", {"l2a_pkd6_student": 0.85, "l2a_pkd6_control": 0.75}, labels)
    path = cache_path(make_config("tc", "l2a_pkd6_control", 0, final=True), Context(results_dir=tmp_path))
    path.write_text(json.dumps({"config": {}, "rows": [], **six[("tc", "l2a_pkd6_control", 0)]}))
    mine = {k: v for k, v in six.items() if k[1] == "l2a_pkd6_student"}
    sig6, n6, asked6 = paired_control({**l2a, **mine}, {"tc": labels}, {"tc": "classification"},
                                        ["tc", "nli"], [0, 1, 2], "l2a_pkd6_student",
                                        "l2a_pkd6_control", results_dir=tmp_path)  # TC and PI only
    assert (n6, asked6) == (1, 3)
    assert sig6["best baseline"].tolist() == ["L2A parts off, BERT6-PKD's student"]
    assert control_words(sig6, "l2a_pkd6_student").startswith("better on TC (+0.1")
    assert control_words(sig6, "l2a_pkd6_student").endswith(  # 2 control seeds missing
        "L2A, BERT6-PKD's student higher in 1 of 1 seeds; interim, 2 run(s) not computed yet)")
    # any other run paired the same way: L2A against the same KD with no augmentation
    kd = _records("tc", {"kd_only": 0.60}, labels, seeds=(1,))
    path = cache_path(make_config("tc", "kd_only", 1, final=True), Context(results_dir=tmp_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": {}, "rows": [], **kd[("tc", "kd_only", 1)]}))
    sig_kd, n_kd, asked_kd = paired_control(l2a, {"tc": labels}, {"tc": "classification"}, ["tc"],
                                            [0, 1, 2], "l2a", "kd_only", results_dir=tmp_path)
    assert (n_kd, asked_kd) == (1, 3) and sig_kd["runs missing"].tolist() == [2]
    assert control_words(sig_kd).startswith("better on TC (+0.1")
    # the pages' one loop: each L2A method against each of its controls, each row with
    # its own glue names (both pages read it)
    from l2a_lib.views.final import paired_controls
    verdicts = {(row.method, row.control, row.key + row.suffix, row.words):
                control_words(sig, row.method).split(" on ")[0]
                for row, sig, *_ in paired_controls({**l2a, **mine}, {"tc": labels},
                                                    {"tc": "classification"}, ["tc"],
                                                    [0, 1, 2], "cpu", tmp_path)}
    assert verdicts == {
        ("l2a", LEARNING_CONTROL, "parts_off", "final_learning_control"): "worse",
        ("l2a_pkd6_student", "l2a_pkd6_control", "parts_off_6", "final_learning_control_6"): "better",
        ("l2a", "kd_only", "kd_only", "final_augment_control"): "better"}


def test_a_verdict_made_with_runs_missing_is_named_interim():
    """Table 1's paired tests: a task with runs of the compared methods still missing
    gets a "runs missing" count and is named "(interim)" in the glued task list; a task
    with all its runs, or a page with none missing, is named plainly."""
    from l2a_lib.views.base import View
    from l2a_lib.views.results import glue_verdicts, with_missing
    sig = pd.DataFrame({"task": ["reg", "tc"], "verdict": ["better", "better"]})
    missing = [("tc", "eda", 1), ("tc", "teacher_ft", 0), ("nli", "l2a", 0)]
    marked = with_missing(sig, missing, ["l2a", "eda"])
    assert marked["runs missing"].tolist() == [0, 1]      # Teacher-FT is not compared here
    view = View()
    glue_verdicts(view, marked, "x_l2a_better")
    assert view.values["x_l2a_better"] == "2 of 2"
    assert view.values["x_l2a_better_tasks"] == "Reg, TC (interim)"
    assert with_missing(sig, [], ["l2a"]) is sig            # nothing missing: unchanged


def test_the_positive_class_table_splits_f1_into_share_precision_and_recall():
    """Final Table 1's PI section: per method, the share of test items predicted
    positive, precision and recall of that class (means over seeds), the seeds under
    the test set's positive share; a method that never calls an item positive has no
    precision and recall 0, and the page glues the methods under the share at every seed."""
    from l2a_lib.views.base import View
    from l2a_lib.views.final import _positive_class, positive_class
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])            # positive share 0.2
    preds = {"teacher_ft": ["1100000000", "1010000000"],     # 0.2 called; precision 1, 0.5
             "l2a": ["1000000000", "1000000000"],            # 0.1 called; precision 1; recall 0.5
             "majority": ["0000000000", "0000000000"]}       # nothing called positive
    records = {("pi", m, s): {"extra": {"test_predictions": p}}
               for m, ps in preds.items() for s, p in enumerate(ps)}
    kinds = {"pi": "classification"}
    table = positive_class(records, {"pi": y}, kinds, ["teacher_ft", "l2a", "majority", "eda"]).set_index("method")
    assert table.index.tolist() == ["test labels", "teacher_ft", "l2a", "majority"]  # eda: no runs
    assert table.loc["test labels", "predicted positive"] == pytest.approx(0.2)
    assert table.loc["teacher_ft", ["predicted positive", "precision", "recall"]].tolist() == \
        pytest.approx([0.2, 0.75, 0.75])
    assert table.loc["l2a", ["predicted positive", "precision", "recall"]].tolist() == pytest.approx([0.1, 1.0, 0.5])
    assert np.isnan(table.loc["majority", "precision"]) and table.loc["majority", "recall"] == 0
    under = "seeds under the test's share"
    assert table.loc["teacher_ft", under] == "0 of 2" and table.loc["l2a", under] == "2 of 2"
    assert table.attrs["under_every_seed"] == ["l2a", "majority"]
    view = View()
    _positive_class(view, records, {"pi": y}, kinds, ["teacher_ft", "l2a", "majority"])
    assert view.values["final_pi_positive_share"] == "0.200"
    assert view.values["final_pi_under_every_seed"] == \
        f"{report.METHOD_LABELS['l2a']}, {report.METHOD_LABELS['majority']}"  # not Teacher-FT


def test_the_probe_counts_the_corrupted_share_of_the_kept_samples_and_the_disagreement_correlation():
    """``kept_corrupted_share`` weights each episode's keep rates by its corrupted share and
    pool (so a student that keeps everything keeps the pool's share); episodes without the
    split are left out. ``disagreement_corr`` reads the last episodes' correlation."""
    from l2a_lib.views.parts import disagreement_corr, kept_corrupted_share

    def ep(kc, kl, share, pool, corr=None):
        return {"keep_corrupted": kc, "keep_clean": kl, "corrupted_share": share, "pool": pool,
                "keep_corr_disagreement": corr}
    # episode 1: 0.5 * 0.5 * 100 = 25 corrupted, 1.0 * 0.5 * 100 = 50 clean kept;
    # episode 2: 0.0 corrupted, 0.5 * 0.6 * 200 = 60 clean; episode 3 has no split
    recs = {("tc", "m", 0): {"extra": {"episodes": [ep(0.5, 1.0, 0.5, 100, -0.5), ep(0.0, 0.5, 0.4, 200, -0.7)]}},
            ("tc", "m", 1): {"extra": {"episodes": [ep(None, None, None, 50, -0.2)]}}}
    assert kept_corrupted_share(recs) == pytest.approx(25 / 135)
    keep_all = {("tc", "m", 0): {"extra": {"episodes": [ep(1.0, 1.0, 0.3, 80), ep(1.0, 1.0, 0.5, 80)]}}}
    assert kept_corrupted_share(keep_all) == pytest.approx(0.4)
    assert kept_corrupted_share({("tc", "m", 1): recs[("tc", "m", 1)]}) is None
    assert disagreement_corr(recs, window=5) == "from -0.70 to -0.20 (last 5 episodes of 2 seeds)"
    assert disagreement_corr(recs, window=1) == "from -0.70 to -0.20 (last 1 episodes of 2 seeds)"
    assert disagreement_corr({}) == "not computed yet"


def test_the_probe_dose_plot_draws_each_student_and_the_line_through_the_two_reference_means():
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd
    from l2a_lib.report.diagnostics import plot_probe_dose
    points = pd.DataFrame([{"task": "tc", "metric": "acc", "student": who, "share": share, "score": score}
                           for who, share, score in (("random", 0.5, 0.64), ("random", 0.48, 0.66),
                                                     ("oracle", 0.0, 0.70), ("oracle", 0.0, 0.72),
                                                     ("rule", 0.2, 0.65))])
    ax = plot_probe_dose(points, ("random", "oracle")).axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines[:3]] == ["random", "oracle", "rule"]
    assert [len(line.get_xdata()) for line in lines[:3]] == [2, 2, 1]
    dashed = [line for line in lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    assert list(dashed[0].get_xdata()) == pytest.approx([0.49, 0.0])
    assert list(dashed[0].get_ydata()) == pytest.approx([0.65, 0.71])
    assert ax.get_ylabel() == "TC test acc"
    # without one of the two reference students, no line
    no_line = plot_probe_dose(points[points.student != "oracle"], ("random", "oracle")).axes[0]
    assert not [line for line in no_line.get_lines() if line.get_linestyle() == "--"]


def test_score_on_test_reads_the_test_row_of_the_metric_or_nan():
    import math
    from l2a_lib.records import score_on_test
    record = {"rows": [{"split": "dev", "metric": "acc", "value": 0.9},
                       {"split": "test", "metric": "acc", "value": 0.7},
                       {"split": "test", "metric": "f1", "value": 0.4}]}
    assert score_on_test(record, "acc") == 0.7 and score_on_test(record, "f1") == 0.4
    assert math.isnan(score_on_test(record, "pearson"))
