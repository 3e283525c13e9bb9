"""The book's pages and the experiment runs each one reads: plain data.

``PAGES`` is the one list of (page, notebook, parameters, runs needed). The
workflow (``workflow/Snakefile``) reads it to know which result files a page
waits for; :func:`execute` runs a page's notebook with papermill into the book.

    from l2a_lib import pages
    pages.page("table3").configs("cpu")     # the 12 runs Table 3 reads
    pages.configs("smoke")                  # every run of every page, once each
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill

from .errors import UnknownPage
from . import paths
from .candidates import CANDIDATES, FIXES
from .config import (L2A_PARTS, SAME_STUDENT_METHODS, SMART_VARIANTS,
                     TABLE1_METHODS, TASKS, ExperimentConfig)
from .profiles import (FINAL_GRID, PAGES_V1, PARTS_FEWER_SEEDS, PARTS_PROBE_TASKS, PARTS_SEEDS,
                       SAME_STUDENT_TASKS, make_config, runs_on)
from .profiles import LEARNING_CONTROLS as LEARNED_RUN_OF
from .paths import atomic_write_text
from .records import is_cached
from .runs import Context
from .studies import study_configs

TABLE2_METHODS = ("teacher_ft", "student_ft", "l2a_wo_tgt", "l2a_wo_src", "l2a")
TABLE3_METHODS = ("l2a", "l2a_wo_att", "l2a_wo_hidden", "l2a_wo_dark")
SEEDS = (0, 1, 2)
PROFILE_SEEDS = {"smoke": (0,), "cpu": SEEDS, "paper": SEEDS}  # None in Needs = these
DATA_SIZES = (10, 20, 40, 80, 320)               # target training examples per class (Figure 2)
T_VALUES = (0.25, 0.5, 1.0, 2.0)                  # fill temperature T
ALPHA_VALUES = (0.0754, 0.0799, 0.0829, 0.0914)   # edit rates of about 5%, 10%, 15%, 35%
FIG2_METHODS = ("teacher_ft", "student_ft", "l2a")
STUDY_VALUES = {"fig2_data_size": DATA_SIZES, "sensitivity_T": T_VALUES,
                "sensitivity_alpha": ALPHA_VALUES}
STUDY_METHODS = {"fig2_data_size": FIG2_METHODS, "sensitivity_T": ("l2a",),
                 "sensitivity_alpha": ("l2a",)}


@dataclass(frozen=True)
class Needs:
    """A grid of experiment runs a notebook reads."""
    methods: tuple[str, ...]
    tasks: tuple[str, ...] = TASKS
    seeds: tuple[int, ...] | None = None  # None: the profile's seeds (PROFILE_SEEDS)
    version: int | None = None  # L2A's version (None: each run's default, profiles.l2a_version)
    final: bool | None = None   # the final grid's settings (None: profiles.FINAL_GRID)

    def configs(self, profile: str) -> list[ExperimentConfig]:
        return [make_config(t, m, s, profile=profile, version=self.version, final=self.final)
                for t in self.tasks for m in self.methods if runs_on(t, m)
                for s in self.seeds or PROFILE_SEEDS[profile]]


@dataclass(frozen=True)
class StudyNeeds:
    """The runs of a study (``experiment.STUDIES``) over its values."""
    study: str
    tasks: tuple[str, ...] = ("tc",)

    def configs(self, profile: str) -> list[ExperimentConfig]:
        return [c for _, c in study_configs(self.study, STUDY_VALUES[self.study], self.tasks,
                                            STUDY_METHODS[self.study], PROFILE_SEEDS[profile],
                                            profile)]


@dataclass(frozen=True)
class Page:
    name: str                      # the book page (book/<name>.ipynb)
    notebook: str                  # the source (notebooks/<notebook>.ipynb)
    params: dict = field(default_factory=dict)
    needs: tuple = ()              # Needs / StudyNeeds
    partial: bool = False          # the notebook renders with runs missing (and lists them)
    title: str = ""                # the pending page's title while runs are missing
    last: bool = False             # executed after every other page (it reports on them)

    def configs(self, profile: str) -> list[ExperimentConfig]:
        """Every run the page reads, each once, in the order of ``needs``."""
        return list({c.hash(): c for n in self.needs for c in n.configs(profile)}.values())

    @property
    def seeded(self) -> bool:
        """Whether the notebook takes a ``seeds`` parameter (it reads per-seed runs)."""
        return any(isinstance(n, StudyNeeds) or n.seeds is None for n in self.needs)

    def parameters(self, profile: str) -> dict:
        """The papermill parameters of the page under ``profile``."""
        params = {"profile": profile, **self.params}
        if self.seeded:
            params["seeds"] = list(PROFILE_SEEDS[profile])
        return params


@dataclass(frozen=True)
class CandidateNeeds:
    """The runs of the page "Choosing the settings": each candidate setting's
    Teacher-FT, Student-FT and majority runs and each baseline fix's runs before and
    after (``l2a_lib.candidates``), at the profile's seeds."""
    seeds: tuple[int, ...] | None = None  # None: the profile's seeds
    in_workflow: bool = True  # False: the workflow computes none of them (SETTINGS_RUNS_CACHED)

    def configs(self, profile: str) -> list[ExperimentConfig]:
        if not self.in_workflow:
            return []
        seeds = self.seeds or PROFILE_SEEDS[profile]
        return [c for x in CANDIDATES + FIXES for c in x.configs(profile, seeds=seeds)]


# the SMART page's pairs: (the method with SMART, the same method without)
SMART_PAIRS = (("student_ft_smart", "student_ft"), ("l2a_smart", "l2a"))


def smart_configs(tasks, seeds, profile: str, final: bool | None = None) -> list[tuple[str, ExperimentConfig]]:
    """(variant, config) of every run the SMART page reads; the variant is "none" for the
    method without SMART (L2A in version 2, as its SMART runs). ``final``: the final
    grid's settings (default ``profiles.FINAL_GRID``)."""
    out = []
    for t in tasks:
        for s in seeds:
            for smart_m, base in SMART_PAIRS:
                out.append(("none", make_config(t, base, s, profile=profile, final=final,
                                                version=2 if base == "l2a" else None)))
                out += [(v, make_config(t, smart_m, s, profile=profile, smart=v, final=final))
                        for v in SMART_VARIANTS]
    return out


@dataclass(frozen=True)
class SmartNeeds:
    """The SMART page's runs (:func:`smart_configs`) at the profile's seeds."""
    tasks: tuple[str, ...] = TASKS
    final: bool | None = None
    seeds: tuple[int, ...] | None = None  # None: the profile's seeds

    def configs(self, profile: str) -> list[ExperimentConfig]:
        return [c for _, c in smart_configs(self.tasks, self.seeds or PROFILE_SEEDS[profile],
                                            profile, self.final)]


def _study(name: str, title: str) -> Page:
    return Page(name, name, {"study": name, "values": list(STUDY_VALUES[name]),
                                "methods": list(STUDY_METHODS[name])},
                (StudyNeeds(name),), partial=True, title=title)


# Table 2 and the training log read version 1 of L2A (their committed runs) until the
# final grid (profiles.PAGES_V1); Table 1 and Table 3 read each run's default version
CLAIM_NEEDS = (Needs(TABLE1_METHODS + ("l2a_wo_src", "l2a_wo_tgt")),
               Needs(TABLE3_METHODS[1:], tasks=("tc",)), Needs(("l2a",), version=PAGES_V1))

# the learned parts of L2A (version 2) and its diagnostics: five seeds on TC and PI, the
# first n for some variants and for the probes of l2a.corrupt (profiles.PARTS_PROBE_TASKS)
PARTS_NEEDS = (Needs(("l2a",) + tuple(m for m in L2A_PARTS if m not in PARTS_FEWER_SEEDS),
                     tasks=("tc", "pi"), seeds=PARTS_SEEDS, version=2),
               *(Needs((m,), tasks=("tc", "pi") if m in L2A_PARTS else PARTS_PROBE_TASKS[m],
                       seeds=PARTS_SEEDS[:n], version=2) for m, n in PARTS_FEWER_SEEDS.items()))

# the front page's sentence on L2A's learned parts (views.parts.learned_parts_words)
LEARNED_PARTS_NEEDS = Needs(("l2a", "l2a_selector_random", "l2a_generator_off"),
                            tasks=("tc", "pi"), seeds=PARTS_SEEDS, version=2)

# Table 1's rows of issue 36 join the page with the final grid (profiles.FINAL_GRID; the
# committed cache must hold every run of every page): nlpaug's augmenter on every task,
# the same-student controls on TC and PI
NEW_TABLE1_ROWS = FINAL_GRID
_T1_ALL = ("nlpaug_ctx",) if NEW_TABLE1_ROWS else ()
_T1_EXTRA = SAME_STUDENT_METHODS if NEW_TABLE1_ROWS else ()

# Table 1 on the final grid's settings (issue 35) and the pages of issue 36 that read
# the final grid's runs (robustness, attention, SMART). They cover every task. Before
# the final grid is on, they show the runs cached while the grid is computed and list
# the others, and Table 1's runs join the workflow once they are all cached
# (FINAL_TABLE1_CACHED; the committed cache must hold every run of every page). With
# the final grid on, all their runs are in the workflow (Table 1 then shows the same
# runs; its final page adds the old-vs-new table).
FINAL_TABLE1_TASKS = ("nli", "reg", "tc", "pi")
FINAL_TABLE1_METHODS = TABLE1_METHODS + ("nlpaug_ctx",) + SAME_STUDENT_METHODS
FINAL_TABLE1_NEEDS = Needs(FINAL_TABLE1_METHODS, tasks=FINAL_TABLE1_TASKS, final=True)
FINAL_TABLE1_CACHED = False
# the attention page's methods (its control: L2A without L_att) and the SMART page's runs
ATTENTION_METHODS = ("student_ft", "minilm", "tinybert", "eda", "l2a", "l2a_wo_att")
ATTENTION_NEEDS = Needs(ATTENTION_METHODS, tasks=FINAL_TABLE1_TASKS, final=True)
SMART_NEEDS = SmartNeeds(FINAL_TABLE1_TASKS, final=True)
_FINAL_NEEDS = (FINAL_TABLE1_NEEDS,) if FINAL_GRID or FINAL_TABLE1_CACHED else ()
# the final Table 1's control for what L2A's learning adds: L2A with its learned parts off
# (the selector keeps at random, at the learned selector's keep rate of each episode; with
# one keep probability for all the generator's bounded update takes no step), on every
# task of the page, beside the parts page's five seeds on TC and PI
# ... and the same control for L2A on BERT6-PKD's student, on the tasks that student
# runs: each L2A method and its control (``profiles.LEARNING_CONTROLS``, read here as
# ``LEARNED_RUN_OF``, pairs them; this is its inverse)
LEARNING_CONTROLS = {learned: control for control, learned in LEARNED_RUN_OF.items()}
LEARNING_CONTROL = LEARNING_CONTROLS["l2a"]
LEARNING_NEEDS = (Needs(tuple(LEARNING_CONTROLS.values()), tasks=FINAL_TABLE1_TASKS, final=True),)
# ... and what L2A's augmentation adds at all: L2A against the same KD on the original
# target examples only (the parts page's ``kd_only``, its first three seeds), every task
AUGMENT_CONTROL = "kd_only"
AUGMENT_NEEDS = (Needs((AUGMENT_CONTROL,), tasks=FINAL_TABLE1_TASKS, final=True),)
_FINAL_PAGES = [
    Page("table1_final", "table1_final", {"tasks": list(FINAL_TABLE1_TASKS),
                                          "methods": list(FINAL_TABLE1_METHODS)},
         _FINAL_NEEDS + (LEARNING_NEEDS + AUGMENT_NEEDS if FINAL_GRID else ()), partial=True,
         title="Table 1 on the chosen settings"),
    Page("robustness", "robustness", {"tasks": list(FINAL_TABLE1_TASKS),
                                      "methods": list(FINAL_TABLE1_METHODS), "final": True},
         _FINAL_NEEDS, partial=True,
         title="Robustness under noisy input"),
    Page("attention", "attention", {"tasks": list(FINAL_TABLE1_TASKS), "final": True},
         (ATTENTION_NEEDS,) if FINAL_GRID else (), partial=True, title="What L_att transfers"),
    Page("smart_results", "smart_results", {"tasks": list(FINAL_TABLE1_TASKS), "final": True},
         (SMART_NEEDS,) if FINAL_GRID else (), partial=True, title="SMART, measured")]

# the candidate settings' runs join the workflow once they are all cached (the committed
# cache must hold every run of every page); until then the page shows those cached and
# lists the others, computed with ``python -m l2a_lib run --candidate NAME``
SETTINGS_RUNS_CACHED = False

PAGES: list[Page] = [
    Page("data", "data"),
    Page("reliability", "reliability"),
    Page("performance", "performance"),
    Page("mlm", "mlm", needs=(Needs(("mlm",), seeds=(0,)),)),
    Page("settings", "settings", needs=(CandidateNeeds(in_workflow=SETTINGS_RUNS_CACHED),),
         partial=True, title="Choosing the settings"),
    Page("table1", "table1", {"methods": list(TABLE1_METHODS + _T1_ALL + _T1_EXTRA)},
         (Needs(TABLE1_METHODS + _T1_ALL),)
         + ((Needs(_T1_EXTRA, tasks=SAME_STUDENT_TASKS),) if _T1_EXTRA else ()), partial=True),
    *_FINAL_PAGES,
    Page("table2", "table2", needs=(Needs(TABLE2_METHODS, version=PAGES_V1),), partial=True,
         title="Table 2: cross-domain augmentation"),
    Page("table3", "table3", needs=(Needs(TABLE3_METHODS, tasks=("tc",)),),
         title="Table 3: the terms of L_KD"),
    Page("l2a_training", "l2a_training", needs=(Needs(("l2a",), version=PAGES_V1),), partial=True,
         title="Training L2A: episodes and the augmentation gallery"),
    Page("l2a_parts", "l2a_parts", needs=PARTS_NEEDS,
         title="L2A's learned parts, switched off one at a time"),
    Page("l2a_diagnostics", "l2a_diagnostics",
         needs=(Needs(("l2a",), tasks=("tc", "pi"), seeds=PARTS_SEEDS, version=2),),
         title="L2A diagnostics: the reward, the selector and the generator over episodes"),
    _study("fig2_data_size", "Figure 2: target training size"),
    _study("sensitivity_T", "Sensitivity to the fill temperature T"),
    _study("sensitivity_alpha", "Sensitivity to the edit-distance temperature alpha"),
    # the summaries read the runs of the pages above (each run's cost is booked to the
    # first page that reads it: the reproduce page's cost table)
    Page("intro", "intro", needs=CLAIM_NEEDS + (LEARNED_PARTS_NEEDS,), partial=True,
         title="L2A, reproduced on a CPU"),
    Page("claims", "claims", needs=(*CLAIM_NEEDS,
                                    # the shapes of Figure 2 and the sensitivity study
                                    *(StudyNeeds(s) for s in STUDY_VALUES)),
         partial=True, title="The paper's claims, one by one"),
    Page("your_data", "your_data", title="Use it on your data"),  # reads results/examples
    Page("compute", "compute"),
    Page("reproduce", "reproduce", last=True),  # reports the other pages' execution times
]


def page(name: str) -> Page:
    """The page called ``name``; an unknown name is refused with the list of pages."""
    for p in PAGES:
        if p.name == name:
            return p
    raise UnknownPage(f"no page {name!r}; the pages are: {', '.join(p.name for p in PAGES)}")


def configs(profile: str) -> list[ExperimentConfig]:
    """Every run of every page under ``profile``, each once, in page order."""
    return list({c.hash(): c for p in PAGES for c in p.configs(profile)}.values())


# ------------------------------------------------------------------ execution
def notebook_seconds_path(results_dir=None) -> Path:
    return paths.results_dir(results_dir) / "notebook_seconds.json"


def record_notebook_seconds(profile: str, name: str, seconds: float, results_dir=None) -> None:
    """Keep the last measured execution time of each page (the reproduce page shows them)."""
    path = notebook_seconds_path(results_dir)
    table = json.loads(path.read_text()) if path.is_file() else {}
    table.setdefault(profile, {})[name] = round(seconds, 1)
    atomic_write_text(path, json.dumps(table, indent=1, sort_keys=True) + "\n")


def pending_notebook(p: Page, missing: list[ExperimentConfig], total: int, profile: str):
    """A placeholder page for a page whose runs are not all computed: what is missing
    and the command that computes it (the book stays complete and navigable)."""
    rows = "\n".join(f"| {c.table} | {c.task} | {c.method} | {c.seed} |" for c in missing[:40])
    more = f"\n\n... and {len(missing) - 40} more." if len(missing) > 40 else ""
    text = (f"# {p.title or p.name}\n\n"
            f":::{{note}}\nThis page is waiting for **{len(missing)} of {total}** experiment runs "
            f"of the {profile} profile, which are not in the result cache yet. Compute them "
            f"(resumable) and execute the page with\n\n"
            f"```\nsnakemake --cores 2 --config profile={profile} -- book/{p.name}.ipynb\n```\n:::\n\n"
            f"| table | task | method | seed |\n|---|---|---|---|\n{rows}{more}\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _relative(path: Path) -> str:
    """``path`` relative to the working folder when inside it: papermill records both
    paths in the executed notebook, and a committed page must not name this machine's
    folders."""
    p, here = Path(path).resolve(), Path.cwd().resolve()
    return str(p.relative_to(here)) if p.is_relative_to(here) else str(p)


def for_the_book(nb) -> None:
    """Prepare an executed notebook for the book: the notebook's default parameters cell
    is dropped (the one papermill injected, with the values the page ran with, stays),
    and every code cell shows its output with its code folded behind a "show code"
    toggle (``hide-input``). The notebooks in ``notebooks/`` keep their code as written."""
    nb.cells = [c for c in nb.cells if not (
        c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])
        and any("injected-parameters" in d.metadata.get("tags", []) for d in nb.cells))]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if "hide-input" not in tags:
            tags.append("hide-input")


# papermill waits 60 s for a kernel by default; two pages starting at once on a loaded
# two-core machine (CI, just after installing) can take longer
KERNEL_START_SECONDS = 300


def execute(name: str, profile: str, out: Path, results_dir=None) -> str:
    """Execute page ``name`` into ``out`` with papermill, through a temporary file
    renamed when complete (a good page is only ever replaced by a complete one).
    A page with none of its runs cached, or a page that cannot render with some
    missing (not ``partial``), becomes a pending page that lists them. Returns
    "executed" or "pending"."""
    p, out = page(name), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    wanted = p.configs(profile)
    ctx = Context(results_dir=results_dir)
    missing = [c for c in wanted if not is_cached(c, ctx)]
    if missing and (not p.partial or len(missing) == len(wanted)):
        nbformat.write(pending_notebook(p, missing, len(wanted), profile), str(tmp))
        os.replace(tmp, out)
        return "pending"
    source = paths.REPO_ROOT / "notebooks" / f"{p.notebook}.ipynb"
    started = time.time()
    try:
        papermill.execute_notebook(_relative(source), _relative(tmp), parameters=p.parameters(profile),
                                   kernel_name="python3", progress_bar=False, log_output=False,
                                   start_timeout=KERNEL_START_SECONDS)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    nb = nbformat.read(str(tmp), as_version=4)
    nb.metadata["papermill"]["output_path"] = _relative(out)  # not the temporary file's name
    for_the_book(nb)
    nbformat.write(nb, str(tmp))
    os.replace(tmp, out)
    record_notebook_seconds(profile, name, time.time() - started, results_dir)
    return "executed"
