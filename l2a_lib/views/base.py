"""A page's content: notes, the values its prose quotes, its tables and figures."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


def pending() -> pd.DataFrame:
    """What a page shows in place of a table or figure whose runs are not cached."""
    return pd.DataFrame({"not computed yet": []})


@dataclass
class View:
    notes: list[str] = field(default_factory=list)     # markdown shown before the results
    values: dict[str, object] = field(default_factory=dict)  # glue name -> text or table
    items: dict[str, object] = field(default_factory=dict)   # name -> table or figure
    options: dict[str, object] = field(default_factory=dict)  # pandas display options

    def note(self, markdown: str) -> None:
        """Add a note (an empty one is dropped: a page without missing runs has none)."""
        if markdown:
            self.notes.append(markdown)

    def value(self, name: str, value) -> None:
        if isinstance(value, pd.DataFrame):
            from ..report import readable
            value = readable(value)
        self.values[name] = value

    def show(self, name: str, item):
        """Keep a table or figure for the page; a figure is closed here so that it is
        drawn where the page shows it, not where it was made."""
        from matplotlib.figure import Figure
        if isinstance(item, pd.DataFrame):  # as every page prints a table
            from ..report import readable
            item = readable(item)
        if isinstance(item, Figure):
            import matplotlib.pyplot as plt
            plt.close(item)
        self.items[name] = item
        return item

    def show_when(self, name: str, ready, make):
        """Show ``make()`` if ``ready``, else a table that says the runs are not computed
        yet (a page of a partial cache keeps its layout)."""
        return self.show(name, make() if ready else pending())

    def __getitem__(self, name: str):
        return self.items[name]

    def publish(self) -> None:
        """Show the notes and glue every value (myst-nb), for the page's prose."""
        from IPython.display import Markdown, display
        from myst_nb import glue
        for option, value in self.options.items():
            pd.set_option(option, value)
        for text in self.notes:
            display(Markdown(text))
        for name, value in self.values.items():
            glue(name, value, display=False)
