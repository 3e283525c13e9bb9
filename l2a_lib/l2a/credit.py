"""Per-sample credit for the selector: our extension of L2A, not the paper's (issue 34).

The paper's selector, and version 2's, learns from one reward per student step: the
change of a dev quantity after a step on all the samples it kept. Each of the step's
keep/drop decisions shares that reward, so a decision's own effect is a small part of
a noisy number, and on the real runs the reward is about as large as its noise
(``l2a.reward``). The toy of ``l2a.toy`` shows that a selector trained this way needs
60 to 180 episodes where the runs have 20.

Per-sample credit asks each sample directly, to first order: would a gradient step on
this sample's distillation loss raise the dev log-likelihood? For a step of size eta
on the loss l_n of sample n,

    l_dev(theta - eta g_n) - l_dev(theta) ~ -eta g_dev . g_n,

so ``c_n = g_dev . g_n`` (positive: the step helps the dev set). We take both
gradients with respect to the student's output layer only (weights W, bias b), where
they have a closed form from outputs the run computes anyway: with h the layer's
input and delta = dl/dz the gradient of the loss with respect to the logits z,

    g_n = delta_n [h_n; 1]^T,   g_dev = mean_d delta_d [h_d; 1]^T,
    c_n = delta_n^T (G_W h_n + G_b),   (G_W, G_b) = g_dev,

with delta_d = softmax(z_d) - onehot(y_d) (the dev log-likelihood; regression: z_d -
y_d) and delta_n the gradient of L_dark at the sample (soft cross-entropy at T:
T (softmax(z_n/T) - softmax(z^t_n/T)); regression: 2 (z_n - z^t_n) / C). L_att and
L_hidden act below the output layer and are not credited: the credit sees what the
teacher's target on the sample does to the dev predictions. It is known for every
sample, kept or dropped, so the selector's update needs no sampling: it raises the
keep probability of samples with positive credit and lowers the others': the
gradient of sum_n pi(s_n) c_n, the credits scaled by their root mean square over the
episode (``Selector.update`` with credits).

The calibrated credit (``l2a.selector_credit="calibrated"``). On the real runs the
credit above preferred the corrupted samples of ``l2a.corrupt``. Two parts of g_dev do
that. (1) The bias: every sample with a target of the class the dev set lacks gets
credit, whatever its input. (2) Overconfidence: a student partway through a run is
more confident than it is accurate, so the dev log-likelihood gains from any step that
makes it less sure, and a reversed target does exactly that. The calibrated credit
removes both: features centred at their dev mean with the bias term dropped, and the
dev logits divided by the temperature T* that minimises the dev negative
log-likelihood (temperature scaling), so that g_dev no longer asks for less
confidence. Regression is centred only. ``benchmarks/credit_separation.py`` measures
how well each credit tells the corrupted samples from the clean ones. On TC the
calibrated credit ranks clean above corrupted (AUC 0.60-0.77 over three student
states, where the plain credit's is 0.32-0.55). On PI it does not once the student is
trained: there the plain, centred and calibrated credits, with the dev or the test
set, prefer the corrupted samples (AUC 0.17-0.30 at episode 19 of a run). A
first-order change of the log-likelihood counts the held-out examples the student
gets wrong and almost ignores those it gets right with confidence (their gradient is
near zero), so a step that moves the boundary toward the few errors looks good even
when its target is wrong. Weighting every dev example the same (the limit of a very
high dev temperature, "centred, T=inf" in the benchmark) ranks the targets right in
every state measured: AUC 0.70-0.78 on TC, 0.74-0.83 on PI.

The equal-weight credit (``l2a.selector_credit="equal"``) is that limit: the dev
gradient of a student that predicts nothing (uniform probabilities; regression: the
mean label), with centred features and no bias. Every dev example then pulls the same,
toward its class's side of the features, and the credit of a sample is how far the
step its teacher target asks for moves the student's output layer along that pull. It
reads the student's dev features, not its dev predictions, so neither the student's
confidence nor its few errors steer it.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def head_inputs(head: nn.Module):
    """Collect the inputs of ``head`` (the output layer) during the forward passes run
    inside the block: yields a list that receives one (B, H) tensor per call."""
    seen: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach().float()))
    try:
        yield seen
    finally:
        handle.remove()


def dev_gradient(h: torch.Tensor, logits: torch.Tensor, labels, regression: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(G_W, G_b): the gradient of the mean dev negative log-likelihood with respect to
    the output layer's weight (C, H) and bias (C,), from its inputs ``h`` (N, H), its
    outputs ``logits`` (N, C) and the gold ``labels``."""
    z = logits.float()
    if regression:
        delta = z - torch.as_tensor(np.asarray(labels), dtype=torch.float32).reshape(z.shape)
    else:
        y = torch.as_tensor(np.asarray(labels).astype(int))
        delta = z.softmax(-1) - F.one_hot(y, z.shape[-1]).float()
    return delta.T @ h.float() / len(z), delta.mean(0)


def fit_temperature(logits: torch.Tensor, labels, grid: int = 200) -> float:
    """The temperature T* in [0.05, 20] (a log-spaced grid) that minimises the mean
    negative log-likelihood of ``labels`` under softmax(logits / T*)."""
    z, y = logits.float(), torch.as_tensor(np.asarray(labels).astype(int))
    temps = torch.logspace(np.log10(0.05), np.log10(20.0), grid)
    nll = torch.stack([F.cross_entropy(z / t, y) for t in temps])
    return float(temps[int(nll.argmin())])


def calibrated_dev_gradient(h: torch.Tensor, logits: torch.Tensor, labels, regression: bool
                            ) -> tuple[torch.Tensor, None, torch.Tensor]:
    """(G_W, None, m): the dev gradient of the calibrated credit (see the module) for
    the features centred at their dev mean ``m``, at the temperature of
    :func:`fit_temperature` (classification); no bias term."""
    m = h.float().mean(0)
    t = 1.0 if regression else fit_temperature(logits, labels)
    return dev_gradient(h.float() - m, logits.float() / t, labels, regression)[0] / t, None, m


def equal_dev_gradient(h: torch.Tensor, logits: torch.Tensor, labels, regression: bool
                       ) -> tuple[torch.Tensor, None, torch.Tensor]:
    """(G_W, None, m): the dev gradient of the equal-weight credit (see the module): the
    gradient of the dev negative log-likelihood of a student that predicts nothing
    (uniform probabilities; regression: the dev labels' mean), so every dev example
    weighs the same: delta_d = 1/C - onehot(y_d) (regression: mean(y) - y_d), features
    centred at their dev mean ``m``, no bias. ``logits`` are not read: the credit
    depends on the student through its features only."""
    hc = h.float() - h.float().mean(0)
    if regression:
        y = torch.as_tensor(np.asarray(labels), dtype=torch.float32).reshape(len(hc), -1)
        delta = y.mean(0) - y
    else:
        y = torch.as_tensor(np.asarray(labels).astype(int))
        onehot = F.one_hot(y, logits.shape[-1]).float()
        delta = 1.0 / logits.shape[-1] - onehot
    return delta.T @ hc / len(hc), None, h.float().mean(0)


# l2a.selector_credit -> the dev gradient its credit uses
DEV_GRADIENTS = {True: dev_gradient, "calibrated": calibrated_dev_gradient,
                 "equal": equal_dev_gradient}


def dark_delta(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
               regression: bool) -> torch.Tensor:
    """dL_dark/dz for each sample (N, C): the per-sample gradient of ``kd.dark_loss``
    (soft cross-entropy at T with the T^2 scale; the squared difference for regression)."""
    z, t = logits.float(), teacher_logits.float()
    if regression:
        return 2.0 * (z - t) / z.shape[-1]
    return temperature * ((z / temperature).softmax(-1) - (t / temperature).softmax(-1))


def sample_credit(h: torch.Tensor, logits: torch.Tensor, teacher_logits: torch.Tensor,
                  grad: tuple, temperature: float = 1.0, regression: bool = False) -> np.ndarray:
    """c_n = delta_n^T (G_W h_n + G_b) for each sample (see the module): > 0 where a step
    on the sample's L_dark would raise the dev log-likelihood, to first order. ``grad``:
    (G_W, G_b) of :func:`dev_gradient`, or (G_W, None, m) of :func:`calibrated_dev_gradient`
    (then c_n = delta_n^T G_W (h_n - m))."""
    g_w, g_b, *centre = grad
    delta = dark_delta(logits, teacher_logits, temperature, regression)
    h = h.float() - centre[0] if centre else h.float()
    return (delta * (h @ g_w.T + (0.0 if g_b is None else g_b))).sum(-1).double().numpy()


@torch.no_grad()
def student_credit(model, dev, pool, idx, teacher_logits: torch.Tensor, *, pad_id: int,
                   regression: bool, temperature: float = 1.0, batch_size: int = 64,
                   kind: bool | str = True) -> np.ndarray:
    """The per-sample credits of the pool's samples ``idx`` for a ``models.SequenceModel``
    student (its output layer is ``model.head``), in float32 and eval mode: one pass over
    the dev set (``dev``: an ``Encoded`` with gold labels) for (G_W, G_b), one over the
    samples. ``teacher_logits``: the teacher's logits on ``idx`` (N, C); ``kind``: which
    credit (``l2a.selector_credit``: True, "calibrated" or "equal"; see the module)."""
    from ..device import on_device
    from ..encoding import collate

    def run(enc, rows):
        b = on_device(collate(enc, rows, pad_id, regression))
        return model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits.float().cpu()

    was_training = model.training
    model.eval()
    try:
        with head_inputs(model.head) as seen:
            dev_logits = torch.cat([run(dev, np.arange(i, min(i + batch_size, len(dev))))
                                    for i in range(0, len(dev), batch_size)])
            h_dev = torch.cat(seen).cpu()
            seen.clear()
            logits = run(pool, idx)
            h = seen[0].cpu()
    finally:
        model.train(was_training)
    grad = DEV_GRADIENTS[kind](h_dev, dev_logits, dev.labels, regression)
    return sample_credit(h, logits, teacher_logits.float().cpu(), grad, temperature, regression)
