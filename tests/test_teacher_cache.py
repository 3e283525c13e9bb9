"""The teacher runs once per unique input; cached outputs equal a direct forward."""
import pandas as pd
import torch

from l2a_lib import encoding
from l2a_lib import models
from l2a_lib.config import ModelConfig
from l2a_lib.teacher import TeacherCache, TeacherNeeds

TINY = ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert", student_layers=(0, 1))


def test_one_forward_per_unique_input_and_exact_outputs(tokenizer):
    teacher = models.build_teacher(TINY, 2, tokenizer).eval()
    df = pd.DataFrame({"text_a": ["a good film", "bad", "a good film", "so so indeed"],
                       "text_b": None, "label": [1, 0, 1, 0]})
    enc = encoding.encode(df, tokenizer, 16)
    cache = TeacherCache(teacher, TeacherNeeds(hidden_layers=(2,), attention_layers=(1,),
                                               pooled_layers=(1,), value_relation=True),
                         tokenizer.pad_token_id, bf16=False, batch_size=2)
    for _ in range(3):  # three "epochs" of batches
        got = cache.batch(enc, [0, 1, 2, 3])
    assert cache.forward_passes == 3 == len(cache)  # 3 unique inputs, whatever the epochs
    b = encoding.collate(enc, [0, 1, 2, 3], tokenizer.pad_token_id, False)
    with torch.no_grad():
        out = teacher(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
    torch.testing.assert_close(got["logits"], out.logits, atol=1e-5, rtol=1e-5)
    m = b["attention_mask"]
    for r in range(4):
        n = int(m[r].sum())
        # bf16 storage: ~3 significant digits
        torch.testing.assert_close(got["hidden2"][r, :n], out.hidden_states[2][r, :n], atol=3e-2,
                                   rtol=2e-2)
        torch.testing.assert_close(got["att1"][r, :, :n, :n], out.attentions[1][r, :, :n, :n],
                                   atol=1e-2, rtol=2e-2)
        assert got["hidden2"][r, n:].abs().sum() == 0  # padding stays zero
    assert got["pooled1"].shape == (4, 32) and got["vr"].shape[:2] == (4, 4)
