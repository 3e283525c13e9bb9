"""The Table 1 baselines that distil by matching layers, without augmentation:
DistilBERT, BERT-PKD and MiniLM, and the same-student controls of issue 36.

| method          | student                                       | loss |
|-----------------|-----------------------------------------------|------|
| distilbert      | every other layer of the pretrained teacher   | soft CE (T) + hard CE + cosine on the last hidden state |
| distilbert_same | L2A's student (MiniLM, first 4 layers)        | the same, the student's last hidden state projected by a learned W |
| bert_pkd4/6     | bottom 4 / 6 layers of the pretrained teacher | hard CE + soft CE (T) + patience on the mean-pooled layers |
| bert_pkd_same   | L2A's student                                 | the same with k = the student's depth, each pooled state projected by a learned W |
| minilm          | L2A's student                                 | last-layer attention KL + value-relation KL + soft CE |

The ``_same`` variants put BERT-PKD and DistilBERT on the student L2A distils into, so
Table 1 can compare methods at one student size (their own students are built from
the teacher and are 3-4 times larger). Where the student is narrower than the teacher
(384 vs 768), the hidden-state terms need a map between the widths; as for L2A's
L_hidden and TinyBERT, it is a learned linear map W (H_s, H_t) trained with the
student (``l2a.kd.projection``). DistilBERT's and PKD's papers need none (same width).
W starts where FitNets' first stage (Romero et al. 2015: train the hint regressor
before the student) would leave it, in closed form (:func:`fit_width_map`): from a
random W, PKD's patience term starts near its maximum and, weighted by beta = 100
under a gradient clipped to norm 1, takes all of the few dozen updates that 80
examples allow, so the student barely learns its task (measured: :func:`fit_width_map`).
"""
from __future__ import annotations

import dataclasses

import torch

from . import losses, models
from .config import ExperimentConfig
from .device import on_device
from .encoding import collate
from .l2a.kd import projection
from .runs import prepare, score
from .teacher import TeacherCache, TeacherNeeds, get_teacher
from .train import task_loss, train_loop

REGRESSION = "regression"


def with_teacher(config: ExperimentConfig, ctx):
    """The run's prepared data, its Teacher-FT and the teacher's fine-tuning record."""
    prep = prepare(config, ctx)
    teacher, teacher_info = get_teacher(config, ctx, prep)
    return prep, teacher, teacher_info


def scored(student, prep, config, extra: dict) -> dict:
    """A distilled student's result: its size, the data sizes, ``extra`` and its scores."""
    out = {"n_params": student.n_params(), "sizes": prep.task.sizes(), **extra}
    out["rows"] = score(student, prep, config, config.distill.train, sink=out)
    return out


def layer_student(config: ExperimentConfig, ctx, prep, teacher, layers: tuple[int, ...]):
    """(student, W, extra params): the teacher's ``layers`` (W None), or for a ``_same``
    method L2A's student with a learned width map W (H_s, H_t)."""
    spec = prep.task.spec
    if config.method.endswith("_same"):
        student = models.build_student(config.model, spec.num_labels, seed=config.seed,
                                       cache=ctx.cache_dir)
        W = projection(student, teacher, config.seed)
        return student, W, [W]
    student = models.build_student_from_teacher(config.model, layers, spec.num_labels,
                                                prep.tokenizer, seed=config.seed,
                                                cache=ctx.cache_dir)
    return student, None, []


RIDGE = 0.1  # of the width map's least-squares fit (unit-norm rows: X^T X has trace n)


@torch.no_grad()
def fit_width_map(W: torch.nn.Parameter, pairs) -> dict:
    """Set W (H_s, H_t) to the ridge least-squares map from the student's states to the
    teacher's, both scaled to unit norm (the patience and cosine terms compare
    directions): W = (X^T X + RIDGE I)^-1 X^T Y over the ``pairs`` (X (n, H_s),
    Y (n, H_t)) of the target training set. Returns the mean cosine between W x and y
    before and after, which the run records."""
    X = torch.cat([torch.nn.functional.normalize(x.float(), dim=-1) for x, _ in pairs]).cpu()
    Y = torch.cat([torch.nn.functional.normalize(y.float(), dim=-1) for _, y in pairs]).cpu()

    def cos(M):
        return float(torch.nn.functional.cosine_similarity(X @ M, Y, dim=-1).mean())

    before = cos(W.detach().float().cpu())
    A = X.T @ X + RIDGE * torch.eye(X.shape[1])
    fitted = torch.linalg.solve(A, X.T @ Y)
    W.data.copy_(fitted.to(W.device, W.dtype))
    return {"rows": int(X.shape[0]), "cos_before": round(before, 4), "cos_after": round(cos(fitted), 4)}


@torch.no_grad()
def state_pairs(student, cache, prep, states, batch_size: int = 64) -> list:
    """(student state, teacher state) pairs on the target training set, the student in
    eval mode: ``states(student_output, teacher_batch, attention_mask)`` returns them
    for one batch (pooled layers for PKD, real tokens of the last layer for DistilBERT)."""
    enc, was_training = prep.train, student.training
    student.eval()
    pairs = []
    for start in range(0, len(enc), batch_size):
        idx = list(range(start, min(start + batch_size, len(enc))))
        b = on_device(collate(enc, idx, prep.pad_id, regression=prep.task.spec.kind == REGRESSION))
        s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        pairs += states(s, cache.batch(enc, idx), b["attention_mask"])
    student.train(was_training)
    return pairs


def teacher_outputs(teacher, needs: TeacherNeeds, prep, d):
    """The teacher's outputs ``needs`` on the target training set, computed once."""
    cache = TeacherCache(teacher, needs, prep.pad_id, bf16=d.train.bf16)
    cache.fill(prep.train)
    return cache


def distilled(config, prep, student, compute_loss, extra_params=(), **record) -> dict:
    """Train ``student`` on the target training set with ``compute_loss`` (the epoch
    loop of every method, ``train.train_loop``) and score it; ``record`` goes into the
    result beside the fine-tuning log."""
    spec, d = prep.task.spec, config.distill
    res = train_loop(student, prep.train, prep.dev, spec.kind, d.train, compute_loss=compute_loss,
                     seed=config.seed, pad_id=prep.pad_id, dev_metric=spec.dev_metric,
                     desc=f"{config.method} {config.task} s{config.seed}",
                     extra_params=list(extra_params))
    return scored(student, prep, config, {"fine_tune": dataclasses.asdict(res), **record})


def _mapped(h: torch.Tensor, W) -> torch.Tensor:
    return h.float() if W is None else h.float() @ W.float()


def run_distilbert(config: ExperimentConfig, ctx) -> dict:
    """DistilBERT-style: loss = (1 - a) soft CE(T) + a hard CE + cos_weight * (1 - cos)
    between the student's last hidden state (mapped by W for ``distilbert_same``) and
    the teacher's."""
    prep, teacher, _ = with_teacher(config, ctx)
    spec, d = prep.task.spec, config.distill
    N = teacher.encoder.config.num_hidden_layers
    student, W, extra = layer_student(config, ctx, prep, teacher, tuple(range(0, N, 2)))
    cache, enc = teacher_outputs(teacher, TeacherNeeds(hidden_layers=(N,)), prep, d), prep.train
    regression = spec.kind == REGRESSION
    record = {}
    if W is not None:
        def last_tokens(s, t, mask):
            real = mask.bool()  # fit_width_map takes them to the CPU in float
            return [(s.hidden_states[-1][real], t[f"hidden{N}"][real])]
        record["width_map_fit"] = fit_width_map(W, state_pairs(student, cache, prep, last_tokens))

    def compute_loss(b, idx):
        s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        t = cache.batch(enc, idx)
        soft = losses.prediction_loss(s.logits, t["logits"], d.temperature, regression)
        return ((1 - d.alpha_hard) * soft + d.alpha_hard * task_loss(s.logits, b["labels"], regression)
                + d.cos_weight * losses.cosine_hidden(_mapped(s.hidden_states[-1], W),
                                                      t[f"hidden{N}"], b["attention_mask"]))

    return distilled(config, prep, student, compute_loss, extra, **record,
                     teacher_forward_passes=cache.forward_passes, unique_inputs=len(cache))


def run_bert_pkd(config: ExperimentConfig, ctx) -> dict:
    """BERT-PKD (PKD-skip): loss = a hard CE + (1 - a) soft CE(T) + beta * patience loss
    between the student's first k-1 layers and the teacher layers of
    ``losses.layer_mapping(k, N)`` (k = 6: 2, 4, ...; k = 4: 3, 6, 9). The student is the
    teacher's bottom k layers (k = 4 or 6), or L2A's student (``bert_pkd_same``: k = its
    depth, each pooled state mapped by W). Patience states are mean-pooled (the models
    pool by mean, not [CLS])."""
    prep, teacher, _ = with_teacher(config, ctx)
    spec, d = prep.task.spec, config.distill
    N = teacher.encoder.config.num_hidden_layers
    k = min(4 if config.method == "bert_pkd4" else 6, N)  # N < k only for the smoke profile's tiny teacher
    student, W, extra = layer_student(config, ctx, prep, teacher, tuple(range(k)))
    k = student.encoder.config.num_hidden_layers
    teacher_layers = losses.layer_mapping(k, N)[:-1]  # the last layer is the prediction loss's
    cache = teacher_outputs(teacher, TeacherNeeds(pooled_layers=tuple(teacher_layers)), prep, d)
    enc, regression = prep.train, spec.kind == REGRESSION

    def pooled(s, mask):
        m = mask.unsqueeze(-1).float()
        return [(s.hidden_states[j + 1].float() * m).sum(1) / m.sum(1) for j in range(k - 1)]

    record = {}
    if W is not None:
        def layer_pairs(s, t, mask):
            return list(zip(pooled(s, mask), [t[f"pooled{g}"] for g in teacher_layers]))
        record["width_map_fit"] = fit_width_map(W, state_pairs(student, cache, prep, layer_pairs))

    def compute_loss(b, idx):
        s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        t = cache.batch(enc, idx)
        s_pooled = [_mapped(h, W) for h in pooled(s, b["attention_mask"])]
        t_pooled = [t[f"pooled{g}"] for g in teacher_layers]
        soft = losses.prediction_loss(s.logits, t["logits"], d.temperature, regression)
        return (d.alpha_hard * task_loss(s.logits, b["labels"], regression)
                + (1 - d.alpha_hard) * soft + d.pkd_beta * losses.pkd_patience(s_pooled, t_pooled))

    return distilled(config, prep, student, compute_loss, extra, teacher_layers=teacher_layers,
                     teacher_forward_passes=cache.forward_passes, **record)


def run_minilm(config: ExperimentConfig, ctx) -> dict:
    """MiniLM-style deep self-attention distillation on the target data: KL between
    the last layers' attention distributions and between their value relations
    (plus the prediction loss, since this is task distillation)."""
    prep, teacher, _ = with_teacher(config, ctx)
    spec, d = prep.task.spec, config.distill
    student = models.build_student(config.model, spec.num_labels, seed=config.seed,
                                   cache=ctx.cache_dir)
    heads_s = student.encoder.config.num_attention_heads
    heads_t = teacher.encoder.config.num_attention_heads
    if heads_s != heads_t:
        raise ValueError(f"MiniLM's relation KL needs equal heads (student {heads_s}, teacher {heads_t})")
    enc, regression = prep.train, spec.kind == REGRESSION
    L = teacher.encoder.config.num_hidden_layers
    cache = teacher_outputs(teacher, TeacherNeeds(attention_layers=(L - 1,), value_relation=True),
                            prep, d)
    captured = {}
    hook = models.last_value_projection(student).register_forward_hook(
        lambda mod, inp, out: captured.__setitem__("values", out))

    def compute_loss(b, idx):
        t = cache.batch(enc, idx)
        s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        s_vr = losses.value_relation(captured["values"], heads_s, b["attention_mask"])
        mask = b["attention_mask"]
        soft = losses.prediction_loss(s.logits, t["logits"], d.temperature, regression)
        return (losses.relation_kl(t[f"att{L - 1}"], s.attentions[-1], mask)
                + losses.relation_kl(t["vr"], s_vr, mask) + soft)

    try:
        return distilled(config, prep, student, compute_loss,
                         teacher_forward_passes=cache.forward_passes)
    finally:
        hook.remove()
