"""The reference battery traces that ship with the repository (PyBaMM Chen2020 family, see traces/README.md).

Stored gzip-compressed next to this module so a fresh clone has them; every reader goes through
`open_text`, which takes a plain or `.gz` CSV path, or a bare trace name such as `fresh_25c`.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TextIO, cast

DIR = Path(__file__).resolve().parent / "traces"
NAMES = ("fresh_25c", "fresh_m10c", "aged85_5c", "aged90_35c_busy", "worn70_15c")


def path(name: str) -> Path:
    """The committed file of trace `name` (e.g. "fresh_25c")."""
    p = DIR / f"battery_{name}.csv.gz"
    if not p.exists():
        raise FileNotFoundError(f"no reference trace {name!r}: known {', '.join(NAMES)}")
    return p


def resolve(spec: str | Path) -> Path:
    """A trace name, or a path to a .csv / .csv.gz file."""
    s = str(spec)
    if s in NAMES:
        return path(s)
    return Path(spec)


def open_text(spec: str | Path) -> TextIO:
    p = resolve(spec)
    if p.suffix == ".gz":
        return cast(TextIO, gzip.open(p, "rt", newline=""))
    return p.open(newline="")


FRESH_25C = path("fresh_25c")
