"""Analysis: does a per-sample credit tell wrong teacher targets from right ones?

The probe of ``l2a.corrupt`` reverses the teacher's logits on half of the samples. A
selector can only learn to drop those if its learning signal ranks them below the
clean ones. This script measures that ranking directly, without training a selector:
for a student in a given state it computes each credit of ``l2a.credit`` on real
sentences of a task (source-domain sentences and the target's labelled originals),
half of them with reversed teacher logits, and prints the AUC of clean against
corrupted (1: every clean sample scores above every corrupted one; 0.5: no ranking;
below 0.5: the credit prefers the corrupted ones). "AUC, teacher right" is the same
over the samples whose gold label the teacher answers (reversing a wrong answer does
not make a wrong target).

Credits compared:
  plain        the credit of ``selector_credit=True`` (g_dev . g_n at the output layer)
  bias only    its bias part alone (a class-prior effect: depends on which class the
               dev set lacks, not on the input)
  centred      features centred at the dev mean, bias left out, no temperature
  calibrated   ``selector_credit="calibrated"``: centred, and the dev logits at the
               temperature T* that minimises the dev NLL
  centred, T=inf  the limit of a very high dev temperature: every dev example weighs
               the same, however confident the student is on it (analysis only; not
               a selector's credit yet)

Student states: ``fresh`` (the pretrained student with a new head), ``fine-tuned``
(after ``--epochs`` epochs on the labelled originals with the task loss, as
Student-FT: confident on few examples, like a student partway through a run), and
``checkpoint`` (the student of an L2A episode checkpoint, ``--checkpoint``
``<results>/.checkpoints/<hash>/state.pt``; a run keeps one only until it finishes).
The gradient g_dev is taken on the dev set (as the runs do) and, to see whether the
dev set's size matters, on the test set (analysis only: no run selects on it).

    python benchmarks/credit_separation.py [--task tc] [--seed 0] [--epochs 10]
        [--checkpoint PATH] [--out benchmarks/credit_separation.json]

The committed outputs: ``credit_separation.json`` (TC seed 0, with the checkpoint of
episode 5 of ``l2a_wo_att``) and ``credit_separation_pi.json`` (PI seed 4,
``--epochs 0``, with the checkpoint of episode 19 of ``l2a``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from l2a_lib import models
from l2a_lib.encoding import collate, encode
from l2a_lib.l2a.credit import (calibrated_dev_gradient, dark_delta, dev_gradient, fit_temperature,
                                head_inputs)
from l2a_lib.profiles import make_config
from l2a_lib.runs import Context, prepare
from l2a_lib.teacher import get_teacher
from l2a_lib.train import fine_tune


def outputs(model, enc, pad_id: int, regression: bool, batch_size: int = 64):
    """(logits, inputs of the output layer) over ``enc``, eval mode, float32."""
    model.eval()
    logits, h = [], []
    with torch.no_grad(), head_inputs(model.head) as seen:
        for i in range(0, len(enc), batch_size):
            b = collate(enc, np.arange(i, min(i + batch_size, len(enc))), pad_id, regression)
            logits.append(model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits.float())
        h = torch.cat(seen)
    return torch.cat(logits), h


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a clean sample's credit > a corrupted one's), ties counted half."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def credits(h, z, t, held_out, regression: bool) -> dict[str, np.ndarray]:
    """Each credit of the module docstring for samples (h, z) with teacher logits t."""
    zd, hd, y = held_out
    delta = dark_delta(z, t, 1.0, regression)
    g_w, g_b = dev_gradient(hd, zd, y, regression)
    m = hd.mean(0)
    g_c = dev_gradient(hd - m, zd, y, regression)[0]
    g_cal, _, _ = calibrated_dev_gradient(hd, zd, y, regression)
    # the limit T -> infinity of the calibrated credit's temperature (up to a scale):
    # every dev example weighs the same, however confident the student is on it
    onehot = torch.nn.functional.one_hot(torch.as_tensor(np.asarray(y).astype(int)), zd.shape[-1]).float()
    g_inf = (1.0 / zd.shape[-1] - onehot).T @ (hd - m) / len(hd)
    out = {"plain": delta * (h @ g_w.T + g_b), "bias only": delta * g_b,
           "centred": delta * ((h - m) @ g_c.T), "calibrated": delta * ((h - m) @ g_cal.T),
           "centred, T=inf": delta * ((h - m) @ g_inf.T)}
    return {k: v.sum(-1).double().numpy() for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="tc", choices=("tc", "pi", "nli"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10,
                    help="fine-tuning epochs of the fine-tuned state (0: no such state)")
    ap.add_argument("--samples", type=int, default=400, help="source-domain sentences scored")
    ap.add_argument("--checkpoint", type=Path, help="an L2A episode checkpoint's state.pt")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("credit_separation.json"))
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    cfg = make_config(args.task, "l2a_credit_cal_corrupted" if args.task == "tc" else "l2a",
                      args.seed, profile="cpu", version=2)
    ctx = Context()
    prep = prepare(cfg, ctx)
    regression = prep.task.spec.kind == "regression"
    teacher, _ = get_teacher(cfg, ctx, prep)
    frame = pd.concat([prep.task.source.sample(min(args.samples, len(prep.task.source)),
                                               random_state=args.seed), prep.task.train])
    enc = encode(frame, prep.tokenizer, cfg.data.max_length)
    t, _ = outputs(teacher, enc, prep.pad_id, regression)
    # where the teacher's own answer is right (source and originals carry gold labels):
    # reversing a wrong answer does not make a wrong target
    right = t.argmax(-1).numpy() == frame["label"].to_numpy()
    print(f"the teacher is right on {right.mean():.2f} of the {len(t)} scored samples")
    flags = np.random.default_rng(args.seed).random(len(t)) < 0.5  # as l2a.corrupt: half
    t[flags] = t[flags].flip(-1)
    del teacher

    student = models.build_student(cfg.model, prep.task.spec.num_labels, seed=args.seed)
    states = {"fresh": {k: v.clone() for k, v in student.state_dict().items()}}
    if args.epochs:
        train_cfg = dataclasses.replace(cfg.student_train, epochs=args.epochs, patience=args.epochs)
        fine_tune(student, prep.train, prep.dev, prep.task.spec.kind, train_cfg, seed=args.seed,
                  pad_id=prep.pad_id, dev_metric="pearson" if regression else "acc", desc="fine-tune")
        states["fine-tuned"] = {k: v.clone() for k, v in student.state_dict().items()}
    if args.checkpoint:
        saved = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        states[f"checkpoint (episode {saved['episode']})"] = saved["student"]

    rows = []
    for state, weights in states.items():
        student.load_state_dict(weights)
        z, h = outputs(student, enc, prep.pad_id, regression)
        for split in ("dev", "test"):
            enc_ho = getattr(prep, split)
            zd, hd = outputs(student, enc_ho, prep.pad_id, regression)
            acc = float((zd.argmax(-1).numpy() == enc_ho.labels).mean())
            base = {"state": state, "held out": split, "held-out acc": acc,
                    "confidence": float(zd.softmax(-1).max(-1).values.mean()),
                    "T*": fit_temperature(zd, enc_ho.labels)}
            for name, c in credits(h, z, t, (zd, hd, enc_ho.labels), regression).items():
                rows.append({**base, "credit": name, "AUC clean > corrupted": auc(c[~flags], c[flags]),
                             "AUC, teacher right": auc(c[~flags & right], c[flags & right]),
                             "share > 0, clean": float((c[~flags] > 0).mean()),
                             "share > 0, corrupted": float((c[flags] > 0).mean())})
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 2):
        print(df.to_string(index=False))
    args.out.write_text(json.dumps({"task": args.task, "seed": args.seed, "epochs": args.epochs,
                                    "samples": int(len(t)), "teacher_right": float(right.mean()),
                                    "rows": rows}, indent=1))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
