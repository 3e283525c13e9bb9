"""The exported fill-mask checkpoint predicts what the augmentation masked LM predicts."""
import torch
from transformers import pipeline

from l2a_lib import mlm_export
from l2a_lib import mlm


def test_export_matches_provider(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = mlm.build(mlm.SMOKE_MLM, tokenizer).eval()
    with torch.no_grad():  # a head with real preferences: a few pieces far ahead
        model.head.bias[tokenizer.convert_tokens_to_ids(["great", "dull", "fine"])] += 5.0
    mlm_export.export_fill_mask(model, tmp_path / "fm")
    fill = pipeline("fill-mask", model=str(tmp_path / "fm"), top_k=8, device="cpu")
    sentence = "the film was [MASK] and the acting fine"
    theirs = [r["token_str"] for r in fill(sentence)]
    enc = tokenizer([sentence.replace("[MASK]", "good")], return_tensors="pt")
    pos = enc["input_ids"] == tokenizer.convert_tokens_to_ids("good")
    lp = mlm.MaskedLMProvider(model, tokenizer, bf16=False).log_probs(
        enc["input_ids"], enc["attention_mask"], pos)[0]
    lp[mlm.non_words(len(tokenizer))] = -1e9
    ours = tokenizer.convert_ids_to_tokens(lp.topk(8).indices.tolist())
    assert theirs == ours and set(theirs[:3]) == {"great", "dull", "fine"}
