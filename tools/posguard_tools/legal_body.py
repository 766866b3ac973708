"""The largest sale body the host link accepts on a board profile, as the journal stores it.

The host's `open` request is checked by the firmware's own validator (posguard/validate.py: items_max
items, names of name_max characters, the request line at most line_max bytes) and turned into the
journal body the way posguard/commands.py does it ({"t": time, "i": [[name, qty, price], ...]}). One
body per kind of name text: ASCII, CJK (3 UTF-8 bytes a character) and 4-byte UTF-8 characters; the
largest is the one with the most bytes as the device's json.dumps writes it (UTF-8, no escapes)."""

from __future__ import annotations

import importlib
import json
from typing import Any

from posguard_tools import paths

NAME_CHARS = ("W", "中", "😀")


def legal_bodies(prof: dict[str, Any]) -> list[dict[str, Any]]:
    paths.use_simulated_hardware()
    validate: Any = importlib.import_module("posguard.validate")
    h = prof["host"]
    lim = validate.Limits(h)
    out = []
    for ch in NAME_CHARS:
        for n in range(h["items_max"], 0, -1):
            price = h["amount_max"] // h["items_max"]  # qty 1 x this price: the most digits within the cap
            items = [{"name": ch * h["name_max"], "qty": 1, "price": price} for _ in range(n)]
            req = {"op": "open", "id": 2147483647, "time": "2026-11-24 21:58:00", "items": items}
            line = json.dumps(req, ensure_ascii=False, separators=(",", ":")).encode()
            try:
                clean = validate.validate_line(line, lim)
            except validate.HostError:
                continue
            out.append({"t": clean["time"], "i": [list(it) for it in clean["items"]]})
            break
    return out


def device_size(body: dict[str, Any]) -> int:
    """Bytes of the body as MicroPython's json.dumps writes it (UTF-8, not \\u escapes)."""
    return len(json.dumps(body, ensure_ascii=False).encode())


def largest_body(prof: dict[str, Any]) -> dict[str, Any]:
    return max(legal_bodies(prof), key=device_size)


def board(name: str = "devkit-1s") -> dict[str, Any]:
    prof: dict[str, Any] = json.loads(paths.board_profile(name).read_text())
    return prof
