"""Benchmark: teacher forward passes and the cost of a distillation epoch.

Prints, for text classification (seed 0, cpu profile, EDA pool of ~1,600 inputs):
  * teacher forward passes after E distillation epochs vs the number of unique inputs;
  * the wall time of one L_KD distillation epoch (teacher outputs from the cache)
    against one plain fine-tuning epoch of the same student on the same inputs,
    measured side by side in this run (ratios hold on a noisy machine; seconds drift).
Writes the figures into benchmarks/results.json (merged with what is there).

    python benchmarks/distill_bench.py [--epochs 3] [--task tc]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from l2a_lib.l2a import kd
from l2a_lib import losses, models
from l2a_lib.profiles import make_config
from l2a_lib.runs import Context, prepare
from l2a_lib.teacher import get_teacher
from l2a_lib.methods import augmented_pool, last_layer_needs
from l2a_lib.l2a.kd import projection as _projection, last_layer_kd
from l2a_lib.teacher import TeacherCache
from l2a_lib.train import autocast, task_loss
from l2a_lib.encoding import collate, encode

OUT = Path(__file__).resolve().parent / "results.json"


def epoch(student, enc, pad_id, batch_size, loss_fn, params, bf16=True) -> float:
    opt = torch.optim.AdamW(params, lr=1e-5)
    perm = np.random.default_rng(0).permutation(len(enc))
    t0 = time.perf_counter()
    student.train()
    for s in range(0, len(perm), batch_size):
        idx = perm[s:s + batch_size]
        b = collate(enc, idx, pad_id, False)
        with autocast(bf16):
            loss = loss_fn(b, idx)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def measure(task: str = "tc", epochs: int = 3) -> dict:
    """The distillation figures (see the module docstring)."""
    torch.manual_seed(0)
    config = make_config(task, "eda", seed=0)
    ctx = Context()
    prep = prepare(config, ctx)
    teacher, _ = get_teacher(config, ctx, prep)
    data, info = augmented_pool(config, ctx, prep)
    enc = encode(data, prep.tokenizer, config.data.max_length)
    spec = prep.task.spec
    L = teacher.encoder.config.num_hidden_layers
    cache = TeacherCache(teacher, last_layer_needs(teacher), prep.pad_id)
    t0 = time.perf_counter()
    cache.fill(enc)
    fill_seconds = time.perf_counter() - t0
    unique = len({cache.key(enc, i) for i in range(len(enc))})

    kd_student = models.build_student(config.model, spec.num_labels)
    W = _projection(kd_student, teacher, 0)
    terms = kd.KDTerms()

    def kd(b, idx):
        s = kd_student(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_hidden=True)
        return last_layer_kd(s, cache.batch(enc, idx), L, W, b["attention_mask"], terms, False)

    ft_student = models.build_student(config.model, spec.num_labels)

    def ft(b, idx):
        out = ft_student(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        return task_loss(out.logits, b["labels"], False)

    bs = config.distill.train.batch_size
    kd_times, ft_times = [], []
    for _ in range(epochs):  # interleaved, so drift hits both alike
        kd_times.append(epoch(kd_student, enc, prep.pad_id, bs, kd, list(kd_student.parameters()) + [W]))
        ft_times.append(epoch(ft_student, enc, prep.pad_id, bs, ft, list(ft_student.parameters())))
    return {
        "task": task, "inputs": len(enc), "unique_inputs": unique, "epochs": epochs,
        "teacher_forward_passes": cache.forward_passes,
        "teacher_forward_passes_over_unique_inputs": cache.forward_passes / unique,
        "teacher_fill_seconds": round(fill_seconds, 2),
        "distill_epoch_seconds": round(float(np.median(kd_times)), 2),
        "student_epoch_seconds": round(float(np.median(ft_times)), 2),
        "distill_epoch_over_student_epoch": round(float(np.median(kd_times) / np.median(ft_times)), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="tc")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    figures = measure(args.task, args.epochs)
    for k, v in figures.items():
        print(f"{k:45s} {v}")
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results.update({k: v for k, v in figures.items() if k != "task"})
    results["distill_bench_measured"] = {"date": dt.date.today().isoformat(),
                                         "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
                                         "command": "python benchmarks/distill_bench.py"}
    OUT.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
