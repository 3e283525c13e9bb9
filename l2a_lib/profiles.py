"""The settings of each profile and method: ``make_config(task, method, seed,
profile)`` builds the canonical configuration of a run (``config`` holds what each
setting is and checks its values; this module, which values the runs use)."""
from __future__ import annotations

import dataclasses
import os

from .config import (AUGMENTERS, L2A_CREDIT, L2A_METHODS, L2A_PARTS, L2A_PROBE, L2A_PROBE_LONG, METHODS,
                     PKD6_STUDENT_METHODS, PROFILES, SAME_STUDENT_METHODS, SMART_VARIANTS, TABLE1_METHODS,
                     AugmentConfig, DataConfig, DistillConfig, ExperimentConfig, L2AConfig,
                     ModelConfig, SmartConfig, TrainConfig, choose)
from .tasks import USER_TASKS, base_task, check_task
from .errors import ConfigError

# Per-task data settings of the cpu profile (see book/setup.md for the why).
TASK_DATA = {
    "tc": dict(max_length=64),
    "pi": dict(max_length=64, n_train=300),
    "nli": dict(max_length=128),
    "reg": dict(max_length=128),
}


# The final grid (issue 35): the settings the page "Choosing the settings" chose, L2A
# version 2 on every page, and the extra scores of Table 1's runs (issue 36), all at
# once, since each changes the cache keys of the runs it touches. Off in the code
# until the whole grid is recomputed under it; ``make_config(..., final=True)`` builds its
# configurations before then. Per task, the chosen candidate's teacher settings
# (``candidates.CANDIDATES``: nli_src, reg_src); text classification and PI keep
# the settings they were first run with.
FINAL_GRID_IN_CODE = False
# ``L2A_FINAL_GRID=1`` (or ``0``) in the environment overrides it for one process and its
# children: ``snakemake --config final=1 runs`` computes the final grid that way.
FINAL_GRID = {"": FINAL_GRID_IN_CODE, "0": False, "1": True}.get(
    os.environ.get("L2A_FINAL_GRID", "").strip(), None)
if FINAL_GRID is None:
    raise ConfigError(f"L2A_FINAL_GRID={os.environ['L2A_FINAL_GRID']!r}: use 1 (the final "
                      "grid's settings) or 0 (the first ones), or leave it unset")
CHOSEN_TEACHER = {"nli": dict(source_epochs=2), "reg": dict(source_epochs=2)}
# ... and BiLSTM-soft's training schedule fixed (candidates.FIXES: it predicted one class
# at the transformer students' rate)
BILSTM_TRAIN = dict(lr=1e-3, epochs=20, patience=5)


# the version of L2A that Table 2, the training log and claim 3 read: version 1, whose
# committed runs they show, until the final grid; then each run's default (version 2)
PAGES_V1 = None if FINAL_GRID else 1


def final_grid(final: bool | None = None) -> bool:
    return FINAL_GRID if final is None else bool(final)


# The learning controls (the selector keeps at random, at the keep rate of each episode
# of the learned run it copies) and the L2A method each copies: the one place that pairs
# them (``learned_reference``, ``pages.LEARNING_CONTROLS`` and the pages derive from it)
LEARNING_CONTROLS = {"l2a_selector_random": "l2a", "l2a_pkd6_control": "l2a_pkd6_student"}
# ... and the probe's (l2a.corrupt): does the learned selector's student beat one that
# keeps as many samples, picked at random? (The probe's keep-all student keeps more.)
# The same for our equal-weight credit's probe.
# The same again with the generator off in both (a random selector gives the generator
# nothing to follow, so the random students' generators stay the masked LM; the learned
# runs' move): the selection's effect without the trained generator's.
PROBE_CONTROLS = {"l2a_corrupted_random": "l2a_corrupted",
                  "l2a_credit_eq_corrupted_random": "l2a_credit_eq_corrupted",
                  "l2a_credit_eq_corrupted_gen_off_random": "l2a_credit_eq_corrupted_gen_off"}
# ... and the probe's oracles, which keep by the known answer (l2a.reference.keep_rule):
# one drops every corrupted sample (what any selection could gain in the probe), the other
# keeps the corrupted and the clean samples at the generator-off selector's rates of each
# episode, at random within each (what that selector's separation is worth by itself)
PROBE_ORACLES = {"l2a_credit_eq_corrupted_gen_off_oracle": "perfect",
                 "l2a_credit_eq_corrupted_gen_off_rates": "rates"}
# ... and a rule that knows nothing of the answer: at that selector's keep rate of each
# episode, it keeps in each batch the samples on which teacher and student disagree least
# (the "small-loss" filter of learning with noisy labels): does the learned selector beat a
# one-line rule over one of its own state features?
PROBE_RULES = {"l2a_credit_eq_corrupted_gen_off_small_loss": "small_loss"}
RATES_OF = {"l2a_credit_eq_corrupted_gen_off_rates": "l2a_credit_eq_corrupted_gen_off",  # copies its rates
            "l2a_credit_eq_corrupted_gen_off_small_loss": "l2a_credit_eq_corrupted_gen_off"}
# ... those the parts page does not show (their runs are still filed under its table)
OFF_PAGE_PARTS = tuple(c for c in LEARNING_CONTROLS if c not in L2A_PARTS)
HOME_TABLE = {"l2a_wo_src": "table2", "l2a_wo_tgt": "table2", "l2a_wo_att": "table3",
              "l2a_wo_hidden": "table3", "l2a_wo_dark": "table3", "mlm": "mlm",
              "student_ft_smart": "smart", "l2a_smart": "smart",
              **{m: "l2a_parts" for m in L2A_PARTS + OFF_PAGE_PARTS + L2A_PROBE + L2A_PROBE_LONG
                 + L2A_CREDIT}}
V2_ONLY = L2A_PARTS + OFF_PAGE_PARTS + L2A_PROBE + L2A_PROBE_LONG + L2A_CREDIT  # version 2 only


def l2a_version(task: str, method: str, table: str, final: bool | None = None) -> int:
    """The version of L2A a run of the pages uses until the whole grid is recomputed:
    2 (``l2a_lib.l2a.algorithm``) for the learned parts' ablations, Table 3 and Table
    1's L2A on text classification and PI; 1 elsewhere (Table 2's ablations, the
    studies, Table 1's L2A on NLI and regression), whose committed runs it computed.
    Version 2 everywhere in the final grid (:data:`FINAL_GRID`)."""
    if (final_grid(final) or method in V2_ONLY or method in ("l2a_smart",) + PKD6_STUDENT_METHODS
            or (table, task) in V2_PAGES or task in USER_TASKS):
        return 2  # a user's own task: the version whose learned parts are tested
    return 1


# The (table, task) pairs whose L2A runs are version 2. Table 1 on tc and pi and Table 3
# join when their version-2 runs are in the committed cache (issue 34); until then
# the pages show version 1 and ``python -m l2a_lib run --l2a-version 2`` computes them.
V2_PAGES: tuple = (("table1", "tc"), ("table1", "pi"), ("table3", "tc"))
# The seeds of the parts page (issue 34): five for L2A and each part switched off, the
# first n only for these (the variant without originals, the probes of l2a.corrupt,
# among them our extension's with the calibrated and the equal-weight credit); the
# variant without originals has three on the final grid (its one seed there was the best
# run on both tasks, too few to count), and so have the probe and the equal-weight
# credit's probe (on PI one seed of L2A's selector separated the corrupted samples: is
# that a property of the selector or of the seed?); one each on the first settings'
# committed runs
PARTS_SEEDS = (0, 1, 2, 3, 4)
_FINAL_3 = 3 if FINAL_GRID else 1
# ... and five for the equal-weight credit's probe and its random student: at three
# seeds on PI its student beat the random one by an interval whose low end was +0.001,
# so seeds 3-4 were added after that result was seen (every seed must still agree)
_FINAL_5 = 5 if FINAL_GRID else 1
PARTS_FEWER_SEEDS = {"l2a_originals_off": _FINAL_3, **dict.fromkeys(L2A_PROBE, _FINAL_3),
                     **dict.fromkeys(L2A_PROBE_LONG, 1), L2A_CREDIT[3]: 1, L2A_CREDIT[5]: _FINAL_5,
                     L2A_CREDIT[6]: _FINAL_5, **dict.fromkeys(L2A_CREDIT[7:12], _FINAL_3)}
# the tasks of each probe of the parts page (the parts themselves run on TC and PI); on
# the final grid PI's probe has its keep-all student too (there the selector separated
# the corrupted samples: does its student gain from that?), and both tasks the student
# that keeps at random at the learned selector's rate, and at the equal-weight credit's;
# and the equal-weight pair with the generator off (the first settings have none of these)
PARTS_PROBE_TASKS = {L2A_PROBE[0]: ("tc", "pi"), L2A_PROBE[1]: ("tc", "pi") if FINAL_GRID else ("tc",),
                     L2A_PROBE[2]: ("tc", "pi") if FINAL_GRID else (),
                     L2A_PROBE_LONG[0]: ("tc",),
                     L2A_CREDIT[3]: ("tc",), L2A_CREDIT[5]: ("tc", "pi"),
                     L2A_CREDIT[6]: ("tc", "pi") if FINAL_GRID else (),
                     **dict.fromkeys(L2A_CREDIT[7:12], ("tc", "pi") if FINAL_GRID else ())}
# L2A version 2's settings (see L2AConfig and l2a_lib.l2a.algorithm)
L2A_V2 = dict(version=2, reward="dev_loglik", hard_weight=1.0, generator_weighting="advantage",
              generator_epochs=2, gamma=0.0)
# ... and in the final grid, the generator's bounded update (l2a_lib.l2a.generator: the
# standardised one collapsed the generator on NLI's and regression's long inputs)
FINAL_GENERATOR_WEIGHTING = "advantage_positive"
L2A_PART_SETTINGS = {"l2a_selector_off": dict(selector=False),
                     "l2a_selector_random": dict(selector_random=True),
                     "l2a_generator_off": dict(generator=False),
                     "l2a_originals_off": dict(originals_per_step=0),
                     "kd_only": dict(augment=False, selector=False, generator=False),
                     # the probe of l2a.corrupt: half the augmented samples with wrong targets
                     "l2a_corrupted": dict(corrupt_share=0.5),
                     "l2a_corrupted_keep_all": dict(corrupt_share=0.5, selector=False),
                     # ... keeping at random at the learned selector's keep rate (PROBE_CONTROLS)
                     "l2a_corrupted_random": dict(corrupt_share=0.5, selector_random=True),
                     # the same probe with three times the selector's updates (l2a.toy's
                     # budget study: at 20 episodes the toy's selector mostly fails too)
                     "l2a_corrupted_long": dict(corrupt_share=0.5, generator=False, episodes=60),
                     # our extension: the selector learns from per-sample credit (l2a.credit)
                     "l2a_credit": dict(selector_credit=True),
                     "l2a_credit_corrupted": dict(selector_credit=True, corrupt_share=0.5),
                     # ... the calibrated credit (l2a.credit): centred features, no bias, T*
                     "l2a_credit_cal": dict(selector_credit="calibrated"),
                     "l2a_credit_cal_corrupted": dict(selector_credit="calibrated", corrupt_share=0.5),
                     # ... the equal-weight credit (l2a.credit): every dev example weighs the same
                     "l2a_credit_eq": dict(selector_credit="equal"),
                     "l2a_credit_eq_corrupted": dict(selector_credit="equal", corrupt_share=0.5),
                     # ... keeping at random at its keep rate (PROBE_CONTROLS; no credit, no selector)
                     "l2a_credit_eq_corrupted_random": dict(corrupt_share=0.5, selector_random=True),
                     # ... the same pair with the generator off in both
                     "l2a_credit_eq_corrupted_gen_off": dict(selector_credit="equal", corrupt_share=0.5,
                                                             generator=False),
                     "l2a_credit_eq_corrupted_gen_off_random": dict(corrupt_share=0.5, selector_random=True,
                                                                    generator=False),
                     # ... and its oracles (PROBE_ORACLES)
                     **{m: dict(corrupt_share=0.5, selector_oracle=kind, generator=False)
                        for m, kind in PROBE_ORACLES.items()},
                     **{m: dict(corrupt_share=0.5, selector_rule=kind, generator=False)
                        for m, kind in PROBE_RULES.items()},
                     # the learning control of L2A on BERT6-PKD's student
                     "l2a_pkd6_control": dict(selector_random=True)}


def make_config(task: str, method: str, seed: int = 0, profile: str = "cpu",
                table: str | None = None, l2a_overrides: dict | None = None,
                version: int | None = None, smart: str | None = None,
                final: bool | None = None, **data_overrides) -> ExperimentConfig:
    """The canonical configuration of a run under a profile. ``table`` defaults to
    the method's home table (Table 1 for Teacher-FT, Student-FT, L2A and the
    baselines), so one run serves every table that shows it. ``version``: the
    version of L2A (default :func:`l2a_version`; ignored for the other methods).
    ``final``: the final grid's configuration or the one first run (default
    :data:`FINAL_GRID`)."""
    table = table or HOME_TABLE.get(method, "table1")
    choose("profile", profile, PROFILES)
    check_task(task)
    data = DataConfig(task=task, **{**TASK_DATA[base_task(task)], **data_overrides})
    if profile == "cpu":
        model = ModelConfig()
        teacher_train, student_train = TrainConfig(), TrainConfig(lr=1e-4)
        if final_grid(final):  # the chosen settings (not a user's task: exact names)
            teacher_train = dataclasses.replace(teacher_train, **CHOSEN_TEACHER.get(task, {}))
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
    choose("method", method, METHODS)
    augment, distill, mlm_steps = None, None, None
    if method not in ("majority", "teacher_ft", "student_ft", "student_ft_smart"):
        distill = DistillConfig(**METHOD_DISTILL.get(method, {}))
        if profile == "smoke":
            distill = dataclasses.replace(distill, stage1_epochs=min(distill.stage1_epochs, 1),
                                          train=dataclasses.replace(student_train, epochs=2))
        elif profile == "paper":
            distill = dataclasses.replace(distill, train=dataclasses.replace(
                distill.train, bf16=False))
    if method == "bilstm_soft" and profile == "cpu" and final_grid(final):
        distill = dataclasses.replace(distill, train=dataclasses.replace(distill.train, **BILSTM_TRAIN))
    if method == "mlm":  # the augmentation masked LM's held-out quality, not a student
        distill, mlm_steps = None, 20 if profile == "smoke" else MLM_STEPS
    if method in AUGMENTERS:
        augment = AugmentConfig(kind=method, pool_size=32 if profile == "smoke" else 1600)
        if method in ("tinybert", "cbert", "nlpaug_ctx"):
            mlm_steps = 20 if profile == "smoke" else MLM_STEPS
        if method == "nlpaug_ctx":  # the other masked-LM augmenters' 15% budget
            augment = dataclasses.replace(augment, nlpaug_p=0.15)
            if profile == "smoke":
                augment = dataclasses.replace(augment, cbert_epochs=1, tinybert_k=3)
    l2a = None
    if method in L2A_METHODS:
        l2a = L2AConfig(source_share={"l2a_wo_src": 0.0, "l2a_wo_tgt": 1.0}.get(method, 0.5))
        if (version or l2a_version(task, method, table, final)) == 2:
            l2a = dataclasses.replace(l2a, **L2A_V2, **L2A_PART_SETTINGS.get(method, {}))
            if final_grid(final):
                l2a = dataclasses.replace(l2a, generator_weighting=FINAL_GENERATOR_WEIGHTING)
        elif method in V2_ONLY:
            raise ConfigError(f"{method} exists in L2A version 2 only")
        distill = dataclasses.replace(distill, att=method != "l2a_wo_att",
                                      hidden=method != "l2a_wo_hidden", dark=method != "l2a_wo_dark")
        mlm_steps = 20 if profile == "smoke" else MLM_STEPS
        if profile == "smoke":
            l2a = dataclasses.replace(l2a, episodes=2, pool_size=32)
        if method in PKD6_STUDENT_METHODS:  # BERT6-PKD's student and learning rate
            model = dataclasses.replace(model, student="teacher", student_layers=tuple(
                range(2 if profile == "smoke" else 6)))
            distill = dataclasses.replace(distill, train=dataclasses.replace(
                distill.train, lr=METHOD_DISTILL["bert_pkd6"]["train"].lr))
        if l2a_overrides:
            l2a = dataclasses.replace(l2a, **l2a_overrides)
    elif l2a_overrides:
        raise ConfigError(f"l2a_overrides given for method {method!r}, which is not an L2A method")
    if method.endswith("_smart"):  # the SMART page: the adversarial term alone, or with BPP
        choose("smart", smart or "adversarial", SMART_VARIANTS)
        sc = SmartConfig(use_bregman=smart == "bregman")
        if method == "student_ft_smart":
            student_train = dataclasses.replace(student_train, smart=sc)
        else:
            distill = dataclasses.replace(distill, train=dataclasses.replace(distill.train, smart=sc))
    elif smart:
        raise ConfigError(f"smart={smart!r} given for method {method!r}; only *_smart methods take it")
    extra = extra_scores(profile, method, table, final)
    return ExperimentConfig(task=task, method=method, seed=seed, table=table, profile=profile,
                            data=data, model=model, teacher_train=teacher_train,
                            student_train=student_train, augment=augment, distill=distill,
                            mlm_steps=mlm_steps, l2a=l2a, extra_scores=extra)


# Table 1's runs also score their final model on noisy test copies and against the
# teacher's attention (the robustness and attention pages, issue 36) under these
# profiles; the cpu profile joins when its grid is recomputed (issue 35), since the
# scores change every Table 1 run's cache key.
EXTRA_SCORES = ("noise", "attention")
EXTRA_SCORES_PROFILES: tuple = ("smoke",)


def extra_scores(profile: str, method: str, table: str, final: bool | None = None) -> tuple | None:
    """The extra scores a run of ``make_config`` records (``ExperimentConfig.extra_scores``):
    under :data:`EXTRA_SCORES_PROFILES`, and under the cpu profile in the final grid."""
    on = profile in EXTRA_SCORES_PROFILES or (profile == "cpu" and final_grid(final))
    if on and method != "majority" and (
            (table == "table1" and method in TABLE1_METHODS) or method == "l2a_wo_att"):
        return EXTRA_SCORES
    return None


MLM_STEPS = 3000  # the augmentation masked LM of the cpu profile (see l2a_lib.mlm)
# Each baseline's loss settings, from its paper where it gives them.
# Methods that train on the 80 target examples only get the fine-tuning schedule
# (more epochs, smaller batches); the 768-wide teacher-layer students a smaller lr.
_SMALL_DATA = TrainConfig(epochs=20, batch_size=16, lr=1e-4, patience=5)
_TEACHER_LAYERS = TrainConfig(epochs=20, batch_size=16, lr=5e-5, patience=5)
METHOD_DISTILL = {
    "distilbert": dict(temperature=2.0, alpha_hard=0.5, cos_weight=1.0, train=_TEACHER_LAYERS),
    "bert_pkd4": dict(temperature=10.0, alpha_hard=0.5, pkd_beta=100.0, train=_TEACHER_LAYERS),
    "bert_pkd6": dict(temperature=10.0, alpha_hard=0.5, pkd_beta=100.0, train=_TEACHER_LAYERS),
    "minilm": dict(train=_SMALL_DATA),
    # the same losses with L2A's student (issue 36): the MiniLM students' schedule
    "distilbert_same": dict(temperature=2.0, alpha_hard=0.5, cos_weight=1.0, train=_SMALL_DATA),
    "bert_pkd_same": dict(temperature=10.0, alpha_hard=0.5, pkd_beta=100.0, train=_SMALL_DATA),
    "tinybert": dict(temperature=1.0, stage1_epochs=5),
}


SAME_STUDENT_TASKS = ("tc", "pi")  # the same-student controls run on these tasks only


def runs_on(task: str, method: str) -> bool:
    """Whether the study runs ``method`` on ``task`` (the same-student controls run on
    TC and PI only): a page that lists methods and tasks reads only these pairs, and
    counts no other as missing."""
    return method not in SAME_STUDENT_METHODS + PKD6_STUDENT_METHODS or task in SAME_STUDENT_TASKS


def learned_reference(config: ExperimentConfig) -> ExperimentConfig:
    """The learned run whose selector a control that keeps at random copies (its keep
    rate per episode): the same task, seed, settings and version, of the method
    :data:`LEARNING_CONTROLS` or :data:`PROBE_CONTROLS` pairs with the control (``l2a``
    for any other run whose selector keeps at random; :data:`RATES_OF` for the oracle that
    copies its corrupted and clean keep rates, and the rule that keeps at its keep rate), with
    that method's settings (the equal-weight credit's, say), filed under its home table. Whether it is the
    final grid's is read off the run itself (only the final grid's L2A uses the bounded
    generator update), not off this process's grid: ``run --final`` computes final runs
    in a process whose grid is the first one."""
    final = config.l2a.generator_weighting == FINAL_GENERATOR_WEIGHTING
    method = {**LEARNING_CONTROLS, **PROBE_CONTROLS, **RATES_OF}.get(config.method, "l2a")
    table = HOME_TABLE.get(method, "table1")
    return dataclasses.replace(config, method=method, table=table,
                               extra_scores=extra_scores(config.profile, method, table, final),
                               l2a=dataclasses.replace(config.l2a, selector_random=None, selector_oracle=None,
                                                       selector_rule=None, **L2A_PART_SETTINGS.get(method, {})))
