"""The one training loop: the optimizer step, the warm-up schedule, evaluation.

Everything that trains in the companion goes through this module:

* :class:`Stepper` is the optimizer step, written once: the loss is checked
  (NaN / inf stops the run with :class:`errors.TrainingDiverged`), back-propagated,
  the gradients clipped, the optimizer stepped and the learning-rate schedule
  advanced. It is the only place in the library that calls ``optimizer.step()``
  (``tests/test_layout.py`` checks it).
* :func:`linear_warmup` is the schedule, written once: linear warm-up, then
  linear decay to zero.
* :func:`run_steps` is the loop over batches: loss, step, an optional hook.
  The epoch loop of every fine-tuning and distillation (:func:`train_loop`:
  Teacher-FT, Student-FT, the KD baselines, TinyBERT's two stages), the masked
  LM's and CBERT's training (``mlm``, ``augment.cbert``), L2A's student updates
  (``l2a.algorithm``), its generator (``l2a.generator``) and its selector
  (``l2a.selector``) all run through it.

:func:`train_loop` adds epochs, one evaluation on the target dev set per epoch,
early stopping with patience, the best dev state restored, and per-epoch
checkpoints; :func:`fine_tune` is the task loss (plus SMART) on top of it.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.std import tqdm

from . import metrics, smart
from .ledger import booked, phase
from .config import TrainConfig
from .device import device, on_device
from .encoding import Encoded, collate
from .errors import ConfigError, TrainingDiverged
from .models import SequenceModel


def progress_enabled(default: bool = True) -> bool:
    return os.environ.get("L2A_PROGRESS", "1" if default else "0") != "0"


def progress(iterable, desc: str, total: int | None = None):
    """``iterable`` with a progress bar (off with ``L2A_PROGRESS=0``)."""
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled())


BF16_MODES = ("auto", "on", "off")


@functools.lru_cache(maxsize=None)  # asked at every autocast, in the training loops
def bf16_native() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (oneDNN's AVX-512 bf16 /
    AMX kernels). Without them torch falls back to a reference kernel: on an AVX2-only
    AMD EPYC a 1024x768 @ 768x3072 product took 8.5 s in bf16 against 0.11 s in fp32
    (one thread), so a bf16 run there would never end."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the check: trust it
        return True


def bf16_in_use(bf16: bool = True) -> bool:
    """Whether a config asking for bf16 (``bf16``) gets it on this machine. The
    environment variable ``L2A_BF16`` decides: ``auto`` (the default) uses bf16 only
    where the CPU has it natively (:func:`bf16_native`), else computes in fp32;
    ``on`` forces it; ``off`` never uses it. Each run records the answer
    (``environment.bf16`` in its cached record), so a run computed in fp32 is known."""
    mode = os.environ.get("L2A_BF16", "auto").strip().lower() or "auto"
    if mode not in BF16_MODES:
        raise ConfigError(f"L2A_BF16={mode!r}: give one of {', '.join(BF16_MODES)}")
    if not bf16 or mode == "off":
        return False
    if device().type == "cuda":
        return torch.cuda.is_bf16_supported()
    return mode == "on" or bf16_native()


def autocast(bf16: bool):
    """bf16 autocast on the process's device (about 2.4x faster training on a CPU with
    native bf16), or nothing (``bf16`` false, or a device without it: :func:`bf16_in_use`)."""
    return (torch.autocast(device().type, dtype=torch.bfloat16) if bf16_in_use(bf16)
            else nullcontext())


def task_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy for classification (``weight``: per class), squared error for
    regression."""
    logits = logits.float()
    if regression:
        return nn.functional.mse_loss(logits.squeeze(-1), labels)
    return nn.functional.cross_entropy(logits, labels, weight=weight)


def balanced_weights(labels, num_labels: int) -> torch.Tensor:
    """n / (C n_c) per class c (``TrainConfig.class_weights = "balanced"``)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_labels).clip(min=1)
    return torch.tensor(len(labels) / (num_labels * counts), dtype=torch.float32)


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
@booked("evaluation")
def predict(model: SequenceModel, enc: Encoded, *, pad_id: int, batch_size: int = 64,
            bf16: bool = True, desc: str | None = None) -> np.ndarray:
    """Logits ``(N, C)`` in the original order; batches are length-sorted."""
    model.eval()
    order = np.argsort([len(x) for x in enc.input_ids], kind="stable")
    out = np.zeros((len(enc), model.num_labels), dtype=np.float32)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    it = tqdm(batches, desc=desc, leave=False, disable=not (desc and progress_enabled()))
    for idx in it:
        b = collate(enc, idx, pad_id, regression=model.num_labels == 1)
        with autocast(bf16):
            logits = model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
        out[idx] = logits.float().cpu().numpy()
    return out


def evaluate(model: SequenceModel, enc: Encoded, kind: str, *, pad_id: int, batch_size: int = 64,
             bf16: bool = True, desc: str | None = None) -> dict[str, float]:
    logits = predict(model, enc, pad_id=pad_id, batch_size=batch_size, bf16=bf16, desc=desc)
    return metrics.compute(kind, logits, enc.labels)


# ------------------------------------------------------------------ training
@dataclass
class FineTuneResult:
    best_dev: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    # epochs after which a fine-tuning cut off was resumed (``EpochCheckpoint``)
    resumed_at_epoch: list[int] = field(default_factory=list)
    # with SMART: the mean task loss and the mean of SMART's added terms over the training
    # steps this process ran (``smart_terms``), so a record shows what the regulariser added
    smart_terms: dict | None = None


def smart_terms(parts: list[tuple[float, float]]) -> dict | None:
    """The mean task loss, the mean SMART term and their ratio over ``parts`` (one
    (task loss, SMART terms) pair per training step); None without steps."""
    if not parts:
        return None
    task, extra = (float(np.mean(v)) for v in zip(*parts))
    return {"steps": len(parts), "task_loss": task, "smart": extra,
            "share": extra / task if task > 0 else float("nan")}


def _smart_loss(model, b, cfg: TrainConfig, regression: bool, gen: torch.Generator,
                momentum, parts: list | None = None) -> torch.Tensor:
    """Task loss + SMART's adversarial regulariser (+ the Bregman penalty); each step's
    two values are appended to ``parts``."""
    logits = model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
    task = task_loss(logits, b["labels"], regression)
    extra = smart.extra_terms(model, b, logits, cfg.smart, regression, gen, momentum)
    if parts is not None:
        parts.append((float(task.detach()), float(extra.detach())))
    return task + extra


def selection_score(scores: dict[str, float], dev_metric: str) -> float:
    """The dev score early stopping maximises (``acc_f1`` = mean of ACC and F1)."""
    if dev_metric == "acc_f1":
        return (scores["acc"] + scores["f1"]) / 2
    return scores[dev_metric]


def linear_warmup(optimizer, warmup_steps: int, total_steps: int):
    """The learning-rate schedule of every training in the companion: the factor
    ``min((s + 1) / w, (S - s) / (S - w))`` at step ``s`` of ``S`` with ``w`` warm-up
    steps (both denominators at least 1, the factor at least 0): linear warm-up to
    the full rate, then linear decay to zero."""
    def factor(step: int) -> float:
        return min((step + 1) / max(1, warmup_steps),
                   max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Stepper:
    """The optimizer step, written once (the only ``optimizer.step()`` of the library).

    ``step(loss)``: stop on a NaN / infinite loss (:class:`TrainingDiverged`, naming
    ``what`` and where), back-propagate, clip the gradient norm of ``params`` to
    ``max_grad_norm`` (when given), step the optimizer, clear the gradients, and
    advance ``scheduler`` (when given). ``loss=None`` (nothing to learn from at this
    step, e.g. L2A's selector dropped the whole batch) only advances the schedule."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, params=None,
                 max_grad_norm: float | None = None, scheduler=None, what: str = "training"):
        self.optimizer, self.scheduler, self.what = optimizer, scheduler, what
        self.max_grad_norm = max_grad_norm
        self.params = (list(params) if params is not None
                       else [p for g in optimizer.param_groups for p in g["params"]])

    def step(self, loss: torch.Tensor | None, where: str = "") -> None:
        if loss is not None:
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"{self.what}: loss is {loss.item()}{' at ' + where if where else ''}; "
                                       "lower the learning rate or check the inputs")
            loss.backward()
            if self.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()


def run_steps(stepper: Stepper, batches, loss_of, *, after_step=None,
              where=lambda i: f"step {i}") -> list[float]:
    """The loop over batches: for each ``batch``, ``loss_of(batch)`` (a scalar tensor,
    or ``None`` to skip the gradient step), :meth:`Stepper.step`, then
    ``after_step(batch, loss)``. Returns the losses of the steps taken."""
    losses = []
    for i, batch in enumerate(batches):
        with phase("student training"):
            loss = loss_of(batch)
            stepper.step(loss, where(i))
        if after_step is not None:
            after_step(batch, loss)
        if loss is not None:
            losses.append(loss.item())
    return losses


def adamw_with_decay_groups(model: nn.Module, lr: float, weight_decay: float,
                            extra_params=()) -> tuple[torch.optim.AdamW, list]:
    """AdamW with weight decay on every weight but biases and LayerNorm weights
    (BERT's recipe); ``extra_params`` (e.g. a KD projection W) are decayed too.
    Returns the optimizer and its parameters in order (what the step clips)."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if not n.endswith(no_decay)] + list(extra_params),
         "weight_decay": weight_decay},
        {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr), [p for g in groups for p in g["params"]]


def fine_tune(model: SequenceModel, train: Encoded, dev: Encoded, kind: str, cfg: TrainConfig, *,
              seed: int, pad_id: int, dev_metric: str, desc: str = "fine-tune",
              checkpoint=None) -> FineTuneResult:
    """Train on ``train`` with the task loss (plus SMART when ``cfg.smart``); keep the
    state best on ``dev``. With ``checkpoint`` (a ``checkpoint.EpochCheckpoint``) the
    state is saved after each epoch and a fine-tuning cut off resumes from it."""
    regression = kind == "regression"
    momentum = (smart.MomentumTeacher(model, cfg.smart.beta)
                if cfg.smart is not None and cfg.smart.use_bregman else None)
    gen = torch.Generator().manual_seed(seed + 1)  # SMART's noise
    weight = (on_device(balanced_weights(train.labels, model.num_labels))
              if cfg.class_weights == "balanced" and not regression else None)
    if cfg.head_bias == "label_mean" and regression:  # start at the mean, not at 0
        with torch.no_grad():
            model.head.bias.fill_(float(np.mean(train.labels)))

    def compute_loss(b, idx):
        if cfg.smart is None:
            logits = model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
            return task_loss(logits, b["labels"], regression, weight)
        return _smart_loss(model, b, cfg, regression, gen, momentum, parts)

    parts: list[tuple[float, float]] = []
    after_step = (lambda: momentum.update(model)) if momentum is not None else None
    result = train_loop(model, train, dev, kind, cfg, compute_loss=compute_loss, seed=seed,
                        pad_id=pad_id, dev_metric=dev_metric, desc=desc, after_step=after_step,
                        checkpoint=checkpoint, saved_generators=[gen],
                        saved_modules=[momentum.model] if momentum is not None else [])
    result.smart_terms = smart_terms(parts)
    return result


def train_loop(model: SequenceModel, train: Encoded, dev: Encoded, kind: str, cfg: TrainConfig, *,
               compute_loss, seed: int, pad_id: int, dev_metric: str, desc: str,
               extra_params: list[nn.Parameter] = (), after_step=None,
               select_best: bool = True, checkpoint=None,
               saved_modules: list[nn.Module] = (),
               saved_generators: list[torch.Generator] = ()) -> FineTuneResult:
    """The epoch loop of every fine-tuning and distillation: AdamW with linear warm-up
    and decay (:class:`Stepper`, :func:`linear_warmup`), one dev evaluation per epoch, early stopping with patience, best dev state restored.

    compute_loss(batch, idx) -> scalar loss of the examples ``idx`` of ``train``;
    extra_params (e.g. a KD projection W) are optimised alongside the model.
    select_best=False runs every epoch and keeps the last state (TinyBERT's
    intermediate-layer stage, where the task head is not trained yet).
    checkpoint (a ``checkpoint.EpochCheckpoint``) saves everything the next epochs read
    after each epoch (with the state of ``saved_modules`` and ``saved_generators``, e.g.
    SMART's momentum copy and noise stream) and resumes a loop cut off earlier from it:
    the same computation as one that was never interrupted. The caller clears it once
    the result is safe.
    """
    regression = kind == "regression"
    dev_metric = cfg.select_on or dev_metric
    torch.manual_seed(seed)  # dropout masks
    gen = torch.Generator().manual_seed(seed)  # batch order
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    optimizer, params = adamw_with_decay_groups(model, cfg.lr, cfg.weight_decay, extra_params)
    stepper = Stepper(optimizer, params=params, max_grad_norm=cfg.max_grad_norm,
                      scheduler=linear_warmup(optimizer, int(cfg.warmup_ratio * total), total),
                      what=desc)
    scheduler = stepper.scheduler

    best, best_state, best_epoch, bad_epochs, history = None, None, -1, 0, []
    start, seconds_before, resumed = 0, 0.0, []
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        state, best_state = saved
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        with torch.no_grad():
            for p, v in zip(extra_params, state["extra_params"]):
                p.copy_(v)
        for m, sd in zip(saved_modules, state["modules"]):
            m.load_state_dict(sd)
        gen.set_state(state["generator"])
        for g, gs in zip(saved_generators, state["generators"]):
            g.set_state(gs)
        torch.set_rng_state(state["torch"])
        best, best_epoch, bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
        history, seconds_before = state["history"], state["seconds"]
        start = state["epoch"] + 1
        resumed = state["resumed_at_epoch"] + [start]
        if select_best and bad_epochs >= cfg.patience:  # it had stopped early
            start = cfg.epochs
    t0 = time.time()
    bar = tqdm(range(start, cfg.epochs), desc=desc, disable=not progress_enabled(),
               initial=start, total=cfg.epochs)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(train), generator=gen).numpy()

        def loss_of(idx):
            b = collate(train, idx, pad_id, regression)
            with autocast(cfg.bf16):
                return compute_loss(b, idx)

        batches = (perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                   for step in range(steps_per_epoch))
        losses = run_steps(stepper, batches, loss_of,
                           after_step=(lambda idx, loss: after_step()) if after_step else None,
                           where=lambda step, epoch=epoch: f"epoch {epoch}, step {step}")
        dev_scores = evaluate(model, dev, kind, pad_id=pad_id, batch_size=cfg.eval_batch_size,
                              bf16=cfg.bf16)
        train_loss = float(np.mean(losses))
        history.append({"epoch": epoch, "train_loss": train_loss, **dev_scores})
        score = selection_score(dev_scores, dev_metric)
        bar.set_postfix(loss=f"{train_loss:.3f}", **{dev_metric: f"{score:.3f}"})
        new_best = False
        if not select_best:
            best, best_epoch = dev_scores, epoch
        elif best is None or score > selection_score(best, dev_metric):
            best, best_epoch, bad_epochs, new_best = dev_scores, epoch, 0, True
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        seconds = seconds_before + time.time() - t0  # after the copy of a new best state
        if bar.disable:  # a batch log has no bar: one line per epoch shows how far a long run is
            print(f"{desc} epoch {epoch + 1}/{cfg.epochs}: loss {train_loss:.4f}, "
                  f"dev {dev_metric} {score:.4f}{' (best so far)' if new_best else ''}, "
                  f"{seconds:.0f}s", flush=True)
        if checkpoint is not None:
            checkpoint.save({
                "epoch": epoch, "epochs": cfg.epochs, "seconds": seconds,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "extra_params": [p.detach().clone() for p in extra_params],
                "modules": [m.state_dict() for m in saved_modules],
                "generator": gen.get_state(), "torch": torch.get_rng_state(),
                "generators": [g.get_state() for g in saved_generators],
                "best": best, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "has_best": best_state is not None, "history": history,
                "resumed_at_epoch": resumed}, best_state, new_best)
        if select_best and bad_epochs >= cfg.patience:
            if bar.disable:
                print(f"{desc}: stopped early, no better dev {dev_metric} for {cfg.patience} "
                      f"epochs; keeps epoch {best_epoch + 1}", flush=True)
            break
    if select_best:
        model.load_state_dict(best_state)
    return FineTuneResult(best, best_epoch, len(history), seconds_before + time.time() - t0,
                          history, resumed)
