# Issue 16 follow-up on the MicroPython unix port: a program cut after its header landed, as the first
# record of a new sector, keeps its sequence number; the next commit is never hidden behind it.
import mpy_runner
import sim_flash
import sim_power

from posguard import sales as S
from posguard.journal import PAGES, Journal

SMALL = {"t": "x", "i": [["tea", 1, 120]]}


def _boot(flash):
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=4)
    return book, book.recover()


def test_torn_first_record_of_a_new_sector_keeps_its_number():
    mpy_runner.make_world()
    flash = sim_flash.NorFlash(6 * 4096, seed=16)
    try:
        book, _ = _boot(flash)
        book.open_sale(1, SMALL)
        book.request_payment(1)
        book.payment_approved(1, "AUTH01")
        if (PAGES - book.j.next_page) % 2:
            book.start_print(1)
        printing = book.state(1) == "PRINTING"
        sid = 2
        while book.j.next_page < PAGES:  # fill the active sector: the next commit rolls
            book.open_sale(sid, SMALL)
            book.void(sid, "filler")
            sid += 1
        flash.arm_cut(flash.ops, 0.0, "all_but_tail")
        try:
            book.open_sale(99, SMALL)
            raise AssertionError("no cut")
        except sim_power.PowerLoss:
            sim_power.POWER.on = True
        book, rep = _boot(flash)
        assert rep["reprint"] == [1] and rep["voided"] == [], rep
        want = book.print_done(1) if printing else book.start_print(1)
        book, _ = _boot(flash)
        now = book.state(1)
        assert now == want or (want == "PRINTED" and now == "CLOSED"), (want, now)
    finally:
        flash.release()
