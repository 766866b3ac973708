"""Shared loader for the reference discharge trace (used by the battery and replay tests)."""

from __future__ import annotations

import csv
from functools import lru_cache

from posguard_tools import traces

TRACE = traces.FRESH_25C


@lru_cache(maxsize=1)
def load() -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {"t_s": [], "i_a": [], "v_cell": [], "temp_c": [], "soc_usable": [], "printing": []}
    with traces.open_text(TRACE) as f:
        for row in csv.DictReader(f):
            for k, v in cols.items():
                v.append(float(row[k]))
    return cols
