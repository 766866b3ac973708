"""Tables for people (terminal) and for docs (Markdown), drawn by one library (rich) everywhere."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table


def render(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False,
           width: int = 140, justify: Sequence[JustifyMethod] = ()) -> str:
    """The table as text: box-drawn for a terminal, or a Markdown table (title as a bold line) for docs.
    `justify`: per column, "left" (the default), "right" or "center"."""
    # The title is a line of its own (a table title would wrap at the table's width).
    t = Table(box=box.MARKDOWN if markdown else box.SIMPLE)
    for i, h in enumerate(header):
        t.add_column(str(h), overflow="fold", justify=justify[i] if i < len(justify) else "left")
    for r in rows:
        cells = [("" if c is None else str(c)) for c in list(r)[: len(header)]]
        t.add_row(*(cells + [""] * (len(header) - len(cells))))
    buf = io.StringIO()
    # Markdown rows must never wrap (a wrapped cell becomes a bogus row): give them all the width they need.
    Console(file=buf, width=10000 if markdown else width, highlight=False, color_system=None).print(t)
    text = "\n".join(ln.rstrip() for ln in buf.getvalue().splitlines()).strip("\n")
    return f"**{title}**\n\n{text}" if markdown else f"{title}\n{text}"
