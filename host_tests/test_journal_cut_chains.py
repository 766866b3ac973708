"""Issue 16 follow-up: cut chains of depth 8 brought records back (5 of 668 chains in the full bench).

Root cause: a program cut after its header landed (the header's own CRC checks, the page CRC does
not) uses up its sequence number, but when it was the first record of a new sector, mount left that
sector a spare and handed the same number out again. The next commit then landed a few pages further
with that number, and the mount after it replayed the torn page first and skipped the good record as
"not newer": a sale the host saw PRINTING read PAID, a REVERSAL_ACKED one REVERSAL_PENDING.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import sim_flash
import sim_power
from journal_faults import boot

from posguard import records as R
from posguard.journal import PAGES

_SMALL = {"t": "x", "i": [["tea", 1, 120]]}


def _fill_active_sector(book: Any, sid: int) -> None:
    """Open and void sales (two one-page commits each) until the active sector is full."""
    while book.j.next_page < PAGES:
        book.open_sale(sid, _SMALL)
        book.void(sid, "filler")
        sid += 1


def _header_seqs(flash: Any, gen: int) -> list[int]:
    """Sequence numbers of every page whose header checks (whole record or torn after its header)."""
    out = []
    buf = bytearray(R.PAGE)
    for pg in range(flash.size // R.PAGE):
        flash.read(pg * R.PAGE, buf)
        h = R.decode(bytearray(buf)) or R.decode_header(buf)
        if h is not None and h[0] >= R.T_CHECKPOINT and h[6] == gen:
            out.append(h[3])
    return out


@pytest.mark.parametrize("mode,part", [("all_but_tail", 0.0), ("prefix", 0.5)])
def test_torn_first_record_of_a_new_sector_never_hides_the_next_commit(world: Any, mode: str, part: float) -> None:
    flash = sim_flash.NorFlash(6 * 4096, seed=16)
    book, _ = boot(flash, 4)
    book.open_sale(1, _SMALL)
    book.request_payment(1)
    assert book.payment_approved(1, "AUTH01") == "PAID"
    # Sale 1 is the only unfinished sale and recovery writes nothing for it (PAID or PRINTING: a
    # reprint is queued), so the host's next commit is the first program after the cut.
    if (PAGES - book.j.next_page) % 2:
        book.start_print(1)
    later: tuple[str, ...]
    if book.state(1) == "PRINTING":
        step, want, later = "print_done", "PRINTED", ("PRINTED", "CLOSED")  # recovery closes a PRINTED sale
    else:
        step, want, later = "start_print", "PRINTING", ("PRINTING",)
    _fill_active_sector(book, 2)
    flash.arm_cut(flash.ops, part, mode=mode)  # the roll's first program: its header lands, its CRC does not
    with pytest.raises(sim_power.PowerLoss):
        book.open_sale(99, _SMALL)
    world.power.on = True
    book, rep = boot(flash, 4)
    assert rep["reprint"] == [1] and rep["voided"] == []
    assert getattr(book, step)(1) == want  # the host saw this answer
    book, _ = boot(flash, 4)
    assert book.state(1) in later, "a commit the host saw was lost behind a torn page of the same sequence"
    seqs = _header_seqs(flash, book.j.gen)
    assert len(seqs) == len(set(seqs)), "a sequence number was used twice"


def test_chain_from_op_27_seed_1_brings_no_reversal_back(world: Any) -> None:
    # The bench's chain (tools/posguard_tools/bench_journal.py cut_chains): cuts at ops
    # [27, 32, 37, 43, 44, 46, 47, 50]; the chains share one random stream, so the 27 before it run too.
    C: Any = importlib.import_module("sim_journal_cuts")
    failures: list[str] = []
    r = C.chains(depth=8, sectors=6, script=C.session(extra=10), seed=1, stride=1, limit=28, failures=failures)
    assert r["chains"] == 28
    assert failures == []
