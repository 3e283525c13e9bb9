"""The built book as a reader sees it: the browser check (on pages made to fail, then on
the real build), one printed value per glued quantity across pages, and verdicts that
come from one function."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from l2a_lib import report

REPO = Path(__file__).resolve().parent.parent
BUILT = REPO / "book" / "_build" / "html"
# CI installs Chromium and builds the book before the tests: there, a missing browser
# or book is a failure, not a skip
REQUIRED = os.environ.get("L2A_REQUIRE_BOOK") == "1"


def _browser_or_skip():
    if shutil.which("chromium") is None:
        if REQUIRED:
            pytest.fail("no Chromium (apt-get install chromium)")
        pytest.skip("no Chromium on this machine")
    pytest.importorskip("playwright")


PAGE = """<html><head><style>article {{ width: 600px; }}</style></head><body><article>
<h1>Page</h1>{body}</article></body></html>"""


def test_the_browser_check_finds_what_a_reader_must_not_see(tmp_path):
    _browser_or_skip()
    from l2a_lib.bookcheck import check_book
    (tmp_path / "index.html").write_text(PAGE.format(body="<p>clean</p>"))
    (tmp_path / "ok.html").write_text(PAGE.format(body=(
        '<details><summary>show code</summary><div class="cell_input">x = 1</div></details>'
        '<table><tr><td>0.676</td><td>a sentence that ends ...</td></tr></table>'
        '<div class="cell_output"><table><tr><td>the loss becomes NaN</td></tr></table></div>'
        '<p>training stops on a NaN loss</p><a href="index.html">home</a>')))
    (tmp_path / "bad.html").write_text(PAGE.format(body=(
        '<div class="cell_input">page = views.table1()</div>'
        '<table style="width: 900px"><tr><td>wide</td></tr></table>'
        '<table><tr><td>NaN</td><td>a long cell cut…</td></tr></table>'
        '<div class="cell_output"><pre>score   NaN</pre></div>'
        '<pre>Traceback (most recent call last):</pre><p>FutureWarning: old</p>'
        '<img src="missing.png"><a href="nowhere.html">gone</a>')))
    found = check_book(tmp_path)
    assert found["index.html"] == [] and found["ok.html"] == []
    bad = "\n".join(found["bad.html"])
    for expected in ("code cell", "too wide", "cut short", "cell(s) reading NaN", "'NaN' in the text",
                     "Traceback", "FutureWarning",
                     "image did not load: missing.png", "broken link: nowhere.html"):
        assert expected in bad, (expected, bad)


def test_the_built_book_reads_clean_at_1280_px():
    """Every page of the built book (CI builds it first): no visible code, no table
    wider than the article, no NaN, traceback or warning, no broken image or link."""
    if not (BUILT / "index.html").is_file():
        if REQUIRED:
            pytest.fail("no built book: make book")
        pytest.skip("the book is not built here (make book)")
    _browser_or_skip()
    from l2a_lib.bookcheck import check_book
    found = check_book(BUILT)
    assert len(found) >= 20
    bad = {page: p for page, p in found.items() if p}
    assert not bad, json.dumps(bad, indent=1)


def _glued(notebook: Path) -> dict[str, str]:
    values = {}
    for cell in json.loads(notebook.read_text())["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                values[name] = out["data"].get("application/papermill.record/text/plain", "")
    return values


def test_a_glued_quantity_prints_the_same_on_every_page():
    """The executed pages (``make book``) glue each quantity under one name
    (``views.results.glue_means``: ``l2a_tc_acc`` on Table 1, 2 and the front page
    alike); the same name must print the same text on every page that glues it."""
    pages = sorted((REPO / "book").glob("*.ipynb"))
    if not pages:
        if REQUIRED:
            pytest.fail("no executed pages: make book")
        pytest.skip("the pages are not executed here (make book)")
    seen: dict[str, dict[str, str]] = {}
    for nb in pages:
        for name, text in _glued(nb).items():
            seen.setdefault(name, {})[nb.stem] = text
    shared = {n: v for n, v in seen.items() if len(v) > 1}
    assert shared, "no quantity is quoted on two pages: the check would check nothing"
    differ = {n: v for n, v in shared.items() if len(set(v.values())) > 1}
    assert not differ, differ


def test_the_glue_check_can_fail(tmp_path):
    """The control: two pages gluing one name with different digits are found."""
    def page(text):
        return {"cells": [{"cell_type": "code", "outputs": [{
            "output_type": "display_data", "metadata": {"scrapbook": {"name": "l2a_tc_acc"}},
            "data": {"application/papermill.record/text/plain": text}}]}]}
    (tmp_path / "a.ipynb").write_text(json.dumps(page("'0.676'")))
    (tmp_path / "b.ipynb").write_text(json.dumps(page("'0.6763'")))
    assert _glued(tmp_path / "a.ipynb") != _glued(tmp_path / "b.ipynb")


# ------------------------------------------------------------------ one verdict
def test_every_verdict_word_comes_from_one_function():
    assert report.verdict(1, "ablation") == "helps" and report.verdict(-1, "claim") == "contradicted"
    assert report.verdict(0, "comparison") == "no clear difference"
    assert report.interval_sign(0.01, 0.2) == 1 and report.interval_sign(-0.2, 0.1) == 0


def test_a_constant_predictor_is_degenerate_and_supports_no_claim():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    good = {s: np.where(rng.random(400) < 0.8, labels, 1 - labels) for s in range(3)}
    flat = {s: np.zeros(400, dtype=int) for s in range(3)}
    assert report.degenerate_seeds("classification", flat) == [0, 1, 2]
    assert report.degenerate_seeds("classification", good) == []

    def record(p):
        return {"extra": {"test_predictions": "".join(map(str, p))}}
    records = {**{("tc", "l2a", s): record(p) for s, p in good.items()},
               **{("tc", "l2a_wo_dark", s): record(p) for s, p in flat.items()}}
    rows = report.claims(records, {"tc": labels}, {"tc": "classification"}, n_boot=200)
    dark = rows[rows.comparison == "L2A - w/o L_dark"].iloc[0]
    assert dark.difference > 0.2  # full L2A is far better than the constant predictor ...
    assert dark.verdict == "not shown" and "degenerate" in dark.note  # ... which proves nothing
    assert report.claim_summary(rows).loc[report.claim_summary(rows).index[3], "tc"] == "not shown"


def test_the_claims_and_the_ablation_table_agree():
    """Claim 3's verdict on a comparison is the ablation table's, in the claim's words."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 600)

    def noisy(acc, seed):
        r = np.random.default_rng(seed).random(600)
        return "".join(map(str, np.where(r < acc, labels, 1 - labels)))
    records = {("tc", m, s): {"extra": {"test_predictions": noisy(acc, 10 * s + k)}}
               for k, (m, acc) in enumerate((("l2a", 0.6), ("l2a_wo_src", 0.8), ("l2a_wo_tgt", 0.6)))
               for s in range(3)}
    kinds = {"tc": "classification"}
    table = report.ablation_tests(records, {"tc": labels}, kinds, ["l2a_wo_src", "l2a_wo_tgt"],
                                  n_boot=300)
    rows = report.claims(records, {"tc": labels}, kinds, n_boot=300)
    words = {"helps": "supported", "hurts": "contradicted", "no clear effect": "not shown"}
    for variant, removed in zip(table["variant"], table["removed part"]):
        claim = rows[rows.comparison == f"L2A - {variant}"].iloc[0]
        assert claim.verdict == words[removed]
    assert table.loc[table.variant == "L2A w/o src", "removed part"].item() == "hurts"


def test_the_front_pages_sentence_on_the_learned_parts_is_the_parts_pages_test():
    """The front page quotes the parts page's paired tests of L2A's learned selector and
    generator (committed cache): one clause per part and task, with the test's word and
    its difference and interval, so the two pages cannot disagree."""
    from l2a_lib.profiles import PARTS_SEEDS
    from l2a_lib.records import load_records, load_test_labels
    from l2a_lib.views.parts import LEARNED_PARTS, TASK_METRICS, learned_parts_words
    words = learned_parts_words()
    records = load_records(["tc", "pi"], ["l2a", *LEARNED_PARTS], list(PARTS_SEEDS), version=2)
    labels, kinds = load_test_labels(["tc", "pi"])
    tests = report.ablation_tests(records, labels, kinds, list(LEARNED_PARTS),
                                  task_metrics=TASK_METRICS)
    assert len(tests) == 4  # two parts on two tasks, all in the committed cache
    for r in tests.to_dict("records"):
        clause = (f"{r['removed part']} on {report.TASK_LABELS[r['task']]} "
                  f"({report.number(r['difference'], signed=True)} "
                  f"{report.interval(r['ci_low'], r['ci_high'])}, "
                  f"L2A higher in {r['seeds L2A higher']} seeds)")
        assert clause in words
    assert words.count("(against") == 2


# ------------------------------------------------------------------ one teacher
def test_runs_of_one_task_and_seed_that_record_their_teacher_share_it():
    """Over the committed cache: every run that records its teacher's sha256 agrees
    with the other runs of the same teacher key computed on the same processor kind
    (runs made by the workflow; older records carry no sha256 and the pages say so),
    and the runs that one page compares agree whatever their processor."""
    from l2a_lib import candidates, pages
    from l2a_lib.records import cache_path, read_record, teacher_conflicts
    from l2a_lib.runs import Context
    records = [read_record(p) for p in sorted((REPO / "results" / "runs").glob("*.json"))]
    assert len(records) > 100
    assert teacher_conflicts(records, by_processor=True) == {}
    ctx = Context(results_dir=REPO / "results")
    groups = {p.name: p.configs("cpu") for p in pages.PAGES}
    groups["the final grid's Table 1"] = pages.FINAL_TABLE1_NEEDS.configs("cpu")
    groups["the candidate settings"] = [c for x in candidates.CANDIDATES + candidates.FIXES
                                        for c in x.configs("cpu", seeds=(0, 1, 2))]
    for name, configs in groups.items():
        paths = [cache_path(c, ctx) for c in configs]
        assert teacher_conflicts([read_record(p) for p in paths if p.is_file()]) == {}, name
    # the controls: two runs of one key with different weights are found, on one
    # processor kind or, where not grouped by processor, on two
    a = {"teacher": {"key": "k1", "sha256": "aa"}, "environment": {"cpu": "X", "bf16": True}}
    b = {"teacher": {"key": "k1", "sha256": "bb"}, "environment": {"cpu": "X", "bf16": True}}
    c = {"teacher": {"key": "k1", "sha256": "cc"}, "environment": {"cpu": "Y", "bf16": True}}
    other = {"teacher": {"key": "k2", "sha256": "dd"}}
    assert teacher_conflicts([a, b, other]) == {"k1": {"aa", "bb"}}
    assert teacher_conflicts([a, b, c, other], by_processor=True) == {"k1 on X": {"aa", "bb"}}
    assert teacher_conflicts([a, c], by_processor=True) == {}
    assert teacher_conflicts([a, c]) == {"k1": {"aa", "cc"}}
