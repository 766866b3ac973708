"""Journal.mount() step by step (issue 14): each step of the mount gets the damage it exists for, and
each test checks what that step decided and what the whole boot then does. `Steps` runs the steps
one at a time exactly as mount() chains them, and checks that it ends where mount() ends."""

from __future__ import annotations

from typing import Any

import pytest
import sim_flash
import sim_power
from journal_faults import LIFECYCLE, Pages, boot, finish_sale, maintain

from posguard import records as R
from posguard.compaction import compact_tail
from posguard.journal import K_DIRTY, K_SPARE, K_USED, PAGES, Journal

SECTORS = 8
KEEP = 2
BODY = {"t": "x", "i": [["tea", 1, 120]]}
# Byte offsets hit by three flipped bits (beyond correction: CRC-32 has distance 5 over a page).
HEADER_CRC = (16, 17, 18)  # the header's own CRC: neither the header nor the page checks
PAYLOAD = (20, 21, 22)  # the payload only: the header still checks, the payload is lost
# What the steps set and mount() leaves behind: both must agree.
STATE_FIELDS = ("state", "mounted", "active", "seq", "floor", "count_known", "gen", "max_gen", "next_page",
                "skip_due", "ck_active", "corrupt", "corrected", "bytes_read")


class Steps:
    """mount() taken apart on a fresh Journal over `flash`: what each step returned or left."""

    def __init__(self, flash: Any) -> None:
        j = self.j = Journal(sim_flash.BlockDevice(flash))
        self.replayed: list[tuple[int, tuple[int, int, int, int] | None, Any]] = []
        j._begin_mount()
        self.gens = [0] * j.nsec
        self.ours, self.blank, self.torn_seq = j._scan_sectors(self.gens)
        self.scanned = bytes(j.kind)
        self.order = j._choose_generation(self.gens, self.ours, self.blank)
        self.chosen = bytes(j.kind)
        self.ck = -1
        self.last_nb = -1
        if self.order:
            self.ck = j._find_checkpoint(self.order)
            self.last_nb = j._replay_records(self.order, self.ck, self._note)
            if self.last_nb >= 0:
                j._close_tail(self.order[-1], self.last_nb, self.torn_seq)
        whole = Journal(sim_flash.BlockDevice(flash))
        whole.mount(lambda pg, h, payload: None)
        for name in STATE_FIELDS:
            assert getattr(j, name) == getattr(whole, name), f"steps and mount() disagree on {name}"
        assert bytes(j.kind) == bytes(whole.kind) and j.erase_counts == whole.erase_counts

    def _note(self, pg: int, h: Any, payload: Any) -> None:
        # (type, seq, sale id, fixed) of a replayed record; None for a damaged page (payload: its sale id)
        self.replayed.append((pg, None if h is None else (h[0], h[3], h[4], h[7]), payload))


def _fresh(seed: int = 1, keep_last: int = KEEP) -> tuple[Any, Any, Pages]:
    flash = sim_flash.NorFlash(SECTORS * 4096, seed=seed)
    pages = Pages(flash)
    book, _ = boot(flash, keep_last)
    return flash, book, pages


def _wreck(flash: Any, page_addr: int, offsets: tuple[int, ...]) -> None:
    for off in offsets:
        flash.flip_bit(page_addr + off, off % 8)


def _assert_unknown(book: Any, sid: int) -> None:
    with pytest.raises(R.JournalError) as e:
        book.state(sid)
    assert e.value.code == "unknown_sale", f"sale {sid} came back: {e.value.code}"


def _header_seq(flash: Any, page_addr: int) -> int:
    buf = bytearray(R.PAGE)
    flash.read(page_addr, buf)
    h = R.decode_header(buf)
    assert h is not None, "the torn page's header does not check"
    return int(h[3])


# -- step 1: scan and classify every sector -----------------------------------------------------------
def test_scan_takes_a_spare_whose_erase_header_is_damaged_for_dirty(world: Any) -> None:
    flash, book, _ = _fresh()
    book.open_sale(1, BODY)
    finish_sale(book, 1, upto=2)  # PAID
    spare = next(s for s in range(SECTORS) if book.j.kind[s] == K_SPARE)
    spares = book.j.spare_count()
    count = book.j.erase_counts[spare]
    _wreck(flash, spare * 4096, HEADER_CRC)

    st = Steps(flash)
    assert st.scanned[spare] == K_DIRTY, "a spare without a valid erase header was taken as erased"
    assert st.j.erase_counts[spare] == st.j.count_known >= count  # its lost count: the highest known

    book2, rep = boot(flash, KEEP)
    assert rep["mount"]["state"] == "ok" and rep["mount"]["dirty"] == 1 and rep["mount"]["spare"] == spares - 1
    assert book2.state(1) == "PAID" and rep["reprint"] == [1]
    maintain(book2)
    assert book2.j.kind[spare] == K_SPARE and book2.j.erase_counts[spare] > count


def test_scan_reads_through_a_sector_whose_first_record_pages_are_damaged(world: Any) -> None:
    flash, book, pages = _fresh()
    act = book.j.active
    (_, opened) = pages.during(book.open_sale, 1, BODY)
    finish_sale(book, 1, upto=2)  # PAYMENT_PENDING, PAID after the OPEN
    assert opened == [act * 4096 + 2 * R.PAGE]  # page 1 holds the format's checkpoint
    for p in (1, 2):  # the checkpoint and the OPEN: damaged beyond repair, headers included
        _wreck(flash, act * 4096 + p * R.PAGE, HEADER_CRC)
    erases = flash.erases

    st = Steps(flash)
    assert st.scanned[act] == K_USED, "a sector holding records was judged by its first two pages"
    assert st.j.sseq[act] == _header_seq(flash, act * 4096 + 3 * R.PAGE)  # its age: the first valid record

    book2, rep = boot(flash, KEEP)
    assert flash.erases == erases, "the boot formatted a journal that holds a paid sale"
    assert rep["mount"]["state"] == "ok" and rep["mount"]["corrupt_skipped"] == 2
    assert book2.state(1) == "PAID" and rep["reprint"] == [1]  # back from its STATE records, body lost


# -- step 2: choose the generation and the order of the used sectors ----------------------------------
def test_generation_choice_drops_a_sector_of_an_older_format(world: Any) -> None:
    old, old_book, _ = _fresh(seed=2)
    for sid in range(1, 9):  # generation 1, sequence numbers well above the new format's floor
        old_book.open_sale(sid, BODY)
        finish_sale(old_book, sid)
    stale = old_book.j.active
    flash, book, _ = _fresh(seed=3)
    book.format(force=True)  # generation 2
    book.open_sale(50, BODY)
    finish_sale(book, 50, upto=2)
    assert book.j.gen == 2 and old_book.j.gen == 1
    host = next(s for s in range(SECTORS) if book.j.kind[s] == K_SPARE)
    assert old_book.j.sseq[stale] > book.j.floor
    image = bytearray(flash.image())
    image[host * 4096 : (host + 1) * 4096] = old.image()[stale * 4096 : (stale + 1) * 4096]
    flash.load_image(bytes(image))

    st = Steps(flash)
    assert st.scanned[host] == K_USED and st.gens[host] == 1  # a readable sector of generation 1 ...
    assert st.order == book.j.used_in_order(), "a sector of the older format was replayed"
    assert st.chosen[host] == K_DIRTY and st.j.gen == 2  # ... is stale: erased again

    book2, rep = boot(flash, KEEP)
    assert rep["mount"]["state"] == "ok" and book2.j.active != host
    assert book2.state(50) == "PAID" and rep["reprint"] == [50]
    for sid in range(1, 9):
        _assert_unknown(book2, sid)
    book2.open_sale(51, BODY)
    assert book2.j.active != host


# -- step 3: find the newest readable checkpoint ------------------------------------------------------
def test_checkpoint_search_walks_back_past_a_damaged_checkpoint(world: Any) -> None:
    flash, book, pages = _fresh()
    book.open_sale(1, BODY)
    book.request_payment(1)
    book.payment_approved(1, "ONE")
    book.j.roll()  # sale 1 is in this sector's checkpoint
    book.open_sale(2, BODY)
    book.request_payment(2)
    book.payment_approved(2, "TWO")
    _, newest = pages.during(book.j.roll)
    book.start_print(2)
    _wreck(flash, newest[0], PAYLOAD)  # the newest checkpoint's header checks, its sale list is lost

    st = Steps(flash)
    assert st.order is not None
    older = st.order[-2]
    assert st.ck // PAGES == older and st.ck != newest[0] // R.PAGE, "the damaged checkpoint was taken"
    assert not st.j.ck_active  # idle() writes a new one into the active sector
    assert (newest[0] // R.PAGE, None, 0) in st.replayed  # passed by, counted as damaged

    book2, rep = boot(flash, KEEP)
    assert rep["mount"]["state"] == "ok" and rep["mount"]["corrupt_skipped"] == 1
    assert rep["reprint"] == [1, 2] and book2.state(2) == "PRINTING"
    assert book2.receipt(1)["approval"] == "ONE" and book2.receipt(2)["approval"] == "TWO"


# -- step 4: replay the records -----------------------------------------------------------------------
def test_replay_reports_damaged_records_and_goes_on(world: Any) -> None:
    flash, book, pages = _fresh()
    book.open_sale(7, BODY)
    _, asked = pages.during(book.request_payment, 7)  # this record is lost: sale 7 owes a reversal
    book.open_sale(8, BODY)
    book.request_payment(8)
    _, paid = pages.during(book.payment_approved, 8, "AUTH8")  # this one keeps its header only
    book.start_print(8)
    _wreck(flash, asked[0], HEADER_CRC)
    _wreck(flash, paid[0], PAYLOAD)

    st = Steps(flash)
    pg_asked, pg_paid = asked[0] // R.PAGE, paid[0] // R.PAGE
    assert (pg_asked, None, 7) in st.replayed, "a damaged record was not reported with its sale id"
    assert (pg_paid, (R.T_STATE, _header_seq(flash, paid[0]), 8, 2), None) in st.replayed
    assert st.replayed[-1][1] is not None and st.replayed[-1][1][2] == 8  # the replay went on after both
    assert st.last_nb == pg_paid % PAGES + 1  # START_PRINT of sale 8: the last written page

    book2, rep = boot(flash, KEEP)
    assert rep["mount"]["corrupt_skipped"] == 2
    assert book2.state(7) == "REVERSAL_PENDING" and 7 in rep["reversal_pending"]
    assert book2.state(8) == "PRINTING" and rep["reprint"] == [8]
    assert not book2.receipt(8)["approval"]  # the payload is lost, the receipt is still owed


# -- step 5: close the tail ---------------------------------------------------------------------------
def test_tail_never_reuses_the_number_of_a_torn_first_record_in_a_new_sector(world: Any) -> None:
    flash, book, pages = _fresh()
    sid = 1
    while book.j.next_page < PAGES:  # fill the active sector: the next commit takes a spare
        book.open_sale(sid, BODY)
        sid += 1
    old_active = book.j.active
    flash.arm_cut(flash.ops, 1.0, mode="all_but_tail")  # its header lands, its CRC does not
    with pytest.raises(sim_power.PowerLoss):
        pages.during(book.request_payment, 1)
    world.power.on = True
    torn = pages.seen[0]
    assert torn // 4096 != old_active and torn % 4096 == R.PAGE
    torn_seq = _header_seq(flash, torn)

    st = Steps(flash)
    assert st.torn_seq == torn_seq and st.j.active == old_active
    assert st.j.seq >= torn_seq, "a sequence number a torn page holds would be handed out again"

    book2, rep = boot(flash, KEEP)  # recovery records VOIDED for every open sale, past the torn page
    assert sorted(rep["voided"]) == list(range(1, sid))
    for _ in range(2):
        book2, rep = boot(flash, KEEP)
        assert rep["voided"] == [] and rep["reversal_pending"] == []
        assert all(book2.state(s) == "VOIDED" for s in range(1, sid))
    assert flash.reprograms == 0


def test_tail_skips_the_page_after_the_last_written_one(world: Any) -> None:
    flash, book, pages = _fresh()
    book.open_sale(1, BODY)
    flash.arm_cut(flash.ops, 0.0, mode="none")  # cut before a bit changed: the page reads blank
    with pytest.raises(sim_power.PowerLoss):
        pages.during(book.request_payment, 1)
    world.power.on = True
    blank_torn = pages.seen[0] // R.PAGE

    st = Steps(flash)
    assert st.j.active * PAGES + st.last_nb == blank_torn - 1
    assert st.j.next_page == st.last_nb + 1 and st.j.skip_due

    book2, rep = boot(flash, KEEP)
    assert rep["voided"] == [1]
    _, wrote = pages.during(book2.open_sale, 2, BODY)
    assert wrote and wrote[0] // R.PAGE != blank_torn  # recovery's VOIDED already skipped it
    for name in LIFECYCLE:
        args = (2, "A2") if name == "payment_approved" else (2,)
        getattr(book2, name)(*args)
    assert flash.reprograms + flash.reprograms_blank == 0, "a page cut blank was programmed again"
    book3, _ = boot(flash, KEEP)
    assert book3.state(1) == "VOIDED" and book3.state(2) == "CLOSED"


def test_tail_drops_a_sector_the_replayed_floor_reclaimed(world: Any) -> None:
    flash, book, _ = _fresh(keep_last=0)
    book.open_sale(1, BODY)
    finish_sale(book, 1)  # CLOSED: kept by no one (keep_last 0)
    book.open_sale(2, BODY)
    finish_sale(book, 2, upto=2)  # PAID: compaction carries it
    book.j.roll()
    book.open_sale(3, BODY)
    tail = book.j.used_in_order()[0]

    def cut_the_erase(kind: str, index: int, addr: int) -> None:
        if kind == sim_flash.OP_ERASE:
            flash.arm_cut(index)  # before the erase: the tail stays readable, its floor is written

    flash.on_op = cut_the_erase
    book.j.maint = True
    with pytest.raises(sim_power.PowerLoss):
        compact_tail(book)
    flash.on_op = None
    world.power.on = True

    st = Steps(flash)
    assert st.order is not None and st.order[0] == tail  # the erase headers do not know the new floor
    assert st.j.floor > st.j.sseq[tail]  # the replayed checkpoint does
    assert st.j.kind[tail] == K_DIRTY, "a reclaimed sector was left in use"

    book2, rep = boot(flash, KEEP)
    assert tail not in book2.j.used_in_order() and rep["mount"]["dirty"] >= 1
    assert book2.state(2) == "PAID" and rep["reprint"] == [2] and book2.receipt(2)["approval"] == "A2"
    _assert_unknown(book2, 1)  # compacted away: never read back from the sector left readable
    maintain(book2)
    assert book2.j.kind[tail] == K_SPARE
