"""The augmentation masked LM: the provider of P_MLM(w | context).

No BERT with a masked-LM head exists offline, so one is trained here: the
pretrained MPNet-base encoder (the cpu profile's teacher, before fine-tuning)
with its top ``trainable_layers`` layers unfrozen and a fresh MLM head
(dense -> GELU -> LayerNorm -> decoder tied to the input word embeddings, the
BERT head's shape), trained with dynamic masking (fresh 15% masks every step,
BERT's 80/10/10 rule) on the unlabelled source and target text of all tasks.
Target test sentences are never trained on: they are the held-out set.

The head predicts over the shared BERT word-piece vocabulary (MPNet's rows are
gathered through the +4 id map), so every augmenter works in the student's
token ids. Trained weights (only the trainable part) are cached locally in
``<cache_dir>/mlm/<key>.pt`` and published with the results in
``<results_dir>/mlm/<key>/`` (see ``paths.publish_state``), so a fresh clone reuses them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .device import on_device
from . import data as data_mod
from . import models, paths
from .config import CODE_VERSION, ExperimentConfig
from .profiles import make_config
from .errors import ConfigError
from .train import Stepper, autocast, linear_warmup, progress, run_steps


@dataclass(frozen=True)
class MLMConfig:
    base: str = "all-mpnet-base-v2"
    trainable_layers: int = 4
    steps: int = 3000
    batch_size: int = 32
    lr: float = 3e-4
    encoder_lr: float = 1e-4
    mask_prob: float = 0.15
    max_length: int = 64
    per_task_source: int = 20000  # source sentences per task in the training corpus
    eval_per_task: int = 400      # held-out target test sentences per task
    seed: int = 0
    bf16: bool = True

    def __post_init__(self):
        if self.base not in ("all-mpnet-base-v2", "tiny-random-mpnet"):
            raise ConfigError(f"base={self.base!r}: choose 'all-mpnet-base-v2' or 'tiny-random-mpnet'")
        for name in ("steps", "batch_size", "max_length", "per_task_source", "eval_per_task"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"MLMConfig.{name}={v!r} must be an int >= 1")
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"mask_prob={self.mask_prob!r} must be in (0, 1)")
        if self.trainable_layers < 0:
            raise ConfigError(f"trainable_layers={self.trainable_layers!r} must be >= 0")

    def key(self) -> str:
        blob = json.dumps({"mlm": dataclasses.asdict(self), "code": CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


SMOKE_MLM = MLMConfig(base="tiny-random-mpnet", steps=20, batch_size=8, max_length=32,
                      per_task_source=64, eval_per_task=16, bf16=False)


class MaskedLMHead(nn.Module):
    """dense -> GELU -> LayerNorm -> tied decoder over the shared vocabulary."""

    def __init__(self, hidden: int, vocab_rows: torch.Tensor, eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.bias = nn.Parameter(torch.zeros(len(vocab_rows)))
        self.register_buffer("vocab_rows", vocab_rows, persistent=False)

    def forward(self, h: torch.Tensor, word_emb: torch.Tensor) -> torch.Tensor:
        x = self.norm(F.gelu(self.dense(h)))  # (N, H)
        return x @ word_emb[self.vocab_rows].T + self.bias  # (N, V) in student (BERT) ids


class AugmentationMLM(nn.Module):
    """MPNet encoder + MLM head; inputs and outputs in the shared BERT ids."""

    def __init__(self, encoder: nn.Module, tokenizer, trainable_layers: int):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("id_map", models.mpnet_id_map(tokenizer), persistent=False)
        self.head = MaskedLMHead(encoder.config.hidden_size, self.id_map.clone(),
                                 encoder.config.layer_norm_eps)
        for p in encoder.parameters():
            p.requires_grad_(False)
        layers = encoder.encoder.layer
        for layer in layers[len(layers) - trainable_layers:] if trainable_layers else []:
            for p in layer.parameters():
                p.requires_grad_(True)

    def forward(self, input_ids, attention_mask, positions: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, V)`` at the ``N`` True entries of ``positions`` (B, T)."""
        h = self.encoder(input_ids=self.id_map[input_ids],
                         attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        return self.head(h[positions], self.encoder.get_input_embeddings().weight)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in names}


# ------------------------------------------------------------------ masking
FIRST_WORD_ID = 999  # BERT-uncased ids below this are [PAD], [unusedN], [UNK], [CLS], [SEP], [MASK]


def non_words(vocab_size: int) -> torch.Tensor:
    """Ids an augmenter must never write: specials and [unusedN] slots."""
    return torch.arange(min(FIRST_WORD_ID, vocab_size))


def special_mask(input_ids: torch.Tensor, tokenizer) -> torch.Tensor:
    """(B, T) True where a token is special ([CLS], [SEP], [PAD])."""
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    return torch.isin(input_ids, special)


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, tokenizer, prob: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT's dynamic masking: choose ``prob`` of the real tokens (at least one per
    sentence); 80% -> [MASK], 10% -> a random piece, 10% unchanged.
    Returns (corrupted ids, positions (B, T) bool, original ids at the positions)."""
    candidates = (~special_mask(input_ids, tokenizer)) & attention_mask.bool()
    scores = torch.rand(input_ids.shape, generator=gen)
    chosen = candidates & (scores < prob)
    # make sure every sentence with a real token has one masked position
    first_best = torch.where(candidates, scores, torch.full_like(scores, 2.0)).argmin(1)
    has = candidates.any(1)
    chosen[has, first_best[has]] = True
    targets = input_ids[chosen]
    corrupted = input_ids.clone()
    r = torch.rand(int(chosen.sum()), generator=gen)
    rand_ids = torch.randint(FIRST_WORD_ID, len(tokenizer), (int(chosen.sum()),), generator=gen)
    new = torch.where(r < 0.8, torch.full_like(targets, tokenizer.mask_token_id),
                      torch.where(r < 0.9, rand_ids, targets))
    corrupted[chosen] = new
    return corrupted, chosen, targets


# ----------------------------------------------------------------- corpus
def corpus(cfg: MLMConfig, data_dir=None) -> tuple[list[str], dict[str, list[str]]]:
    """(training sentences, held-out target test sentences per task).

    Training: up to ``per_task_source`` source sentences per task plus every
    target sentence outside the fixed test split (each side of a pair is one
    sentence). Held out: the first ``eval_per_task`` target test sentences.
    """
    rng = np.random.RandomState(cfg.seed)
    train_text, held_out = [], {}
    for task in data_mod.TASK_REGISTRY:  # the paper's four tasks only, never a user's
        td = data_mod.load_task(task, make_config(task, "student_ft").data, seed=0,
                                data_dir=data_dir)
        target = data_mod.load_domain(task, "target", data_dir=data_dir)
        test_uids = set(td.test["uid"])
        sides = lambda df: [t for c in ("text_a", "text_b") for t in df[c].dropna().tolist()]  # noqa: E731
        src = sides(td.source)
        src = [src[i] for i in rng.permutation(len(src))[: cfg.per_task_source]]
        train_text += src + sides(target[~target["uid"].isin(test_uids)])
        held_out[task] = sides(td.test)[: cfg.eval_per_task]
    return train_text, held_out


# ------------------------------------------------------------------ build
def build(cfg: MLMConfig, tokenizer, cache=None) -> AugmentationMLM:
    encoder = models.load_encoder(cfg.base, cache, cfg.seed)
    torch.manual_seed(cfg.seed)
    return on_device(AugmentationMLM(encoder, tokenizer, cfg.trainable_layers))


def _batches(enc_ids: list[list[int]], idx, pad_id):
    T = max(len(enc_ids[i]) for i in idx)
    ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), T), dtype=torch.long)
    for r, i in enumerate(idx):
        ids[r, : len(enc_ids[i])] = torch.tensor(enc_ids[i])
        mask[r, : len(enc_ids[i])] = 1
    return ids, mask


@torch.no_grad()
def evaluate(model: AugmentationMLM, sentences: list[str], tokenizer, cfg: MLMConfig,
             seed: int = 1234) -> dict[str, float]:
    """Top-1 / top-10 accuracy at [MASK]ed positions (15%, fixed seed, all replaced
    by [MASK]) of held-out sentences."""
    model.eval()
    enc = tokenizer(sentences, truncation=True, max_length=cfg.max_length)["input_ids"]
    gen = torch.Generator().manual_seed(seed)
    hit1 = hit10 = n = 0
    for start in range(0, len(enc), 64):
        ids, mask = _batches(enc, range(start, min(start + 64, len(enc))), tokenizer.pad_token_id)
        cand = (~special_mask(ids, tokenizer)) & mask.bool()
        pos = cand & (torch.rand(ids.shape, generator=gen) < cfg.mask_prob)
        if not pos.any():
            continue
        targets = ids[pos]
        inp = ids.clone()
        inp[pos] = tokenizer.mask_token_id
        with autocast(cfg.bf16):
            logits = model(*on_device((inp, mask, pos))).float().cpu()
        top = logits.topk(10, dim=-1).indices
        hit1 += int((top[:, 0] == targets).sum())
        hit10 += int((top == targets[:, None]).any(-1).sum())
        n += len(targets)
    return {"top1": hit1 / max(n, 1), "top10": hit10 / max(n, 1), "n_masked": n}


def files(cfg: MLMConfig, cache=None, published=None) -> tuple[Path, Path, Path | None]:
    """Where the masked LM of ``cfg`` is kept: its local weights and record
    (``<cache_dir>/mlm/<key>.pt`` / ``.json``) and, with ``published`` given, its
    folder among the committed results (``<published>/<key>``, holding
    ``manifest.json``)."""
    folder = paths.cache_dir(cache) / "mlm"
    shelf = None if published is None else Path(published) / cfg.key()
    return folder / f"{cfg.key()}.pt", folder / f"{cfg.key()}.json", shelf


def train(cfg: MLMConfig, tokenizer, data_dir=None, cache=None,
          published=None) -> tuple[AugmentationMLM, dict]:
    """Train (or load) the augmentation MLM; returns it with its held-out scores
    per task.

    Looked up first in the local cache (``<cache_dir>/mlm/<key>.pt``), then in
    ``published`` (a folder of committed checkpoints, ``<results_dir>/mlm``, see
    ``paths.publish_state``), and only then trained. With ``published`` given, a trained or
    locally cached model is also published there, so that a fresh clone of the
    results loads it instead of training it again (its training time is in the
    record's ``seconds``)."""
    model = build(cfg, tokenizer, cache)
    weights, meta, shelf = files(cfg, cache, published)
    if weights.is_file() and meta.is_file():
        state, info = torch.load(weights, map_location="cpu"), json.loads(meta.read_text())
        model.load_state_dict(state, strict=False)
        if shelf is not None:
            paths.publish_state(state, info, shelf)
        return model.eval(), info
    found = None if shelf is None else paths.load_published_state(shelf)
    if found is not None:
        state, info = found
        missing = set(model.trainable_state()) - set(state)
        if missing:
            raise OSError(f"{shelf}: the published weights lack {sorted(missing)[:3]}...")
        model.load_state_dict(state, strict=False)
        _save_local(state, info, weights, meta)
        return model.eval(), info
    text, held_out = corpus(cfg, data_dir)
    enc = tokenizer(text, truncation=True, max_length=cfg.max_length)["input_ids"]
    gen = torch.Generator().manual_seed(cfg.seed)
    head_params = list(model.head.parameters())
    enc_params = [p for p in model.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": head_params, "lr": cfg.lr},
                             {"params": enc_params, "lr": cfg.encoder_lr}], weight_decay=0.01)
    stepper = Stepper(opt, params=head_params + enc_params, max_grad_norm=1.0,
                      scheduler=linear_warmup(opt, max(1, cfg.steps // 20), cfg.steps),
                      what="masked LM")
    model.train()
    t0 = time.time()
    bar = progress(range(cfg.steps), "masked LM")

    def batches():  # a fresh random batch of sentences at every step
        for _ in bar:
            yield torch.randint(len(enc), (cfg.batch_size,), generator=gen).tolist()

    def loss_of(idx):
        ids, mask = _batches(enc, idx, tokenizer.pad_token_id)
        inp, pos, targets = mask_tokens(ids, mask, tokenizer, cfg.mask_prob, gen)
        with autocast(cfg.bf16):
            logits = model(*on_device((inp, mask, pos)))
        return F.cross_entropy(logits.float(), on_device(targets))

    losses: list[float] = []

    def log(idx, loss):
        losses.append(loss.item())
        if (len(losses) - 1) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")

    run_steps(stepper, batches(), loss_of, after_step=log)
    scores = {task: evaluate(model, sents, tokenizer, cfg) for task, sents in held_out.items()}
    info = {"config": dataclasses.asdict(cfg), "scores": scores, "seconds": time.time() - t0,
            "train_sentences": len(text), "final_loss": float(np.mean(losses[-50:])),
            "loss_curve": [float(np.mean(losses[i:i + 50])) for i in range(0, len(losses), 50)]}
    _save_local(model.trainable_state(), info, weights, meta)
    if shelf is not None:
        paths.publish_state(model.trainable_state(), info, shelf)
    return model.eval(), info


def _save_local(state, info, weights, meta) -> None:
    paths.atomic_torch_save(state, weights)
    paths.atomic_write_text(meta, json.dumps(info))


class MaskedLMProvider:
    """P_MLM(w | context) for augmenters, batched over sentences and positions."""

    def __init__(self, model: AugmentationMLM, tokenizer, max_length: int = 128,
                 bf16: bool = True, batch_size: int = 64):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length, self.bf16, self.batch_size = max_length, bf16, batch_size

    @torch.no_grad()
    def log_probs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  positions: torch.Tensor) -> torch.Tensor:
        """log P_MLM(w | x with every True position of ``positions`` masked):
        ``(N, V)`` for the N positions, in row-major order. One forward pass per
        ``batch_size`` sentences, however many positions each has; each batch is cut
        to its longest sentence (callers sort by length to waste little on padding).
        Positions must lie on real tokens (``attention_mask`` 1), right-padded."""
        out = []
        for s in range(0, len(input_ids), self.batch_size):
            pos = positions[s:s + self.batch_size]
            if not pos.any():
                continue
            mask = attention_mask[s:s + self.batch_size]
            width = int(mask.sum(1).max())  # this batch's longest sentence: no all-padding columns
            ids, mask, pos = input_ids[s:s + self.batch_size, :width].clone(), mask[:, :width], pos[:, :width]
            ids[pos] = self.tokenizer.mask_token_id
            with autocast(self.bf16):
                logits = self.model(*on_device((ids, mask, pos)))
            out.append(F.log_softmax(logits.float(), -1).cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.tokenizer))


# ------------------------------------------------ the masked LM of a run
def config_of(config: ExperimentConfig) -> MLMConfig:
    """The augmentation masked LM a run of ``config`` uses (its profile's)."""
    cfg = SMOKE_MLM if config.profile == "smoke" else MLMConfig()
    if config.mlm_steps is not None:
        cfg = dataclasses.replace(cfg, steps=config.mlm_steps)
    return cfg


def for_run(config: ExperimentConfig, ctx, tokenizer) -> tuple[AugmentationMLM, dict, MLMConfig]:
    """The augmentation masked LM of ``config``'s profile (trained once, cached, published
    with the results of ``ctx``), its record and its settings."""
    cfg = config_of(config)
    model, info = train(cfg, tokenizer, data_dir=ctx.data_dir, cache=ctx.cache_dir,
                        published=paths.results_dir(ctx.results_dir) / "mlm")
    return model, info, cfg
