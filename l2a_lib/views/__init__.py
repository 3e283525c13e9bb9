"""What each page of the book shows, computed from the result cache: one function per
notebook, so that a notebook is its parameters, one call, then the tables and figures.

A :class:`View` holds the page's notes (markdown shown first: runs not computed yet,
runs in fp32), its values (the numbers the prose quotes, glued by name) and its
items (tables and figures, shown by name in the page's cells)::

    page = views.table1(profile="cpu")
    page.publish()        # the notes, and every value glued for the prose
    page["results"]       # a table (in its own cell)

* ``results`` -- Table 1, Table 2, Table 3; ``final`` -- Table 1 on the chosen settings;
* ``studies`` -- Figure 2 and the sensitivity studies, the claims, the front page's outcome;
* ``setup`` -- the data, the augmentation masked LM, L2A's training log;
* ``operations`` -- performance, reliability, what reproducing costs;
* ``parts`` -- L2A version 2's diagnostics and its learned parts' ablations;
* ``credit_page`` -- our extension: the selector learning from per-sample credit;
* ``your_data`` -- distilling a user's own files (``python -m l2a_lib distill``).
"""
from __future__ import annotations

from .base import View
from .credit_page import l2a_credit
from .final import table1_final
from .operations import compute, performance, reliability, reproduce
from .parts import l2a_diagnostics, l2a_parts
from .results import table1, table2, table3
from .robust import attention, robustness
from .settings import settings
from .smart_page import smart
from .setup import data, l2a_training, mlm
from .studies import claims, outcome, study
from .your_data import your_data

__all__ = ["View", "attention", "claims", "compute", "data", "l2a_credit", "l2a_diagnostics", "l2a_parts", "l2a_training", "mlm", "outcome", "performance", "reliability",
           "reproduce", "robustness", "settings", "smart", "study", "table1", "table1_final", "table2", "table3", "your_data"]
