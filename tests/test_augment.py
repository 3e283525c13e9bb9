"""Every augmenter: exact output for a fixed seed, and no crash on edge cases.

The masked-LM augmenters (TinyBERT, CBERT) are tested with a hand-made masked LM
whose predictions are known, so the expected outputs can be derived by hand.
"""
import numpy as np
import pandas as pd
import pytest
import torch

from l2a_lib import augment
from l2a_lib.augment import bilstm_soft, cbert, eda, tinybert

from fakes import FakeConditional, FakeProvider

EDGE = ["", "   ", "word", " ".join(["long"] * 1000), "café naïve 😀 ünïcode"]


@pytest.fixture(scope="module", autouse=True)
def _nltk(data_dir):
    import os
    os.environ.setdefault("NLTK_DATA", str(data_dir / "nltk_data"))


# ---------------------------------------------------------------------- EDA
def test_eda_operations_exact():
    rng = np.random.default_rng(0)
    w = "the movie was good".split()
    assert eda.random_swap(w, 1, np.random.default_rng(3)) != w
    assert sorted(eda.random_swap(w, 2, rng)) == sorted(w)  # a swap keeps the words
    assert eda.random_deletion(["one"], 0.9, rng) == ["one"]  # never empties a sentence
    out = eda.synonym_replacement("it was so good".split(), 1, np.random.default_rng(0))
    # stop words are never replaced: only "good" can change
    assert out[:3] == ["it", "was", "so"] and " ".join(out[3:]) in eda.synonyms("good")
    assert "good" not in eda.synonyms("good") and "well" in eda.synonyms("good")


def test_eda_exact_for_seed():
    out = eda.EDA().augment("the acting is superb", 4, np.random.default_rng(0))
    again = eda.EDA().augment("the acting is superb", 4, np.random.default_rng(0))
    assert out == again and len(out) == 4
    assert out == EDA_GOLDEN


# recorded from a run (WordNet 3.0 from the data folder); any change of the policy breaks it
EDA_GOLDEN = ["the acting is brilliant superb", "act as the acting is superb",
              "the acting superb is", "the acting superb is"]


# ---------------------------------------------------------------- BiLSTM-soft
def test_bilstm_soft_policy_extremes():
    rng = np.random.default_rng(0)
    masker = bilstm_soft.BiLSTMSoft(p_mask=1.0, p_pos=0.0, p_ng=0.0)
    assert masker.augment("a fine film", 2, rng) == ["[MASK] [MASK] [MASK]"] * 2
    pos = bilstm_soft.BiLSTMSoft(p_mask=0.0, p_pos=1.0, p_ng=0.0).fit(["a dull movie", "a fine film"])
    for s in pos.augment("a fine film", 5, rng):  # every word replaced by a same-tag word
        det, adj, noun = s.split()
        assert det == "a" and adj in ("dull", "fine") and noun in ("movie", "film")
    ngram = bilstm_soft.BiLSTMSoft(p_mask=0.0, p_pos=0.0, p_ng=1.0, n_min=2, n_max=2)
    for s in ngram.augment("one two three four", 5, rng):  # keeps one contiguous bigram
        assert s in ("one two", "two three", "three four")


def test_bilstm_soft_exact_for_seed():
    a = bilstm_soft.BiLSTMSoft().fit(["a dull movie", "a fine film", "it was slow"])
    out = a.augment("a fine film that was slow", 3, np.random.default_rng(1))
    assert out == a.augment("a fine film that was slow", 3, np.random.default_rng(1))
    assert out == BILSTM_GOLDEN


BILSTM_GOLDEN = ["a fine movie that was slow", "a [MASK] film that was slow",
                 "a slow film that was slow"]


# ------------------------------------------------------------------ TinyBERT
def test_tinybert_candidates_and_replacement(tokenizer):
    prov = FakeProvider(tokenizer, ["great", "film", "good", "##ly"])
    aug = tinybert.TinyBERTAug(provider=prov, k=2, p_t=1.0)
    cands = aug.candidates(["good film", "unbelievably"])
    # single-piece words: top-2 MLM pieces, minus the word itself and '##' pieces
    assert cands[0] == [("great", "film"), ("great", "good")]
    # a multi-piece word: its 2 nearest GloVe neighbours
    assert len(cands[1][0]) == 2 and all(w.isalpha() for w in cands[1][0])
    assert prov.calls == 1  # one batched forward pass for all single-piece words
    out = aug.augment_batch(["good film"], 3, np.random.default_rng(0))[0]
    assert all(s.split()[0] in ("great", "film") and s.split()[1] in ("great", "good") for s in out)
    keep = tinybert.TinyBERTAug(provider=prov, k=2, p_t=0.0)
    assert keep.augment("good film", 2, np.random.default_rng(0)) == ["good film"] * 2


def test_tinybert_exact_for_seed(tokenizer):
    aug = tinybert.TinyBERTAug(provider=FakeProvider(tokenizer, ["great", "fine", "nice"]), k=3)
    out = aug.augment("a good film", 4, np.random.default_rng(0))
    assert out == aug.augment("a good film", 4, np.random.default_rng(0))
    assert out == TINYBERT_GOLDEN


TINYBERT_GOLDEN = ["a great great", "a good film", "a good film", "a fine nice"]


# --------------------------------------------------------------------- CBERT
def test_cbert_fills_label_preserving_words(tokenizer):
    aug = cbert.CBERT(model=FakeConditional(tokenizer), tokenizer=tokenizer, mask_prob=0.5,
                      bf16=False)
    out = aug.augment_batch(["one two three four", "one two three four"], 2,
                            np.random.default_rng(0), labels=[1, 0])
    for s in out[0]:
        assert s.split().count("good") == 2 and "bad" not in s  # 50% of 4 pieces, label 1
    for s in out[1]:
        assert s.split().count("bad") == 2 and "good" not in s
    with pytest.raises(ValueError, match="label"):
        aug.augment_batch(["x"], 1, np.random.default_rng(0))


def test_cbert_regression_bins_at_the_median():
    assert cbert.label_ids([0.1, 0.5, 0.9], True, 0.5).tolist() == [0, 1, 1]


# ------------------------------------------------------------- every augmenter
def _all(tokenizer):
    return [eda.EDA(), bilstm_soft.BiLSTMSoft().fit(["a fine film"]),
            tinybert.TinyBERTAug(provider=FakeProvider(tokenizer, ["great", "fine"]), k=2),
            cbert.CBERT(model=FakeConditional(tokenizer), tokenizer=tokenizer, bf16=False)]


def test_edge_inputs_do_not_crash(tokenizer):
    for aug in _all(tokenizer):
        out = aug.augment_batch(EDGE, 2, np.random.default_rng(0), labels=[1] * len(EDGE))
        assert len(out) == len(EDGE) and all(len(v) == 2 for v in out)
        assert all(isinstance(s, str) for v in out for s in v)


def test_augment_frame_keeps_labels_and_pairs(tokenizer):
    df = pd.DataFrame({"uid": ["a", "b"], "text_a": ["a good film", ""],
                       "text_b": ["it was fine", "a dull one"], "label": [0.25, 0.75]})
    for aug in _all(tokenizer):
        out = augment.augment_frame(df, aug, 3, seed=0)
        assert len(out) == 6 and out["label"].tolist() == [0.25] * 3 + [0.75] * 3
        assert out["orig_uid"].tolist() == ["a"] * 3 + ["b"] * 3
        assert out["text_b"].notna().all() and out["uid"].is_unique


def test_registry_names_unknown():
    assert isinstance(augment.get("eda"), eda.EDA)
    assert {"eda", "bilstm_soft", "tinybert", "cbert"} <= set(augment.REGISTRY)
    with pytest.raises(KeyError, match="known"):
        augment.get("backtranslation")


def test_nlpaug_contextual_augmenter_on_the_companions_masked_lm(tokenizer, tmp_path):
    """nlpaug's ContextualWordEmbsAug runs on the exported augmentation masked LM (through
    the one shim for transformers 5), changes words, is repeatable under a seed, and
    leaves an empty input as it is."""
    import numpy as np
    from transformers import MPNetTokenizer
    from l2a_lib import mlm, mlm_export
    from l2a_lib.augment import get
    from l2a_lib.augment.nlpaug_ctx import compat
    compat()
    assert hasattr(MPNetTokenizer, "_convert_token_to_id") and hasattr(MPNetTokenizer, "_convert_id_to_token")
    torch.manual_seed(0)
    model = mlm.build(mlm.SMOKE_MLM, tokenizer)
    mlm_export.export_fill_mask(model, tmp_path / "mlm")
    aug = get("nlpaug_ctx", model_dir=str(tmp_path / "mlm"), aug_p=0.3)
    texts = ["the film was good and the acting was fine", "a slow story with a very sad end", ""]
    first = aug.augment_batch(texts, 2, np.random.default_rng(0))
    again = aug.augment_batch(texts, 2, np.random.default_rng(0))
    assert first == again and all(len(v) == 2 for v in first)
    assert first[2] == ["", ""]
    assert sum(v != t for vs, t in zip(first[:2], texts[:2]) for v in vs) >= 3
