"""posguard_client against the firmware's own host-link code (hostlink.unwrap for the CRC, validate,
commands on the real journal on simulated NOR flash), in process: every reply the client sees is one the
firmware built. The link in between loses, damages and delays replies on demand, so the retry, seq and
CRC paths are exercised against real answers. The virtual board end to end is test_client_vboard.py."""

from __future__ import annotations

import binascii
import json
from typing import Any

import pytest
from test_app_commands import FakeMonitor, make

from posguard import commands, printer_status, validate
from posguard.hostlink import HostLink
from posguard_client import Item, LinkTimeout, Terminal, errors, open_digest
from posguard_client.terminal import ItemLike

LIM = validate.Limits({"line_max": 2048, "items_max": 20, "name_max": 32, "amount_max": 10_000_000})
ITEMS: list[ItemLike] = [("拿铁 Latte", 1800, 2), ("Croissant", 1200)]


class FirmwareLink:
    """The wire plus the terminal: write() runs the line through the firmware, read() hands out reply
    bytes. `drop`, `damage`, `late` and `garble` change what the wire does to the next replies (or
    request); `chunks` records what the wire handed back after each write."""

    def __init__(self, world: Any, mon: FakeMonitor | None = None) -> None:
        self.cmds, self.book, self.jobs = make(world, mon)
        self.host = HostLink(None, LIM.line_max)
        self.out = bytearray()
        self.lines: list[bytes] = []
        self.chunks: list[bytes] = []
        self.drop = 0  # replies lost on the wire
        self.damage = 0  # replies with one byte flipped
        self.late: list[bytes] = []  # replies held back, delivered before the next reply
        self.hold = 0  # replies to hold back
        self.garble = 0  # requests damaged on the way to the terminal
        self.now = 0.0

    # the clock the client uses: time passes only while it waits for bytes
    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s

    def write(self, data: bytes) -> int:
        self.lines.append(bytes(data))
        line = bytes(data).rstrip(b"\n")
        if self.garble:
            self.garble -= 1
            line = line.replace(b'"op"', b'"oq"', 1)  # the CRC no longer matches
        try:
            body, crc = self.host.unwrap(memoryview(line))
            req = validate.validate_line(bytes(body), LIM)
            reply = self.cmds.handle(req)
        except validate.HostError as e:
            reply, crc = commands.error_reply(getattr(e, "seq", None), e), self.host.crc_required
        text = json.dumps(reply).encode()
        if crc:
            text += b"*%08x" % (binascii.crc32(text) & 0xFFFFFFFF)
        self.chunks.append(self._wire(text + b"\n"))
        self.out += self.chunks[-1]
        return len(data)

    def _wire(self, text: bytes) -> bytes:
        """What of a reply (and of replies held back before it) reaches the client now."""
        if self.drop:
            self.drop -= 1
            return b""
        if self.damage:
            self.damage -= 1
            text = text[:5] + bytes([text[5] ^ 0x01]) + text[6:]
        if self.hold:
            self.hold -= 1
            self.late.append(text)
            return b""
        out = b"".join(self.late) + text
        self.late.clear()
        return out

    def read(self, size: int = 1) -> bytes:
        if not self.out:
            self.now += 0.02  # the serial port's read timeout
            return b""
        got = bytes(self.out[:size])
        del self.out[:size]
        return got

    @property
    def in_waiting(self) -> int:
        return len(self.out)


def terminal(link: FirmwareLink, **kw: Any) -> Terminal:
    return Terminal(link, clock=link.clock, sleep=link.sleep, first_seq=100, **kw)


def test_a_sale_from_open_to_closed_receipt_queued(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link)
    assert pos.open_sale(1042, ITEMS, "2026-11-24 12:05").state == "OPEN"
    assert pos.pay(1042, "card").state == "PAYMENT_PENDING"
    paid = pos.approve(1042, "A1B2C3", last4="4242")
    assert (paid.id, paid.state, paid.printing) == (1042, "PAID", "queued")
    st = pos.status()
    assert st["printer"]["owed"] == 1 and st["accepting"] is None and "ok" not in st
    # Every line went out with a CRC, and the terminal switched to checking them.
    assert all(b"*" in ln for ln in link.lines) and link.host.crc_required
    assert link.book.sale(1042)["approval"] == "card:4242:A1B2C3"


def test_digest_is_the_firmwares() -> None:
    items = [Item("拿铁 Latte", 1800, 2), Item("Croissant", 1200)]
    fw = commands.open_digest([(i.name, i.qty, i.price) for i in items], "2026-11-24 12:05")
    assert open_digest(items, "2026-11-24 12:05") == fw
    assert open_digest(items, None) == commands.open_digest([(i.name, i.qty, i.price) for i in items], None)
    assert open_digest(items[:1], None) != fw


def test_lost_reply_is_retried_and_the_retry_changes_nothing(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link, timeout_s=0.5)
    pos.open_sale(7, ITEMS)
    pos.pay(7, "qr")
    link.drop = 1  # the approval reaches the terminal, its reply is lost
    paid = pos.approve(7, "Q9")
    assert paid.state == "PAID" and pos.retries == 1
    approves = [ln for ln in link.lines if b'"approve"' in ln]
    assert len(approves) == 2 and approves[0] == approves[1]  # the same line again, same seq
    assert link.book.sale(7)["approval"] == "qr::Q9" and link.jobs.owed() == 1  # one receipt owed, not two
    assert link.now >= 0.5 + 1.0  # waited the timeout and a second of silence before the retry


def test_damaged_reply_is_not_read_but_retried(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link, timeout_s=0.3)
    link.damage = 1
    assert pos.open_sale(8, ITEMS).state == "OPEN"
    assert pos.retries == 1


def test_late_reply_to_an_earlier_attempt_is_dropped(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link, timeout_s=0.3)
    pos.open_sale(9, ITEMS)
    link.hold = 1  # the reply to pay is delayed past the timeout, then arrives before the retry's
    assert pos.pay(9, "cash").state == "PAYMENT_PENDING"
    # ...and a late reply to a request the app gave up on never answers the next request.
    link.hold = 1
    pos.attempts = 1
    with pytest.raises(LinkTimeout):
        pos.sale(9)
    pos.attempts = 3
    assert pos.approve(9, "CASH1").state == "PAID"
    assert pos.stale_replies >= 2


def test_no_reply_at_all_is_a_timeout_after_the_attempts(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link, timeout_s=0.2, attempts=3)
    link.drop = 3
    with pytest.raises(LinkTimeout, match="may or may not have been executed"):
        pos.open_sale(10, ITEMS)
    assert len(link.lines) == 3
    # It was executed: the same request again is answered with the sale's state, nothing new written.
    assert pos.open_sale(10, ITEMS).state == "OPEN"


def test_typed_errors_from_the_firmware(world: Any) -> None:
    mon = FakeMonitor()
    link = FirmwareLink(world, mon)
    pos = terminal(link)
    with pytest.raises(errors.CardNumber) as card:
        pos.open_sale(11, [("card 4111 1111 1111 1111", 100)])
    assert "4111" not in str(card.value) and isinstance(card.value, errors.RequestInvalid)
    with pytest.raises(errors.BadAmount):
        pos.open_sale(11, [("Tea", 0)])
    with pytest.raises(errors.UnknownSale):
        pos.pay(12, "card")
    pos.open_sale(13, ITEMS)
    with pytest.raises(errors.IllegalTransition) as ill:
        pos.approve(13, "A1")
    assert ill.value.state == "OPEN" and isinstance(ill.value, errors.SaleConflict)
    mon.state_name, mon.soc_pct = "CRITICAL", 3.0
    with pytest.raises(errors.BatteryCritical) as crit:
        pos.open_sale(14, ITEMS)
    assert crit.value.do.startswith("connect the charger")
    mon.state_name = "OK"
    link.jobs.problem = printer_status.PAPER_OUT
    with pytest.raises(errors.PaperOut):
        pos.open_sale(14, ITEMS)
    # Refusals changed nothing: the id is still free for the same or another sale.
    link.jobs.problem = None
    assert pos.open_sale(14, [("Tea", 300)]).state == "OPEN"


def test_duplicate_id_locally_and_from_the_terminal(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link)
    pos.open_sale(20, ITEMS)
    sent = len(link.lines)
    with pytest.raises(errors.DuplicateId) as local:
        pos.open_sale(20, [("Tea", 300)])
    assert local.value.reply.get("local") is True and len(link.lines) == sent  # refused before sending
    # A second app instance (no memory of sale 20): the terminal itself says DUPLICATE_ID.
    other = terminal(link)
    with pytest.raises(errors.DuplicateId) as remote:
        other.open_sale(20, [("Tea", 300)])
    assert "local" not in remote.value.reply
    pos.pay(20, "card")
    with pytest.raises(errors.DuplicateId):
        other.pay(20, "qr")
    pos.approve(20, "OK1", "4242")
    with pytest.raises(errors.DuplicateId):
        pos.approve(20, "OK2", "4242")


def test_void_reversal_reprint_and_export(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link)
    pos.open_sale(30, ITEMS)
    pos.pay(30, "card")
    assert pos.void(30, "timeout").state == "REVERSAL_PENDING"
    assert pos.status()["reversals"] == [30]
    assert pos.ack_reversal(30).state == "REVERSAL_ACKED"
    pos.open_sale(31, ITEMS)
    pos.pay(31, "card")
    assert pos.decline(31, "insufficient funds").state == "DECLINED"
    with pytest.raises(errors.IllegalTransition):
        pos.reprint(31)
    # Sales closed by the journal appear in the export, page by page.
    for sid in range(40, 46):
        pos.open_sale(sid, [("Tea", 300 + sid)])
        pos.void(sid)
    recs = list(pos.export_all(limit=2))
    ids = [r["id"] for r in recs]
    assert set(range(40, 46)) <= set(ids) and len(ids) == len(set(ids))
    page = pos.export(0, 1)
    assert len(page.records) == 1 and page.next is not None


def test_line_over_the_cap_is_refused_before_sending(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link)
    with pytest.raises(errors.LineTooLong):
        pos.open_sale(50, [("x" * 32, 100)] * 60)
    assert link.lines == []
    # One byte under the cap goes out (and the firmware answers for its contents, not its length).
    pos.line_max = 4096
    with pytest.raises(errors.TooManyItems):
        pos.open_sale(50, [("x" * 32, 100)] * 21)


def test_bad_crc_reply_from_terminal_means_resend(world: Any) -> None:
    link = FirmwareLink(world)
    pos = terminal(link)
    pos.status()  # the terminal now requires CRCs
    link.garble = 1  # damaged on the wire: the CRC no longer matches
    assert pos.open_sale(60, ITEMS).state == "OPEN"
    assert pos.retries == 1 and link.host.bad_crc == 1
