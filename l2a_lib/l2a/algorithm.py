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
        update the generator with the L2A loss, weighting samples by the
            selector's keep probability
        log the episode: reward, keep rate, dev metric
        save a checkpoint (a run cut off resumes here: ``checkpoint``)
    restore the student of the best dev metric

Sentence pairs are augmented side by side: each side is sampled from P_s on its
own and the two sides are zipped (log P_s and d add up).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time

import numpy as np
import torch
from tqdm.std import tqdm

from .. import mlm, models
from ..checkpoint import EpisodeCheckpoint, rng_state, set_rng_state
from ..config import ExperimentConfig
from ..encoding import Encoded, collate
from ..ledger import phase
from ..runs import prepare, score
from ..teacher import TeacherCache, TeacherNeeds, get_teacher
from ..train import (Stepper, autocast, evaluate, linear_warmup, progress_enabled, run_steps,
                     selection_score)
from .generator import Generator
from .kd import KDTerms, last_layer_kd, projection
from .selector import Policy, Selector, n_features, policy_profile, reward, state_features
from .static import Sample, StaticDistribution


@dataclasses.dataclass
class Augmented:
    """A pool of augmented inputs with what the selector and generator need."""
    enc: Encoded
    samples: list[list[Sample]]  # per input: its side samples (1, or 2 for pairs)
    domain: list[str]            # "target" / "source"

    def edit_rate(self) -> torch.Tensor:
        return torch.tensor([sum(s.distance for s in ss) / max(1, sum(len(s.input_ids) - 2 for s in ss))
                             for ss in self.samples])

    def log_ps_per_piece(self) -> torch.Tensor:
        return torch.tensor([sum(s.log_ps for s in ss) / max(1, sum(s.distance for s in ss))
                             for ss in self.samples])


def _sides(df, pair: bool):
    return [df["text_a"].tolist()] + ([df["text_b"].tolist()] if pair else [])


def sample_pool(ps: StaticDistribution, target_df, source_df, labels_target, pair: bool, n_target: int,
                n_source: int, rng: np.random.Generator, gen: torch.Generator, max_length: int,
                fill_provider=None) -> Augmented:
    """``n_target`` samples of each target sentence and one sample each of
    ``n_source`` random source sentences. Source samples get label 0 (the KD loss
    never reads them: the teacher labels every augmented input)."""
    parts = []
    if n_target:
        parts.append((target_df, n_target, "target", np.asarray(labels_target)))
    if n_source:
        pick = rng.choice(len(source_df), size=min(n_source, len(source_df)), replace=False)
        parts.append((source_df.iloc[pick], 1, "source", np.zeros(len(pick))))
    ids, types, labels, samples, domain = [], [], [], [], []
    for df, n, name, lab in parts:
        side_samples = [ps.sample(texts, n, rng, gen, fill_provider) for texts in _sides(df, pair)]
        for k in range(len(side_samples[0])):
            ss = [side[k] for side in side_samples]
            a = ss[0].input_ids
            if pair:
                b = ss[1].input_ids[1:]
                x, t = (a + b)[:max_length], ([0] * len(a) + [1] * len(b))[:max_length]
                if x[-1] != ps.tokenizer.sep_token_id:
                    x[-1] = ps.tokenizer.sep_token_id
            else:
                x, t = a, [0] * len(a)
            ids.append(x)
            types.append(t)
            labels.append(lab[ss[0].source_index])
            samples.append(ss)
            domain.append(name)
    return Augmented(Encoded(ids, types, np.asarray(labels)), samples, domain)


def run_l2a(config: ExperimentConfig, ctx) -> dict:
    cfg, d = config.l2a, config.distill
    t_start = time.time()
    prep = prepare(config, ctx)
    spec, tok = prep.task.spec, prep.tokenizer
    regression = spec.kind == "regression"
    teacher, _ = get_teacher(config, ctx, prep)
    with phase("loading weights", whole=True):
        mlm_model, mlm_info, mcfg = mlm.for_run(config, ctx, tok)
    provider = mlm.MaskedLMProvider(mlm_model, tok, max_length=config.data.max_length, bf16=mcfg.bf16)
    ps = StaticDistribution(provider, cfg.alpha, cfg.temperature, max_length=config.data.max_length)
    generator = (Generator(mlm_model, tok, lr=cfg.generator_lr, bf16=mcfg.bf16,
                           anchor=cfg.generator_anchor) if cfg.generator else None)
    selector = (Selector(Policy(n_features(spec.num_labels, regression)), lr=cfg.selector_lr,
                         gamma=cfg.gamma) if cfg.selector else None)
    student = models.build_student(config.model, spec.num_labels, seed=config.seed, cache=ctx.cache_dir)
    W = projection(student, teacher, config.seed)
    L = teacher.encoder.config.num_hidden_layers
    cache = TeacherCache(teacher, TeacherNeeds.last_layer(teacher), prep.pad_id, bf16=d.train.bf16)
    terms = KDTerms(att=d.att, hidden=d.hidden, dark=d.dark, temperature=d.temperature)
    originals = prep.train

    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    n_source = int(round(cfg.pool_size * cfg.source_share))
    n_target = (cfg.pool_size - n_source) // len(prep.task.train)
    if cfg.source_share < 1.0:
        n_target = max(1, n_target)
    steps_per_episode = math.ceil((n_target * len(prep.task.train) + n_source) / d.train.batch_size)
    total_steps = steps_per_episode * cfg.episodes
    params = list(student.parameters()) + [W]
    optimizer = torch.optim.AdamW(params, lr=d.train.lr, weight_decay=d.train.weight_decay)
    stepper = Stepper(optimizer, params=params, max_grad_norm=d.train.max_grad_norm,
                      scheduler=linear_warmup(optimizer, max(1, int(d.train.warmup_ratio * total_steps)),
                                              total_steps),
                      what=f"L2A {config.task} s{config.seed}")
    scheduler = stepper.scheduler

    def kd_loss(enc: Encoded, idx) -> torch.Tensor:
        b = collate(enc, idx, prep.pad_id, regression)
        with autocast(d.train.bf16):
            s = student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        return last_layer_kd(s, cache.batch(enc, idx), L, W, b["attention_mask"], terms, regression)

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
        episodes, best, best_state = state["log"], state["best"], state["best_state"]
        score_now, first = state["score_now"], state["episode"]
        earlier = {"wall": state["seconds"], "loop": state["loop_seconds"],
                  "resumed_at": state["resumed_at"] + [first]}
        set_rng_state(state["rng"], rng, gen)
        ctx.teacher_used = state["teacher_used"]  # the teacher may have been fine-tuned in piece 1
        print(f"l2a {config.task} seed {config.seed}: resumed after episode {first}/{cfg.episodes} "
              "from its checkpoint", flush=True)
    saved = len(cache) if resumed is not None else 0  # teacher outputs already in a checkpoint
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
                loss = loss + kd_loss(pool.enc, keep) * len(keep) / len(idx)
            if cfg.originals_per_step:
                orig = rng.choice(len(originals), size=min(cfg.originals_per_step, len(originals)),
                                  replace=False)
                loss = loss + kd_loss(originals, orig)
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
        if episode + 1 < cfg.episodes:
            ckpt.save({
                "episode": episode + 1, "episodes": cfg.episodes, "log": episodes,
                "student": student.state_dict(), "W": W.detach(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "selector": selector.state_dict() if selector is not None else None,
                "generator": generator.state_dict() if generator is not None else None,
                "best": best, "best_state": best_state,
                "score_now": score_now, "forward_passes": cache.forward_passes,
                "rng": rng_state(rng, gen), "resumed_at": earlier["resumed_at"],
                "teacher_used": ctx.teacher_used,
                "seconds": earlier["wall"] + time.time() - t_start,
                "loop_seconds": earlier["loop"] + time.time() - t0}, cache.entries(saved), episode)
            saved = len(cache)
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


def generator_step(generator: Generator, pool: Augmented, order, keep_prob, rng,
                    limit: int) -> dict[str, float]:
    """L2A loss over (a random subset of ``limit``) samples the selector judged this
    episode, weighted by their keep probability."""
    picked = rng.permutation(len(keep_prob))[:limit]
    samples, weights = [], []
    for pos in sorted(picked.tolist()):
        for s in pool.samples[order[pos]]:
            samples.append(s)
            weights.append(float(keep_prob[pos]))
    return generator.update(samples, weights, rng)


def sample_gallery(ps: StaticDistribution, generator, selector, prep, cache, student, config,
             n_sentences: int = 4, n_samples: int = 3) -> list[dict]:
    """Samples of real target sentences from P_s and from the trained G_theta, with
    d, positions, log P_s and the final selector's keep probability."""
    df = prep.task.train.head(n_sentences)
    texts = df["text_a"].tolist()
    rows = []
    rng = np.random.default_rng(config.seed + 99)
    gen = torch.Generator().manual_seed(config.seed + 99)
    sources = [("P_s (static masked LM)", None)]
    if generator is not None:
        sources.append(("G_theta (trained)", generator.provider(config.data.max_length)))
    for name, fill in sources:
        samples = ps.sample(texts, n_samples, rng, gen, fill)
        enc = Encoded([s.input_ids for s in samples], [[0] * len(s.input_ids) for s in samples],
                      np.zeros(len(samples)))
        keep = [None] * len(samples)
        if selector is not None and not prep.task.spec.pair:
            cache.fill(enc)
            b = collate(enc, range(len(samples)), prep.pad_id, prep.task.spec.kind == "regression")
            with torch.no_grad():
                s_logits = student.eval()(b["input_ids"], b["attention_mask"],
                                          b["token_type_ids"]).logits.float().cpu()
            aug = Augmented(enc, [[s] for s in samples], ["target"] * len(samples))
            state = state_features(cache.batch(enc, range(len(samples)))["logits"].cpu(), s_logits,
                                   aug.edit_rate(), aug.log_ps_per_piece(),
                                   prep.task.spec.kind == "regression")
            keep = selector.keep_prob(state).tolist()
        for s, k in zip(samples, keep):
            rows.append({"from": name, "original": texts[s.source_index], "sample": ps.decode(s),
                         "d": s.distance, "positions": s.positions, "log_ps": round(s.log_ps, 2),
                         "keep_prob": None if k is None else round(k, 3)})
    return rows
