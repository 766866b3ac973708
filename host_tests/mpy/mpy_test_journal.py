# The journal's core tests on the MicroPython unix port (110 KB firmware heap): the same firmware
# modules, the same simulated NOR flash, the same power-cut harness as the CPython suite.
import mpy_runner
import sim_flash
import sim_journal_cuts as C

from posguard import records as R
from posguard import sales as S
from posguard.journal import Journal

BODY = {"items": [["tea", 1, 120]], "total": 120}
_flash = mpy_runner.fresh_flash  # a fresh flash; the previous test's gives its buffers back


def _boot(flash, keep_last=5):
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=keep_last)
    return book, book.recover()


def _code(fn, *args):
    try:
        fn(*args)
    except R.JournalError as e:
        return e.code
    raise AssertionError("no JournalError")


def test_nor_flash_semantics():
    import binascii

    import sim_power

    mpy_runner.make_world()
    f = _flash(2)
    f.program(0, b"\x00")
    try:
        f.program(0, b"\x01")
        raise AssertionError("0 -> 1 not detected")
    except sim_flash.NorViolation:
        pass
    rec = bytes(range(100))
    rec += binascii.crc32(rec).to_bytes(4, "little")
    f.arm_cut(f.ops, 0.5)
    try:
        f.program(256, rec)
        raise AssertionError("no cut")
    except sim_power.PowerLoss:
        pass
    got = bytearray(len(rec))
    f.read(256, got)
    assert got[:52] == rec[:52]
    assert binascii.crc32(bytes(got[:-4])) != int.from_bytes(bytes(got[-4:]), "little")


def test_lifecycle_one_program_per_transition():
    mpy_runner.make_world()
    flash = _flash()
    book, rep = _boot(flash)
    assert rep["mount"]["state"] == "ok"
    book.idle()
    n = flash.programs
    book.open_sale(1, BODY)
    book.request_payment(1)
    book.payment_approved(1, "AUTH1")
    book.start_print(1)
    book.print_done(1)
    assert book.close(1) == "CLOSED"
    assert flash.programs - n == 6 and flash.erases == 6
    s = book.sale(1)
    assert s["body"] == BODY and s["approval"] == "AUTH1"


def test_idempotent_and_errors():
    mpy_runner.make_world()
    flash = _flash()
    book, _ = _boot(flash)
    book.open_sale(2, BODY)
    n = flash.programs
    assert book.open_sale(2, BODY) == "OPEN"
    assert flash.programs == n
    assert _code(book.print_done, 2) == "illegal_transition"
    assert _code(book.close, 77) == "unknown_sale"
    assert _code(book.open_sale, 3, {"x": "y" * 3000}) == "too_large"
    assert _code(book.format) == "sales_open"
    assert flash.programs == n


def test_recovery_rules():
    mpy_runner.make_world()
    flash = _flash()
    book, _ = _boot(flash)
    book.open_sale(1, BODY)
    book.open_sale(2, BODY)
    book.request_payment(2)
    book.open_sale(3, BODY)
    book.request_payment(3)
    book.payment_approved(3, "P3")
    book, rep = _boot(flash)
    assert rep["voided"] == [1, 2] and rep["reversal_pending"] == [2] and rep["reprint"] == [3]
    r = book.receipt(3)
    assert r["copy"] and r["copy_note"] == S.COPY_NOTE


def test_cut_at_every_operation():
    mpy_runner.make_world()
    _flash()
    r = C.exhaustive(sectors=6, script=C.session(), program_parts=(None, 0.0, 0.6), erase_parts=(None, 0.5))
    print("journal cut points on the unix port: %d over %d flash operations" % (r["cut_points"], r["ops"]))
    assert r["cut_points"] > 150


def test_soak_few_cuts():
    mpy_runner.make_world()
    _flash()
    r = C.soak(60, sectors=6, seed=3, per_session=12)
    assert r["cuts"] >= 60


def test_corruption_is_skipped():
    mpy_runner.make_world()
    flash = _flash(on_set_bit="and")
    book, _ = _boot(flash)
    for sid in range(1, 5):
        book.open_sale(sid, BODY)
        book.request_payment(sid)
        book.payment_approved(sid, "A")
        book.start_print(sid)
        book.print_done(sid)
        book.close(sid)
    book.open_sale(9, BODY)
    act = book.j.active
    flash.flip_bit(act * 4096 + 2 * 256 + 7, 2)
    spare = book.j._pick_spare()
    flash.fill_garbage(spare)
    book, rep = _boot(flash)
    assert rep["mount"]["corrupt_skipped"] >= 1 and rep["mount"]["dirty"] == 1
    assert rep["voided"] == [9]


if __name__ == "__main__":
    mpy_runner.main(globals())


def test_page_code_corrects_one_bit_detects_two_or_three():
    # The syndrome walk on the port's small ints (31-bit on the ESP32: the register is kept in halves).
    buf = bytearray(R.PAGE)
    R.encode(buf, R.T_STATE, 3, 0, 0x7FFFFFF0, 0x7FFFFFFF, 0xFFFF, b"AUTH-77")
    good = bytes(buf)
    for bit in range(R.PAGE * 8):
        b = bytearray(good)
        b[bit // 8] ^= 1 << (bit % 8)
        h = R.decode(b)
        assert h is not None and h[7] == 1 and bytes(b) == good, bit
    for k in range(200):
        b = bytearray(good)
        for bit in ((k * 37) % 2048, (k * 101 + 7) % 2048, (k * 613 + 900) % 2048)[: 2 + k % 2]:
            b[bit // 8] ^= 1 << (bit % 8)
        assert bytes(b) == good or R.decode(b) is None, k
