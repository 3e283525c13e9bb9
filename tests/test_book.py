"""The book's sources: what a reader sees rendered, checked before a build."""
import importlib.util
import json
import re
from pathlib import Path

import yaml

from l2a_lib.pages import PAGES

ROOT = Path(__file__).resolve().parent.parent
MATH = re.compile(r"\$[^$]+\$")


def _markdown_sources():
    """(name, text) of every prose page and every markdown cell of the notebooks."""
    for p in sorted((ROOT / "book").glob("*.md")):
        yield p.name, p.read_text()
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(p.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                yield p.name, "".join(cell["source"])


def math_pipes_in_tables(text: str) -> list[str]:
    """Inline math in a markdown table row that holds a ``|``: the table parser splits
    the cell there (or eats the backslash of ``\\|``) before the math is rendered, so
    ``P(d|x)`` must be written ``P(d \\mid x)`` and a norm ``\\Vert``."""
    return [m for line in text.splitlines() if line.lstrip().startswith("|")
            for m in MATH.findall(line) if "|" in m]


def test_the_math_pipe_check_finds_a_split_cell():
    assert math_pipes_in_tables("| a | $P(d|x)$ | b |") == ["$P(d|x)$"]
    assert math_pipes_in_tables("| a | $\\mathrm{KL}(P \\| Q)$ |") == ["$\\mathrm{KL}(P \\| Q)$"]
    assert math_pipes_in_tables("| a | $P(d \\mid x)$ | b |") == []
    assert math_pipes_in_tables("$P(d|x)$ outside a table") == []


def test_no_table_cell_of_the_book_is_split_by_a_pipe_in_its_math():
    found = [(name, m) for name, text in _markdown_sources() for m in math_pipes_in_tables(text)]
    assert found == []


def test_each_page_has_its_own_notebook_and_heading():
    """No two pages share a notebook (a shared one gave the T and alpha pages Figure 2's
    heading and prose); each notebook opens with its page's own level-1 heading."""
    assert len({p.notebook for p in PAGES}) == len(PAGES)
    headings = []
    for p in PAGES:
        cells = json.loads((ROOT / "notebooks" / f"{p.notebook}.ipynb").read_text())["cells"]
        first = "".join(cells[0]["source"]) if cells[0]["cell_type"] == "markdown" else ""
        assert first.startswith("# "), p.name
        headings.append(first.splitlines()[0])
    assert len(set(headings)) == len(headings)


def test_the_book_carries_its_own_mathjax():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "sphinx-mathjax-offline" in config["sphinx"]["extra_extensions"]
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    assert spec is not None, "sphinx-mathjax-offline is not installed"
    assert (Path(spec.origin).parent / "static" / "mathjax" / "tex-chtml.js").is_file()
