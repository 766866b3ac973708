"""Issue 12 end to end on the simulated board: the firmware boots through boot.py/main.py and the attack
lines go over the real host-link UART. No reset, no crash logged, every line answered, and no card number
on paper or in the journal's flash."""

from __future__ import annotations

import json
from pathlib import Path

from test_app import ITEMS, Counter

PAN = "4111111111111111"


def _overlong(s: str) -> bytes:
    return b"".join(bytes([0xC0 | (c >> 6), 0x80 | (c & 0x3F)]) for c in s.encode())


def test_attack_lines_neither_reset_nor_leak(tmp_path: Path) -> None:
    c = Counter(tmp_path)
    nest = b'{"op":"status","x":' + b"[" * 63 + b"]" * 63 + b"}\n"
    for k in range(6):  # five of these in a minute used to reset the board
        c.at(5 + k, nest)
    c.at(12, b'{"op":"void","id":1,"reason":"' + _overlong(PAN) + b'"}\n')
    c.at(13, b'{"op":"open","id":1,"items":[{"name":"' + _overlong(PAN) + b'","price":100}]}\n')
    c.at(14, b'{"op":"status","x":"' + b"0" * 2000 + b'"}\n')  # the scan's worst case, no card number
    fw = c.at(16, {"op": "open", "id": 2, "items": [{"name": "\uff14\uff11\uff11\uff11" * 4, "price": 100}]})
    sep = c.at(18, {"op": "open", "id": 3, "items": ITEMS, "time": "4111/1111/1111/1111"})
    neg = c.at(20, {"op": "sale", "id": 4, "x": -int(PAN)})
    ok = c.at(22, {"op": "open", "id": 5, "items": ITEMS, "time": "2026-11-24 09:00"})
    c.at(24, {"op": "pay", "id": 5, "method": "card"})
    paid = c.at(26, {"op": "approve", "id": 5, "auth": "A1B2C3", "last4": "4242"})
    st = c.at(60, {"op": "status"})
    c.run(90)
    assert c.day.board.boots == 1, "an input reset the board"
    assert [r["err"] for r in c.unmatched] == ["BAD_JSON"] * 8 + ["BAD_FIELD"]
    for s in (fw, sep, neg):
        assert c.replies[s]["err"] == "CARD_NUMBER", c.replies[s]
    assert c.replies[ok]["ok"] and c.replies[paid]["state"] == "PAID"
    status = c.replies[st]
    assert status["crashes"] == 0 and status["last_crash"] is None
    assert status["printer"]["owed"] == 0 and status["link"]["lines"] >= 14
    assert c.receipts == [(5, "original", True)]
    assert c.states([1, 2, 3, 4, 5]) == {1: None, 2: None, 3: None, 4: None, 5: "CLOSED"}
    # Nowhere a card number: replies, paper, flash.
    assert PAN not in json.dumps(c.replies) + json.dumps(c.unmatched)
    paper = json.dumps([repr(r) for r in c.day.printer.printed])
    assert PAN not in paper and "4111 1111" not in paper
    flash = bytes(c.day.board.partitions["journal"].image())
    assert PAN.encode() not in flash and "\uff14\uff11\uff11\uff11".encode() not in flash
