"""The shape of the library: no import cycle, no module over 400 lines, one place
that steps an optimizer, no module reaching into another's private names.

The import graph is read with ``ast`` from the source, imports inside functions
included (an import moved into a function to dodge a cycle is still an edge).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "l2a_lib"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """{"l2a_lib.l2a.kd": path, "l2a_lib.report": path of its __init__, ...}"""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, node: ast.AST, known: dict) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for one import statement."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names if a.name.split(".")[0] == "l2a_lib"]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = name.split(".")
        if path.name != "__init__.py":
            base = base[:-1]
        base = base[:len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    if module.split(".")[0] != "l2a_lib":
        return []
    # ``from . import x`` names a module when x is one, else an attribute of the package
    return [(f"{module}.{a.name}", None) if f"{module}.{a.name}" in known else (module, a.name)
            for a in node.names]


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """Edges between the package's modules, and every (importer, module, name) taken
    from another module."""
    known = modules()
    graph, names = {m: set() for m in known}, []
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for module, attr in imported(name, path, node, known):
                if module in known and module != name:
                    graph[name].add(module)
                    if attr is not None:
                        names.append((name, module, attr))
    return graph, names


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    """The check below can fail: a graph with a circle is caught, one without is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_library_modules():
    graph, _ = import_graph()
    assert len(graph) > 30  # the whole package was read
    assert cycles(graph) == []


def test_no_module_imports_another_modules_private_names():
    _, names = import_graph()
    private = [(who, f"{module}.{attr}") for who, module, attr in names if attr.startswith("_")]
    assert private == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_400_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines"


def test_one_place_steps_an_optimizer():
    """``train.Stepper.step`` is the only ``optimizer.step()`` call of the library (the
    learning-rate schedule's ``scheduler.step()`` is another object)."""
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "step" and not node.args
                    and "optim" in ast.unparse(node.func.value).lower()):
                calls.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert len(calls) == 1 and calls[0].startswith("train.py:"), calls


def test_one_warm_up_schedule():
    """``train.linear_warmup`` is the only learning-rate schedule the library builds."""
    built = [f"{p.relative_to(PACKAGE)}" for p in PACKAGE.rglob("*.py")
             if "LambdaLR(" in p.read_text()]
    assert built == ["train.py"]


NOTEBOOKS = sorted((PACKAGE.parent / "notebooks").glob("*.ipynb"))


def logic_cells(notebook: dict) -> list[str]:
    """Code cells that are neither the parameters, nor the page's one ``views`` call
    (with ``page.publish()`` and the first item), nor one ``page[...]`` item."""
    out = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code" or "parameters" in cell["metadata"].get("tags", []):
            continue
        src = "".join(cell["source"]).strip()
        lines = [line for line in src.splitlines() if line.strip()]
        one_item = len(lines) == 1 and lines[0].startswith('page["') and lines[0].endswith('"]')
        call = (lines[:1] == ["from l2a_lib import views"] and src.count("views.") == 1
                and "page.publish()" in lines
                and all(line.startswith(("page = views.", "    ", "page.publish()", 'page["'))
                        for line in lines[1:]))
        if not (one_item or call):
            out.append(src)
    return out


def test_the_logic_check_flags_a_cell_with_logic():
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": ["x = df.mean()\n", "x"]},
                    {"cell_type": "code", "metadata": {}, "source": ['page["results"]']}]}
    assert logic_cells(nb) == ["x = df.mean()\nx"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_is_parameters_one_call_then_tables_and_figures(path):
    import json
    assert logic_cells(json.loads(path.read_text())) == []
