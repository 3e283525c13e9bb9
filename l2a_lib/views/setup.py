"""The data page, the augmentation masked LM's page and L2A's training log."""
from __future__ import annotations

import json

import pandas as pd

from .. import data as data_mod
from .. import paths, report
from ..errors import MissingResults
from ..experiment import run_many
from ..profiles import PAGES_V1, make_config
from ..records import load_record
from .base import View

MLM_BAR = "bar met (top1 >= 0.35 and top10 >= 0.60)"


def data(seed=0, data_dir=None) -> View:
    """Every task's data sets: what they are, sizes and label balance, sentence lengths,
    and the standard errors their test sizes allow."""
    view = View()
    summary = report.data_summary(data_dir, seed=seed)
    view.show("tasks", pd.DataFrame([
        {"task": s.name, "title": s.title, "source": s.source_name, "target": s.target_name,
         "paper source -> target": f"{s.paper_source} -> {s.paper_target}",
         "train sampling": {"per_class": "k per class", "natural": "natural class balance"}.get(
             s.train_sampling, s.train_sampling), "note": s.note}
        for s in data_mod.TASK_REGISTRY.values()]).set_index("task"))
    wide = summary.pivot(index="task", columns="split", values="n")[["source", "train", "dev", "test"]]
    balance = summary.pivot(index="task", columns="split",
                            values="positive_share")[["source", "train", "dev", "test"]]
    dropped = summary.pivot(index="task", columns="split", values="dropped_empty_in_domain")
    sizes = wide.join(balance.round(3).add_suffix(" (share of label 1)"))
    sizes["empty rows dropped (source / target)"] = [
        f"{int(dropped.loc[t, 'source'])} / {int(dropped.loc[t, 'test'])}" for t in sizes.index]
    view.show("sizes", sizes)
    view.show("regression_labels", summary[summary.task == "reg"][
        ["split", "n", "label_mean", "label_sd"]].set_index("split").round(3))
    view.show("lengths", _length_plot(seed, data_dir))
    se = []
    for name, spec in data_mod.TASK_REGISTRY.items():
        n = int(wide.loc[name, "test"])
        if spec.kind == "classification":
            se.append({"task": name, "test examples": n,
                       "SE of an accuracy of 0.75": report.standard_error(0.75, n),
                       "SE of a difference of two accuracies (independent)":
                           2 ** 0.5 * report.standard_error(0.75, n)})
        else:
            r = 0.4
            se.append({"task": name, "test examples": n,
                       "SE of a Pearson r of 0.4": report.pearson_standard_error(r, n)})
    se = pd.DataFrame(se).set_index("task")
    view.value("se_tc", f"{se.loc['tc', 'SE of an accuracy of 0.75']:.3f}")
    view.value("se_pi", f"{se.loc['pi', 'SE of an accuracy of 0.75']:.3f}")
    view.value("n_test_tc", f"{int(wide.loc['tc', 'test']):,}")
    view.value("n_dev", f"{int(wide.loc['tc', 'dev'])}")
    view.show("standard_errors", se.round(4))
    return view


def _length_plot(seed, data_dir):
    import seaborn as sns
    report.set_style()
    frames = []
    for name in data_mod.TASK_REGISTRY:
        td = data_mod.load_task(name, seed=seed, data_dir=data_dir)
        for split in ("source", "test"):
            d = getattr(td, split)
            words = d.text_a.str.split().str.len() + (
                d.text_b.fillna("").str.split().str.len() if d.text_b.notna().any() else 0)
            frames.append(pd.DataFrame({"task": name,
                                        "domain": "source" if split == "source" else "target",
                                        "words": words.clip(upper=300)}))
    lengths = pd.concat(frames, ignore_index=True)
    lengths["task"] = lengths.task.map(report.TASK_LABELS)
    g = sns.displot(lengths, x="words", hue="domain", col="task", col_wrap=2, common_norm=False,
                    stat="density", element="step", height=2.4, aspect=1.6,
                    facet_kws={"sharex": False, "sharey": False})
    g.set_titles("{col_name}")
    g.set_axis_labels("words per example (pairs: both sides)", "density")
    return g.figure


def mlm(profile="cpu", tasks=("tc", "pi", "nli", "reg"), allow_training=False, results_dir=None,
        data_dir=None) -> View:
    """The augmentation masked LM: held-out accuracy per task, its training curve, the
    schedules tried, and example fills."""
    import matplotlib.pyplot as plt
    tasks = list(tasks)
    view = View()
    df = run_many(tasks, ["mlm"], [0], profile=profile, allow_training=allow_training,
                  results_dir=results_dir, data_dir=data_dir)
    records = {t: load_record(make_config(t, "mlm", 0, profile=profile), results_dir) for t in tasks}
    scores = df.pivot_table(index="task", columns="metric", values="value").reindex(tasks)
    scores["masked tokens"] = [records[t]["extra"]["n_masked"] for t in tasks]
    scores[MLM_BAR] = (scores.top1 >= 0.35) & (scores.top10 >= 0.60)
    info = records[tasks[0]]["extra"]["mlm"]
    view.value("mlm_top1_tc", f"{scores.loc[tasks[0], 'top1']:.3f}")
    view.value("mlm_top10_tc", f"{scores.loc[tasks[0], 'top10']:.3f}")
    view.value("mlm_minutes", f"{info['seconds'] / 60:.1f}")
    view.value("mlm_train_sentences", f"{info['train_sentences']:,}")
    view.value("mlm_steps", f"{info['config']['steps']:,}")
    view.value("mlm_trainable_layers", str(info["config"]["trainable_layers"]))
    view.value("mlm_bar_met", str(int(scores[MLM_BAR].sum())))
    view.value("mlm_n_tasks", str(len(scores)))
    view.show("scores", scores.round(3))
    report.set_style()
    curve = info["loss_curve"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([50 * i for i in range(len(curve))], curve)
    ax.set_xlabel("training step")
    ax.set_ylabel("masked-LM loss (mean of 50 steps)")
    ax.set_title("Training curve of the augmentation masked LM")
    fig.tight_layout()
    view.show("curve", fig)
    old = [json.loads(p.read_text()) for p in
           sorted((paths.REPO_ROOT / "results" / "mlm_schedules").glob("*.json"))]
    rows = [_schedule_row(r) for r in old] + [_schedule_row(records[t]) for t in tasks]
    view.show("schedules", pd.DataFrame(rows).pivot_table(
        index=["steps", "trainable layers", "encoder lr"], columns="task",
        values=["top1", "top10"]).round(3))
    fills = pd.concat([pd.DataFrame(records[t]["extra"]["example_fills"]).assign(task=t)
                       for t in tasks], ignore_index=True)
    view.options["display.max_colwidth"] = 120
    view.show("fills", fills[["task", "sentence", "original", "top fills (probability)"]])
    return view


def _schedule_row(rec: dict) -> dict:
    m = rec["extra"]["mlm"]["config"]
    row = {"steps": m["steps"], "trainable layers": m["trainable_layers"],
           "encoder lr": m["encoder_lr"], "task": rec["config"]["task"]}
    row.update({r["metric"]: r["value"] for r in rec["rows"]})
    return row


def l2a_training(profile="cpu", tasks=("tc", "pi", "nli", "reg"), seeds=(0, 1, 2),
                 allow_training=False, allow_missing=True, results_dir=None, data_dir=None) -> View:
    """L2A's training log: reward, keep rate and dev metric per episode, the selector's
    policy, and a gallery of samples."""
    tasks, seeds = list(tasks), list(seeds)
    view = View()
    # version 1's log (the diagnostics page shows version 2's)
    df = run_many(tasks, ["l2a"], seeds, profile=profile, allow_training=allow_training,
                  results_dir=results_dir, data_dir=data_dir, allow_missing=allow_missing, version=PAGES_V1)
    view.note(report.coverage_note(df))
    records = {}
    for t in tasks:
        for s in seeds:
            try:
                records[(t, s)] = load_record(make_config(t, "l2a", s, profile=profile, version=PAGES_V1),
                                              results_dir)
            except MissingResults:
                pass
    view.show("episodes", report.plot_episodes(report.episode_frame(records)))
    view.show("policy", report.policy_summary(records))
    view.options["display.max_colwidth"] = 200
    first = sorted(records)[0]  # the first task and seed with a cached run
    view.show("gallery", pd.DataFrame(records[first]["extra"]["gallery"]))
    return view
