"""The teacher: fine-tuned once per (task, seed, settings), then its outputs
computed once per unique input.

**Teacher-FT.** :func:`get_teacher` fine-tunes the pretrained teacher on the target
train split (``train.fine_tune``) or loads it from ``<cache_dir>/teachers/<key>.pt``
(:func:`teacher_key`: data, teacher settings, seed, code version; not the method
that distils it). A fine-tuning cut off resumes after its last epoch.

**Outputs.** Teacher outputs computed once per unique input and reused.

The teacher is frozen during distillation, so its outputs on an input never
change: ``TeacherCache`` runs the teacher once on every input it has not seen
(keyed by the token ids), keeps what the losses need, trimmed to the input's
length and stored in bf16 (logits in fp32), and pads them into batches on
request. ``forward_passes`` counts the inputs the teacher actually ran on;
after any number of epochs it equals the number of unique inputs.

Memory: the last layer's hidden states and attentions of 2,000 inputs of 64
tokens take ~0.4 GB in bf16; methods that need more layers (TinyBERT) keep
only the mapped layers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import losses, models, paths
from .checkpoint import EpochCheckpoint, read_progress
from .config import CODE_VERSION, ExperimentConfig, without_none
from .encoding import Encoded, collate
from .models import SequenceModel, last_value_projection
from .runs import EXTRA_SCORERS, Context, Prepared
from .tasks import USER_TEACHERS
from .device import on_device
from .ledger import booked, phase
from .train import autocast, fine_tune


# ------------------------------------------------------------ Teacher-FT
def teacher_key(config: ExperimentConfig) -> str:
    """What determines a fine-tuned teacher (not the method that uses it)."""
    m = config.model
    blob = json.dumps({"data": without_none(dataclasses.asdict(config.data)), "teacher": m.teacher,
                       "pooling": m.pooling, "dropout": m.dropout, "seed": config.seed,
                       "train": dataclasses.asdict(config.teacher_train),
                       "code_version": CODE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def teacher_files(config: ExperimentConfig, cache_dir=None) -> tuple[Path, Path]:
    """Where the fine-tuned teacher of ``config`` is cached: its weights and its
    fine-tuning record (``<cache_dir>/teachers/<teacher_key>.pt`` / ``.json``)."""
    folder = paths.cache_dir(cache_dir) / "teachers"
    key = teacher_key(config)
    return folder / f"{key}.pt", folder / f"{key}.json"


def teacher_checkpoint(config: ExperimentConfig, cache_dir=None) -> EpochCheckpoint:
    """The per-epoch checkpoint of the teacher fine-tuning of ``config``, beside the
    teacher's files (``<cache_dir>/teachers/<teacher_key>.ckpt/``), so that any run that
    needs the teacher resumes it."""
    weights, _ = teacher_files(config, cache_dir)
    return EpochCheckpoint(weights.with_suffix(".ckpt"), run_id=teacher_key(config))


def get_teacher(config: ExperimentConfig, ctx: Context, prep: Prepared):
    """Teacher-FT for this task and seed: from the local cache, or fine-tuned now
    (resuming after the last epoch of a fine-tuning cut off earlier)."""
    spec = prep.task.spec
    teacher = models.build_teacher(config.model, spec.num_labels, prep.tokenizer,
                                   seed=config.seed, cache=ctx.cache_dir)
    key = teacher_key(config)
    if config.model.teacher in USER_TEACHERS:  # given fine-tuned (distill --teacher DIR)
        from .train import evaluate
        dev = evaluate(teacher, prep.dev, spec.kind, pad_id=prep.pad_id,
                       batch_size=config.teacher_train.eval_batch_size, bf16=config.teacher_train.bf16)
        info = {"given": config.model.teacher, "best_dev": dev, "best_epoch": None,
                "sha256": config.model.teacher.rsplit("-", 1)[-1]}
        ctx.teacher_used = teacher_summary(key, info, trained_here=False)
        return teacher, info
    weights, meta = teacher_files(config, ctx.cache_dir)
    if not (weights.is_file() and meta.is_file()):
        # one process fine-tunes a teacher; another run that needs it meanwhile waits,
        # then loads it (two fine-tunings at once would share, and break, one checkpoint)
        with paths.file_lock(weights.with_suffix(".lock"), f"it fine-tunes teacher {key}"):
            if not (weights.is_file() and meta.is_file()):
                info = _fine_tune_teacher(teacher, config, ctx, prep, weights, meta)
                ctx.teacher_used = teacher_summary(key, info, trained_here=True)
                return teacher, info
    with phase("loading weights"):
        teacher.load_state_dict(torch.load(weights, map_location="cpu"))
    info = json.loads(meta.read_text())
    if "sha256" not in info:  # a teacher saved before its content hash was recorded
        info["sha256"] = paths.file_sha256(weights)
    ctx.teacher_used = teacher_summary(key, info, trained_here=False)
    return teacher, info


def _fine_tune_teacher(teacher, config: ExperimentConfig, ctx: Context, prep: Prepared,
                       weights: Path, meta: Path) -> dict:
    """Fine-tune ``teacher`` (resuming its checkpoint), save it and its record; the record."""
    spec = prep.task.spec
    ckpt = teacher_checkpoint(config, ctx.cache_dir)
    ctx.seconds_before += (read_progress(ckpt.folder) or {}).get("seconds", 0.0)
    with phase("teacher fine-tuning", whole=True):
        source_result = None
        if config.teacher_train.source_epochs:  # first the source domain (the paper's teachers saw it)
            source_result = dataclasses.asdict(fine_tune(
                teacher, source_sample(config, prep), prep.dev, spec.kind,
                dataclasses.replace(config.teacher_train, epochs=config.teacher_train.source_epochs,
                                    source_epochs=None), seed=config.seed, pad_id=prep.pad_id,
                dev_metric=spec.dev_metric, desc=f"teacher {config.task} s{config.seed} source"))
        result = fine_tune(teacher, prep.train, prep.dev, spec.kind, config.teacher_train,
                           seed=config.seed, pad_id=prep.pad_id, dev_metric=spec.dev_metric,
                           desc=f"teacher {config.task} s{config.seed}", checkpoint=ckpt)
    paths.atomic_torch_save(teacher.state_dict(), weights)
    info = {**dataclasses.asdict(result), "sha256": paths.file_sha256(weights),
            **({"source": source_result} if source_result else {})}
    paths.atomic_write_text(meta, json.dumps(info))
    ckpt.clear()
    return info


SOURCE_CAP = 2000  # source examples a teacher's source stage reads (source_epochs)


def source_sample(config: ExperimentConfig, prep: Prepared):
    """Up to ``SOURCE_CAP`` source examples (drawn by the seed), encoded: the teacher's
    source stage (``TrainConfig.source_epochs``)."""
    from .encoding import encode
    src = prep.task.source
    src = src.sample(n=min(SOURCE_CAP, len(src)), random_state=config.seed)
    return encode(src, prep.tokenizer, config.data.max_length)


def teacher_summary(key: str, info: dict, trained_here: bool) -> dict:
    """What a run records of its teacher: the cache key, the content hash of its
    weights (runs that record the same one distilled the very same teacher), the
    best dev scores (a teacher retrained on a new machine can be checked against the
    committed Teacher-FT record) and whether it was fine-tuned inside this run."""
    return {"key": key, "sha256": info.get("sha256"),
            "best_dev": info.get("best_dev"), "best_epoch": info.get("best_epoch"),
            "trained_here": trained_here,
            "seconds": round(float(info.get("seconds", 0.0)), 1) if trained_here else 0.0}


# ------------------------------------------------- outputs, once per input
@dataclass(frozen=True)
class TeacherNeeds:
    """Which teacher outputs a distillation loss reads."""
    hidden_layers: tuple[int, ...] = ()     # indices into hidden_states (0 = embeddings)
    attention_layers: tuple[int, ...] = ()  # indices into attentions (0 = first layer)
    pooled_layers: tuple[int, ...] = ()     # mean-pooled hidden states (PKD's patience states)
    value_relation: bool = False            # MiniLM's last-layer value relation (B, h, T, T)

    @classmethod
    def last_layer(cls, teacher) -> "TeacherNeeds":
        """What L2A's L_KD reads (``l2a.kd``): the last layer's hidden states and attentions."""
        L = teacher.encoder.config.num_hidden_layers
        return cls(hidden_layers=(L,), attention_layers=(L - 1,))


@dataclass
class TeacherCache:
    teacher: SequenceModel
    needs: TeacherNeeds
    pad_id: int
    bf16: bool = True
    batch_size: int = 64
    forward_passes: int = 0
    _store: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def __len__(self) -> int:
        return len(self._store)

    @staticmethod
    def key(enc: Encoded, i: int) -> tuple:
        return tuple(enc.input_ids[i]) + (-1,) + tuple(enc.token_type_ids[i])

    @torch.no_grad()
    @booked("teacher inference")
    def fill(self, enc: Encoded) -> None:
        """Run the teacher on every input of ``enc`` not cached yet (length-sorted batches)."""
        todo, seen = [], set()
        for i in range(len(enc)):
            k = self.key(enc, i)
            if k not in self._store and k not in seen:
                todo.append(i)
                seen.add(k)
        todo.sort(key=lambda i: len(enc.input_ids[i]))
        need_hidden = bool(self.needs.hidden_layers or self.needs.pooled_layers)
        need_att = bool(self.needs.attention_layers)
        captured = {}
        hook = (last_value_projection(self.teacher).register_forward_hook(
            lambda mod, inp, out: captured.__setitem__("values", out))
            if self.needs.value_relation else None)
        try:
            self._fill(enc, todo, need_hidden or need_att, captured)
        finally:
            if hook is not None:
                hook.remove()

    def _fill(self, enc: Encoded, todo: list[int], output_hidden: bool, captured: dict) -> None:
        heads = self.teacher.encoder.config.num_attention_heads
        for s in range(0, len(todo), self.batch_size):
            idx = todo[s:s + self.batch_size]
            b = collate(enc, idx, self.pad_id, regression=self.teacher.num_labels == 1)
            with autocast(self.bf16):
                out = self.teacher(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                                   output_hidden=output_hidden)
            vr = (losses.value_relation(captured["values"], heads, b["attention_mask"])
                  if self.needs.value_relation else None)
            self.forward_passes += len(idx)
            m = b["attention_mask"].unsqueeze(-1).float()
            for r, i in enumerate(idx):
                n = len(enc.input_ids[i])
                item = {"logits": out.logits[r].float().clone()}
                for l in self.needs.hidden_layers:
                    item[f"hidden{l}"] = out.hidden_states[l][r, :n].to(torch.bfloat16).clone()
                for l in self.needs.attention_layers:
                    item[f"att{l}"] = out.attentions[l][r, :, :n, :n].to(torch.bfloat16).clone()
                for l in self.needs.pooled_layers:
                    h = out.hidden_states[l][r].float()
                    item[f"pooled{l}"] = (h * m[r]).sum(0) / m[r].sum()
                if vr is not None:
                    item["vr"] = vr[r, :, :n, :n].to(torch.bfloat16).clone()
                # kept in main memory (a GPU's is for the models); batch() moves them back
                self._store[self.key(enc, i)] = {k: v.cpu() for k, v in item.items()}

    def entries(self, start: int = 0) -> list[tuple[tuple, dict]]:
        """The cached (key, outputs) pairs from the ``start``-th computed on, in the
        order they were computed (for ``checkpoint.EpisodeCheckpoint``)."""
        return list(self._store.items())[start:]

    def restore(self, entries, forward_passes: int) -> None:
        """Put back outputs saved with :meth:`entries` (a resumed run)."""
        self._store.update(entries)
        self.forward_passes = forward_passes

    def batch(self, enc: Encoded, idx) -> dict[str, torch.Tensor]:
        """Padded teacher outputs of examples ``idx`` (filling any that are missing)."""
        idx = list(idx)
        items = [self._store.get(self.key(enc, i)) for i in idx]
        if any(it is None for it in items):
            self.fill(Encoded([enc.input_ids[i] for i in idx], [enc.token_type_ids[i] for i in idx],
                              np.asarray(enc.labels)[idx]))
            items = [self._store[self.key(enc, i)] for i in idx]
        T = max(len(enc.input_ids[i]) for i in idx)
        out = {"logits": torch.stack([it["logits"] for it in items])}
        for name in items[0]:
            if name.startswith("hidden"):
                x = torch.zeros(len(idx), T, items[0][name].shape[-1])
                for r, it in enumerate(items):
                    x[r, : it[name].shape[0]] = it[name].float()
                out[name] = x
            elif name.startswith("att") or name == "vr":
                h = items[0][name].shape[0]
                x = torch.zeros(len(idx), h, T, T)
                for r, it in enumerate(items):
                    n = it[name].shape[-1]
                    x[r, :, :n, :n] = it[name].float()
                out[name] = x
            elif name.startswith("pooled"):
                out[name] = torch.stack([it[name] for it in items])
        return on_device(out)


@booked("evaluation")
def attention_scores(model, prep: Prepared, config: ExperimentConfig, train_cfg) -> dict | list:
    """How close the student's last-layer attention is to the teacher's (the pair L_att
    ties), on ``robustness.ATTENTION_EXAMPLES`` test examples (``robustness.sample``),
    tagged ``robustness.ATTENTION_SAMPLE``: the mean over heads
    and real query tokens of KL(A_teacher || A_student) (``losses.relation_kl``) and
    L_att itself (``attention_mse``): rows of the ``attention`` table, and the heatmaps
    of :func:`attention_maps`."""
    from .encoding import encode
    from .l2a.kd import attention_mse
    from .robustness import ATTENTION_EXAMPLES, ATTENTION_SAMPLE, sample
    if config.method == "teacher_ft":
        return []
    teacher, _ = get_teacher(config, Context(cache_dir=None), prep)
    teacher.eval(), model.eval()
    enc = encode(sample(prep.task.test, n=ATTENTION_EXAMPLES), prep.tokenizer,
                 config.data.max_length)
    kls, mses, weights = [], [], []
    for start in range(0, len(enc), train_cfg.eval_batch_size):
        idx = list(range(start, min(start + train_cfg.eval_batch_size, len(enc))))
        b = on_device(collate(enc, idx, prep.pad_id, prep.task.spec.kind == "regression"))
        with torch.no_grad():
            s = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
            t = teacher(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        if s.attentions[-1].shape != t.attentions[-1].shape:
            return []  # different heads: no head-by-head comparison
        kls.append(float(losses.relation_kl(t.attentions[-1], s.attentions[-1], b["attention_mask"])))
        mses.append(float(attention_mse(s.attentions[-1], t.attentions[-1], b["attention_mask"])))
        weights.append(len(idx))
    rows = [{"table": "attention", "split": "test_attention", "sample": ATTENTION_SAMPLE, "metric": name,
             "value": float(sum(v * w for v, w in zip(vals, weights)) / sum(weights))}
            for name, vals in (("attention_kl", kls), ("attention_mse", mses))]
    return {"rows": rows, "maps": attention_maps(model, teacher, enc, prep)}


MAP_EXAMPLES, MAP_TOKENS = 2, (6, 16)  # the attention page's heatmaps: two short test inputs


def map_inputs(lengths: list[int]) -> tuple[list[int], bool]:
    """The inputs the heatmaps show, and whether their maps are cropped: the first
    ``MAP_EXAMPLES`` of ``MAP_TOKENS`` tokens; where a task has fewer (sentence pairs and
    reviews are longer), its shortest inputs of at least ``MAP_TOKENS[0]`` tokens, whose
    maps are cropped to their first ``MAP_TOKENS[1]`` tokens (rows and columns)."""
    low, high = MAP_TOKENS
    picked = [i for i, n in enumerate(lengths) if low <= n <= high][:MAP_EXAMPLES]
    if len(picked) == MAP_EXAMPLES:
        return picked, False
    longer = sorted((n, i) for i, n in enumerate(lengths) if n > high)
    return picked + [i for _, i in longer[:MAP_EXAMPLES - len(picked)]], bool(longer)


@torch.no_grad()
def attention_maps(model, teacher, enc: Encoded, prep: Prepared) -> list[dict]:
    """The head-averaged last-layer attention of student and teacher (3 decimals) on the
    inputs of :func:`map_inputs`, with their tokens and ``cropped`` (the map is the
    window of the first ``MAP_TOKENS[1]`` tokens of a longer input, computed on all of
    it): the attention page draws them."""
    picked, _ = map_inputs([len(ids) for ids in enc.input_ids])
    out, keep = [], MAP_TOKENS[1]
    for i in picked:
        b = on_device(collate(enc, [i], prep.pad_id, prep.task.spec.kind == "regression"))
        maps = {}
        for who, m in (("student", model), ("teacher", teacher)):
            att = m(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                    output_hidden=True).attentions[-1][0].float().mean(0)  # (T, T)
            maps[who] = att[:keep, :keep].cpu().numpy().round(3).tolist()
        tokens = prep.tokenizer.convert_ids_to_tokens(enc.input_ids[i])
        out.append({"tokens": tokens[:keep], "cropped": len(tokens) > keep, **maps})
    return out


EXTRA_SCORERS["attention"] = attention_scores
