"""Reliability: every bad input gets its clear error; augmenters survive fuzzed input;
recomputed runs are identical; a run killed mid-way and restarted gives the same result."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2a_lib import augment, reliability
from l2a_lib.augment import bilstm_soft, cbert, eda, tinybert
from l2a_lib.l2a import static as l2a
from l2a_lib.profiles import make_config

from fakes import FakeConditional, FakeProvider

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ bad input
def test_catalogue_has_at_least_ten_errors():
    assert sum(c.expect is not None for c in reliability.CASES) >= 10
    assert len({c.name for c in reliability.CASES}) == len(reliability.CASES)


@pytest.mark.parametrize("case", reliability.CASES, ids=lambda c: c.name)
def test_bad_input_gets_its_clear_error(case, data_dir):
    got = reliability.check(case, data_dir)
    assert got["as expected"], f"{case.name}: expected {case.expect} matching {case.match!r}, " \
                               f"got {got['error']}: {got['message'][:300]}"


def test_check_fails_when_a_case_breaks_its_promise(data_dir):
    wrong = reliability.BadInput("promise broken", "ConfigError", r"never said",
                                 lambda scratch, d: make_config("tc", "nope"))
    assert not reliability.check(wrong, data_dir)["as expected"]
    silent = reliability.BadInput("no error", "ConfigError", r".", lambda s, d: "fine")
    assert not reliability.check(silent, data_dir)["as expected"]


# ------------------------------------------------------------------ fuzzing
@pytest.fixture(scope="module")
def augmenters(tokenizer):
    return {"eda": eda.EDA(), "bilstm_soft": bilstm_soft.BiLSTMSoft().fit(["a fine film", "it was dull"]),
            "tinybert": tinybert.TinyBERTAug(provider=FakeProvider(tokenizer, ["great", "fine", "film", "good"]), k=2),
            "cbert": cbert.CBERT(model=FakeConditional(tokenizer), tokenizer=tokenizer, bf16=False)}


WORDS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12)
TEXTS = st.one_of(
    st.just(""),
    st.text(alphabet=" \t\n\u00a0", max_size=6),                       # whitespace only
    WORDS,                                                             # one token, any script
    st.lists(WORDS, min_size=1, max_size=40).map(" ".join),            # any words, emoji included
    st.sampled_from(["word " * 1000, "🙂 naïve café 北京 😀😀", "don't stop", "a\u200bb"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=4), seed=st.integers(0, 2 ** 16))
def test_augmenters_survive_any_text(augmenters, texts, seed):
    labels = [seed % 2] * len(texts)
    for name, aug in augmenters.items():
        out = aug.augment_batch(texts, 2, np.random.default_rng(seed), labels=labels)
        assert len(out) == len(texts), name
        assert all(len(v) == 2 and all(isinstance(s, str) for s in v) for v in out), name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=TEXTS, b=TEXTS, label=st.one_of(st.integers(0, 1), st.floats(0, 1)),
       seed=st.integers(0, 1000))
def test_pairs_with_an_empty_side_keep_label_and_both_sides(augmenters, a, b, label, seed):
    df = pd.DataFrame({"uid": ["x"], "text_a": [a], "text_b": [b], "label": [label]})
    for name, aug in augmenters.items():
        out = augment.augment_frame(df, aug, 2, seed=seed)
        assert len(out) == 2 and out["label"].tolist() == [label] * 2, name
        assert out["text_b"].notna().all() and out["text_a"].notna().all(), name


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=4), seed=st.integers(0, 2 ** 16))
def test_l2a_sampler_survives_any_text(tokenizer, texts, seed):
    ps = l2a.StaticDistribution(FakeProvider(tokenizer, ["great", "fine", "film", "good"]), alpha=l2a.alpha_for_rate(0.3, len(tokenizer)))
    samples = ps.sample(texts, 2, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
    assert len(samples) == 2 * len(texts)
    enc = tokenizer(list(texts), truncation=True, max_length=ps.max_length)["input_ids"]
    for s in samples:
        orig = enc[s.source_index]
        assert len(s.input_ids) == len(orig) and s.distance == len(s.positions)
        assert all(orig[j] >= 999 and s.input_ids[j] >= 999 for j in s.positions)
        assert [t for j, t in enumerate(s.input_ids) if j not in s.positions] == \
               [t for j, t in enumerate(orig) if j not in s.positions]
        assert np.isfinite(s.log_ps)


# ------------------------------------------------------- determinism and faults
def _cli(tmp, *args, **kw):
    cmd = [sys.executable, "-m", "l2a_lib", "--results-dir", str(tmp / "results"), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, **kw)


@pytest.fixture
def env(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("L2A_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("L2A_DATA_DIR", str(data_dir))
    return tmp_path


def test_determinism_audit_reports_identical_runs(env):
    out = _cli(env, "run", "--method", "student_ft", "eda", "--task", "tc", "--seeds", "0",
               "--profile", "smoke")
    assert out.returncode == 0, out.stdout + out.stderr
    audit = _cli(env, "audit", "--profile", "smoke", "--n", "2", "--fresh-cache")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert audit.stdout.strip().splitlines()[-1].startswith("2 of 2 recomputed runs identical")
    # and it can fail: tamper with one cached value
    f = next((env / "results" / "runs").glob("*.json"))
    rec = json.loads(f.read_text())
    rec["rows"][0]["value"] += 0.125
    f.write_text(json.dumps(rec))
    bad = _cli(env, "audit", "--profile", "smoke", "--n", "2")
    assert bad.returncode == 1 and "1 of 2 recomputed runs identical" in bad.stdout


def test_killed_run_restarted_equals_uninterrupted_run(env, tmp_path_factory):
    run = ["run", "--profile", "smoke", "--task", "tc", "--method", "l2a", "--seeds", "1"]
    cmd = [sys.executable, "-m", "l2a_lib", "--results-dir", str(env / "results"), *run]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(12)  # past start-up, inside teacher / masked-LM / distillation training
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    runs = env / "results" / "runs"
    assert not list(runs.glob(".*")) if runs.exists() else True  # nothing half-written
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    restarted = json.loads(next(runs.glob("*.json")).read_text())
    clean = tmp_path_factory.mktemp("clean")
    env2 = dict(os.environ, L2A_CACHE_DIR=str(clean / "cache"))
    cmd2 = [sys.executable, "-m", "l2a_lib", "--results-dir", str(clean / "results"), *run]
    out = subprocess.run(cmd2, cwd=REPO, capture_output=True, text=True, env=env2)
    assert out.returncode == 0, out.stdout + out.stderr
    uninterrupted = json.loads(next((clean / "results" / "runs").glob("*.json")).read_text())
    assert restarted["rows"] == uninterrupted["rows"]
