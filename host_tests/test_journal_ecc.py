"""Issue 16, firmware side: the page code (one flipped bit corrected, two or three always detected), the
keep_last sizing checked at profile load, recovery retried without a reboot, and the seq floor that keeps
records an interrupted erase left readable dead."""

from __future__ import annotations

import json
import random
import zlib
from typing import Any

import pytest
import sim_flash

from posguard import profile
from posguard import records as R
from posguard import sales as S
from posguard.journal import PAGES, Journal
from posguard_tools import paths

BODY = {"items": [["tea", 1, 120]], "total": 120}


def _page() -> bytes:
    buf = bytearray(R.PAGE)
    R.encode(buf, R.T_STATE, S.PAID, 0, 4242, 77, 3, b"AUTH-0077")
    return bytes(buf)


def test_every_single_flipped_bit_of_a_page_is_corrected() -> None:
    good = _page()
    for bit in range(R.PAGE * 8):  # header, payload, padding and the CRC itself
        b = bytearray(good)
        b[bit // 8] ^= 1 << (bit % 8)
        h = R.decode(b)
        assert h is not None and h[7] == 1, bit
        assert bytes(b) == good, bit
    h = R.decode(bytearray(good))
    assert h == (R.T_STATE, S.PAID, 0, 4242, 77, 9, 3, 0)


def test_two_or_three_flipped_bits_are_detected_never_miscorrected() -> None:
    good = _page()
    rng = random.Random(5)
    for k in range(4000):
        b = bytearray(good)
        for bit in rng.sample(range(R.PAGE * 8), 2 + k % 2):
            b[bit // 8] ^= 1 << (bit % 8)
        assert R.decode(b) is None


def test_the_page_code_has_distance_five_exhaustively() -> None:
    # Every 1-bit error pattern of the 2048-bit page has its own CRC difference (syndrome); no 2, 3 or 4
    # patterns cancel out (checked over all pairs): minimum distance >= 5, so correcting one bit can
    # never turn 2-3 flipped bits into another valid page (docs/reference/storage.md).
    n = R.BODY_END
    base = zlib.crc32(bytes(n))
    syn = []
    for j in range(n):
        for b in range(8):
            m = bytearray(n)
            m[j] ^= 1 << b
            syn.append(zlib.crc32(bytes(m)) ^ base)
    syn += [1 << k for k in range(32)]
    assert len(set(syn)) == len(syn) == R.PAGE * 8 and 0 not in syn
    pairs: set[int] = set()
    for i, si in enumerate(syn):
        for sk in syn[i + 1 :]:
            x = si ^ sk
            assert x not in pairs  # four patterns cancelling: a weight-4 codeword
            pairs.add(x)
    assert not any(s in pairs for s in syn)  # three patterns cancelling


def _board(name: str) -> dict[str, Any]:
    return dict(json.loads(paths.board_profile(name).read_text()))


def test_profile_sizes_keep_last_from_the_partition_and_the_host_line() -> None:
    from posguard import journal_limits as L
    from posguard.journal import REC_PAGES

    assert (L.PAYLOAD, L.REC_PAGES, L.MAX_BODY) == (R.MAX_PAYLOAD, REC_PAGES, L.MAX_DATA_PAGES * R.MAX_PAYLOAD)
    for name in ("devkit-1s", "pos-2s"):
        prof = _board(name)
        profile.validate(prof)
        most = S.keep_last_max(prof["journal"]["size_kb"] // 4, prof["host"]["line_max"])
        assert 0 < prof["journal"]["keep_last"] <= most
        prof["journal"]["keep_last"] = most + 1
        with pytest.raises(profile.ProfileError, match="journal.keep_last"):
            profile.validate(prof)
    prof = _board("devkit-1s")
    prof["host"]["line_max"] = S.MAX_BODY + 1
    with pytest.raises(profile.ProfileError, match="host.line_max"):
        profile.validate(prof)


def _largest_body(limit: int) -> dict[str, Any]:
    """Items with 32-character CJK names and the largest amounts, as many as stay under `limit` bytes
    the way the board encodes a body (a legal request line of line_max bytes holds less)."""
    body: dict[str, Any] = {"t": "2026-11-24 21:58", "i": [["\u4e2d" * 32, 999, 9999999] for _ in range(20)]}
    while len(S._dumps(body).encode()) > limit:
        body["i"].pop()
    return body


def test_the_largest_body_is_never_refused_for_space_quick(world: Any) -> None:
    prof = _board("devkit-1s")
    line_max = prof["host"]["line_max"]
    keep = S.keep_last_max(prof["journal"]["size_kb"] // 4, line_max)
    flash = sim_flash.NorFlash(prof["journal"]["size_kb"] * 1024)
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=keep)
    book.recover()
    big = _largest_body(line_max)
    assert len(S._dumps(big).encode()) > line_max - 100
    for sid in range(1, 121):
        book.maintenance_allowed = True  # the app's maintenance round between two sales
        for _ in range(30):
            if book.maintenance() is None:
                break
        book.maintenance_allowed = False
        book.open_sale(sid, big)  # never needs_maintenance / journal_full
        book.request_payment(sid)
        book.payment_approved(sid, "A" * 32)
        book.start_print(sid)
        book.print_done(sid)
        book.close(sid)
        book.idle()
    for sid in range(121 - keep, 121):
        assert book.sale(sid)["body"] == big


def test_recovery_without_space_is_retried_by_maintenance_without_a_reboot(world: Any, monkeypatch: Any) -> None:
    flash = sim_flash.NorFlash(8 * 4096)
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=3)
    book.recover()
    book.open_sale(1, BODY)
    book.request_payment(1)
    book2 = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=3)
    real = book2.j.append
    calls = [0]

    def full(*a: Any) -> int:
        calls[0] += 1
        raise R.JournalError("needs_maintenance", "no erased sector left")

    monkeypatch.setattr(book2.j, "append", full)
    rep = book2.recover()
    assert rep["pending"] == [1] and calls[0] == 1
    assert book2.stats()["recovery_pending"] == 1
    monkeypatch.setattr(book2.j, "append", real)
    book2.maintenance_allowed = True
    steps = [book2.maintenance() for _ in range(3)]
    assert "recover" in steps
    assert book2.state(1) == "REVERSAL_PENDING" and book2.reversals() == [1]
    assert book2.stats()["recovery_pending"] == 0


def test_an_erase_cut_that_leaves_the_old_sector_readable_brings_nothing_back(world: Any) -> None:
    flash = sim_flash.NorFlash(6 * 4096)
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=1)
    book.recover()
    book.open_sale(1, BODY)
    book.request_payment(1)
    book.payment_declined(1)
    tail = book.j.active
    old = flash.image()[tail * 4096 : (tail + 1) * 4096]
    book.maintenance_allowed = True
    sid = 2
    while book.j.erase_counts[tail] == 1:  # sell until compaction reclaims the sector of sale 1
        try:
            book.open_sale(sid, BODY)
        except R.JournalError:
            assert book.maintenance() is not None
            continue
        book.void(sid, "x")
        book.idle()
        sid += 1
    # The erase "did nothing" (a cut at its very start): put the old content back, header and all.
    img = bytearray(flash.image())
    img[tail * 4096 : (tail + 1) * 4096] = old
    flash.load_image(bytes(img))
    book2 = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=1)
    book2.recover()
    assert tail not in book2.j.used_in_order()  # below the floor: dead, erased again by maintenance
    with pytest.raises(R.JournalError) as e:
        book2.state(1)  # compacted away (keep_last 1): never back as PAYMENT_PENDING
    assert e.value.code == "unknown_sale"
    book2.maintenance_allowed = True
    assert book2.maintenance() == "erase"
    assert book2.j.kind[tail] == 1 and book2.j.erase_counts[tail] >= 2


def test_a_damaged_state_record_of_an_open_sale_owes_a_reversal(world: Any) -> None:
    flash = sim_flash.NorFlash(6 * 4096)
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=3)
    book.recover()
    book.open_sale(1, BODY)
    pg = book.j.append(R.T_STATE, S.PAYMENT_PENDING, 0, 1, b"")  # what request_payment writes
    for bit in (3, 200, 700):  # three flipped bits (not in the sale id): beyond correction, detected
        flash.flip_bit(pg * R.PAGE + bit // 8, bit % 8)
    book2 = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=3)
    rep = book2.recover()
    assert rep["reversal_pending"] == [1]  # the payment may have been requested: never a plain void
    assert rep["mount"]["corrupt_skipped"] == 1
    assert PAGES == 16


def test_a_paid_record_damaged_beyond_correction_keeps_the_sale_paid(world: Any) -> None:
    # Three flipped bits in the payload of the PAID record: the page does not decode, but its header
    # (own CRC) still says sale 1 went to PAID: the receipt is still owed, only the approval text is lost.
    flash = sim_flash.NorFlash(6 * 4096)
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=3)
    book.recover()
    book.open_sale(1, BODY)
    book.request_payment(1)
    book.payment_approved(1, "card:1234:AUTH77")
    pg = book.j.active * PAGES + book.j.next_page - 1
    for byte in (R.PAYLOAD_AT + 2, 100, 200):
        flash.flip_bit(pg * R.PAGE + byte, byte % 8)
    book2 = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=3)
    rep = book2.recover()
    assert rep["reprint"] == [1] and rep["reversal_pending"] == []
    assert rep["mount"]["corrupt_skipped"] == 1
    r = book2.receipt(1)
    assert r["state"] == "PAID" and r["approval"] is None and r["body"] == BODY
