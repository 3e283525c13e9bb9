"""The benchmark command: every performance figure of the book, measured side by side.

    python benchmarks/run.py                       # everything (about 20-30 minutes)
    python benchmarks/run.py --only augment peak   # some sections
    python benchmarks/run.py --nlpaug-sentences 200  # a quicker nlpaug side

Sections (each prints its figures; all are merged into benchmarks/results.json
with the date, the machine and the command):

* augment    L2A's P_s sampler against nlpaug's ContextualWordEmbsAug (substitute)
             on the same masked-LM weights and the same real target sentences
             (RT test sentences): sentences per second, and the ratio. nlpaug
             loads the masked LM through ``l2a_lib.mlm.export_fill_mask`` (a
             standard ``MPNetForMaskedLM`` checkpoint), as it would any hub model.
* distill    teacher forward passes over unique inputs; a distillation epoch over a
             plain student fine-tuning epoch (``distill_bench.py``).
* precision  bf16 autocast against fp32: teacher inference and training speed, and
             the largest logit difference.
* peak       the machine's fp32 / bf16 matmul peak (GFLOP/s) and the achieved GFLOP/s
             of teacher inference (FLOPs counted from the model's shapes).
* processor  bf16 against fp32 on this processor, kept per processor model in
             ``by_processor`` (the other sections keep one machine's figures): the
             matmul peaks and the speed-up of teacher inference. The cpu profile trains
             with bf16 autocast, which is 3x faster on one processor here and slower
             than fp32 on another; where the processor has no native bf16 at all
             (AVX2 only) the runs compute in fp32 (``l2a_lib.train.bf16_in_use``), but
             this command measures bf16 as bf16 (``L2A_BF16=on``).
* jobs       what two jobs at a time buy (``--set-threads run=1`` on two cores): a
             student training step alone with every core against two processes at
             once with the cores split between them.
* end_to_end the smoke workflow's wall time (run here), and per page of the cpu
             profile the recorded run hours and page execution seconds.

Absolute times drift on a shared machine; ratios measured in the same run hold.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "results.json"
sys.path.insert(0, str(HERE))


def _rt_sentences(n: int) -> list[str]:
    from l2a_lib import data
    test = data.load_task("tc", seed=0).test
    return test["text_a"].tolist()[:n]


def _masked_lm():
    from l2a_lib import mlm, models, paths
    from l2a_lib.config import ModelConfig
    from l2a_lib.profiles import make_config
    tok = models.load_tokenizer(ModelConfig())
    cfg = mlm.MLMConfig(steps=make_config("tc", "l2a").mlm_steps)
    model, info = mlm.train(cfg, tok, published=paths.results_dir() / "mlm")  # the committed one
    return model, tok, info


# ------------------------------------------------------------------ augment
def bench_augment(n: int, n_nlpaug: int) -> dict:
    import nlpaug.augmenter.word as naw

    from l2a_lib import mlm, mlm_export
    from l2a_lib.config import L2AConfig
    from l2a_lib.l2a import static
    texts = _rt_sentences(n)
    model, tok, _ = _masked_lm()
    alpha = L2AConfig().alpha
    out = {"augment_sentences": len(texts)}
    for bf16 in (True, False):
        ps = static.StaticDistribution(mlm.MaskedLMProvider(model, tok, bf16=bf16), alpha=alpha)
        ps.sample(texts[:32], 1, np.random.default_rng(0), torch.Generator().manual_seed(0))  # warm-up
        t0 = time.perf_counter()
        samples = ps.sample(texts, 1, np.random.default_rng(0), torch.Generator().manual_seed(0))
        sec = time.perf_counter() - t0
        key = "bf16" if bf16 else "fp32"
        out[f"l2a_ps_sentences_per_second_{key}"] = round(len(texts) / sec, 2)
        out[f"l2a_ps_edit_rate_{key}"] = round(float(np.mean(
            [s.distance / max(1, sum(t >= mlm.FIRST_WORD_ID for t in s.input_ids)) for s in samples])), 4)
        print(f"  P_s ({key}): {len(texts)} sentences in {sec:.1f}s", flush=True)
    from l2a_lib.augment.nlpaug_ctx import compat
    compat()
    with tempfile.TemporaryDirectory() as tmp:
        mlm_export.export_fill_mask(model, tmp)
        aug = naw.ContextualWordEmbsAug(model_path=tmp, model_type="bert", action="substitute",
                                        aug_p=0.15, device="cpu", batch_size=32)
        sub = texts[:n_nlpaug]
        aug.augment(sub[:4])  # warm-up
        t0 = time.perf_counter()
        outs = aug.augment(sub)
        sec = time.perf_counter() - t0
    print(f"  nlpaug ContextualWordEmbsAug: {len(sub)} sentences in {sec:.1f}s", flush=True)
    out["nlpaug_sentences"] = len(sub)
    out["nlpaug_sentences_per_second"] = round(len(sub) / sec, 2)
    out["nlpaug_changed_share"] = round(float(np.mean([a != b for a, b in zip(outs, sub)])), 3)
    out["augment_speedup_vs_nlpaug"] = round(out["l2a_ps_sentences_per_second_bf16"]
                                             / out["nlpaug_sentences_per_second"], 2)
    out["augment_speedup_vs_nlpaug_fp32"] = round(out["l2a_ps_sentences_per_second_fp32"]
                                                  / out["nlpaug_sentences_per_second"], 2)
    return out


# ------------------------------------------------------------ precision / peak
def _teacher_and_batches(n_sent: int = 256, batch: int = 32):
    from l2a_lib.profiles import make_config
    from l2a_lib.runs import Context, prepare
    from l2a_lib.teacher import get_teacher
    from l2a_lib.encoding import collate, encode
    config = make_config("tc", "teacher_ft", seed=0)
    ctx = Context()
    prep = prepare(config, ctx)
    teacher, _ = get_teacher(config, ctx, prep)
    enc = encode(prep.task.test.iloc[:n_sent], prep.tokenizer, config.data.max_length)
    order = np.argsort([len(x) for x in enc.input_ids], kind="stable")
    batches = [collate(enc, order[i:i + batch], prep.pad_id, False) for i in range(0, len(order), batch)]
    return teacher.eval(), batches


def _infer(model, batches, bf16: bool):
    from l2a_lib.train import autocast
    outs = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            with autocast(bf16):
                outs.append(model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits.float())
    return time.perf_counter() - t0, torch.cat(outs)


def _train_steps(model, batches, bf16: bool, steps: int = 4) -> float:
    from l2a_lib.train import autocast, task_loss
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # timing only: weights stay as they are
    t0 = time.perf_counter()
    for b in batches[:steps]:
        with autocast(bf16):
            loss = task_loss(model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits,
                             b["labels"], False)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    return (time.perf_counter() - t0) / steps


def bench_precision() -> dict:
    teacher, batches = _teacher_and_batches()
    _infer(teacher, batches[:1], True), _infer(teacher, batches[:1], False)  # warm-up
    t32, l32 = _infer(teacher, batches, False)
    t16, l16 = _infer(teacher, batches, True)
    tr32 = _train_steps(teacher, batches[-4:], False)
    tr16 = _train_steps(teacher, batches[-4:], True)
    agree = float((l32.argmax(-1) == l16.argmax(-1)).float().mean())
    return {"teacher_inference_seconds_fp32": round(t32, 2), "teacher_inference_seconds_bf16": round(t16, 2),
            "bf16_speedup_teacher_inference": round(t32 / t16, 2),
            "teacher_train_step_seconds_fp32": round(tr32, 2), "teacher_train_step_seconds_bf16": round(tr16, 2),
            "bf16_speedup_teacher_training": round(tr32 / tr16, 2),
            "bf16_max_abs_logit_difference": round(float((l32 - l16).abs().max()), 4),
            "bf16_prediction_agreement": round(agree, 4)}


def matmul_peak(dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """GFLOP/s of an n x n x n matmul, the best of repeated timings."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def encoder_flops(config, batch_tokens: list[tuple[int, int]], num_labels: int = 2) -> float:
    """Forward FLOPs of a BERT-style encoder for batches of (B, T) padded shapes:
    per layer 8TH^2 (Q, K, V, O) + 4TH F (FFN) + 4T^2 H (scores, weighted sum),
    per sequence; multiply-adds count 2."""
    H, F, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for B, T in batch_tokens:
        per_layer = 8 * T * H * H + 4 * T * H * F + 4 * T * T * H
        total += B * (L * per_layer + 2 * H * num_labels)
    return total


def _inference_and_peaks(n_sent: int = 256):
    """Teacher inference seconds in bf16 and fp32 (best of two, after a warm-up) and the
    fp32 / bf16 matmul peaks: (teacher, batches, t16, t32, peak32, peak16)."""
    teacher, batches = _teacher_and_batches(n_sent=n_sent)
    _infer(teacher, batches[:1], True), _infer(teacher, batches[:1], False)  # warm-up
    t16 = min(_infer(teacher, batches, True)[0] for _ in range(2))
    t32 = min(_infer(teacher, batches, False)[0] for _ in range(2))
    return teacher, batches, t16, t32, matmul_peak(torch.float32), matmul_peak(torch.bfloat16)


def bench_peak() -> dict:
    teacher, batches, t16, t32, peak32, peak16 = _inference_and_peaks()
    shapes = [tuple(b["input_ids"].shape) for b in batches]
    flops = encoder_flops(teacher.encoder.config, shapes)
    got16, got32 = flops / t16 / 1e9, flops / t32 / 1e9
    return {"matmul_peak_gflops_fp32": round(peak32, 1), "matmul_peak_gflops_bf16": round(peak16, 1),
            "teacher_inference_gflops_bf16": round(got16, 1), "teacher_inference_gflops_fp32": round(got32, 1),
            "teacher_inference_fraction_of_peak": round(got16 / peak16, 3),
            "teacher_inference_fraction_of_peak_fp32": round(got32 / peak32, 3),
            "teacher_inference_gflop_counted": round(flops / 1e9, 1)}


def bench_processor() -> dict:
    """bf16 against fp32 on this processor (its model name keys the figures)."""
    from l2a_lib.machine import cpu_name
    _, _, t16, t32, peak32, peak16 = _inference_and_peaks(n_sent=128)
    return {"processor": cpu_name(), "threads": torch.get_num_threads(),
            "matmul_peak_gflops_fp32": round(peak32, 1), "matmul_peak_gflops_bf16": round(peak16, 1),
            "bf16_over_fp32_matmul_peak": round(peak16 / peak32, 2),
            "bf16_speedup_teacher_inference": round(t32 / t16, 2)}


# ------------------------------------------------------------------ end to end
def bench_end_to_end() -> dict:
    """The smoke workflow (``make smoke``: every run and page on tiny models) timed in
    a scratch folder, and per page of the cpu profile the recorded run hours."""
    from l2a_lib import costs
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(Path(sys.executable).with_name("snakemake")), "--cores", "2", "--directory",
               tmp, "--config", "profile=smoke", "--", "pages"]
        env = dict(os.environ, L2A_CACHE_DIR=f"{tmp}/cache")
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        smoke = time.perf_counter() - t0
    pages = costs.page_seconds("cpu")
    print(pages.to_string(index=False))
    return {"smoke_workflow_seconds": round(smoke, 1), "smoke_workflow_ok": code == 0,
            "cpu_pages": pages.to_dict("records")}


# ------------------------------------------------------------------ jobs
_PROBE = """
import json, sys, time, torch
from l2a_lib import mlm_export
from l2a_lib import models
from l2a_lib.config import ModelConfig
torch.manual_seed(0)
student = models.build_student(ModelConfig(), 2, seed=0)
ids = torch.randint(1000, 20000, (32, 48))
mask = torch.ones_like(ids)
opt = torch.optim.AdamW(student.parameters(), lr=1e-5)
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = student(ids, mask).logits.float().pow(2).mean()
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
for _ in range(3):
    step()
t0 = time.perf_counter()
for _ in range({steps}):
    step()
print(json.dumps({{"threads": torch.get_num_threads(), "seconds_per_step": (time.perf_counter() - t0) / {steps}}}))
"""


def _probe(threads: int, steps: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen([sys.executable, "-c", _PROBE.format(steps=steps)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def bench_jobs(steps: int = 30) -> dict:
    """What two jobs at a time buy (``snakemake --cores 2 --set-threads run=1``): the cpu
    profile's student (forward + backward, bf16, batch 32 x 48 tokens) timed alone with
    every core, then as ``jobs`` processes at once with the cores split between them
    (Snakemake sets each job's OMP_NUM_THREADS to its threads)."""
    cores = os.cpu_count() or 1
    alone = json.loads(_probe(cores, steps).communicate()[0].strip().splitlines()[-1])
    jobs = 2
    threads = max(1, cores // jobs)
    procs = [_probe(threads, steps) for _ in range(jobs)]
    pair = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    each = float(np.mean([r["seconds_per_step"] for r in pair]))
    return {"jobs_alone_threads": alone["threads"],
            "jobs_alone_seconds_per_step": round(alone["seconds_per_step"], 4),
            "jobs_parallel": jobs, "jobs_parallel_threads": threads,
            "jobs_parallel_seconds_per_step": round(each, 4),
            "jobs_throughput_gain": round(jobs * alone["seconds_per_step"] / each, 3)}


def bench_l2a_phases(task: str = "tc", seed: int = 0) -> dict:
    """One cpu-profile L2A run (``task``, ``seed``) computed in a scratch results folder
    under cProfile: where its time goes by phase (``l2a_lib.ledger``: the record's
    ``extra["phases"]``) and the functions that take the most time (the closing note's
    profile). The fine-tuned teacher and the masked LM come from the local cache when
    there (their fine-tuning is then not in the figures)."""
    import cProfile
    import pstats
    import tempfile
    from l2a_lib.experiment import run
    from l2a_lib.profiles import make_config
    from l2a_lib.records import load_record
    config = make_config(task, "l2a", seed, profile="cpu")
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        prof.enable()
        run(config, results_dir=tmp)
        prof.disable()
        wall = time.perf_counter() - t0
        phases = load_record(config, tmp)["extra"]["phases"]
    stats = pstats.Stats(prof)
    top = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)  # cumulative time
    rows = [f"{fn[2]} ({Path(fn[0]).name}:{fn[1]}) {v[3]:.1f}s cum, {v[2]:.1f}s own, {v[1]} calls"
            for fn, v in top if "l2a_lib" in fn[0] or "torch" in fn[0]][:25]
    return {"l2a_phases": phases, "l2a_phases_run": f"{task} seed {seed}, cpu profile",
            "l2a_phases_wall_seconds": round(wall, 1), "l2a_profile_top": rows}


def bench_grid() -> dict:
    """The whole cpu-profile grid's compute and its critical path, projected from the
    measured seed-0 run of every distinct configuration in the committed cache
    (``l2a_lib.costs.grid_projection``; the measurement is the seed-0 runs themselves,
    computed one job at a time by the workflow)."""
    from l2a_lib.costs import grid_projection
    return grid_projection("cpu")


SECTIONS = {"augment": None, "distill": None, "precision": bench_precision, "peak": bench_peak,
            "processor": bench_processor, "jobs": bench_jobs,
            "end_to_end": bench_end_to_end, "l2a_phases": bench_l2a_phases, "grid": bench_grid}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    ap.add_argument("--sentences", type=int, default=1000, help="target sentences for P_s")
    ap.add_argument("--nlpaug-sentences", type=int, default=1000, help="of those, for nlpaug")
    ap.add_argument("--epochs", type=int, default=3, help="distillation epochs timed")
    args = ap.parse_args()
    # the sections compare bf16 with fp32: bf16 must be bf16 even on a processor where the
    # runs fall back to fp32 (l2a_lib.train.bf16_in_use), unless the caller says otherwise
    os.environ.setdefault("L2A_BF16", "on")
    torch.set_num_threads(int(os.environ.get("L2A_THREADS", "2")))
    from l2a_lib.machine import cpu_name
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for name in args.only:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        if name == "augment":
            figures = bench_augment(args.sentences, args.nlpaug_sentences)
        elif name == "distill":
            import distill_bench
            figures = distill_bench.measure("tc", args.epochs)
        else:
            figures = SECTIONS[name]()
        for k, v in figures.items():
            if k != "cpu_pages" and not isinstance(v, list):
                print(f"  {k:48s} {v}", flush=True)
            elif isinstance(v, list):
                print(f"  {k}:", *v, sep="\n    ", flush=True)
        if name == "processor":  # kept per processor model, beside the other sections' figures
            results.setdefault("by_processor", {})[figures["processor"]] = {
                **figures, "date": dt.date.today().isoformat()}
        else:
            results.update(figures)
        results.setdefault("measured", {})[name] = {
            "date": dt.date.today().isoformat(), "seconds": round(time.perf_counter() - t0, 1),
            "machine": f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
                       f"torch {torch.__version__}",
            "command": "python benchmarks/run.py --only " + name}
        OUT.write_text(json.dumps(results, indent=1, default=str) + "\n")  # after every section
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
