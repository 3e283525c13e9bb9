"""Noisy copies of the test split (issue 36): nlpaug's augmenters, offline, seeded,
cached; a run with ``robustness`` scores its model on every copy."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from l2a_lib import robustness

TEXTS = ["the film is a warm and funny portrait of a family in trouble",
         "a dull , lifeless and badly acted story that goes nowhere at all",
         "i loved every minute of this beautifully shot movie"]


@pytest.mark.parametrize("kind", list(robustness.NOISE))
def test_each_noise_is_seeded_and_grows_with_its_level(kind, data_dir, monkeypatch):
    monkeypatch.setenv("L2A_DATA_DIR", str(data_dir))
    low, high = robustness.NOISE[kind][0], robustness.NOISE[kind][-1]
    a = robustness.perturb(TEXTS * 10, kind, low)
    assert a == robustness.perturb(TEXTS * 10, kind, low)  # same seed, same output
    changed = lambda out: np.mean([sum(w not in t.split() for w in o.split()) / len(t.split())  # noqa: E731
                                   if kind != "dropout" else 1 - len(o.split()) / len(t.split())
                                   for o, t in zip(out, TEXTS * 10)])
    lo, hi = changed(a), changed(robustness.perturb(TEXTS * 10, kind, high))
    assert 0.02 < lo < hi, (lo, hi)
    if kind == "synonyms":  # function words are left alone (EDA's stop words)
        out = robustness.perturb(["a film of the year"] * 20, kind, high)
        assert all(o.split()[0] == "a" for o in out), out[:3]


def test_noisy_copies_are_cached_and_pairs_get_noise_on_both_sides(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("L2A_DATA_DIR", str(data_dir))
    test = pd.DataFrame({"uid": ["1", "2", "3"], "text_a": TEXTS, "text_b": TEXTS[::-1], "label": [1, 0, 1]})
    first = robustness.noisy_test(test, "typos", 0.3, cache_dir=tmp_path)
    assert (first["text_a"] != test["text_a"]).any() and (first["text_b"] != test["text_b"]).any()
    assert len(list((tmp_path / "robustness").glob("*.jsonl"))) == 1
    again = robustness.noisy_test(test, "typos", 0.3, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(first, again)


def test_the_workflow_generates_the_noisy_copies_before_the_runs_that_score_them(tmp_path, data_dir,
                                                                                monkeypatch):
    """A ``noise`` job per task writes the copies and a manifest (``python -m l2a_lib
    noise``); every run scored on them waits for that manifest while it is missing."""
    import json

    from l2a_lib import cli, workflow
    monkeypatch.setenv("L2A_DATA_DIR", str(data_dir))
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("L2A_RESULTS_DIR", str(tmp_path / "results"))
    plan = workflow.Plan("smoke", tmp_path / "results", tmp_path / "cache")
    noisy = [h for h, c in plan.runs.items() if "noise" in (c.extra_scores or ())]
    assert noisy
    inputs = plan.run_inputs(noisy[0])
    assert inputs["noise"] == str(robustness.manifest_path(plan.runs[noisy[0]].task, "smoke",
                                                           tmp_path / "cache"))
    assert cli.main(["noise", plan.runs[noisy[0]].task, "--profile", "smoke"]) == 0
    manifest = json.loads(open(inputs["noise"]).read())
    assert len(manifest["copies"]) == sum(len(v) for v in robustness.NOISE.values())
    for copy in manifest["copies"]:
        assert (tmp_path / "cache" / "robustness" / copy["file"]).is_file()
        assert copy["seed"] == robustness.SEED and 0 < copy["changed"] <= 1


@pytest.mark.parametrize("method", ["student_ft", "bilstm_soft"])
def test_a_run_with_robustness_scores_every_noisy_copy(tmp_path, data_dir, monkeypatch, method):
    from l2a_lib import experiment
    from l2a_lib.profiles import make_config
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("L2A_DATA_DIR", str(data_dir))
    config = dataclasses.replace(make_config("tc", method, 0, profile="smoke"),
                                 extra_scores=("noise", "attention"))
    plain = experiment.run(config, results_dir=tmp_path / "results", data_dir=data_dir)
    assert set(plain["split"]) == {"dev", "test"}  # the paper's pages never see the extra rows
    from l2a_lib.records import load_record, record_to_frame
    df = record_to_frame(load_record(config, tmp_path / "results"), extra_rows=True)
    noisy = df[df["table"] == "robustness"]
    assert set(noisy["split"]) == {"noisy_test"}
    assert len(noisy[noisy["metric"] == "acc"]) == 10  # nine copies and the clean sample
    assert {(k, lv) for k, lv in zip(noisy["noise"], noisy["level"])} == \
        {(k, lv) for k, levels in robustness.NOISE.items() for lv in levels} | {("clean", 0.0)}
    assert (noisy["sample"] == robustness.SAMPLE).all()
    clean = df[(df["split"] == "test") & (df["metric"] == "acc")]
    assert len(clean) == 1 and (clean["table"] == "table1").all()
    att = df[df["table"] == "attention"].set_index("metric")["value"]
    if method == "bilstm_soft":  # no attention to compare
        assert att.empty
    else:
        assert att["attention_kl"] > 0 and att["attention_mse"] > 0
        assert (df[df["table"] == "attention"]["sample"] == robustness.ATTENTION_SAMPLE).all()


def test_the_robustness_and_attention_pages_read_table_1s_extra_scores(tmp_path, data_dir,
                                                                       monkeypatch):
    """On the smoke profile Table 1's runs carry the extra scores; the robustness view
    tabulates each level's drop from the clean score (level 0 = the same examples
    without noise) and plots it, the attention view the KL per method."""
    from l2a_lib import views
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("L2A_DATA_DIR", str(data_dir))  # WordNet, for the synonym noise
    kw = dict(profile="smoke", tasks=["tc"], methods=["student_ft"], seeds=[0],
              allow_training=True, results_dir=tmp_path / "results", data_dir=data_dir)
    page = views.robustness(**kw)
    drops = page["drops"].data
    assert len(drops) == 3 and list(drops.columns)[-4:] == ["clean", "level 0.1", "level 0.2", "level 0.3"]
    assert page["plot"] is not None
    att = views.attention(**kw)["attention"].data
    assert len(att) == 1 and "attention_kl (mean)" in att.columns
    assert views.attention(**kw)["maps"] is not None  # the heatmaps from the run's record
    from l2a_lib.views.robust import extra_frame
    df = extra_frame(["tc"], ["student_ft"], [0], "smoke", tmp_path / "results")
    assert (df[df["split"] == "test_attention"]["value"] > 0).all() and len(df) > 0


def test_the_scored_examples_are_drawn_in_proportion_to_the_classes():
    """A split stored by label (as NLI's and TC's are) gives each class its share, not
    the head's one class; the draw is repeatable and keeps the split's order; a small
    split is scored whole; regression labels are drawn uniformly."""
    test = pd.DataFrame({"uid": [str(i) for i in range(3000)], "text_a": ["x"] * 3000,
                         "label": [0] * 2000 + [1] * 700 + [2] * 300})
    picked = robustness.sample(test, n=1000)
    assert len(picked) == 1000
    assert picked["label"].value_counts().to_dict() == {0: 667, 1: 233, 2: 100}
    pd.testing.assert_frame_equal(picked, robustness.sample(test, n=1000))
    assert picked["uid"].astype(int).is_monotonic_increasing
    assert len(robustness.sample(test.iloc[:900], n=1000)) == 900
    reg = test.assign(label=np.linspace(0, 1, 3000))
    drawn = robustness.sample(reg, n=1000)["label"]
    assert len(drawn) == 1000 and 0.45 < drawn.mean() < 0.55


def test_the_robustness_page_compares_like_with_like():
    """Level 0 is each run's clean score on the noisy copies' own examples; rows from
    runs that scored the first 1,000 test examples (no ``sample``) are left out and
    named (the attention rows' runs as well); L2A's change at the middle level is paired
    with Student-FT's by seed."""
    from l2a_lib.views.base import View
    from l2a_lib.views.robust import (MID_LEVEL, drop_comparison, noise_frame, note_unscored,
                                      unscored_runs)
    rows = []
    for method, clean, loss in (("l2a", 0.80, 0.05), ("student_ft", 0.78, 0.10)):
        for seed in (0, 1):
            rows.append(dict(task="tc", method=method, seed=seed, split="test", metric="acc",
                             value=0.5))  # the full test split: not level 0
            rows.append(dict(task="tc", method=method, seed=seed, split="noisy_test",
                             metric="acc", noise="clean", level=0.0, value=clean,
                             sample=robustness.SAMPLE))
            for kind in robustness.NOISE:
                for level in robustness.NOISE[kind]:
                    rows.append(dict(task="tc", method=method, seed=seed, split="noisy_test",
                                     metric="acc", noise=kind, level=level,
                                     value=clean - loss * level / MID_LEVEL,
                                     sample=robustness.SAMPLE))
    rows.append(dict(task="tc", method="eda", seed=0, split="noisy_test", metric="acc",
                     noise="typos", level=0.1, value=0.1))  # an old run: no sample
    df = pd.DataFrame(rows)
    frame = noise_frame(df)
    assert set(frame.method) == {"l2a", "student_ft"}
    level0 = frame[frame.level == 0.0]
    assert len(level0) == 2 * 2 * len(robustness.NOISE) and set(level0.value) == {0.80, 0.78}
    assert unscored_runs(df) == ["EDA tc/0"]
    old_attention = pd.DataFrame([dict(task="tc", method="tinybert", seed=1, metric="attention_kl",
                                       split="test_attention", value=1.0)])  # no sample either
    view = View()
    note_unscored(view, pd.concat([df, old_attention]), "test_attention", "their attention")
    assert len(view.notes) == 1 and "TinyBERT tc/1" in view.notes[0] and "EDA" not in view.notes[0]
    cmp = drop_comparison(frame).set_index("task")
    assert cmp.loc["tc", "l2a"] == pytest.approx(-0.05)
    assert cmp.loc["tc", "student_ft"] == pytest.approx(-0.10)
    assert cmp.loc["tc", "difference"] == pytest.approx(0.05)
    assert cmp.loc["tc", "seeds losing less"] == "2 of 2"


def test_the_attention_maps_fall_back_to_a_window_of_the_shortest_inputs():
    """Sentence pairs and reviews have no input of 6-16 tokens: the heatmaps then show the
    shortest inputs, cropped to their first tokens (said on the plot), not nothing."""
    from l2a_lib.teacher import MAP_EXAMPLES, MAP_TOKENS, map_inputs
    low, high = MAP_TOKENS
    short = [3, high, low, high + 1, 9]
    assert map_inputs(short) == ([1, 2], False)  # enough inputs in the range: those, whole
    long = [high + 40, 2, high + 5, high + 1, high + 90]
    assert map_inputs(long) == ([3, 2][:MAP_EXAMPLES], True)
    assert map_inputs([high, high + 7]) == ([0, 1], True)  # one in range, one cropped
    assert map_inputs([1, 2]) == ([], False)


def test_the_attention_page_renders_without_runs(tmp_path, data_dir):
    """A page of the final grid before its runs: a note, and tables that say so, where
    the old view raised KeyError on its first cell."""
    from l2a_lib import views
    page = views.attention(profile="smoke", tasks=["nli"], methods=["student_ft", "l2a"],
                           seeds=[0], results_dir=tmp_path, data_dir=data_dir, final=True)
    for item in ("attention", "maps"):
        assert "the runs it needs are not computed" in page[item].to_html()
    assert any("No run of this page has attention scores yet" in n for n in page.notes)
    assert page.values["attention_examples"] == f"{robustness.ATTENTION_EXAMPLES:,}"
