# Issue 16 on the MicroPython unix port (110 KB firmware heap): the harsh NOR model's torn shapes at
# every operation of the scripted session, cut chains of depth 8, and single bit flips in what the
# commits wrote. A bounded subset of the CPython proofs (host_tests/test_journal_property.py).
import mpy_runner
import sim_flash
import sim_journal_cuts as C

from posguard import sales as S
from posguard.journal import Journal

_flash = mpy_runner.fresh_flash  # a fresh flash; the previous test's gives its buffers back


def _boot(flash, keep_last=3):
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=keep_last)
    return book, book.recover()


def test_every_torn_shape_at_every_operation():
    mpy_runner.make_world()
    _flash()
    r = C.exhaustive(
        sectors=6, script=C.session(), program_cuts=C.QUICK_PROGRAM_CUTS, erase_cuts=C.QUICK_ERASE_CUTS, seed=5
    )
    print("harsh cut points on the unix port: %d over %d flash operations" % (r["cut_points"], r["ops"]))
    assert r["cut_points"] >= 4 * r["ops"]


def test_cut_chains_of_depth_8():
    mpy_runner.make_world()
    _flash()
    r = C.chains(depth=8, sectors=6, script=C.session(), seed=8, stride=9)
    print("cut chains on the unix port: %d chains, %d cuts" % (r["chains"], r["cuts"]))
    assert r["chains"] >= 10 and r["cuts"] >= 8 * r["chains"] // 2


def _paid_sale():
    """A fresh journal with sale 1 PAID; returns (flash, address of the PAID record's page)."""
    flash = _flash()
    book, _ = _boot(flash)
    book.open_sale(1, {"t": "x", "i": [["tea", 1, 120]]})
    book.request_payment(1)
    seen = []
    flash.on_op = lambda kind, index, addr: seen.append(addr)
    book.payment_approved(1, "A1")  # the PAID record: one page
    flash.on_op = None
    return flash, seen[0] - seen[0] % sim_flash.PAGE


def test_one_bit_flip_in_a_paid_sale_record_is_survived():
    mpy_runner.make_world()
    for off in (0, 2, 5, 9, 14, 17, 20, 40):
        flash, page = _paid_sale()  # (rebuilt each time: an image copy would not fit the heap)
        flash.flip_bit(page + off, off % 8)
        book, rep = _boot(flash)
        assert book.state(1) in ("PAID", "PRINTING"), "flip at +%d: sale 1 reads %s" % (off, book.state(1))
        assert 1 in book.print_queue()
