"""The studies of the book: which setting each varies and the runs it needs
(Figure 2's data size, the temperature T and alpha sensitivity)."""
from __future__ import annotations

from .profiles import make_config

# study -> (table, varied column, how a value becomes overrides, the default value)
STUDIES = {
    "fig2_data_size": ("fig2_data_size", "train_per_class",
                       lambda v: ({"train_per_class": v}, None), 40),
    "sensitivity_T": ("sensitivity_T", "T", lambda v: ({}, {"temperature": v}), 1.0),
    "sensitivity_alpha": ("sensitivity_alpha", "alpha", lambda v: ({}, {"alpha": v}), 0.0829),
}


def study_configs(study: str, values, tasks, methods, seeds, profile: str = "cpu") -> list:
    """The configs of a study; the default value reuses the main table's runs."""
    table, _, overrides, default = STUDIES[study]
    out = []
    for v in values:
        data_o, l2a_o = overrides(v)
        for t in tasks:
            for m in methods:
                for s in seeds:
                    if v == default:
                        out.append((v, make_config(t, m, s, profile=profile)))
                    else:
                        out.append((v, make_config(t, m, s, profile=profile, table=table,
                                                   l2a_overrides=l2a_o if m.startswith("l2a") else None,
                                                   **data_o)))
    return out
