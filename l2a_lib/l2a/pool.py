"""The augmented pool of an episode (sampled from P_s or G_theta) and the gallery of
samples that a run keeps for the book."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..encoding import Encoded, collate
from .selector import state_features
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
