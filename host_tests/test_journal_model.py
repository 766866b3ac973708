"""Model-based test: random command sequences (with reboots and maintenance) against the SaleBook and a
plain-Python model of the state machine, idempotency and recovery rules. Every answer must agree."""

from __future__ import annotations

from typing import Any

import sim_flash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posguard import records as R
from posguard import sales as S
from posguard.journal import Journal

PATH = {
    "OPEN": {"OPEN"},
    "PAYMENT_PENDING": {"OPEN", "PAYMENT_PENDING"},
    "PAID": {"OPEN", "PAYMENT_PENDING", "PAID"},
    "PRINTING": {"OPEN", "PAYMENT_PENDING", "PAID", "PRINTING"},
    "PRINTED": {"OPEN", "PAYMENT_PENDING", "PAID", "PRINTING", "PRINTED"},
    "CLOSED": {"OPEN", "PAYMENT_PENDING", "PAID", "PRINTING", "PRINTED", "CLOSED"},
    "DECLINED": {"OPEN", "PAYMENT_PENDING", "DECLINED"},
    "VOIDED": {"OPEN", "VOIDED"},
    "REVERSAL_PENDING": {"OPEN", "PAYMENT_PENDING", "VOIDED", "REVERSAL_PENDING"},
    "REVERSAL_ACKED": {"OPEN", "PAYMENT_PENDING", "VOIDED", "REVERSAL_PENDING", "REVERSAL_ACKED"},
}
NEXT = {
    "OPEN": {"PAYMENT_PENDING", "VOIDED"},
    "PAYMENT_PENDING": {"PAID", "DECLINED", "REVERSAL_PENDING"},
    "PAID": {"PRINTING"},
    "PRINTING": {"PRINTED"},
    "PRINTED": {"CLOSED"},
    "REVERSAL_PENDING": {"REVERSAL_ACKED"},
}
FINAL = {"CLOSED", "DECLINED", "VOIDED", "REVERSAL_ACKED"}
TARGET = {
    "pay": "PAYMENT_PENDING",
    "approve": "PAID",
    "decline": "DECLINED",
    "start_print": "PRINTING",
    "print_done": "PRINTED",
    "close": "CLOSED",
    "ack": "REVERSAL_ACKED",
}


class Model:
    def __init__(self) -> None:
        self.state: dict[int, str] = {}
        self.copies: list[int] = []

    def live(self) -> int:
        return sum(1 for s in self.state.values() if s not in FINAL)

    def do(self, cmd: str, sid: int) -> str:
        cur = self.state.get(sid)
        if cmd == "open":
            if cur is not None:
                return cur
            if self.live() >= S.MAX_LIVE:
                return "!too_many_open"
            self.state[sid] = "OPEN"
            return "OPEN"
        if cur is None:
            return "!unknown_sale"
        target = TARGET.get(cmd) or ("REVERSAL_PENDING" if cur == "PAYMENT_PENDING" else "VOIDED")
        if target in PATH[cur]:
            return cur
        if target not in NEXT.get(cur, set()):
            return "!illegal_transition"
        self.state[sid] = target
        if cmd == "print_done" and sid in self.copies:
            self.copies.remove(sid)
        return target

    def reboot(self) -> None:
        for sid, s in self.state.items():
            if s == "OPEN":
                self.state[sid] = "VOIDED"
            elif s == "PAYMENT_PENDING":
                self.state[sid] = "REVERSAL_PENDING"
            elif s == "PRINTED":
                self.state[sid] = "CLOSED"
        self.copies = sorted(sid for sid, s in self.state.items() if s in ("PAID", "PRINTING"))


def _call(book: Any, cmd: str, sid: int) -> str:
    fn = {
        "open": lambda: book.open_sale(sid, {"items": [["x", sid, 1]], "total": sid}),
        "pay": lambda: book.request_payment(sid),
        "approve": lambda: book.payment_approved(sid, f"A{sid}"),
        "decline": lambda: book.payment_declined(sid),
        "start_print": lambda: book.start_print(sid),
        "print_done": lambda: book.print_done(sid),
        "close": lambda: book.close(sid),
        "void": lambda: book.void(sid, "v"),
        "ack": lambda: book.reversal_acked(sid),
    }[cmd]
    try:
        return str(fn())
    except R.JournalError as e:
        return "!" + str(e.code)


ANY = ["open", "pay", "approve", "decline", "start_print", "print_done", "close", "void", "ack"]
# "step" moves a sale along a legal path (random commands alone rarely get a sale far).
LEGAL = {
    None: ["open"],
    "OPEN": ["pay", "void"],
    "PAYMENT_PENDING": ["approve", "approve", "decline", "void"],
    "PAID": ["start_print"],
    "PRINTING": ["print_done"],
    "PRINTED": ["close"],
    "REVERSAL_PENDING": ["ack"],
}
COMMANDS = st.lists(
    st.tuples(
        st.sampled_from(["step"] * 8 + ANY + ["reboot", "reboot", "maint", "idle"]),
        st.integers(1, 3),
        st.integers(0, 3),
    ),
    min_size=20,
    max_size=60,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmds=COMMANDS)
def test_sale_book_matches_the_model(world: Any, cmds: list[tuple[str, int, int]]) -> None:
    flash = sim_flash.NorFlash(12 * 4096)

    def boot() -> Any:
        b = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=1000)
        b.recover()
        return b

    book = boot()
    model = Model()
    for cmd, sid, pick in cmds:
        if cmd == "step":
            options = LEGAL.get(model.state.get(sid), ANY)
            cmd = options[pick % len(options)]
        if cmd == "reboot":
            book = boot()
            model.reboot()
            assert book.print_queue() == model.copies
            assert book.reversals() == sorted(k for k, s in model.state.items() if s == "REVERSAL_PENDING")
        elif cmd == "maint":
            book.maintenance_allowed = True
            while book.maintenance():
                pass
            book.maintenance_allowed = False
        elif cmd == "idle":
            book.idle()
        else:
            assert _call(book, cmd, sid) == model.do(cmd, sid), (cmd, sid)
    for sid, s in model.state.items():
        assert book.state(sid) == s
    assert book.open_sales() == sorted(k for k, s in model.state.items() if s not in FINAL)
