"""Frozen, validated configuration: one dataclass per concern.

Variants are built with ``dataclasses.replace(base, ...)``; every field is
checked in ``__post_init__`` and a bad value gets an error that names it and
the allowed values. ``ExperimentConfig.hash()`` keys the result cache.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Bump when a change to the code changes results: every cache key includes it.
CODE_VERSION = "2"

TASKS = ("tc", "pi", "nli", "reg")
PROFILES = ("smoke", "cpu", "paper")
METHODS = ("teacher_ft", "student_ft")
TABLES = ("table1", "table2", "table3", "fig2_data_size", "sensitivity_T", "sensitivity_alpha")
DATA_SOURCES = ("local", "hub")
TEACHERS = ("all-mpnet-base-v2", "bert-base-uncased", "tiny-random-mpnet")
STUDENTS = ("all-MiniLM-L6-v2", "TinyBERT_General_4L_312D", "tiny-random-bert")
POOLINGS = ("mean", "cls")


def without_none(d):
    """Drop ``None`` values recursively. Cache keys use this, so a new optional
    field added later with default ``None`` leaves every existing key valid."""
    if isinstance(d, dict):
        return {k: without_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, (list, tuple)):
        return [without_none(v) for v in d]
    return d


class ConfigError(ValueError):
    """A configuration value is out of range, of the wrong type, or unknown."""


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def _positive(name: str, value: Any, *, integer: bool = True, allow_zero: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{name}={value!r} must be {'an int' if integer else 'a number'}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


@dataclass(frozen=True)
class DataConfig:
    """Which examples a run sees.

    ``train_per_class`` applies to classification tasks, ``n_train`` to the
    regression task. ``dev_size`` is the total size of the small target dev
    set (stratified by the target's class proportions). ``limit`` caps every
    split (smoke profile only).
    """

    task: str = "tc"
    source: str = "local"
    train_per_class: int = 40
    n_train: int = 80
    dev_size: int = 100
    max_length: int = 64
    limit: int | None = None

    def __post_init__(self):
        _choice("task", self.task, TASKS)
        _choice("source", self.source, DATA_SOURCES)
        _positive("train_per_class", self.train_per_class)
        _positive("n_train", self.n_train)
        _positive("dev_size", self.dev_size)
        _positive("max_length", self.max_length)
        if self.max_length < 8 or self.max_length > 512:
            raise ConfigError(f"max_length={self.max_length} must be in [8, 512]")
        if self.limit is not None:
            _positive("limit", self.limit)


@dataclass(frozen=True)
class ModelConfig:
    """Teacher and student architectures.

    ``student_layers`` are the indices of the pretrained student's layers kept
    (bottom layers by default: dropping the top layers of a pretrained
    transformer loses least, Sajjad et al. 2020, "On the effect of dropping
    layers of pre-trained transformer models").
    """

    teacher: str = "all-mpnet-base-v2"
    student: str = "all-MiniLM-L6-v2"
    student_layers: tuple[int, ...] = (0, 1, 2, 3)
    pooling: str = "mean"
    dropout: float = 0.1

    def __post_init__(self):
        _choice("teacher", self.teacher, TEACHERS)
        _choice("student", self.student, STUDENTS)
        _choice("pooling", self.pooling, POOLINGS)
        if not isinstance(self.student_layers, tuple) or not self.student_layers:
            raise ConfigError(f"student_layers={self.student_layers!r} must be a non-empty tuple of ints")
        if any(not isinstance(i, int) or i < 0 for i in self.student_layers):
            raise ConfigError(f"student_layers={self.student_layers!r} must hold layer indices >= 0")
        if list(self.student_layers) != sorted(set(self.student_layers)):
            raise ConfigError(f"student_layers={self.student_layers!r} must be strictly increasing")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout!r} must be in [0, 1)")


@dataclass(frozen=True)
class SmartConfig:
    """Defaults are the SMART paper's (Sec. 5: sigma = eps = 1e-5, eta = 1e-3, K = 1,
    beta = 0.99, mu = 1)."""
    lambda_s: float = 1.0
    sigma: float = 1e-5
    eta: float = 1e-3
    epsilon: float = 1e-5
    steps: int = 1
    mu: float = 1.0
    beta: float = 0.99
    use_bregman: bool = True

    def __post_init__(self):
        for name in ("lambda_s", "sigma", "eta", "epsilon", "mu"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"SmartConfig.{name}={v!r} must be a number >= 0")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"SmartConfig.steps={self.steps!r} must be an int >= 1")
        if not 0.0 <= self.beta < 1.0:
            raise ConfigError(f"SmartConfig.beta={self.beta!r} must be in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run: AdamW, linear warm-up/decay, dev early stopping."""

    epochs: int = 20
    batch_size: int = 16
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    patience: int = 5
    max_grad_norm: float = 1.0
    bf16: bool = True
    eval_batch_size: int = 64
    smart: SmartConfig | None = None  # SMART regulariser + Bregman proximal point, or off

    def __post_init__(self):
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("eval_batch_size", self.eval_batch_size)
        _positive("patience", self.patience)
        _positive("lr", self.lr, integer=False)
        _positive("weight_decay", self.weight_decay, integer=False, allow_zero=True)
        _positive("max_grad_norm", self.max_grad_norm, integer=False)
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio!r} must be in [0, 1)")
        if not isinstance(self.bf16, bool):
            raise ConfigError(f"bf16={self.bf16!r} must be True or False")
        if self.smart is not None and not isinstance(self.smart, SmartConfig):
            raise ConfigError(f"smart={self.smart!r} must be a SmartConfig or None")


@dataclass(frozen=True)
class ExperimentConfig:
    """One run: a (table, task, method, seed) under a profile."""

    task: str = "tc"
    method: str = "teacher_ft"
    seed: int = 0
    table: str = "table1"
    profile: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    teacher_train: TrainConfig = field(default_factory=TrainConfig)
    student_train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4))

    def __post_init__(self):
        _choice("task", self.task, TASKS)
        _choice("method", self.method, METHODS)
        _choice("table", self.table, TABLES)
        _choice("profile", self.profile, PROFILES)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} must be an int >= 0")
        if self.data.task != self.task:
            raise ConfigError(f"data.task={self.data.task!r} differs from task={self.task!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Stable key of the full config (``None`` fields left out) plus the code version."""
        blob = json.dumps({"config": without_none(self.to_dict()), "code_version": CODE_VERSION},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        d = dict(d)
        model = dict(d.pop("model"))
        model["student_layers"] = tuple(model["student_layers"])
        def train(t: dict) -> TrainConfig:
            t = dict(t)
            smart = t.pop("smart", None)
            return TrainConfig(**t, smart=SmartConfig(**smart) if smart else None)
        return cls(
            data=DataConfig(**d.pop("data")),
            model=ModelConfig(**model),
            teacher_train=train(d.pop("teacher_train")),
            student_train=train(d.pop("student_train")),
            **d,
        )


# ---------------------------------------------------------------- profiles
# Per-task data settings of the cpu profile (see book/setup.md for the why).
TASK_DATA = {
    "tc": dict(max_length=64),
    "pi": dict(max_length=64, n_train=300),
    "nli": dict(max_length=128),
    "reg": dict(max_length=128),
}


def make_config(task: str, method: str, seed: int = 0, profile: str = "cpu",
                table: str = "table1", **data_overrides) -> ExperimentConfig:
    """The canonical configuration of a run under a profile."""
    _choice("profile", profile, PROFILES)
    _choice("task", task, TASKS)
    data = DataConfig(task=task, **{**TASK_DATA[task], **data_overrides})
    if profile == "cpu":
        model = ModelConfig()
        teacher_train, student_train = TrainConfig(), TrainConfig(lr=1e-4)
    elif profile == "smoke":
        data = dataclasses.replace(data, train_per_class=8, n_train=16, dev_size=16, limit=48,
                                   max_length=min(data.max_length, 48))
        model = ModelConfig(teacher="tiny-random-mpnet", student="tiny-random-bert",
                            student_layers=(0, 1))
        teacher_train = TrainConfig(epochs=2, batch_size=8, lr=1e-3, patience=2, bf16=False)
        student_train = dataclasses.replace(teacher_train)
    else:  # paper: bert-base teacher, TinyBERT-4L student, original data from the hub, GPU
        data = dataclasses.replace(data, source="hub", max_length=128)
        model = ModelConfig(teacher="bert-base-uncased", student="TinyBERT_General_4L_312D",
                            student_layers=(0, 1, 2, 3), pooling="cls")
        teacher_train = TrainConfig(epochs=10, batch_size=32, lr=2e-5, bf16=False)
        student_train = TrainConfig(epochs=10, batch_size=32, lr=5e-5, bf16=False)
    return ExperimentConfig(task=task, method=method, seed=seed, table=table, profile=profile,
                            data=data, model=model, teacher_train=teacher_train,
                            student_train=student_train)
