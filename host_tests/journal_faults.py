"""Helpers shared by the NOR-fault tests of the journal (issue 16): boots, the largest legal sale body,
and a recorder of which flash pages each call programmed (tests flip bits in what a call wrote, so
they do not depend on the on-flash layout)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sim_flash

from posguard import records as R
from posguard import sales as S
from posguard.journal import Journal
from posguard_tools.legal_body import board, device_size, largest_body, legal_bodies

__all__ = ["board", "device_size", "largest_body", "legal_bodies"]

LIFECYCLE = ("request_payment", "payment_approved", "start_print", "print_done", "close")


def boot(flash: Any, keep_last: int, maint: bool = False) -> tuple[Any, dict[str, Any]]:
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=keep_last)
    rep = book.recover()
    book.maintenance_allowed = maint
    return book, rep


def maintain(book: Any, steps: int = 64) -> None:
    allowed = book.maintenance_allowed
    book.maintenance_allowed = True
    for _ in range(steps):
        if book.maintenance() is None:
            break
    book.maintenance_allowed = allowed


def finish_sale(book: Any, sid: int, upto: int = len(LIFECYCLE)) -> None:
    for name in LIFECYCLE[:upto]:
        args: tuple[Any, ...] = (sid, f"A{sid}") if name == "payment_approved" else (sid,)
        getattr(book, name)(*args)


class Pages:
    """Records the page addresses every flash program lands on; `during(fn, ...)` returns what a
    call programmed."""

    def __init__(self, flash: Any) -> None:
        self.flash = flash
        self.seen: list[int] = []
        self.erased: list[int] = []
        flash.on_op = self._note

    def _note(self, kind: str, index: int, addr: int) -> None:
        if kind == sim_flash.OP_PROGRAM:
            self.seen.append(addr - addr % sim_flash.PAGE)
        else:
            self.erased.append(addr // sim_flash.SECTOR)

    def during(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, list[int]]:
        self.seen = []
        r = fn(*args)
        return r, list(self.seen)


def refusals(book: Any, sid: int, body: dict[str, Any]) -> int:
    """Open and finish sale sid the way the app does (maintenance when asked). Returns 1 if the
    journal refused the sale (for space or anything else), else 0."""
    try:
        book.open_sale(sid, body)
    except R.JournalError as e:
        if e.code != "needs_maintenance":
            return 1
        maintain(book)
        try:
            book.open_sale(sid, body)
        except R.JournalError:
            return 1
    finish_sale(book, sid)
    book.idle()
    maintain(book)
    return 0


def copy_flash(flash: Any) -> Any:
    """A second flash with the same content and the same program history (a board image)."""
    g = sim_flash.NorFlash(flash.size, seed=flash.rng.s, on_set_bit=flash.on_set_bit)
    g.load_image(flash.image(), flash.history())
    g.erase_counts = list(flash.erase_counts)
    return g
