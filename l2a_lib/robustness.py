"""Noisy copies of a task's test set, for the robustness page (issue 36).

Three kinds of noise, each at three levels, generated with nlpaug under a fixed seed:

| kind           | nlpaug augmenter                          | level = share of words changed |
|----------------|-------------------------------------------|--------------------------------|
| ``typos``      | ``char.KeyboardAug`` (keyboard neighbours) | 0.1, 0.2, 0.3 (chars per word: 30%) |
| ``dropout``    | ``word.RandomWordAug(action="delete")``    | 0.1, 0.2, 0.3 |
| ``synonyms``   | ``word.SynonymAug(aug_src="wordnet")``     | 0.1, 0.2, 0.3 |

nlpaug's counts are capped by ``aug_max`` (10 words by default); the cap is lifted so
that a level means the same share on long and short texts. ``SynonymAug`` POS-tags
with NLTK's perceptron tagger, which is not available offline (it would try to
download it); the shim :func:`_untagged` gives every token an empty tag, with which
nlpaug takes the synonyms of every synset of the word (as EDA does), and EDA's
stop-word list keeps function words out of it (untagged WordNet would turn "a" into
"antiophthalmic factor"). Typos stay lower-case, like the texts. A sentence pair gets
the noise on both sides.

Only ``MAX_EXAMPLES`` examples of the test split are perturbed (:func:`sample`: drawn
under a fixed seed, in proportion to the classes; the split is the same for every seed
of a task), which bounds the cost of scoring every run on nine noisy copies. Each run
also scores the same examples without noise, the level 0 of every kind. (Runs computed
before :data:`SAMPLE` existed perturbed the *first* 1,000 test examples, which on NLI
and TC are one class: their rows carry no ``sample`` and the pages leave them out.) The copies are cached as JSON Lines in ``<cache_dir>/robustness/``,
keyed by the texts, the noise, the seed and nlpaug's version; :func:`noisy_tests` is
deterministic, so a missing cache file is regenerated identically.
"""
from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pandas as pd

from . import paths

NOISE = {"typos": (0.1, 0.2, 0.3), "dropout": (0.1, 0.2, 0.3), "synonyms": (0.1, 0.2, 0.3)}
MAX_EXAMPLES = 1000
SEED = 20210121
SAMPLE = "stratified"  # how the scored examples are drawn: each scored row says so
# the attention page's scores need the teacher's forward pass with its attention maps,
# about four times a noisy copy's cost on the cpu profile: a smaller draw, the same
# for every run of a task (a paired comparison), tagged with its size
ATTENTION_EXAMPLES = 250
ATTENTION_SAMPLE = f"{SAMPLE}-{ATTENTION_EXAMPLES}"


def sample(test: pd.DataFrame, n: int = MAX_EXAMPLES, seed: int = SEED) -> pd.DataFrame:
    """The test examples that the noisy copies and the attention scores are made of: the
    whole split if it has at most ``n``, else ``n`` drawn under ``seed`` (integer labels:
    each class in its share of the split, the remainders to the largest fractions; other
    labels: uniformly), in the split's order. A split stored by label would give one
    class from its head: the first 1,000 of NLI's and TC's test splits are 99% and 100%
    one class."""
    if len(test) <= n:
        return test.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    labels = test["label"]
    if pd.api.types.is_integer_dtype(labels):
        counts = labels.value_counts().sort_index()
        exact = counts / counts.sum() * n
        quota = np.floor(exact).astype(int)
        for c in (exact - quota).sort_values(ascending=False).index[:n - quota.sum()]:
            quota[c] += 1
        picked = np.concatenate([rng.choice(np.flatnonzero(labels.to_numpy() == c), quota[c],
                                            replace=False) for c in counts.index])
    else:
        picked = rng.choice(len(test), n, replace=False)
    return test.iloc[np.sort(picked)].reset_index(drop=True)


def _untagged(tokens):
    return [(t, "") for t in tokens]


def augmenter(kind: str, level: float):
    """The nlpaug augmenter of one noise kind and level (see the module)."""
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw
    if kind == "typos":
        return nac.KeyboardAug(aug_word_p=level, aug_word_max=10_000, aug_char_p=0.3,
                               include_special_char=False, include_numeric=False,
                               include_upper_case=False)
    if kind == "dropout":
        return naw.RandomWordAug(action="delete", aug_p=level, aug_max=10_000)
    if kind == "synonyms":
        from .resources import wordnet
        wordnet()  # NLTK_DATA set to the companion's copy before nlpaug loads WordNet
        from .augment.eda import STOP_WORDS
        aug = naw.SynonymAug(aug_src="wordnet", aug_p=level, aug_max=10_000,
                             stopwords=sorted(STOP_WORDS))
        aug.model.pos_tag = _untagged
        return aug
    raise ValueError(f"noise kind {kind!r}: choose one of {', '.join(NOISE)}")


def perturb(texts: list[str], kind: str, level: float, seed: int = SEED) -> list[str]:
    """Each text with the noise applied (nlpaug's random state seeded once, texts in
    order: the same inputs give the same outputs)."""
    aug = augmenter(kind, level)
    random.seed(seed)
    np.random.seed(seed)
    out = []
    for t in texts:
        new = aug.augment(t)
        new = new[0] if isinstance(new, list) else new
        out.append(new if isinstance(new, str) and new.strip() else t)
    return out


def _key(test: pd.DataFrame, kind: str, level: float, seed: int) -> str:
    import nlpaug
    h = hashlib.sha256(json.dumps([kind, level, seed, nlpaug.__version__]).encode())
    for col in ("text_a", "text_b"):
        h.update("\x1f".join(map(str, test[col].tolist())).encode())
    return h.hexdigest()[:16]


def noisy_test(test: pd.DataFrame, kind: str, level: float, *, seed: int = SEED,
               cache_dir=None) -> pd.DataFrame:
    """The test examples of :func:`sample` with the noise on their text(s)."""
    test = sample(test)
    path = paths.cache_dir(cache_dir) / "robustness" / f"{_key(test, kind, level, seed)}.jsonl"
    if path.is_file():
        return pd.read_json(path, lines=True, dtype={"uid": str})
    noisy = test.copy()
    noisy["text_a"] = perturb(test["text_a"].tolist(), kind, level, seed)
    if test["text_b"].notna().any():
        noisy["text_b"] = perturb(test["text_b"].tolist(), kind, level, seed + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_text(path, noisy.to_json(orient="records", lines=True))
    return noisy


def noisy_tests(test: pd.DataFrame, cache_dir=None) -> dict[tuple[str, float], pd.DataFrame]:
    """Every (kind, level) copy of ``test``."""
    return {(k, lv): noisy_test(test, k, lv, cache_dir=cache_dir)
            for k, levels in NOISE.items() for lv in levels}


def manifest_path(task: str, profile: str, cache_dir=None):
    """The record that ``task``'s noisy copies under ``profile`` exist (the workflow's
    ``noise`` job writes it; the runs that score them wait for it)."""
    return paths.cache_dir(cache_dir) / "robustness" / f"{task}-{profile}.json"


def write_manifest(test: pd.DataFrame, task: str, profile: str, cache_dir=None):
    """Generate (or find) every noisy copy of ``test`` and record them: kind, level,
    file, examples and the share of texts the noise changed."""
    first = sample(test)
    rows = []
    for (kind, level), noisy in noisy_tests(test, cache_dir=cache_dir).items():
        rows.append({"kind": kind, "level": level, "seed": SEED, "examples": len(noisy),
                     "file": f"{_key(first, kind, level, SEED)}.jsonl",
                     "changed": float((noisy["text_a"] != first["text_a"]).mean())})
    path = manifest_path(task, profile, cache_dir)
    paths.atomic_write_text(path, json.dumps({"task": task, "profile": profile, "copies": rows},
                                             indent=1))
    return path
