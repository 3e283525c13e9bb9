"""What an encoder knows of a task before any fine-tuning: its frozen, mean-pooled
features and a linear model fitted on the run's training examples (multinomial logistic
regression; ridge regression for regression), with the L2 strength chosen on the dev
split. The page "Choosing the settings" reads it to ask whether a teacher that loses to
its student after fine-tuning knows less to begin with, or loses what it knows while
fine-tuning on a few noisy labels.

    from l2a_lib.frozen_probe import frozen_probe
    frozen_probe("reg")   # one row per encoder: the chosen strength, dev and test scores

The result is cached as JSON under ``<results>/probes/`` (a few minutes per task on one
core: the teacher encodes the test split once).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import metrics, paths
from .errors import MissingResults

SIX_LAYERS = (0, 1, 2, 3, 4, 5)
STRENGTHS = tuple(10.0 ** k for k in range(-2, 7))  # L2 penalty, log-spaced


def features(model, enc, pad_id: int) -> np.ndarray:
    """(N, H) mean-pooled last-layer features of ``model`` (a ``models.SequenceModel``)
    on the encoded split ``enc``: its head's input, in eval mode and float32."""
    from .l2a.credit import head_inputs
    from .train import predict
    with head_inputs(model.head) as seen:
        order = np.argsort([len(x) for x in enc.input_ids], kind="stable")
        predict(model, enc, pad_id=pad_id, bf16=False)
    h = torch.cat(seen).numpy()
    out = np.zeros_like(h)
    out[order] = h  # predict runs length-sorted batches
    return out


def fit_linear(x: np.ndarray, y: np.ndarray, regression: bool, strength: float):
    """A linear model on standardised features with an L2 penalty ``strength`` (times
    the mean loss's scale 1/N): ridge in closed form, or multinomial logistic regression
    by L-BFGS. Returns a function of features to predictions (values or logits)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = torch.tensor((x - mu) / sd, dtype=torch.float64)
    n, h = xs.shape
    if regression:
        yt = torch.tensor(y, dtype=torch.float64)
        a = torch.cat([xs, torch.ones(n, 1, dtype=torch.float64)], 1)
        reg = strength * torch.eye(h + 1, dtype=torch.float64)
        reg[-1, -1] = 0.0  # the intercept is not penalised
        w = torch.linalg.solve(a.T @ a + reg, a.T @ yt)
        return lambda z: (np.c_[(z - mu) / sd, np.ones(len(z))] @ w.numpy())[:, None]
    yt = torch.tensor(y.astype(int))
    classes = int(yt.max()) + 1
    w = torch.zeros(h, classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xs @ w + b, yt) + strength / n * 0.5 * (w ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    wn, bn = w.detach().numpy(), b.detach().numpy()
    return lambda z: ((z - mu) / sd) @ wn + bn


def probe_file(config, results_dir=None) -> Path:
    key = hashlib.sha256((config.hash() + paths.code_digest(__file__)).encode()).hexdigest()[:12]
    return paths.results_dir(results_dir) / "probes" / f"frozen-{config.task}-{key}.json"


def encoders(config) -> dict:
    """The encoders probed: the run's student, the same with all six layers of MiniLM-L6
    (the cpu profile's checkpoint), the teacher (None)."""
    six = ({"student, 6 layers": dataclasses.replace(config.model, student_layers=SIX_LAYERS)}
           if config.model.student == "all-MiniLM-L6-v2" else {})
    return {"student": config.model, **six, "teacher": None}


def frozen_probe(task: str, seed: int = 0, profile: str = "cpu", data_dir=None, results_dir=None,
                 allow_training: bool = True) -> pd.DataFrame:
    """One row per encoder (:func:`encoders`): parameters, the L2 strength chosen on dev,
    the dev and test scores on the task's headline metric (Pearson for regression)."""
    from . import models
    from .data import get_task
    from .profiles import make_config
    from .runs import Context, prepare
    from .tasks import HEADLINE_METRICS
    config = make_config(task, "student_ft", seed, profile=profile)
    path = probe_file(config, results_dir)
    if path.is_file():
        return pd.DataFrame(json.loads(path.read_text())["rows"])
    if not allow_training:
        raise MissingResults(f"the frozen-feature probe of {task} is not cached ({path.name}); "
                             f"compute it with python -m l2a_lib frozen-probe {task}")
    prep = prepare(config, Context(data_dir, results_dir))
    kind = get_task(task).kind
    regression = kind == "regression"
    metric = HEADLINE_METRICS.get(task, "pearson" if regression else "acc")
    rows = []
    for name, model_cfg in encoders(config).items():
        model = (models.build_teacher(config.model, 1, prep.tokenizer, seed=seed) if model_cfg is None
                 else models.build_student(model_cfg, 1, seed=seed))
        x = {s: features(model, getattr(prep, s), prep.pad_id) for s in ("train", "dev", "test")}
        y = {s: getattr(prep, s).labels for s in ("train", "dev", "test")}
        best = None
        for strength in STRENGTHS:
            predict = fit_linear(x["train"], y["train"], regression, strength)
            scores = {s: metrics.compute(kind, predict(x[s]), y[s]) for s in ("dev", "test")}
            if best is None or scores["dev"][metric] > best[1]["dev"][metric]:
                best = (strength, scores)
        rows.append({"task": task, "encoder": name, "parameters (M)": model.n_params() / 1e6,
                     "L2 strength": best[0], "metric": metric,
                     "dev": best[1]["dev"][metric], "test": best[1]["test"][metric]})
    path.parent.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_text(path, json.dumps({"config": config.hash(), "rows": rows}, indent=1) + "\n")
    return pd.DataFrame(rows)
