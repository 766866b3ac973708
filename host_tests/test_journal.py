"""The sale journal: state machine, idempotency, errors, recovery rules, maintenance, stats, export."""

from __future__ import annotations

from typing import Any

import esp32
import pytest
import sim_flash

from posguard import records as R
from posguard import sales as S
from posguard.journal import PAGES, REC_PAGES, Journal


def _book(world: Any, sectors: int = 8, keep_last: int = 5) -> tuple[Any, Any]:
    flash = world.board.partitions.get("journal")
    if flash is None:
        flash = sim_flash.NorFlash(sectors * 4096, label="journal")
        world.board.partitions["journal"] = flash
    (part,) = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")
    book = S.SaleBook(Journal(part), keep_last=keep_last)
    return book, flash


def _reboot(world: Any, keep_last: int = 5) -> tuple[Any, dict[str, Any]]:
    book, _ = _book(world, keep_last=keep_last)
    return book, book.recover()


def _code(fn: Any, *args: Any) -> str:
    with pytest.raises(R.JournalError) as e:
        fn(*args)
    return str(e.value.code)


BODY = {"items": [["coffee", 2, 250]], "total": 500}


def _sell(book: Any, sid: int, approval: str = "AUTH") -> None:
    book.open_sale(sid, BODY)
    book.request_payment(sid)
    book.payment_approved(sid, approval)
    book.start_print(sid)
    book.print_done(sid)
    book.close(sid)


def test_blank_partition_is_formatted_and_a_sale_goes_through(world: Any) -> None:
    book, flash = _book(world)
    rep = book.recover()
    assert rep["mount"]["state"] == "ok" and rep["voided"] == []
    assert book.open_sale(7, BODY) == "OPEN"
    assert book.request_payment(7) == "PAYMENT_PENDING"
    assert book.payment_approved(7, "A1B2C3") == "PAID"
    assert book.start_print(7) == "PRINTING"
    assert book.print_done(7) == "PRINTED"
    assert book.close(7) == "CLOSED"
    s = book.sale(7)
    assert s["body"] == BODY and s["approval"] == "A1B2C3" and s["state"] == "CLOSED" and not s["copy"]


def test_one_page_program_and_no_erase_per_transition(world: Any) -> None:
    book, flash = _book(world)
    book.recover()
    book.idle()
    for sid in range(1, 4):
        before = (flash.programs, flash.erases)
        book.open_sale(sid, BODY)
        assert (flash.programs - before[0], flash.erases - before[1]) == (1, 0)
        for call, args in ((book.request_payment, ()), (book.payment_approved, ("X",)), (book.start_print, ())):
            book.idle()
            before = (flash.programs, flash.erases)
            call(sid, *args)
            assert (flash.programs - before[0], flash.erases - before[1]) == (1, 0)


def test_repeated_commands_return_the_state_and_write_nothing(world: Any) -> None:
    book, flash = _book(world)
    book.recover()
    book.open_sale(1, BODY)
    book.request_payment(1)
    book.payment_approved(1, "OK")
    n = flash.programs
    assert book.open_sale(1, {"other": 1}) == "PAID"
    assert book.request_payment(1) == "PAID"
    assert book.payment_approved(1, "OK") == "PAID"
    assert flash.programs == n
    book.start_print(1)
    book.print_done(1)
    book.close(1)
    n = flash.programs
    assert book.close(1) == "CLOSED"  # a finished sale: found in the journal
    assert book.payment_approved(1, "OK") == "CLOSED"
    assert flash.programs == n


def test_bad_input_gives_clear_errors_and_changes_nothing(world: Any) -> None:
    book, flash = _book(world)
    book.recover()
    book.open_sale(1, BODY)
    n = flash.programs
    assert _code(book.request_payment, 99) == "unknown_sale"
    assert _code(book.print_done, 1) == "illegal_transition"  # PRINTED before PAID
    assert _code(book.close, 1) == "illegal_transition"
    assert _code(book.open_sale, 2, {"items": ["x" * 100] * 30}) == "too_large"
    assert _code(book.open_sale, 0, BODY) == "bad_input"
    assert _code(book.open_sale, "3", BODY) == "bad_input"
    assert _code(book.open_sale, 4, {"x": {1, 2}}) == "bad_input"
    book.request_payment(1)
    n = flash.programs
    assert _code(book.payment_approved, 1, "A" * 40) == "bad_input"
    assert flash.programs == n
    assert book.state(1) == "PAYMENT_PENDING"
    with pytest.raises(R.JournalError) as e:
        book.start_print(1)
    assert "PAYMENT_PENDING" in str(e.value) and "PRINTING" in str(e.value)


def test_recovery_rules(world: Any) -> None:
    book, _ = _book(world)
    book.recover()
    book.open_sale(1, BODY)  # OPEN -> VOIDED
    book.open_sale(2, BODY)
    book.request_payment(2)  # PAYMENT_PENDING -> VOIDED + REVERSAL_PENDING
    book.open_sale(3, BODY)
    book.request_payment(3)
    book.payment_approved(3, "P3")  # PAID -> reprint as a copy
    book.open_sale(4, BODY)
    book.request_payment(4)
    book.payment_approved(4, "P4")
    book.start_print(4)  # PRINTING -> reprint as a copy
    book.open_sale(5, BODY)
    book.request_payment(5)
    book.payment_approved(5, "P5")
    book.start_print(5)
    book.print_done(5)  # PRINTED -> CLOSED
    book, rep = _reboot(world)
    assert rep["voided"] == [1, 2]
    assert rep["reversal_pending"] == [2]
    assert rep["reprint"] == [3, 4]
    assert rep["closed"] == [5]
    assert book.state(1) == "VOIDED" and book.sale(1)["reason"] == "power loss"
    assert book.state(2) == "REVERSAL_PENDING"
    assert book.print_queue() == [3, 4] and book.reversals() == [2]
    r = book.receipt(3)
    assert r["copy"] and r["copy_note"] == "reprinted after power loss" and r["approval"] == "P3"
    # The copy stays queued over further reboots until PRINTED is recorded.
    book, rep = _reboot(world)
    assert rep["reprint"] == [3, 4] and rep["voided"] == []
    book.start_print(3)
    book.print_done(3)
    assert book.print_queue() == [4]
    book, rep = _reboot(world)
    assert rep["reprint"] == [4] and rep["closed"] == [3]
    assert book.reversal_acked(2) == "REVERSAL_ACKED"
    assert book.reversals() == []
    s2 = book.sale(2)
    assert s2["state"] == "REVERSAL_ACKED" and s2["approval"] is None


def test_void_with_reason_and_declined(world: Any) -> None:
    book, _ = _book(world)
    book.recover()
    book.open_sale(1, BODY)
    assert book.void(1, "customer left") == "VOIDED"
    assert book.sale(1)["reason"] == "customer left"
    assert book.void(1, "again") == "VOIDED"
    book.open_sale(2, BODY)
    book.request_payment(2)
    assert book.payment_declined(2) == "DECLINED"
    assert _code(book.void, 2, "late") == "illegal_transition"
    book.open_sale(3, BODY)
    book.request_payment(3)
    assert book.void(3, "timeout") == "REVERSAL_PENDING"
    assert _code(book.payment_approved, 3, "LATE") == "illegal_transition"


def test_format_refuses_with_open_sales_unless_forced(world: Any) -> None:
    book, _ = _book(world)
    book.recover()
    book.open_sale(1, BODY)
    assert _code(book.format) == "sales_open"
    assert book.state(1) == "OPEN"
    book.format(force=True)
    assert book.open_sales() == []
    assert _code(book.state, 1) == "unknown_sale"
    book2, rep = _reboot(world)
    assert rep["voided"] == [] and rep["mount"]["generation"] == 2


def test_foreign_partition_is_reported_not_crashed(world: Any) -> None:
    book, flash = _book(world)
    for s in range(flash.sectors):
        flash.fill_garbage(s, seed=s + 1)
    with pytest.raises(R.JournalError) as e:
        book.recover()
    assert e.value.code == "corrupt"
    assert book.j.state == "corrupt"
    book.format(force=True)
    assert book.open_sale(1, BODY) == "OPEN"


def test_mount_reads_are_flat_in_fill(world: Any) -> None:
    book, flash = _book(world, sectors=16, keep_last=100)
    book.recover()
    reads = []
    sid = 1
    for target in (10, 50, 90):
        while book.stats()["fill_pct"] < target:
            _sell(book, sid)
            book.idle()
            sid += 1
        b2, rep = _reboot(world, keep_last=100)
        reads.append(rep["mount"]["mount_bytes_read"])
    assert max(reads) == min(reads), reads
    # pages 0-2 of every sector, the active sector's headers, its checkpoint and its record pages
    assert reads[0] == 16 * 3 * 256 + REC_PAGES * 16 + 256 + REC_PAGES * 256


def test_new_sale_refused_before_space_runs_out_then_maintenance_frees_it(world: Any) -> None:
    book, flash = _book(world, sectors=6, keep_last=2)
    book.recover()
    sid = 1
    code = None
    for _ in range(200):
        try:
            _sell(book, sid)
        except R.JournalError as e:
            code = e.code
            break
        book.idle()
        sid += 1
    assert code == "needs_maintenance"
    assert book.j.spare_count() >= 1  # the reserve spare is still there
    assert flash.erases == 6  # only the initial format: nothing erased on the commit path
    assert book.maintenance() is None  # not allowed by the power policy yet
    book.maintenance_allowed = True
    steps = []
    for _ in range(20):
        r = book.maintenance()
        if r is None:
            break
        steps.append(r)
    assert "compact" in steps
    _sell(book, sid)
    # The last keep_last closed sales are still readable with their bodies.
    for k in (sid - 1, sid - 2):
        assert book.sale(k)["body"] == BODY


def test_keep_last_too_large_never_stops_sales(world: Any) -> None:
    # keep_last larger than the partition can hold (profile.load refuses it; a SaleBook built by hand
    # may still get it): compaction drops the oldest finished sales instead of refusing new ones.
    book, _ = _book(world, sectors=4, keep_last=1000)
    book.recover()
    book.maintenance_allowed = True
    codes = set()
    for sid in range(1, 100):
        try:
            _sell(book, sid)
        except R.JournalError as e:
            codes.add(e.code)
            for _ in range(10):
                if book.maintenance() is None:
                    break
            try:
                _sell(book, sid)
            except R.JournalError as e2:
                codes.add(e2.code)
                break
        book.idle()
    assert codes <= {"needs_maintenance"}
    assert book.state(99) == "CLOSED"


def test_large_body_uses_data_pages_and_survives_compaction(world: Any) -> None:
    book, _ = _book(world, sectors=6, keep_last=3)
    book.recover()
    big = {"items": [[f"item number {i}", i, 100 * i] for i in range(30)], "total": 1}
    book.open_sale(1, big)
    assert book.sale(1)["body"] == big
    book.request_payment(1)
    book.payment_approved(1, "BIG")
    book.maintenance_allowed = True
    for sid in range(2, 40):
        try:
            _sell(book, sid)
        except R.JournalError:
            while book.maintenance():
                pass
            _sell(book, sid)
        book.idle()
    assert book.j.erase_counts != [1] * 6  # compaction ran
    s = book.sale(1)
    assert s["body"] == big and s["approval"] == "BIG" and s["state"] == "PAID"
    book, rep = _reboot(world, keep_last=3)
    assert rep["reprint"] == [1]
    assert book.receipt(1)["body"] == big


def test_closed_sales_export_is_paged_in_close_order(world: Any) -> None:
    book, _ = _book(world, sectors=8, keep_last=50)
    book.recover()
    for sid in (5, 3, 9, 1):
        _sell(book, sid)
    book.open_sale(20, BODY)
    page, nxt = book.closed_sales(0, 3)
    assert [s["id"] for s in page] == [5, 3, 9]
    assert nxt is not None
    page2, nxt2 = book.closed_sales(nxt, 3)
    assert [s["id"] for s in page2] == [1] and nxt2 is None


def test_wear_is_spread_and_visible_in_stats(world: Any) -> None:
    book, _ = _book(world, sectors=6, keep_last=2)
    book.recover()
    book.maintenance_allowed = True
    for sid in range(1, 300):
        try:
            _sell(book, sid)
        except R.JournalError:
            while book.maintenance():
                pass
            _sell(book, sid)
        book.idle()
    st = book.stats()
    counts = st["erase_counts"]
    assert max(counts) >= 5
    assert max(counts) - min(counts) <= 2, counts
    assert st["sectors"] == 6 and st["corrupt_skipped"] == 0 and st["live"] == 0


def test_too_many_open_sales(world: Any) -> None:
    book, _ = _book(world, sectors=32)
    book.recover()
    for sid in range(1, S.MAX_LIVE + 1):
        book.open_sale(sid, BODY)
    assert _code(book.open_sale, 100, BODY) == "too_many_open"
    # All of them survive a reboot through the checkpoint of a new sector.
    for _ in range(3):
        book.j.roll()
    book, rep = _reboot(world)
    assert rep["voided"] == list(range(1, S.MAX_LIVE + 1))


def test_body_split_across_sectors_survives_compaction(world: Any, monkeypatch: Any) -> None:
    # A body spans two sectors when the active one fills up in the middle of it (an open is one
    # commit: it never waits for a new sector). Compact the sector holding its first DATA pages.
    book, _ = _book(world, sectors=6, keep_last=3)
    book.recover()
    while book.j.next_page < PAGES - 2:
        book.open_sale(900 + book.j.next_page, BODY)
        book.void(900 + book.j.next_page - 1, "fill")
    big = {"items": [[f"line {i}", i, 10 * i] for i in range(30)], "total": 2}
    first = book.j.active
    book.open_sale(1, big)
    assert book.j.active != first  # the body really was split over two sectors
    erased_before = book.j.erase_counts[first]
    book.request_payment(1)
    book.payment_approved(1, "SPLIT")
    book.maintenance_allowed = True
    for sid in range(2, 40):
        try:
            _sell(book, sid)
        except R.JournalError:
            while book.maintenance():
                pass
            _sell(book, sid)
        book.idle()
    assert book.j.erase_counts[first] > erased_before  # the sector with the first DATA pages was reclaimed
    assert book.sale(1)["body"] == big


def test_export_pages_through_every_kept_sale_once(world: Any) -> None:
    book, _ = _book(world, sectors=8, keep_last=6)
    book.recover()
    book.maintenance_allowed = True
    for sid in range(1, 60):
        try:
            _sell(book, sid)
        except R.JournalError:
            while book.maintenance():
                pass
            _sell(book, sid)
        book.idle()
    seen: list[int] = []
    cursor = 0
    for _ in range(100):
        page, cursor = book.closed_sales(cursor, 4)
        seen += [s["id"] for s in page]
        assert all(s["body"] == BODY for s in page)
        if cursor is None:
            break
    assert len(seen) == len(set(seen))  # compaction copies are not listed twice
    assert seen == sorted(seen)  # sold in id order here, so close order is id order
    assert seen[-6:] == list(range(54, 60))  # at least the last keep_last are there
    assert book.closed_sales(0, 1000) == book.closed_sales(0, S.MAX_EXPORT)  # pages are capped
