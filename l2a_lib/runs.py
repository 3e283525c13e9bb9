"""What every method's run shares: where it reads and writes (:class:`Context`),
its data tokenised (:func:`prepare`) and its scores on the dev and test splits
(:func:`score`)."""
from __future__ import annotations

import dataclasses
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import data as data_mod
from . import metrics, models, paths
from .config import ExperimentConfig
from .encoding import Encoded, encode
from .ledger import booked
from .train import predict


@dataclass
class Context:
    """Where a run reads and writes."""
    data_dir: Path | None = None
    results_dir: Path | None = None
    cache_dir: Path | None = None
    # which fine-tuned teacher the run used, and whether it was trained in the run
    # (then the run's wall time includes the teacher's fine-tuning)
    teacher_used: dict | None = dataclasses.field(default=None, compare=False)
    # seconds spent in earlier processes on a teacher fine-tuning resumed here
    # (``teacher_checkpoint``): counted in the run's wall time
    seconds_before: float = dataclasses.field(default=0.0, compare=False)

    @property
    def runs(self) -> Path:
        p = paths.results_dir(self.results_dir) / "runs"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def checkpoint_dir(self, config: ExperimentConfig) -> Path:
        """Where a long run saves its episode checkpoints (``checkpoint``)."""
        return paths.results_dir(self.results_dir) / ".checkpoints" / config.hash()


@dataclass
class Prepared:
    task: data_mod.TaskData
    tokenizer: object
    train: Encoded
    dev: Encoded
    test: Encoded

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id


@booked("data and tokenisation")
def prepare(config: ExperimentConfig, ctx: Context) -> Prepared:
    task = data_mod.load_task(config.task, config.data, seed=config.seed, data_dir=ctx.data_dir)
    tok = models.load_tokenizer(config.model)
    enc = {s: encode(getattr(task, s), tok, config.data.max_length) for s in ("train", "dev", "test")}
    return Prepared(task, tok, enc["train"], enc["dev"], enc["test"])


def compact_predictions(kind: str, logits) -> str | list[float]:
    """Test predictions small enough for a result file: class ids as one string of
    digits, or regression outputs rounded to 4 decimals (paired tests need them)."""
    logits = np.asarray(logits)
    if kind == "classification":
        return "".join(str(int(c)) for c in logits.argmax(-1))
    return [round(float(x), 4) for x in logits.reshape(-1)]


# Set by ``l2a_lib.distill`` around a run: called with (model, prep) when a method scores
# its final model, so that a user's distilled student can be saved. Every method scores
# its final model with :func:`score` exactly once, so no method needs to know of it.
final_model_hook: ContextVar[Callable | None] = ContextVar("final_model_hook", default=None)


def score(model, prep: Prepared, config: ExperimentConfig, train_cfg,
           sink: dict | None = None) -> list[dict]:
    """dev and test metrics; with ``sink``, also the compact test predictions."""
    hook = final_model_hook.get()
    if hook is not None:
        hook(model, prep)
    rows = []
    for split, enc in (("dev", prep.dev), ("test", prep.test)):
        logits = predict(model, enc, pad_id=prep.pad_id, batch_size=train_cfg.eval_batch_size,
                         bf16=train_cfg.bf16, desc=f"eval {split}")
        scores = metrics.compute(prep.task.spec.kind, logits, enc.labels)
        rows += [{"split": split, "metric": k, "value": v} for k, v in scores.items()]
        if split == "test" and sink is not None:
            sink["test_predictions"] = compact_predictions(prep.task.spec.kind, logits)
    extra = []
    for name in config.extra_scores or ():
        got = (noisy_scores if name == "noise" else EXTRA_SCORERS[name])(model, prep, config,
                                                                          train_cfg)
        if isinstance(got, dict):  # rows and more (the attention maps)
            if sink is not None and got.get("maps"):
                sink["attention_maps"] = got["maps"]
            got = got["rows"]
        extra += got
    if extra and sink is not None:  # kept apart: the pages of the paper read ``rows`` only
        sink["extra_rows"] = extra
    return rows


# More scores of a final model that need more than this module has: name -> function of
# (model, prep, config, train config) -> rows. ``teacher`` adds "attention" (it needs
# the teacher), so every method that distils finds it here.
EXTRA_SCORERS: dict[str, Callable] = {}


@booked("evaluation")
def noisy_scores(model, prep: Prepared, config: ExperimentConfig, train_cfg, *,
                 tokenizer=None, bf16: bool | None = None) -> list[dict]:
    """Metrics on each noisy copy of the test split (``robustness``) and on the same
    examples without noise (kind "clean", level 0): rows of the ``robustness`` table,
    split ``noisy_test`` (never mistaken for the test split's), with the noise kind,
    level and ``robustness.SAMPLE`` in their own columns. ``tokenizer``: the model's, when
    it is not the run's (BiLSTM-soft's word vocabulary)."""
    from .robustness import SAMPLE, noisy_tests, sample
    tok = tokenizer or prep.tokenizer
    rows = []
    copies = {("clean", 0.0): sample(prep.task.test), **noisy_tests(prep.task.test)}
    for (kind, level), df in copies.items():
        enc = encode(df, tok, config.data.max_length)
        logits = predict(model, enc, pad_id=tok.pad_token_id, batch_size=train_cfg.eval_batch_size,
                         bf16=train_cfg.bf16 if bf16 is None else bf16, desc=f"eval {kind} {level}")
        rows += [{"table": "robustness", "split": "noisy_test", "noise": kind, "level": level,
                  "sample": SAMPLE, "metric": k, "value": v}
                 for k, v in metrics.compute(prep.task.spec.kind, logits, enc.labels).items()]
    return rows
