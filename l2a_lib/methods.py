"""Teacher-FT, Student-FT and the baselines of Table 1 as runnable methods.

Every method distils the same Teacher-FT (``teacher.get_teacher``) of its
task and seed, and is scored on the same dev and test splits. The teacher's
outputs come from a ``TeacherCache``: one forward pass per unique input.

| method        | student                                  | data                                   | loss |
|---------------|------------------------------------------|----------------------------------------|------|
| eda, cbert    | the MiniLM-initialised student           | target train + augmented pool          | L2A's L_KD (att + hidden + dark) |
| tinybert      | the MiniLM-initialised student           | target train + TinyBERT-augmented pool | stage 1 emb/att/hidden per layer, stage 2 soft CE |
| bilstm_soft   | BiLSTM (GloVe-initialised words)         | target train + BiLSTM-soft pool        | logit MSE |

DistilBERT, BERT-PKD and MiniLM, and their same-student controls, are in ``layer_kd``.
"""
from __future__ import annotations

import dataclasses
import time

import pandas as pd
import torch

from . import augment as aug_mod
from . import bilstm, losses, metrics, mlm, models
from .augment import cbert, nlpaug_ctx
from .config import AugmentConfig, ExperimentConfig
from .data import load_task
from .encoding import encode
from .l2a.kd import KDTerms, last_layer_kd, projection
from .device import device, on_device
from .ledger import booked
from .majority import run_majority
from .mlm_export import example_fills
from .layer_kd import run_bert_pkd, run_distilbert, run_minilm, scored, with_teacher
from .runs import Context, compact_predictions, noisy_scores, prepare, score
from .teacher import TeacherCache, TeacherNeeds, get_teacher
from .train import fine_tune, predict, train_loop

REGRESSION = "regression"


# ------------------------------------------------------ fine-tuned alone
def run_teacher_ft(config: ExperimentConfig, ctx: Context) -> dict:
    """Teacher-FT: the pretrained teacher fine-tuned on the target train split only."""
    prep = prepare(config, ctx)
    teacher, info = get_teacher(config, ctx, prep)
    out = {"n_params": teacher.n_params(), "fine_tune": info, "sizes": prep.task.sizes()}
    out["rows"] = score(teacher, prep, config, config.teacher_train, sink=out)
    return out


def run_student_ft(config: ExperimentConfig, ctx: Context) -> dict:
    """Student-FT: the pretrained (truncated) student fine-tuned on the target train split."""
    prep = prepare(config, ctx)
    spec = prep.task.spec
    student = models.build_student(config.model, spec.num_labels, seed=config.seed,
                                   cache=ctx.cache_dir)
    result = fine_tune(student, prep.train, prep.dev, spec.kind, config.student_train,
                       seed=config.seed, pad_id=prep.pad_id, dev_metric=spec.dev_metric,
                       desc=f"student {config.task} s{config.seed}")
    out = {"n_params": student.n_params(), "fine_tune": dataclasses.asdict(result),
           "sizes": prep.task.sizes()}
    out["rows"] = score(student, prep, config, config.student_train, sink=out)
    return out


# --------------------------------------------------------------- shared
def make_augmenter(config: ExperimentConfig, ctx, prep):
    """The augmenter of ``config.augment``, fitted on the target training set."""
    a: AugmentConfig = config.augment
    spec, tok = prep.task.spec, prep.tokenizer
    if a.kind == "eda":
        return aug_mod.get("eda", alpha_sr=a.eda_alpha, alpha_ri=a.eda_alpha,
                           alpha_rs=a.eda_alpha, alpha_rd=a.eda_alpha)
    if a.kind == "bilstm_soft":
        corpus = prep.task.train["text_a"].tolist() + prep.task.train["text_b"].dropna().tolist()
        return aug_mod.get("bilstm_soft", p_mask=a.p_mask, p_pos=a.p_pos, p_ng=a.p_ng,
                           n_max=a.ngram_max).fit(corpus)
    model, _, mcfg = mlm.for_run(config, ctx, tok)
    if a.kind == "nlpaug_ctx":  # nlpaug on the same masked LM, the same 15% budget
        return aug_mod.get("nlpaug_ctx", model_dir=nlpaug_ctx.exported(model, ctx.cache_dir),
                           aug_p=a.nlpaug_p, device=str(device()))
    if a.kind == "tinybert":
        provider = mlm.MaskedLMProvider(model, tok, max_length=config.data.max_length, bf16=mcfg.bf16)
        return aug_mod.get("tinybert", provider=provider, p_t=a.tinybert_p, k=a.tinybert_k,
                           max_length=config.data.max_length)
    train = prep.task.train
    texts = train["text_a"].tolist() + train["text_b"].dropna().tolist()
    labels = train["label"].tolist() + (train["label"].tolist() if spec.pair else [])
    cond, median = cbert.fine_tune(model, texts, labels, tok, num_labels=spec.num_labels,
                                   regression=spec.kind == REGRESSION, epochs=a.cbert_epochs,
                                   max_length=config.data.max_length, seed=config.seed,
                                   bf16=mcfg.bf16)
    return aug_mod.get("cbert", model=cond, tokenizer=tok, mask_prob=a.cbert_mask,
                       max_length=config.data.max_length, regression=spec.kind == REGRESSION,
                       median=median, bf16=mcfg.bf16)


@booked("augmentation sampling", whole=True)
def augmented_pool(config: ExperimentConfig, ctx, prep) -> tuple[pd.DataFrame, dict]:
    """Target train + ``pool_size`` augmented examples (n_aug = pool_size // n_train)."""
    t0 = time.time()
    augmenter = make_augmenter(config, ctx, prep)
    train = prep.task.train
    n_aug = max(1, config.augment.pool_size // len(train))
    pool = aug_mod.augment_frame(train, augmenter, n_aug, seed=config.seed)
    both = pd.concat([train.assign(orig_uid=train["uid"]), pool], ignore_index=True)
    return both, {"n_aug": n_aug, "pool_size": len(pool), "augment_seconds": time.time() - t0,
                  "examples": pool.head(6)[["text_a", "text_b"]].to_dict("records")}


def _pool_setup(config: ExperimentConfig, ctx):
    """Teacher-FT, the augmented pool (encoded) and a fresh student."""
    prep, teacher, _ = with_teacher(config, ctx)
    data, aug_info = augmented_pool(config, ctx, prep)
    enc = encode(data, prep.tokenizer, config.data.max_length)
    student = models.build_student(config.model, prep.task.spec.num_labels, seed=config.seed,
                                   cache=ctx.cache_dir)
    return prep, teacher, aug_info, enc, student


# ---------------------------------------------------------------- L_KD methods
def run_kd_on_pool(config: ExperimentConfig, ctx) -> dict:
    """EDA + KD, CBERT + KD and nlpaug + KD: L2A's L_KD on target train + the augmented pool."""
    prep, teacher, aug_info, enc, student = _pool_setup(config, ctx)
    spec, d = prep.task.spec, config.distill
    L = teacher.encoder.config.num_hidden_layers
    cache = TeacherCache(teacher, TeacherNeeds.last_layer(teacher), prep.pad_id, bf16=d.train.bf16)
    t0 = time.time()
    cache.fill(enc)
    teacher_seconds = time.time() - t0
    W = projection(student, teacher, config.seed)
    terms = KDTerms(att=d.att, hidden=d.hidden, dark=d.dark, temperature=d.temperature)
    regression = spec.kind == REGRESSION

    def compute_loss(b, idx):
        s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        return last_layer_kd(s, cache.batch(enc, idx), L, W, b["attention_mask"], terms, regression)

    res = train_loop(student, enc, prep.dev, spec.kind, d.train, compute_loss=compute_loss,
                     seed=config.seed, pad_id=prep.pad_id, dev_metric=spec.dev_metric,
                     desc=f"{config.method} {config.task} s{config.seed}", extra_params=[W])
    return scored(student, prep, config, {
        "augment": aug_info, "fine_tune": dataclasses.asdict(res),
        "teacher_forward_passes": cache.forward_passes, "unique_inputs": len(cache),
        "teacher_seconds": teacher_seconds, "train_inputs": len(enc)})


def run_tinybert(config: ExperimentConfig, ctx) -> dict:
    """TinyBERT task distillation on TinyBERT-augmented data: stage 1 matches the
    embeddings and every student layer's attention and hidden states to teacher
    layer g(m) = 3m; stage 2 matches the predictions (soft CE at T)."""
    prep, teacher, aug_info, enc, student = _pool_setup(config, ctx)
    spec, d = prep.task.spec, config.distill
    M = student.encoder.config.num_hidden_layers
    N = teacher.encoder.config.num_hidden_layers
    mapping = losses.layer_mapping(M, N)
    cache = TeacherCache(teacher, TeacherNeeds(hidden_layers=tuple([0] + mapping),
                                               attention_layers=tuple(g - 1 for g in mapping)),
                         prep.pad_id, bf16=d.train.bf16)
    cache.fill(enc)
    W = [projection(student, teacher, config.seed + m) for m in range(M + 1)]
    regression = spec.kind == REGRESSION

    def stage1(b, idx):
        s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        t = cache.batch(enc, idx)
        mask = b["attention_mask"]
        t_hidden = [t["hidden0"]] + [None] * N
        t_att = [None] * N
        for g in mapping:
            t_hidden[g], t_att[g - 1] = t[f"hidden{g}"], t[f"att{g - 1}"]
        return (losses.tinybert_embedding(s.hidden_states[0], t["hidden0"], W[0], mask)
                + losses.tinybert_attention(s.attentions, t_att, mapping, mask)
                + losses.tinybert_hidden(s.hidden_states, t_hidden, W[1:], mapping, mask))

    def stage2(b, idx):
        s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        return losses.prediction_loss(s.logits, cache.batch(enc, idx)["logits"], d.temperature,
                                      regression)

    desc = f"tinybert {config.task} s{config.seed}"
    s1 = None
    if d.stage1_epochs:
        s1 = train_loop(student, enc, prep.dev, spec.kind,
                        dataclasses.replace(d.train, epochs=d.stage1_epochs),
                        compute_loss=stage1, seed=config.seed, pad_id=prep.pad_id,
                        dev_metric=spec.dev_metric, desc=desc + " stage 1", extra_params=W,
                        select_best=False)
    s2 = train_loop(student, enc, prep.dev, spec.kind, d.train, compute_loss=stage2,
                    seed=config.seed, pad_id=prep.pad_id, dev_metric=spec.dev_metric,
                    desc=desc + " stage 2")
    return scored(student, prep, config, {
        "augment": aug_info, "stage1": dataclasses.asdict(s1) if s1 else None,
        "fine_tune": dataclasses.asdict(s2), "teacher_forward_passes": cache.forward_passes,
        "unique_inputs": len(cache), "train_inputs": len(enc)})


def run_bilstm_soft(config: ExperimentConfig, ctx) -> dict:
    """BiLSTM-soft: a BiLSTM student (GloVe-initialised word embeddings) trained with
    the MSE between its logits and the teacher's on BiLSTM-soft-augmented data."""
    prep, teacher, _ = with_teacher(config, ctx)
    spec, d = prep.task.spec, config.distill
    data, aug_info = augmented_pool(config, ctx, prep)
    teacher_enc = encode(data, prep.tokenizer, config.data.max_length)
    words = bilstm.WordTokenizer(data["text_a"].tolist() + data["text_b"].dropna().tolist())
    enc = encode(data, words, config.data.max_length)
    dev, test = (encode(getattr(prep.task, s), words, config.data.max_length) for s in ("dev", "test"))
    torch.manual_seed(config.seed)
    student = on_device(bilstm.BiLSTMClassifier(
        len(words), spec.num_labels, pair=spec.pair,
        embeddings=bilstm.glove_init(words.words, seed=config.seed)))
    cache = TeacherCache(teacher, TeacherNeeds(), prep.pad_id, bf16=d.train.bf16)
    cache.fill(teacher_enc)

    def compute_loss(b, idx):
        s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        return losses.logit_mse(s.logits, cache.batch(teacher_enc, idx)["logits"])

    train_cfg = dataclasses.replace(d.train, bf16=False)  # LSTMs gain nothing from bf16 here
    res = train_loop(student, enc, dev, spec.kind, train_cfg, compute_loss=compute_loss,
                     seed=config.seed, pad_id=words.pad_token_id, dev_metric=spec.dev_metric,
                     desc=f"bilstm_soft {config.task} s{config.seed}")
    rows = []
    for split, e in (("dev", dev), ("test", test)):
        logits = predict(student, e, pad_id=words.pad_token_id, bf16=False)
        scores = metrics.compute(spec.kind, logits, e.labels)
        rows += [{"split": split, "metric": k, "value": v} for k, v in scores.items()]
    extra = (noisy_scores(student, prep, config, train_cfg, tokenizer=words, bf16=False)
             if "noise" in (config.extra_scores or ()) else [])
    return {"rows": rows, **({"extra_rows": extra} if extra else {}), "test_predictions": compact_predictions(spec.kind, logits), "n_params": student.n_params(), "sizes": prep.task.sizes(),
            "augment": aug_info, "fine_tune": dataclasses.asdict(res), "vocab": len(words),
            "teacher_forward_passes": cache.forward_passes, "unique_inputs": len(cache)}


def run_mlm(config: ExperimentConfig, ctx) -> dict:
    """The augmentation masked LM's held-out top-1 / top-10 accuracy on this task's
    target test sentences (the model is trained once for all tasks and cached)."""
    tok = models.load_tokenizer(config.model)
    model, info, mcfg = mlm.for_run(config, ctx, tok)
    scores = info["scores"][config.task]
    td = load_task(config.task, config.data, seed=config.seed, data_dir=ctx.data_dir)
    n_params = sum(p.numel() for p in model.parameters())
    sentences = td.test["text_a"].head(8).tolist()
    fills = example_fills(model, tok, sentences, seed=config.seed, bf16=mcfg.bf16)
    return {"example_fills": fills.to_dict("records"), "rows": [{"split": "test", "metric": m, "value": scores[m]} for m in ("top1", "top10")],
            "n_params": n_params, "sizes": td.sizes(),
            "mlm": {k: v for k, v in info.items() if k != "scores"},
            "n_masked": scores["n_masked"],
            "trainable_params": sum(v.numel() for v in model.trainable_state().values())}


METHODS = {
    "majority": run_majority, "teacher_ft": run_teacher_ft, "student_ft": run_student_ft,
    "student_ft_smart": run_student_ft,  # student_train.smart set (the SMART page)
    "mlm": run_mlm,
    "eda": run_kd_on_pool, "cbert": run_kd_on_pool, "nlpaug_ctx": run_kd_on_pool,
    "tinybert": run_tinybert,
    "bilstm_soft": run_bilstm_soft, "distilbert": run_distilbert, "bert_pkd4": run_bert_pkd,
    "bert_pkd6": run_bert_pkd, "minilm": run_minilm,
    "distilbert_same": run_distilbert, "bert_pkd_same": run_bert_pkd,  # L2A's student
}
