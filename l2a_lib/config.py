"""Frozen, validated configuration: one dataclass per concern.

Variants are built with ``dataclasses.replace(base, ...)``; every field is checked in
``__post_init__`` and a bad value gets an error that names it and the allowed values.
``ExperimentConfig.hash()`` keys the result cache.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from .errors import ConfigError
from .validate import choose, positive as _positive, without_none
from .tasks import TASKS, USER_TEACHERS, check_task  # TASKS re-exported

CODE_VERSION = "2"  # bump when a change to the code changes results: every cache key includes it

PROFILES = ("smoke", "cpu", "paper")
METHODS = ("majority", "teacher_ft", "student_ft", "eda", "cbert", "tinybert", "bilstm_soft", "distilbert",
           "bert_pkd4", "bert_pkd6", "minilm", "mlm", "l2a", "l2a_wo_src", "l2a_wo_tgt", "l2a_wo_att",
           "l2a_wo_hidden", "l2a_wo_dark", "l2a_selector_off", "l2a_selector_random", "l2a_generator_off",
           "l2a_originals_off", "kd_only", "nlpaug_ctx", "student_ft_smart", "l2a_smart", "bert_pkd_same",
           "distilbert_same", "l2a_pkd6_student", "l2a_pkd6_control", "l2a_corrupted", "l2a_corrupted_keep_all",
           "l2a_corrupted_random", "l2a_corrupted_long", "l2a_credit", "l2a_credit_corrupted", "l2a_credit_cal",
           "l2a_credit_cal_corrupted", "l2a_credit_eq", "l2a_credit_eq_corrupted", "l2a_credit_eq_corrupted_random",
           "l2a_credit_eq_corrupted_gen_off", "l2a_credit_eq_corrupted_gen_off_random",
           "l2a_credit_eq_corrupted_gen_off_oracle", "l2a_credit_eq_corrupted_gen_off_rates",
           "l2a_credit_eq_corrupted_gen_off_small_loss")
# L2A's learned parts switched off one at a time, and the same KD without augmentation
L2A_PARTS = ("l2a_selector_off", "l2a_selector_random", "l2a_generator_off", "l2a_originals_off", "kd_only")
L2A_PROBE = ("l2a_corrupted", "l2a_corrupted_keep_all", "l2a_corrupted_random")  # see l2a.corrupt
L2A_PROBE_LONG = ("l2a_corrupted_long",)  # the probe over 60 episodes, generator off
L2A_CREDIT = tuple(m for m in METHODS if m.startswith("l2a_credit"))  # ours (l2a.credit)
PKD6_STUDENT_METHODS = ("l2a_pkd6_student", "l2a_pkd6_control")  # on BERT6-PKD's student; parts off
L2A_METHODS = ("l2a", "l2a_wo_src", "l2a_wo_tgt", "l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark",
               "l2a_smart") + PKD6_STUDENT_METHODS + L2A_PARTS + L2A_PROBE + L2A_PROBE_LONG + L2A_CREDIT
# Table 1's same-student controls: layer KD with L2A's student, L2A with BERT6-PKD's
SAME_STUDENT_METHODS = ("bert_pkd_same", "distilbert_same", "l2a_pkd6_student")
SMART_VARIANTS = ("adversarial", "bregman")  # the SMART page's methods: the term alone, + BPP
# Table 1's methods in its row order (the pages, the claims and the reports read this list)
TABLE1_METHODS = ("majority", "teacher_ft", "student_ft", "bilstm_soft", "distilbert", "bert_pkd4",
                  "bert_pkd6", "minilm", "tinybert", "eda", "cbert", "l2a")
AUGMENTERS = ("eda", "bilstm_soft", "tinybert", "cbert", "nlpaug_ctx")
TABLES = ("table1", "table2", "table3", "fig2_data_size", "sensitivity_T", "sensitivity_alpha",
          "mlm", "l2a_parts", "settings", "smart")
DATA_SOURCES, EXTRA_SCORES = ("local", "hub"), ("noise", "attention")
TEACHERS = ("all-mpnet-base-v2", "bert-base-uncased", "tiny-random-mpnet")
STUDENTS = ("all-MiniLM-L6-v2", "TinyBERT_General_4L_312D", "tiny-random-bert", "teacher")  # teacher layers
POOLINGS = ("mean", "cls", "pooler")  # pooler: BERT's own (CLS -> dense -> tanh), for export

@dataclass(frozen=True)
class DataConfig:
    """Which examples a run sees.

    ``train_per_class`` applies to classification tasks, ``n_train`` to the regression
    task. ``dev_size`` is the total size of the small target dev set (stratified by the
    target's class proportions). ``limit`` caps every split (smoke profile only).
    """

    task: str = "tc"
    source: str = "local"
    train_per_class: int = 40
    n_train: int = 80
    dev_size: int = 100
    max_length: int = 64
    limit: int | None = None

    def __post_init__(self):
        check_task(self.task)
        choose("source", self.source, DATA_SOURCES)
        for name in ("train_per_class", "n_train", "dev_size", "max_length"):
            _positive(name, getattr(self, name))
        if self.max_length < 8 or self.max_length > 512:
            raise ConfigError(f"max_length={self.max_length} must be in [8, 512]")
        _positive("limit", self.limit) if self.limit is not None else None


@dataclass(frozen=True)
class ModelConfig:
    """Teacher and student architectures.

    ``student_layers`` are the indices of the pretrained student's layers kept (bottom
    layers by default: dropping the top layers of a pretrained transformer loses least,
    Sajjad et al. 2020, "On the effect of dropping layers of pre-trained transformer models").
    """

    teacher: str = "all-mpnet-base-v2"
    student: str = "all-MiniLM-L6-v2"
    student_layers: tuple[int, ...] = (0, 1, 2, 3)
    pooling: str = "mean"
    dropout: float = 0.1
    # the student's pooling when it differs from the teacher's (None: ``pooling``); a
    # user's distillation uses "pooler" so the student saves as a standard HF model
    student_pooling: str | None = None

    def __post_init__(self):
        if self.teacher not in USER_TEACHERS:
            choose("teacher", self.teacher, TEACHERS)
        choose("student", self.student, STUDENTS)
        choose("pooling", self.pooling, POOLINGS)
        choose("student_pooling", self.student_pooling, (None, *POOLINGS))
        if (not isinstance(self.student_layers, tuple) or not self.student_layers
                or any(not isinstance(i, int) or i < 0 for i in self.student_layers)):
            raise ConfigError(f"student_layers={self.student_layers!r} must be a non-empty tuple of ints >= 0")
        if list(self.student_layers) != sorted(set(self.student_layers)):
            raise ConfigError(f"student_layers={self.student_layers!r} must be strictly increasing")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout!r} must be in [0, 1)")


@dataclass(frozen=True)
class SmartConfig:
    """Defaults are the SMART paper's (Sec. 5: sigma = eps = 1e-5, eta = 1e-3, K = 1, beta = 0.99,
    mu = 1). ``perturbation``: "reference" (default) computes the adversarial perturbation as
    the SMART authors' code does (each token's noise + eta * gradient divided by its inf-norm,
    no eps ball: ``epsilon`` is unused); "paper" as the paper's text reads (an ascent step, then
    a clamp to the eps ball). ``l_s`` then on the perturbed and clean outputs."""
    lambda_s: float = 1.0
    sigma: float = 1e-5
    eta: float = 1e-3
    epsilon: float = 1e-5
    steps: int = 1
    mu: float = 1.0
    beta: float = 0.99
    use_bregman: bool = True
    perturbation: str = "reference"

    def __post_init__(self):
        for name in ("lambda_s", "sigma", "eta", "epsilon", "mu"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"SmartConfig.{name}={v!r} must be a number >= 0")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"SmartConfig.steps={self.steps!r} must be an int >= 1")
        if not 0.0 <= self.beta < 1.0:
            raise ConfigError(f"SmartConfig.beta={self.beta!r} must be in [0, 1)")
        choose("SmartConfig.perturbation", self.perturbation, ("reference", "paper"))


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
    # Settings the page "Choosing the settings" tries (None: off; issue 35): the early
    # stopping metric ("f1", "acc", "pearson"; default: the task's), class weights
    # ("balanced"), the regression head's bias started at the training labels' mean
    # ("label_mean"), and epochs on the source domain before the target (teachers).
    select_on: str | None = None
    class_weights: str | None = None
    head_bias: str | None = None
    source_epochs: int | None = None

    def __post_init__(self):
        for name, allowed in (("select_on", ("f1", "acc", "pearson", "acc_f1")),
                              ("class_weights", ("balanced",)), ("head_bias", ("label_mean",))):
            if getattr(self, name) is not None:
                choose(name, getattr(self, name), allowed)
        _positive("source_epochs", self.source_epochs) if self.source_epochs is not None else None
        for name in ("epochs", "batch_size", "eval_batch_size", "patience"):
            _positive(name, getattr(self, name))
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
class AugmentConfig:
    """How the distillation pool is made from the target training set.

    ``pool_size`` is the number of augmented examples per run (``n_aug`` per
    original = pool_size // n_train, at least 1), so every task and method
    distils on about as many inputs. The other fields are each augmenter's own
    settings, at the values of its paper.
    """
    kind: str = "eda"
    pool_size: int = 1600
    eda_alpha: float = 0.1            # EDA: alpha_sr = alpha_ri = alpha_rs = p_rd
    p_mask: float = 0.1               # BiLSTM-soft
    p_pos: float = 0.1
    p_ng: float = 0.25
    ngram_max: int = 5
    tinybert_p: float = 0.4           # TinyBERT: replacement probability p_t
    tinybert_k: int = 15              # TinyBERT: candidates K
    cbert_mask: float = 0.15          # CBERT: share of pieces re-sampled
    cbert_epochs: int = 10            # CBERT: conditional MLM fine-tuning epochs
    nlpaug_p: float | None = None     # nlpaug_ctx: share of words substituted (None: unused)

    def __post_init__(self):
        choose("augment.kind", self.kind, AUGMENTERS)
        _positive("pool_size", self.pool_size)
        for name in ("eda_alpha", "p_mask", "p_pos", "p_ng", "tinybert_p", "cbert_mask", "nlpaug_p"):
            v = getattr(self, name)
            if v is None and name == "nlpaug_p":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ConfigError(f"{name}={v!r} must be a number in [0, 1]")
        for name in ("ngram_max", "tinybert_k", "cbert_epochs"):
            _positive(name, getattr(self, name))


@dataclass(frozen=True)
class DistillConfig:
    """Distillation training and loss settings.

    ``att``/``hidden``/``dark`` switch the terms of L_KD (L2A, Table 3);
    ``temperature`` is T_KD; ``alpha_hard`` weights the hard-label CE on the
    labelled examples (PKD's alpha; 0 = pure KD); ``pkd_beta`` weights PKD's
    patience loss; ``cos_weight`` DistilBERT's cosine loss; ``stage1_epochs``
    TinyBERT's intermediate-layer stage.
    """
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, batch_size=32,
                                                                   lr=1e-4, patience=3))
    att: bool = True
    hidden: bool = True
    dark: bool = True
    temperature: float = 1.0
    alpha_hard: float = 0.0
    pkd_beta: float = 100.0
    cos_weight: float = 1.0
    stage1_epochs: int = 5

    def __post_init__(self):
        if not (self.att or self.hidden or self.dark):
            raise ConfigError("DistillConfig: at least one of att, hidden, dark must be on")
        _positive("temperature", self.temperature, integer=False)
        if not 0 <= self.alpha_hard <= 1:
            raise ConfigError(f"alpha_hard={self.alpha_hard!r} must be in [0, 1]")
        _positive("pkd_beta", self.pkd_beta, integer=False, allow_zero=True)
        _positive("cos_weight", self.cos_weight, integer=False, allow_zero=True)
        _positive("stage1_epochs", self.stage1_epochs, allow_zero=True)


@dataclass(frozen=True)
class L2AConfig:
    """L2A's augmentation and selection (Algorithm 1).

    alpha: edit-distance temperature of P_s (0.0829 = 15% of pieces edited on
    average with V = 30,522; see ``augment.l2a``); temperature: T of the fill
    softmax; episodes: passes of Algorithm 1, each with freshly sampled
    augmentations; pool_size: augmented inputs per episode, ``source_share`` of
    them from the source domain (0 = "w/o src"; 1 = "w/o tgt"); selector /
    generator switch the reinforced selector and G_theta (off = keep every
    sample / sample fills from the static masked LM).

    Budget: 20 episodes of 320 inputs (10 student steps each on tc) rather than 4 of
    1,600: the same student updates, samples and teacher passes, but 20 selector and
    generator updates instead of 4 (with 4 the keep rate stayed at 0.50 on every task).
    """
    alpha: float = 0.0829
    temperature: float = 1.0
    episodes: int = 20
    pool_size: int = 320
    source_share: float = 0.5
    selector: bool = True
    generator: bool = True
    gamma: float = 0.9
    selector_lr: float = 1e-2
    generator_lr: float = 5e-5
    generator_anchor: float = 1.0  # beta of KL(P_MLM || P_G) in G's update (l2a_lib.generator)
    originals_per_step: int = 8
    generator_samples: int = 128  # samples per episode the generator trains on (a random subset)
    # Version 2 (issue 34). Every field below is None in a version-1 run, so the
    # committed version-1 runs keep their cache keys; ``profiles.make_config`` sets
    # them all for a version-2 run (``l2a_lib.l2a.algorithm`` describes both versions).
    version: int | None = None            # None: version 1
    reward: str | None = None             # "dev_loglik" (v2) or "dev_metric" (v1's accuracy change)
    hard_weight: float | None = None      # CE on the gold labels of the step's originals (v2: 1)
    generator_weighting: str | None = None  # G's sample weights (v2: "advantage")
    generator_epochs: int | None = None   # passes over the generator's samples per episode
    selector_random: bool | None = None   # keep at random, at the learned selector's keep rate
    augment: bool | None = None           # False: no augmented inputs at all (kd_only)
    corrupt_share: float | None = None    # probe: augmented samples with wrong targets (l2a.corrupt)
    selector_credit: bool | str | None = None  # ours: per-sample credit (l2a.credit), "calibrated", "equal"
    selector_oracle: str | None = None    # probe: keeps by the known answer (l2a.reference.keep_rule)
    selector_rule: str | None = None      # "small_loss": a fixed rule keeps (l2a.reference.keep_rule)

    def __post_init__(self):
        for name in ("alpha", "temperature", "selector_lr", "generator_lr"):
            _positive(name, getattr(self, name), integer=False)
        for name in ("episodes", "pool_size", "generator_samples"):
            _positive(name, getattr(self, name))
        for name, value in (("source_share", self.source_share), ("gamma", self.gamma)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value!r} must be in [0, 1]")
        _positive("generator_anchor", self.generator_anchor, integer=False, allow_zero=True)
        _positive("originals_per_step", self.originals_per_step, allow_zero=True)
        if self.version not in (None, 2):
            raise ConfigError(f"l2a.version={self.version!r}: None (version 1) or 2")
        if self.reward is not None:
            choose("l2a.reward", self.reward, ("dev_loglik", "dev_metric"))
        if self.generator_weighting is not None:
            choose("l2a.generator_weighting", self.generator_weighting,
                   ("advantage", "advantage_positive", "positive", "centered", "literal"))
        for name, value, kw in (("hard_weight", self.hard_weight, dict(integer=False, allow_zero=True)),
                                ("generator_epochs", self.generator_epochs, {})):
            _positive(name, value, **kw) if value is not None else None
        if self.version is None and any(v is not None for v in (
                self.reward, self.hard_weight, self.generator_weighting, self.generator_epochs,
                self.selector_random, self.augment, self.corrupt_share, self.selector_credit,
                self.selector_oracle, self.selector_rule)):
            raise ConfigError("the version-2 settings of L2A need l2a.version=2")
        if self.augment is False and not self.originals_per_step:
            raise ConfigError("l2a.augment=False (KD on the originals alone) needs originals_per_step > 0")
        if self.corrupt_share is not None and not 0.0 < self.corrupt_share < 1.0:
            raise ConfigError(f"l2a.corrupt_share={self.corrupt_share!r} must be in (0, 1)")
        choose("l2a.selector_oracle", self.selector_oracle, (None, "perfect", "rates"))
        choose("l2a.selector_rule", self.selector_rule, (None, "small_loss"))
        choose("l2a.selector_credit", self.selector_credit, (None, False, True, "calibrated", "equal"))
        keepers = [f"l2a.{n}" for n in ("selector_random", "selector_oracle", "selector_rule", "selector_credit")
                   if getattr(self, n)]  # each replaces the learned selector's choice, or its reward
        if keepers and not self.selector:
            raise ConfigError(f"{' and '.join(keepers)} need the selector on (they replace it, or feed it)")
        if len(keepers) > 1:
            raise ConfigError(f"{' and '.join(keepers)}: at most one of them (each decides what the run keeps)")
        if self.selector_oracle and not self.corrupt_share:
            raise ConfigError("l2a.selector_oracle needs l2a.corrupt_share (the known answer)")


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
    augment: AugmentConfig | None = None
    distill: DistillConfig | None = None
    mlm_steps: int | None = None  # steps of the augmentation masked LM (None: no MLM used)
    l2a: L2AConfig | None = None
    # more scores of the final model: "noise" (noisy test copies, ``robustness``), "attention"
    extra_scores: tuple[str, ...] | None = None  # (its KL to the teacher's: ``runs.attention_scores``)

    def __post_init__(self):
        check_task(self.task)
        for name, value, allowed in (("method", self.method, METHODS), ("table", self.table, TABLES),
                                     ("profile", self.profile, PROFILES)):
            choose(name, value, allowed)
        for extra in self.extra_scores or ():
            choose("extra_scores", extra, EXTRA_SCORES)
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
        aug, dist, l2a = d.pop("augment", None), d.pop("distill", None), d.pop("l2a", None)
        if dist:
            dist = dict(dist)
            dist = DistillConfig(train=train(dist.pop("train")), **dist)
        return cls(
            data=DataConfig(**d.pop("data")),
            model=ModelConfig(**model),
            teacher_train=train(d.pop("teacher_train")),
            student_train=train(d.pop("student_train")),
            augment=AugmentConfig(**aug) if aug else None,
            distill=dist,
            l2a=L2AConfig(**l2a) if l2a else None,
            **{**d, **({"extra_scores": tuple(d["extra_scores"])} if d.get("extra_scores") else {})},
        )
