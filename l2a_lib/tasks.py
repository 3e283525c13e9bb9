"""The task names a configuration accepts: the paper's four, and tasks made from a
user's files (``l2a_lib.distill``), each of which takes the settings of a paper task."""
from __future__ import annotations

from .errors import ConfigError

TASKS = ("tc", "pi", "nli", "reg")
# each task's headline metric: what the pages' tests and verdicts compare (PI: the F1 of
# the positive class, since its target test set is 85% negative)
HEADLINE_METRICS = {"tc": "acc", "pi": "f1", "nli": "acc", "reg": "pearson"}

# Tasks made from a user's files (``l2a_lib.distill``): name -> the paper task whose
# settings they take (tc: single texts, pi: pairs, reg: regression). A user task's
# name carries a digest of its data, so its runs have their own cache keys.
USER_TASKS: dict[str, str] = {}


def base_task(task: str) -> str:
    """The paper task whose settings ``task`` uses (itself for a paper task)."""
    return USER_TASKS.get(task, task)


def check_task(task: str) -> None:
    if task not in TASKS and task not in USER_TASKS:
        raise ConfigError(f"task={task!r} is not allowed; choose one of {list(TASKS)}"
                          + (f" or a registered user task {sorted(USER_TASKS)}" if USER_TASKS else ""))


# A user task's examples: name -> (data.TaskSpec, source, target), each domain a frame in
# memory or a loader of the data folder (``data.LOCAL_LOADERS``' kind).
# Kept apart from the paper's registry, which the book's pages iterate.
USER_REGISTRY: dict[str, tuple] = {}


def register_user_task(spec, source, target, base: str) -> None:
    """Make ``spec.name`` (a ``data.TaskSpec``) a task that every run function accepts,
    with its examples (frames, or loaders of the data folder); it takes the settings of
    the paper task ``base``."""
    if spec.name in TASKS:
        raise ConfigError(f"a user task cannot be called {spec.name!r}: the paper's tasks are {TASKS}")
    if base not in TASKS:
        raise ConfigError(f"base={base!r} must be one of the paper's tasks {TASKS}")
    USER_REGISTRY[spec.name] = (spec, source, target)
    USER_TASKS[spec.name] = base


# Fine-tuned teachers a user gives as a folder (``distill --teacher DIR``): name -> folder.
# The name carries a digest of the weights, so runs with another teacher get other keys.
USER_TEACHERS: dict[str, str] = {}
