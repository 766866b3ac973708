"""The terminal end to end on a simulated board: the firmware boots through boot.py/main.py, and a
scripted cashier app talks to it over the host-link UART. Replies, journal states and what the
printer model put on paper are checked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from posguard_tools import paths

paths.use_simulated_hardware()

import importlib  # noqa: E402

sim_day = importlib.import_module("sim_day")  # simulator code (MicroPython subset, untyped)


class Counter:
    """A board with the firmware running, and a list of (time s, request line) the app sends."""

    def __init__(self, tmp: Path, soc: float = 1.0) -> None:
        profile = json.loads(paths.board_profile("devkit-1s").read_text())
        tmp.mkdir(parents=True, exist_ok=True)
        self.day = sim_day.Day(profile, str(tmp), str(paths.FIRMWARE), hours=1.0, seed=5, soc=soc)
        self.replies: dict[int, dict[str, Any]] = {}
        self.unmatched: list[dict[str, Any]] = []
        self.day.peer.on_reply = self._reply
        self.receipts: list[tuple[int, str, bool]] = []
        self.day.tracker.commit = lambda sid, kind, complete: self.receipts.append((sid, kind, complete))
        self.seq = 0

    def _reply(self, rep: dict[str, Any]) -> None:
        if isinstance(rep.get("seq"), int):
            self.replies[rep["seq"]] = rep
        else:
            self.unmatched.append(rep)

    def at(self, t_s: float, req: dict[str, Any] | bytes) -> int:
        """Send req at t_s; returns its seq (0 for raw bytes)."""
        if isinstance(req, bytes):
            self.day.clock.call_at_us(int(t_s * 1e6), lambda: self.day.peer.send_raw(req))
            return 0
        self.seq += 1
        r = dict(req, seq=self.seq)
        self.day.clock.call_at_us(int(t_s * 1e6), lambda: self.day.peer.send(r))
        return self.seq

    def run(self, until_s: float) -> None:
        self.day.board.run(int(until_s * 1000))
        self.day.tracker.flush()

    def states(self, ids: list[int]) -> dict[int, str | None]:
        return sim_day.journal_states(self.day.board, ids)


ITEMS = [{"name": "拿铁 Latte", "qty": 2, "price": 1800}, {"name": "Croissant", "price": 1200}]


def sale_script(c: Counter, sid: int, t0: float, method: str = "card") -> list[int]:
    return [
        c.at(t0, {"op": "open", "id": sid, "items": ITEMS, "time": "2026-11-24 09:00"}),
        c.at(t0 + 2, {"op": "pay", "id": sid, "method": method}),
        c.at(t0 + 4, {"op": "approve", "id": sid, "auth": "A1B2C3", "last4": "4242"}),
    ]


def test_a_sale_is_journaled_printed_once_and_closed(tmp_path: Path) -> None:
    c = Counter(tmp_path)
    st = c.at(5, {"op": "status"})
    seqs = sale_script(c, 101, 10)
    again = c.at(40, {"op": "approve", "id": 101, "auth": "A1B2C3", "last4": "4242"})  # a retry
    c.run(120)
    assert c.replies[st]["ok"] and "battery" in c.replies[st] and "journal" in c.replies[st]
    assert [c.replies[s]["state"] for s in seqs] == ["OPEN", "PAYMENT_PENDING", "PAID"]
    assert c.replies[again]["ok"] and c.replies[again]["state"] in ("PRINTED", "CLOSED")
    assert c.receipts == [(101, "original", True)]
    assert c.states([101]) == {101: "CLOSED"}


def test_refusals_say_why_and_change_nothing(tmp_path: Path) -> None:
    c = Counter(tmp_path)
    c.at(5, {"op": "open", "id": 7, "items": ITEMS})
    bad_amount = c.at(7, {"op": "open", "id": 8, "items": [{"name": "Tea", "price": -1}]})
    pan = c.at(9, {"op": "open", "id": 9, "items": [{"name": "4111 1111 1111 1111", "price": 100}]})
    early = c.at(11, {"op": "approve", "id": 7, "auth": "X1"})
    unknown = c.at(13, {"op": "pay", "id": 12345, "method": "card"})
    c.at(15, b'{"op": "status", broken\n')
    c.run(40)
    assert c.replies[bad_amount]["err"] == "BAD_AMOUNT" and c.replies[bad_amount]["do"]
    assert c.replies[pan]["err"] == "CARD_NUMBER" and "4111" not in json.dumps(c.replies[pan])
    assert c.replies[early]["err"] == "ILLEGAL_TRANSITION" and c.replies[early]["state"] == "OPEN"
    assert c.replies[unknown]["err"] == "UNKNOWN_SALE"
    assert [r["err"] for r in c.unmatched] == ["BAD_JSON"]
    assert c.states([7, 8, 9]) == {7: "OPEN", 8: None, 9: None}
    assert c.receipts == []


def test_void_after_payment_request_owes_a_reversal_and_prints_a_void_slip(tmp_path: Path) -> None:
    c = Counter(tmp_path)
    c.at(5, {"op": "open", "id": 21, "items": ITEMS})
    c.at(7, {"op": "pay", "id": 21, "method": "card"})
    v = c.at(40, {"op": "void", "id": 21, "reason": "payment timeout"})
    st = c.at(60, {"op": "status"})
    ack = c.at(70, {"op": "ack_reversal", "id": 21})
    c.run(100)
    assert c.replies[v]["state"] == "REVERSAL_PENDING"
    assert c.replies[st]["reversals"] == [21]
    assert c.replies[ack]["state"] == "REVERSAL_ACKED"
    assert c.receipts == [(21, "void", True)]


def test_power_cut_while_printing_reprints_once_as_a_marked_copy(tmp_path: Path) -> None:
    c = Counter(tmp_path)
    # after the 20 s rest every boot takes before it prints (powermon.resting)
    sale_script(c, 31, 25)
    # cut the power while the receipt is on the printer (it starts within ~1 s of the approval)
    day = c.day
    day.clock.call_at_us(int(30.5e6), lambda: day._pull())
    after = c.at(140, {"op": "sale", "id": 31})
    c.run(200)
    assert c.replies[after]["state"] == "CLOSED"
    full = [r for r in c.receipts if r[2]]
    assert full == [(31, "duplicate", True)], c.receipts
    assert any(r == (31, "original", False) for r in c.receipts), "the cut did not land mid-receipt"


def test_paper_out_refuses_new_sales_until_paper_is_loaded(tmp_path: Path) -> None:
    c = Counter(tmp_path)
    day = c.day
    day.printer.paper_mm_left = 60.0  # the roll ends inside the first receipt
    sale_script(c, 51, 5)
    refused = c.at(40, {"op": "open", "id": 52, "items": ITEMS})
    day.clock.call_at_us(int(60e6), lambda: day.printer.load_paper())
    ok = c.at(90, {"op": "open", "id": 53, "items": ITEMS})
    c.run(120)
    assert c.replies[refused]["err"] == "PAPER_OUT" and "paper" in c.replies[refused]["do"]
    assert c.replies[ok]["ok"], c.replies[ok]
    assert (51, "original", True) in c.receipts
    assert c.states([51]) == {51: "CLOSED"}


def test_repl_api_answers_in_short_readable_lines(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    profile = json.loads(paths.board_profile("devkit-1s").read_text())
    day = sim_day.Day(profile, str(tmp_path), str(paths.FIRMWARE), hours=1.0, seed=3)
    day.power.on = True
    printed: list[tuple[int, str, bool]] = []
    day.tracker.commit = lambda sid, kind, complete: printed.append((sid, kind, complete))
    monkeypatch.chdir(tmp_path)
    from posguard import app, repl

    monkeypatch.setattr(app, "current", None)
    monkeypatch.setattr(app, "running", False)
    monkeypatch.setattr(repl, "_term", None)
    repl.status()
    repl.battery()
    out = capsys.readouterr().out
    assert "battery :" in out and "printer : ready" in out and "journal :" in out and "sales   : accepted" in out
    assert "pack    :" in out and "receipt : can print" in out
    assert re.search(r" \d+\.\d\d cycles", out), out  # a figure a person reads, not 0.00016255000000000002
    repl.test_print()
    assert "printer : printed" in capsys.readouterr().out
    # a paid sale through the commands, then printed by hand as a copy
    t = repl._term
    for line in (b'{"op":"open","id":5,"items":[{"name":"Tea","price":300}]}',
                 b'{"op":"pay","id":5,"method":"cash"}', b'{"op":"approve","id":5,"auth":"C1"}'):
        assert t.handle_line(line)["ok"]
    repl.reprint(5)
    repl.journal()
    repl.reprint(999)
    repl.calibrate(-5)
    out = capsys.readouterr().out
    assert "printer : printed" in out and "open    : 5 PAID" in out
    assert "no such sale" in out and "refused:" in out
    day.tracker.flush()
    assert (5, "duplicate", True) in printed
