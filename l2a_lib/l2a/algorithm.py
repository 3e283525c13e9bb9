"""Algorithm 1 of L2A: the distillation trainer, one loop of episodes.

    for each episode:
        sample D' from P_s (fills from G_theta once it has been trained), from the
            target training sentences and from source-domain sentences
        teacher outputs on D' (cached: once per unique input)
        for each batch of D':
            state  <- teacher and student outputs on the batch
            action <- selector keeps / drops each sample
            update the student with L_KD on the kept samples (+ a few labelled
                target originals, always kept)
            reward <- change of the student's target-dev metric
            store (state, action, reward)
        update the selector (REINFORCE on discounted returns)
        update the generator with the L2A loss, weighting samples by the selector's keep probability
        log the episode: reward, keep rate, dev metric
        save a checkpoint (a run cut off resumes here: ``checkpoint``)
    restore the student of the best dev metric

Sentence pairs are augmented side by side: each side is sampled from P_s on its
own and the two sides are zipped (log P_s and d add up).

Two versions (``L2AConfig.version``). Version 1 is the loop above as the committed
runs of the first releases computed it. Version 2 (issue 34) changes what the
diagnostics of version 1 showed to be inert:

* reward: the change of the dev log-likelihood of the gold labels, measured in
  float32 with its standard error (``l2a.reward``), instead of the change of dev
  accuracy, which on 100 dev examples was below its own noise;
* each batch makes two student steps, first on the labelled originals, then on the
  kept augmented samples; the reward is the change of the second alone
  (``l2a.episode.run_episode``), so the selector is not credited with the
  originals' effect;
* the originals' term is L_KD plus the hard-label loss on their gold labels
  (``hard_weight``): it trains the student's output layer when L_dark is off;
* the selector's advantages are standardised within each episode (``Selector.scale``)
  and the returns are not discounted (gamma = 0: a step's reward is measured right
  after it);
* the generator is weighted by the selector's standardised keep probability, with
  the KL anchor to the masked LM, in eval mode, ``generator_epochs`` passes per
  episode (``l2a.generator``);
* the student of the last episode is reported: no model selection on the dev set
  that the reward reads.

``selector_random``, ``selector_oracle`` and ``selector_rule`` keep by a fixed rule, not the selector
(``l2a.reference.keep_rule``); ``augment=False`` is KD on the originals alone (``kd_only``).
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from tqdm.std import tqdm

from .. import smart, mlm, models
from ..checkpoint import EpisodeCheckpoint, rng_state, set_rng_state
from ..config import ExperimentConfig
from ..encoding import Encoded, collate
from ..ledger import phase
from ..runs import prepare, score
from ..teacher import TeacherCache, TeacherNeeds, get_teacher
from ..train import (Stepper, autocast, evaluate, linear_warmup, progress_enabled, run_steps,
                     selection_score, task_loss)
from .corrupt import CorruptedTargets
from .credit import student_credit
from .episode import run_episode
from .generator import Generator, generator_step
from .reference import keep_rule
from .reward import DevReward
from .kd import KDTerms, last_layer_kd, projection
from .selector import Policy, Selector, disagreement_column, n_features, policy_profile, reward, state_features
from .pool import sample_gallery, sample_pool
from .static import StaticDistribution


def run_l2a(config: ExperimentConfig, ctx) -> dict:
    cfg, d = config.l2a, config.distill
    t_start = time.time()
    # before any training: the run it copies must be cached
    keep_at = keep_rule(config, ctx)  # None: the selector learns (or keeps every sample)
    prep = prepare(config, ctx)
    spec, tok = prep.task.spec, prep.tokenizer
    regression = spec.kind == "regression"
    teacher, _ = get_teacher(config, ctx, prep)
    with phase("loading weights", whole=True):
        mlm_model, mlm_info, mcfg = mlm.for_run(config, ctx, tok)
    provider = mlm.MaskedLMProvider(mlm_model, tok, max_length=config.data.max_length, bf16=mcfg.bf16)
    ps = StaticDistribution(provider, cfg.alpha, cfg.temperature, max_length=config.data.max_length)
    generator = (Generator(mlm_model, tok, lr=cfg.generator_lr, bf16=mcfg.bf16,
                           anchor=cfg.generator_anchor,
                           weighting=cfg.generator_weighting or "positive")
                 if cfg.generator else None)
    v2 = cfg.version == 2
    augment = cfg.augment is not False
    selector = (Selector(Policy(n_features(spec.num_labels, regression)), lr=cfg.selector_lr,
                         gamma=cfg.gamma, scale="episode" if v2 else "running")
                if cfg.selector and keep_at is None else None)
    probe = (DevReward(prep.dev, pad_id=prep.pad_id, regression=regression, kind=cfg.reward,
                       batch_size=d.train.eval_batch_size) if v2 else None)
    student = models.build_student(config.model, spec.num_labels, seed=config.seed, cache=ctx.cache_dir)
    W = projection(student, teacher, config.seed)
    L = teacher.encoder.config.num_hidden_layers
    cache = TeacherCache(teacher, TeacherNeeds.last_layer(teacher), prep.pad_id, bf16=d.train.bf16)
    terms = KDTerms(att=d.att, hidden=d.hidden, dark=d.dark, temperature=d.temperature)
    originals = prep.train
    if cfg.corrupt_share:  # the probe of l2a.corrupt: wrong targets on some augmented inputs
        cache = CorruptedTargets(cache, cfg.corrupt_share, config.seed, protected=originals)

    rng, gen = np.random.default_rng(config.seed), torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    n_source = int(round(cfg.pool_size * cfg.source_share))
    n_target = (cfg.pool_size - n_source) // len(prep.task.train)
    if cfg.source_share < 1.0:
        n_target = max(1, n_target)
    steps_per_episode = math.ceil((n_target * len(prep.task.train) + n_source) / d.train.batch_size)
    # version 2 steps twice per batch (originals, then the kept augmented samples)
    per_batch = 2 if v2 and augment and cfg.originals_per_step else 1
    total_steps = steps_per_episode * cfg.episodes * per_batch
    params = list(student.parameters()) + [W]
    optimizer = torch.optim.AdamW(params, lr=d.train.lr, weight_decay=d.train.weight_decay)
    stepper = Stepper(optimizer, params=params, max_grad_norm=d.train.max_grad_norm,
                      scheduler=linear_warmup(optimizer, max(1, int(d.train.warmup_ratio * total_steps)),
                                              total_steps),
                      what=f"L2A {config.task} s{config.seed}")
    scheduler = stepper.scheduler

    sm = d.train.smart  # l2a_smart: SMART's terms added to every student step's loss
    momentum = smart.MomentumTeacher(student, sm.beta) if sm is not None and sm.use_bregman else None
    smart_gen = torch.Generator().manual_seed(config.seed + 1)

    def kd_of(enc: Encoded, idx):
        """(L_KD over ``idx``, {term: value}), the student's output and the batch."""
        b = collate(enc, idx, prep.pad_id, regression)
        if momentum is not None:  # theta~ follows theta after each step (before the next)
            momentum.update(student)
        with autocast(d.train.bf16):
            s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
            extra = None if sm is None else smart.extra_terms(student, b, s.logits, sm, regression,
                                                               smart_gen, momentum)
        loss, parts = last_layer_kd(s, cache.batch(enc, idx), L, W, b["attention_mask"], terms,
                                    regression, with_parts=True)
        if extra is not None:
            parts["smart"] = float(extra.detach())
            loss = loss + extra
        return loss, parts, s.logits, b

    def originals_of():
        """Version 2's term on the step's labelled originals: L_KD plus the hard-label
        loss (cross-entropy; squared error for regression) weighted by hard_weight."""
        if not cfg.originals_per_step:
            return None
        orig = rng.choice(len(originals), size=min(cfg.originals_per_step, len(originals)),
                          replace=False)
        loss, parts, logits, b = kd_of(originals, orig)
        parts = {**parts, "kd": float(loss.detach())}
        if cfg.hard_weight:
            hard = task_loss(logits, b["labels"], regression)
            parts["hard"] = float(hard.detach())
            loss = loss + cfg.hard_weight * hard
        return loss, parts

    def dev_score() -> float:
        scores = evaluate(student, prep.dev, spec.kind, pad_id=prep.pad_id,
                          batch_size=d.train.eval_batch_size, bf16=d.train.bf16)
        return scores["pearson"] if regression else scores["acc"]  # the paper's reward metric

    ckpt = EpisodeCheckpoint(ctx.checkpoint_dir(config), run_id=config.hash())
    episodes, best, best_state, first = [], None, None, 0
    earlier = {"wall": 0.0, "loop": 0.0, "resumed_at": []}  # earlier pieces of a resumed run
    t0 = time.time()
    resumed = ckpt.load()
    if resumed is None:
        cache.fill(originals)
        t0 = time.time()
        score_now = dev_score()
    else:
        state, entries = resumed
        cache.restore(entries, state["forward_passes"])
        student.load_state_dict(state["student"])
        with torch.no_grad():
            W.copy_(state["W"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if selector is not None:
            selector.load_state_dict(state["selector"])
        if generator is not None:
            generator.load_state_dict(state["generator"])
        if momentum is not None:
            momentum.model.load_state_dict(state["momentum"])
        if state.get("smart_gen") is not None:
            smart_gen.set_state(state["smart_gen"])
        episodes, best, best_state = state["log"], state["best"], state["best_state"]
        score_now, first = state["score_now"], state["episode"]
        earlier = {"wall": state["seconds"], "loop": state["loop_seconds"],
                  "resumed_at": state["resumed_at"] + [first]}
        set_rng_state(state["rng"], rng, gen)
        ctx.teacher_used = state["teacher_used"]  # the teacher may have been fine-tuned in piece 1
        print(f"l2a {config.task} seed {config.seed}: resumed after episode {first}/{cfg.episodes} "
              "from its checkpoint", flush=True)
    saved = len(cache) if resumed is not None else 0  # teacher outputs already in a checkpoint
    shards = resumed[0]["shards"] if resumed is not None else 0  # teacher-output files saved

    def save_checkpoint(episode: int) -> None:
        nonlocal saved, shards
        if episode + 1 >= cfg.episodes or not ckpt.due():
            return
        ckpt.save({
            "episode": episode + 1, "episodes": cfg.episodes, "log": episodes,
            "student": student.state_dict(), "W": W.detach(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "selector": selector.state_dict() if selector is not None else None,
            "generator": generator.state_dict() if generator is not None else None,
            "momentum": momentum.model.state_dict() if momentum is not None else None,
            "smart_gen": smart_gen.get_state(),
            "best": best, "best_state": best_state,
            "score_now": score_now, "forward_passes": cache.forward_passes,
            "rng": rng_state(rng, gen), "resumed_at": earlier["resumed_at"],
            "teacher_used": ctx.teacher_used,
            "seconds": earlier["wall"] + time.time() - t_start,
            "loop_seconds": earlier["loop"] + time.time() - t0}, cache.entries(saved), shards)
        saved, shards = len(cache), shards + 1

    def episode_v2(episode: int) -> dict:
        """One episode of version 2 (``l2a.episode.run_episode``); returns its log."""
        sample_seconds = 0.0
        if augment:
            fill = generator.provider(config.data.max_length) if generator is not None and episode else None
            ts = time.time()
            with phase("augmentation sampling", whole=True):
                pool = sample_pool(ps, prep.task.train, prep.task.source, prep.task.train["label"],
                                   spec.pair, n_target if cfg.source_share < 1.0 else 0, n_source,
                                   rng, gen, config.data.max_length, fill)
            sample_seconds = time.time() - ts
            cache.fill(pool.enc)
            edit_rate, lp_piece = pool.edit_rate(), pool.log_ps_per_piece()
            order = rng.permutation(len(pool.enc))
            batches = [order[i:i + d.train.batch_size]
                       for i in range(0, len(order), d.train.batch_size)]
        else:
            pool, batches = None, [None] * steps_per_episode

        def states_of(idx):
            b = collate(pool.enc, idx, prep.pad_id, regression)
            student.eval()
            with torch.no_grad(), autocast(d.train.bf16):
                s_logits = student(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
            student.train()
            return state_features(cache.batch(pool.enc, idx)["logits"].cpu(), s_logits.float().cpu(),
                                  edit_rate[idx], lp_piece[idx], regression)

        credit_of = None if not (cfg.selector_credit and augment) else (  # l2a.credit
            lambda idx: student_credit(student, prep.dev, pool.enc, idx, cache.batch(pool.enc, idx)["logits"],
                                       pad_id=prep.pad_id, regression=regression, temperature=d.temperature,
                                       batch_size=d.train.eval_batch_size,
                                       kind=cfg.selector_credit))
        student.train()
        probe.start(student)
        rec = run_episode(
            stepper, student, tqdm(batches, desc=f"l2a {config.task} s{config.seed} ep{episode}",
                                   disable=not progress_enabled(), leave=False),
            states_of=states_of, kd_of=lambda idx: kd_of(pool.enc, idx)[:2],
            originals_of=originals_of, reward=probe, selector=selector,
            random_keep=None if keep_at is None else lambda idx, state: keep_at(
                episode, cache, pool.enc, idx, state[:, disagreement_column(spec.num_labels, regression)]),
            gen=gen, params=params, where=lambda step: f"episode {episode}, step {step}",
            credit_of=credit_of)
        log = {"episode": episode, **rec.summary()}
        if cfg.corrupt_share and augment:
            log.update(cache.keep_rates(pool.enc, batches, rec.actions))
        states = rec.all_states()
        with phase("selector"):
            if selector is not None:
                log.update(selector.update())
                keep_prob = selector.keep_prob(states)
                log.update(policy_profile(keep_prob, states, spec.num_labels, regression))
            else:
                keep_prob = torch.ones(len(states))
        with phase("generator", whole=True):
            if generator is not None and augment:
                log.update(generator_step(generator, pool, order, keep_prob, rng, cfg.generator_samples,
                                          epochs=cfg.generator_epochs or 1, dropout=False))
        full = evaluate(student, prep.dev, spec.kind, pad_id=prep.pad_id,
                        batch_size=d.train.eval_batch_size, bf16=d.train.bf16)
        log.update({"dev_" + k: v for k, v in full.items()})
        log.update({"dev_metric": full["pearson"] if regression else full["acc"],
                    "pool": len(pool.enc) if pool is not None else 0,
                    "source_inputs": pool.domain.count("source") if pool is not None else 0,
                    "sample_seconds": sample_seconds})
        return log

    if v2:
        for episode in range(first, cfg.episodes):
            te = time.time()
            log = episode_v2(episode)
            log["seconds"] = time.time() - te
            episodes.append(log)
            score_now = log["dev_metric"]
            reward_txt = ("" if log.get("reward") is None else
                          f", reward {log['reward']:+.4f} (signal/noise {log['reward_snr']:.1f})")
            keep_txt = "" if log.get("keep_rate") is None else f", keep rate {log['keep_rate']:.2f}"
            print(f"l2a {config.task} seed {config.seed} episode {episode + 1}/{cfg.episodes}: "
                  f"dev {'pearson' if regression else 'acc'} {score_now:.4f}{keep_txt}{reward_txt}, "
                  f"{log['seconds']:.0f}s", flush=True)
            best, best_state = score_now, None  # version 2 reports the last episode's student
            save_checkpoint(episode)
        first = cfg.episodes  # the loop below is version 1's
    for episode in range(first, cfg.episodes):
        te = time.time()
        fill = generator.provider(config.data.max_length) if generator is not None and episode else None
        with phase("augmentation sampling", whole=True):
            pool = sample_pool(ps, prep.task.train, prep.task.source, prep.task.train["label"],
                               spec.pair, n_target if cfg.source_share < 1.0 else 0, n_source, rng,
                               gen, config.data.max_length, fill)
        sample_seconds = time.time() - te
        cache.fill(pool.enc)
        edit_rate, lp_piece = pool.edit_rate(), pool.log_ps_per_piece()
        order = rng.permutation(len(pool.enc))
        rewards, kept, all_states = [], [], torch.zeros(0)
        bar = tqdm(range(steps_per_episode), desc=f"l2a {config.task} s{config.seed} ep{episode}",
                   disable=not progress_enabled(), leave=False)

        def batches():
            for step in bar:
                idx = order[step * d.train.batch_size:(step + 1) * d.train.batch_size]
                if len(idx) == 0:
                    return
                yield idx

        def loss_of(idx):
            nonlocal all_states
            # state: teacher and student outputs on the augmented batch
            b = collate(pool.enc, idx, prep.pad_id, regression)
            student.eval()
            with torch.no_grad(), autocast(d.train.bf16):
                s_logits = student(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits
            state = state_features(cache.batch(pool.enc, idx)["logits"].cpu(), s_logits.float().cpu(),
                                   edit_rate[idx], lp_piece[idx], regression)
            all_states = torch.cat([all_states, state]) if len(all_states) else state
            actions = selector.act(state, gen) if selector is not None else torch.ones(len(idx))
            keep = idx[actions.numpy() > 0.5]
            kept.append(float(actions.mean()))
            # L_KD on the kept samples and a few labelled originals (None: nothing to learn)
            student.train()
            loss = 0.0
            if len(keep):
                loss = loss + kd_of(pool.enc, keep)[0] * len(keep) / len(idx)
            if cfg.originals_per_step:
                orig = rng.choice(len(originals), size=min(cfg.originals_per_step, len(originals)),
                                  replace=False)
                loss = loss + kd_of(originals, orig)[0]
            return loss if torch.is_tensor(loss) else None

        def after_step(idx, loss):
            nonlocal score_now
            before, score_now = score_now, dev_score()
            r = reward(before, score_now)
            rewards.append(r)
            if selector is not None:
                selector.reward(r)

        run_steps(stepper, batches(), loss_of, after_step=after_step,
                  where=lambda step, episode=episode: f"episode {episode}, step {step}")
        with phase("selector"):
            policy_log = selector.update() if selector is not None else {}
            keep_prob = (selector.keep_prob(all_states) if selector is not None
                         else torch.ones(len(all_states)))
        with phase("generator", whole=True):
            gen_log = (generator_step(generator, pool, order, keep_prob, rng, cfg.generator_samples)
                       if generator is not None else {"generator_loss": None})
        if selector is not None:
            policy_log.update(policy_profile(keep_prob, all_states, spec.num_labels, regression))
        full = evaluate(student, prep.dev, spec.kind, pad_id=prep.pad_id,
                        batch_size=d.train.eval_batch_size, bf16=d.train.bf16)
        episodes.append({"episode": episode, "mean_reward": float(np.mean(rewards)),
                         "keep_rate": float(np.mean(kept)), "dev_metric": score_now, **full,
                         **gen_log, **policy_log,
                         "pool": len(pool.enc), "source_inputs": pool.domain.count("source"),
                         "sample_seconds": sample_seconds, "seconds": time.time() - te})
        print(f"l2a {config.task} seed {config.seed} episode {episode + 1}/{cfg.episodes}: "
              f"dev {'pearson' if regression else 'acc'} {score_now:.4f}, keep rate {np.mean(kept):.2f}, "
              f"{time.time() - te:.0f}s (sampling {sample_seconds:.0f}s)", flush=True)
        sel = selection_score(full, spec.dev_metric)
        if best is None or sel > best:
            best, best_state = sel, copy.deepcopy(student.state_dict())
        save_checkpoint(episode)

    if best_state is not None:
        student.load_state_dict(best_state)
    gallery = sample_gallery(ps, generator, selector, prep, cache, student, config)
    out = {"n_params": student.n_params(),
            "sizes": prep.task.sizes(), "episodes": episodes, "gallery": gallery,
            "teacher_forward_passes": cache.forward_passes, "unique_inputs": len(cache),
            "seconds": earlier["loop"] + time.time() - t0,
            "wall_seconds_before": earlier["wall"], "resumed_at_episode": earlier["resumed_at"],
            "mlm_top1": {k: v["top1"] for k, v in mlm_info["scores"].items()}}
    out["rows"] = score(student, prep, config, d.train, sink=out)
    return out
