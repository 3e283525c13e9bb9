"""The page "Use it on your data": one of the shipped data sets presented as a user's
own files, distilled with ``python -m l2a_lib distill``, the saved student loaded
with ``transformers`` and asked to classify a few sentences."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd

from .. import paths
from ..data import load_domain
from .base import View

# The example: 1,000 movie-review sentences (Rotten Tomatoes) as the user's labelled
# target, 5,000 SST-2 sentences as the source; the target's few-shot splits are the
# command's defaults (40 per class for training, 100 for dev, the other 820 for test).
TARGET_ROWS, SOURCE_ROWS, SEED = 1000, 5000, 0
# (method, the student's pooling): BERT's pooler saves as a standard
# BertForSequenceClassification; mean pooling is the paper pages' (loads with remote code)
RUNS = (("student_ft", "pooler"), ("l2a", "pooler"), ("student_ft", "mean"), ("l2a", "mean"))
LABELS = {0: "negative", 1: "positive"}
SENTENCES = ["An absorbing, beautifully acted portrait of a family.",
             "The jokes are stale and the plot goes nowhere.",
             "It is not a great film, but it is never boring.",
             "A two-hour commercial for its own soundtrack."]


def write_example_files(folder) -> tuple[Path, Path]:
    """The shipped text-classification data written as a user's CSV (target) and JSON
    Lines (source) files, with the user's own column names and class names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    as_user = lambda df, n: (df.sample(n=n, random_state=SEED)  # noqa: E731
                             .assign(sentiment=lambda d: d["label"].map(LABELS))
                             .rename(columns={"text_a": "review"})[["review", "sentiment"]])
    target, source = folder / "reviews.csv", folder / "sst2.jsonl"
    as_user(load_domain("tc", "target"), TARGET_ROWS).to_csv(target, index=False)
    as_user(load_domain("tc", "source"), SOURCE_ROWS).to_json(source, orient="records", lines=True)
    return target, source


def example_dir(results_dir=None) -> Path:
    """The example's own result cache (``runs/``) and students (``students/``), apart
    from the paper's runs so that no page of the paper counts them."""
    return paths.results_dir(results_dir) / "examples"


def name(method: str, pooling: str) -> str:
    return f"reviews-{method}" + ("-mean" if pooling == "mean" else "")


def out_folder(method: str, pooling: str = "pooler", results_dir=None) -> Path:
    """Where the example's student is kept with the results (float16 weights)."""
    return example_dir(results_dir) / "students" / name(method, pooling)


def command(method: str, pooling: str, target: Path, source: Path, *, profile: str = "cpu",
            results_dir=None) -> list[str]:
    return [sys.executable, "-m", "l2a_lib", "--results-dir", str(example_dir(results_dir)), "distill", "--target", str(target),
            "--source", str(source), "--text-column", "review", "--label-column", "sentiment",
            "--method", method, *(["--pooling", "mean"] if pooling == "mean" else []),
            "--profile", profile, "--seed", str(SEED), "--dtype", "float16",
            "--out", str(out_folder(method, pooling, results_dir))]


def shown(argv: list[str], target: Path, source: Path) -> str:
    """The command as a reader would type it (file names, not this machine's paths)."""
    out = Path(argv[argv.index("--out") + 1])
    short = {str(target): target.name, str(source): source.name, sys.executable: "python",
             str(out): f"students/{out.name}"}
    i = argv.index("--results-dir")  # the example's own cache: not what a user types
    argv = argv[:i] + argv[i + 2:]
    return " ".join(shlex.quote(short.get(a, a)) for a in argv)


def run_example(folder, *, profile: str = "cpu", allow_training: bool = False,
                results_dir=None) -> dict:
    """Run the command for each method (from the cache unless ``allow_training``);
    returns, per method, the command as shown and what it printed."""
    target, source = write_example_files(folder)
    out = {}
    for method, pooling in RUNS:
        argv = command(method, pooling, target, source, profile=profile, results_dir=results_dir)
        if not allow_training:
            argv.append("--no-training")
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{shown(argv, target, source)} failed:\n{done.stderr[-2000:]}")
        saved = out_folder(method, pooling, results_dir)
        out[name(method, pooling)] = {"command": shown([a for a in argv if a != "--no-training"], target, source),
                       "printed": done.stdout.strip().replace(str(saved), f"students/{saved.name}")}
    return out


def classify(folder: Path, sentences=SENTENCES) -> pd.DataFrame:
    """The saved student, loaded with ``transformers`` alone, on a few sentences."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the page
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        probs = model(**tok(list(sentences), padding=True, return_tensors="pt")).logits.softmax(-1)
    return pd.DataFrame({"sentence": sentences,
                         "prediction": [model.config.id2label[int(i)] for i in probs.argmax(-1)],
                         "probability": probs.max(-1).values.numpy().round(3)})


def results_table(runs=RUNS, results_dir=None) -> pd.DataFrame:
    """Dev and test metrics, size and wall time of each example run (from its record)."""
    rows = []
    for m, pooling in runs:
        key = json.loads((out_folder(m, pooling, results_dir) / "distill_config.json")
                         .read_text())["run_key"]
        rec = json.loads((example_dir(results_dir) / "runs" / f"{key}.json").read_text())
        got = {(r["split"], r["metric"]): r["value"] for r in rec["rows"]}
        rows.append({"method": m, "pooling": pooling, "dev acc": got[("dev", "acc")],
                     "test acc": got[("test", "acc")],
                     "test F1": got[("test", "f1")],
                     "teacher's best dev": (rec.get("teacher") or {}).get("best_dev", {}).get("acc"),
                     "parameters (M)": rec["n_params"] / 1e6, "minutes": rec["wall_seconds"] / 60,
                     "test examples": rec["sizes"]["test"]})
    return pd.DataFrame(rows).set_index(["method", "pooling"])


def your_data(profile: str = "cpu", allow_training: bool = False, results_dir=None,
              scratch=None) -> View:
    """Run the example's commands (from the cache unless ``allow_training``, or on the
    smoke profile, whose tiny runs take seconds and are never committed; the files are
    written to ``scratch``, a new temporary folder by default), its results, and the
    saved L2A student classifying a few sentences."""
    import tempfile
    from IPython.display import Markdown
    allow_training = allow_training or profile == "smoke"
    view = View()
    runs = run_example(scratch or tempfile.mkdtemp(prefix="your-data-"), profile=profile,
                       allow_training=allow_training, results_dir=results_dir)
    for m, r in runs.items():
        view.value(f"command_{m}", r["command"])
    printed = "\n".join(r["printed"] for r in runs.values())
    view.items["printed"] = Markdown(f"```text\n{printed}\n```")
    card = (out_folder("l2a", "pooler", results_dir) / "README.md").read_text()
    view.items["card"] = Markdown(f"````markdown\n{card}````")
    table = results_table(results_dir=results_dir)
    view.show("results", table.round(3))
    for m, pooling in RUNS:
        key = f"example_{m}_{pooling}"
        view.value(f"{key}_test_acc", f"{table.loc[(m, pooling), 'test acc']:.3f}")
        view.value(f"{key}_minutes", f"{table.loc[(m, pooling), 'minutes']:.0f}")
    view.show("predictions", classify(out_folder("l2a", "pooler", results_dir)))
    return view
