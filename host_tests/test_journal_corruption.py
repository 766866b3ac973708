"""Corrupted flash: bit flips, a sector of garbage, weakly erased sectors, worn-out sectors, a full
journal. The journal must always mount (or report a clear error), skip what is broken, and lose
nothing that is still readable."""

from __future__ import annotations

from typing import Any

import pytest
import sim_flash

from posguard import records as R
from posguard import sales as S
from posguard.journal import K_DIRTY, K_USED, PAGES, Journal

BODY = {"items": [["tea", 1, 120]], "total": 120}


def _boot(flash: Any, keep_last: int = 5) -> tuple[Any, dict[str, Any]]:
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=keep_last)
    return book, book.recover()


def _sell(book: Any, sid: int) -> None:
    book.open_sale(sid, BODY)
    book.request_payment(sid)
    book.payment_approved(sid, f"A{sid}")
    book.start_print(sid)
    book.print_done(sid)
    book.close(sid)


def _sell_m(book: Any, sid: int) -> None:
    """Sell, letting maintenance run when the journal asks for it (the power policy allows it)."""
    book.maintenance_allowed = True
    try:
        _sell(book, sid)
    except R.JournalError as e:
        assert e.code == "needs_maintenance"
        for _ in range(20):
            if book.maintenance() is None:
                break
        _sell(book, sid)


def _filled(sectors: int = 8, sales: int = 12) -> tuple[Any, Any]:
    flash = sim_flash.NorFlash(sectors * 4096, on_set_bit="and")
    book, _ = _boot(flash)
    for sid in range(1, sales + 1):
        _sell(book, sid)
        book.idle()
    book.open_sale(100, BODY)
    book.request_payment(100)
    book.payment_approved(100, "LIVE")
    return flash, book


@pytest.mark.parametrize("seed", range(40))
def test_random_bit_flips_never_crash_the_mount(world: Any, seed: int) -> None:
    flash, _ = _filled()
    rng = sim_flash.Rng(seed + 1)
    for _ in range(1 + seed % 8):
        flash.flip_bit(rng.below(flash.size), rng.below(8))
    try:
        book, rep = _boot(flash)
    except R.JournalError as e:
        assert e.code in ("corrupt", "not_formatted")
        return
    # Whatever survived is consistent: every listed sale answers, nothing raises but JournalError.
    for sid in [*range(1, 13), 100]:
        try:
            s = book.sale(sid)
        except R.JournalError as e:
            assert e.code == "unknown_sale"
            continue
        assert s["state"] in S.NAMES
    book.maintenance_allowed = True
    for _ in range(30):
        if book.maintenance() is None:
            break
    _sell(book, 500)
    assert book.state(500) == "CLOSED"


def test_flips_in_record_pages_are_skipped_and_counted(world: Any) -> None:
    flash, book = _filled()
    act = book.j.active
    # Corrupt the CLOSED record of the last finished sale in the active sector and a record page of
    # an older sector.
    old = book.j.used_in_order()[0]
    flash.flip_bit(old * 4096 + 3 * 256 + 20, 1)
    flash.flip_bit(act * 4096 + 2 * 256 + 5, 0)
    flash.flip_bit(act * 4096 + 3 * 256 + 5, 0)  # two bits in one page: detected, not corrected
    flash.flip_bit(act * 4096 + 3 * 256 + 6, 0)
    book2, rep = _boot(flash)
    assert rep["mount"]["state"] == "ok"
    assert rep["mount"]["corrupt_skipped"] == 1 and rep["mount"]["corrected"] == 1
    assert book2.state(100) == "PAID"  # the live sale was not in a damaged page
    assert rep["reprint"] == [100]


def test_bit_flip_in_the_active_checkpoint_keeps_the_live_state(world: Any) -> None:
    flash = sim_flash.NorFlash(8 * 4096)
    book, _ = _boot(flash)
    book.open_sale(1, BODY)
    book.request_payment(1)
    book.payment_approved(1, "ONE")
    book.j.roll()  # sale 1 now lives only in the new sector's checkpoint
    book.open_sale(2, BODY)
    book.request_payment(2)
    book.payment_approved(2, "TWO")
    book.j.roll()
    book.start_print(2)  # recorded in the newest sector, behind a checkpoint we now damage
    act = book.j.active
    flash.flip_bit(act * 4096 + 256 + 20, 3)
    book2, rep = _boot(flash)
    assert rep["reprint"] == [1, 2]
    assert book2.state(2) == "PRINTING"
    assert book2.receipt(1)["approval"] == "ONE"
    # Maintenance never erases a sector that still holds valid records behind a broken header.
    book2.maintenance_allowed = True
    for _ in range(10):
        if book2.maintenance() is None:
            break
    assert book2.state(2) == "PRINTING" and book2.receipt(2)["approval"] == "TWO"


def test_a_sector_of_garbage_is_erased_by_maintenance(world: Any) -> None:
    flash, book = _filled()
    spare = next(s for s in range(8) if book.j.kind[s] == 1)
    flash.fill_garbage(spare, seed=9)
    book2, rep = _boot(flash)
    assert rep["mount"]["dirty"] == 1
    book2.maintenance_allowed = True
    assert book2.maintenance() == "erase"
    assert book2.stats()["dirty"] == 0
    assert book2.state(100) == "PAID"


def test_garbage_over_an_old_used_sector_loses_only_that_sector(world: Any) -> None:
    flash, book = _filled()
    old = book.j.used_in_order()[0]
    flash.fill_garbage(old, seed=3)
    book2, rep = _boot(flash)
    assert rep["mount"]["state"] == "ok"
    assert book2.state(100) == "PAID"
    assert book2.state(12) == "CLOSED"


def test_weakly_erased_spares_are_rejected_before_use(world: Any) -> None:
    flash = sim_flash.NorFlash(8 * 4096, on_set_bit="and", seed=4)
    book, _ = _boot(flash)
    for s in range(8):
        if book.j.kind[s] == 1:
            flash.weaken(s, seed=s, share=64)  # some bits flip on the first read: the blank check sees them
    for sid in range(1, 30):
        _sell_m(book, sid)
        book.idle()
    assert flash.erases > 8  # weak sectors were found dirty and erased again, not written over
    book2, rep = _boot(flash)
    assert rep["mount"]["state"] == "ok"
    assert book2.state(29) == "CLOSED" and book2.sale(29)["approval"] == "A29"


def test_weak_bits_that_flip_after_writing_are_caught_by_crc(world: Any) -> None:
    flash = sim_flash.NorFlash(8 * 4096, on_set_bit="and", seed=4)
    book, _ = _boot(flash)
    book.idle()
    nxt = book.j._pick_spare()
    flash.weaken(nxt, seed=2, share=6, reads=50)  # these survive the blank check, flip later
    for sid in range(1, 4):  # 18 records: the weakened sector becomes the active one
        _sell_m(book, sid)
    assert book.j.active == nxt
    flash.settle()
    book2, rep = _boot(flash)
    assert rep["mount"]["state"] == "ok"
    assert rep["mount"]["corrupt_skipped"] >= 1
    _sell_m(book2, 50)
    assert book2.state(50) == "CLOSED"


def test_a_sector_failing_its_erase_verify_is_retired(world: Any) -> None:
    flash = sim_flash.NorFlash(8 * 4096)
    book, _ = _boot(flash)
    victim = next(s for s in range(8) if book.j.kind[s] == 1)
    flash.stick_bits(victim * 4096 + 700, 0x04)  # a worn cell: erase cannot set it any more
    book.j.kind[victim] = K_DIRTY
    book.maintenance_allowed = True
    assert book.maintenance() == "erase"
    assert book.stats()["retired"] == 1
    book2, rep = _boot(flash)
    assert rep["mount"]["retired"] == 1
    for sid in range(1, 60):
        _sell_m(book2, sid)
        book2.idle()
    assert book2.j.kind[victim] != K_USED


def test_full_journal_refuses_new_sales_and_keeps_the_open_ones(world: Any) -> None:
    flash = sim_flash.NorFlash(4 * 4096)
    book, _ = _boot(flash, keep_last=1000)
    book.open_sale(1, BODY)
    book.request_payment(1)
    err = None
    for sid in range(2, 200):
        try:
            _sell(book, sid)
        except R.JournalError as e:
            err = e
            break
        book.idle()
    assert err is not None and err.code in ("needs_maintenance", "journal_full")
    # The sale that was already open can still finish: its records were budgeted.
    assert book.payment_approved(1, "OK") == "PAID"
    assert book.start_print(1) == "PRINTING"
    assert book.print_done(1) == "PRINTED"
    assert book.close(1) == "CLOSED"
    assert flash.erases == 4  # the format only


def test_interrupted_format_is_finished_at_the_next_boot(world: Any) -> None:
    import sim_power

    flash = sim_flash.NorFlash(6 * 4096)
    book, _ = _boot(flash)
    book.open_sale(1, BODY)
    flash.arm_cut(flash.ops + 4)
    with pytest.raises(sim_power.PowerLoss):
        book.format(force=True)
    world.power.on = True
    book2, rep = _boot(flash)
    assert rep["mount"]["state"] == "ok" and book2.open_sales() == []
    assert rep["mount"]["generation"] >= 2  # a newer generation than the interrupted journal
    for s in range(6):
        assert book2.j.kind[s] != K_DIRTY or s == book2.j.active
    assert PAGES == 16


def test_broken_first_checkpoint_is_not_formatted_away(world: Any) -> None:
    flash = sim_flash.NorFlash(6 * 4096)
    book, _ = _boot(flash)
    book.open_sale(1, BODY)
    book.request_payment(1)
    book.payment_approved(1, "KEEP")
    ck = book.j.active * 4096 + 256  # the only checkpoint there is (written by the format)
    flash.flip_bit(ck + 3, 5)
    book2, rep = _boot(flash)  # one flipped bit: corrected
    assert rep["reprint"] == [1] and book2.receipt(1)["approval"] == "KEEP"
    assert rep["mount"]["corrected"] == 1 and rep["mount"]["corrupt_skipped"] == 0
    flash.flip_bit(ck + 40, 1)
    flash.flip_bit(ck + 90, 6)  # three bits: detected, the sector replays without its checkpoint
    book3, rep = _boot(flash)
    assert rep["reprint"] == [1] and book3.receipt(1)["approval"] == "KEEP"
    assert rep["mount"]["corrupt_skipped"] == 1
    assert flash.erases == 6  # never formatted away


def test_forced_format_cut_at_every_operation_is_all_or_nothing(world: Any) -> None:
    import sim_power

    base = sim_flash.NorFlash(6 * 4096)
    book, _ = _boot(base)
    for sid in range(1, 4):
        _sell(book, sid)
    book.open_sale(10, BODY)
    book.request_payment(10)
    image = base.image()
    probe = sim_flash.NorFlash(6 * 4096)
    probe.load_image(image)
    b, _ = _boot(probe)
    n0 = probe.ops
    b.format(force=True)
    n_ops = probe.ops - n0
    outcomes = set()
    for k in range(n_ops):
        for part in (None, 0.5):
            f = sim_flash.NorFlash(6 * 4096, seed=k + 1)
            f.load_image(image)
            b, rep = _boot(f)  # recovery voids sale 10 (a reversal is owed)
            f.arm_cut(f.ops + k, part)
            with pytest.raises(sim_power.PowerLoss):
                b.format(force=True)
            world.power.on = True
            b2, rep2 = _boot(f)
            assert rep2["mount"]["state"] == "ok"
            try:
                st = b2.state(10)
            except R.JournalError as e:
                assert e.code == "unknown_sale"
                assert b2.open_sales() == [] and _code_of(b2.state, 1) == "unknown_sale"
                outcomes.add("fresh")
            else:
                assert st == "REVERSAL_PENDING" and b2.state(1) == "CLOSED"  # the old journal, whole
                outcomes.add("old")
            f.release()
    assert outcomes == {"old", "fresh"}


def _code_of(fn: Any, *args: Any) -> str:
    try:
        fn(*args)
    except R.JournalError as e:
        return str(e.code)
    return ""


def test_a_flash_driver_error_is_a_journal_error(world: Any) -> None:
    flash = sim_flash.NorFlash(6 * 4096)
    book, _ = _boot(flash)
    book.open_sale(1, BODY)
    # A firmware bug or a driver failure surfaces as flash_fault, never as a bare OSError.
    book.j.next_page -= 1  # point the next append at an already programmed page
    with pytest.raises(R.JournalError) as e:
        book.request_payment(1)
    assert e.value.code == "flash_fault"
    assert flash.illegal_sets == 1
    assert book.state(1) == "OPEN"  # nothing changed
    assert book.request_payment(1) == "PAYMENT_PENDING"  # the next page is fresh again
