"""`Terminal`: a cashier app's end of the host link (docs/terminal.md "Host link protocol").

One request at a time, each with its own `seq`; a reply with another seq is a late answer to an earlier
attempt and is dropped. A request that gets no usable reply within `timeout_s` is sent again unchanged
after a second of silence (the terminal drops a partial line after 1 s without bytes: a retry never
splices onto a fragment), at most `attempts` times, then `LinkTimeout`. Every sale operation is
idempotent on the terminal, so a retry after a lost reply (or a reboot) is safe; the client also
remembers, per sale id, the digest of the `open` body and the `pay`/`approve` fields it sent, and refuses
locally (`DuplicateId`, nothing sent) a second, different request under the same id.

Lines carry a CRC-32 by default (`crc=True`): the terminal then checks every line and answers with a CRC
of its own, so a damaged reply is dropped (and the request retried) instead of misread.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from posguard_client import errors

# The terminal's caps (board profile "host", both boards; docs/terminal.md).
LINE_MAX = 2048
ID_MAX = 2**31 - 1
SEQ_MAX = 2**30 - 1
RESYNC_S = 1.0  # the terminal's idle gap (hostlink.IDLE_GAP_MS): silence that ends any partial line
_REMEMBER = 256  # sale ids whose open/pay/approve fields the client remembers (oldest forgotten first)
_PAGES_MAX = 100_000  # export_all: a guard against a cursor that never advances
# Codes that, with no seq echoed, mean the terminal could not read our (always valid) line: it was
# damaged on the wire. Resent like a lost reply.
_DAMAGE = ("BAD_JSON", "BAD_CRC", "BAD_REQUEST", "LINE_TOO_LONG")


class Link(Protocol):
    """What the client needs from a serial port: pyserial's Serial (opened with a short read timeout),
    or anything with the same two calls."""

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...


@dataclass(frozen=True)
class Item:
    name: str
    price: int  # minor units (fen, cents)
    qty: int = 1

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "qty": self.qty, "price": self.price}


@dataclass(frozen=True)
class Sale:
    """A sale operation's answer: the sale's state now (and whether its receipt is queued)."""

    id: int
    state: str
    printing: str | None = None  # "queued", "parked: <why>", or None
    copy: bool = False  # a reprint: the copy is marked on paper
    reply: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ExportPage:
    records: list[dict[str, Any]]
    next: int | None  # the cursor for the next page; None at the end


ItemLike = Item | dict[str, Any] | tuple[str, int] | tuple[str, int, int]


def as_item(it: ItemLike) -> Item:
    """An Item from an Item, a {"name", "price", "qty"} dict, (name, price) or (name, price, qty)."""
    if isinstance(it, Item):
        return it
    if isinstance(it, dict):
        return Item(str(it["name"]), int(it["price"]), int(it.get("qty", 1)))
    if len(it) == 2:
        return Item(it[0], it[1])
    return Item(it[0], it[1], it[2])


def open_digest(items: Sequence[Item], sale_time: str | None) -> str:
    """The digest the terminal stores with an opened sale (firmware/posguard/commands.py open_digest):
    the same bytes, so the client can tell a retry from a different sale exactly as the terminal does."""
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it.name}\x00{it.qty}\x00{it.price}\x01".encode())
    h.update(f"t\x00{sale_time or ''}".encode())
    return h.digest()[:8].hex()


def _local_refusal(cls: type[errors.Refused], msg: str, todo: str = "") -> errors.Refused:
    return cls({"ok": False, "seq": None, "err": cls.code, "msg": msg, "do": todo or cls.todo, "local": True})


def _with_crc(line: bytes) -> bytes:
    return line + b"*%08x" % (binascii.crc32(line) & 0xFFFFFFFF)


def _split_crc(line: bytes) -> tuple[bytes, bool]:
    """(JSON text, CRC good). A line without a CRC suffix counts as good only when crc is off."""
    if len(line) >= 9 and line[-9:-8] == b"*":
        body = line[:-9]
        try:
            want = int(line[-8:], 16)
        except ValueError:
            return line, False
        return body, binascii.crc32(body) & 0xFFFFFFFF == want
    return line, False


class Terminal:
    """A posguard terminal on a serial port (a device path such as /dev/ttyUSB0, a `make vboard` HOST
    pty, or any pyserial URL), or on an already open Link."""

    def __init__(
        self,
        port: str | Link,
        *,
        baudrate: int = 115200,
        timeout_s: float = 2.0,
        attempts: int = 3,
        crc: bool = True,
        line_max: int = LINE_MAX,
        resync_s: float = RESYNC_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        first_seq: int | None = None,
    ) -> None:
        if attempts < 1 or timeout_s <= 0:
            raise ValueError("attempts must be >= 1 and timeout_s > 0")
        self._own = isinstance(port, str)
        if isinstance(port, str):
            import serial  # pyserial: only needed for a real port

            self.link: Link = serial.serial_for_url(port, baudrate=baudrate, timeout=0.02, write_timeout=timeout_s)
        else:
            self.link = port
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.crc = crc
        self.line_max = line_max
        self.resync_s = resync_s
        self._clock = clock
        self._sleep = sleep
        # A random first seq: a late reply from a previous session of the app cannot match ours.
        self._seq = random.randrange(1, SEQ_MAX) if first_seq is None else first_seq
        self._rx = bytearray()
        self._sent: OrderedDict[tuple[str, int], str] = OrderedDict()  # (op, sale id) -> request digest
        self.retries = 0  # requests sent again (lost or damaged replies)
        self.stale_replies = 0  # replies to earlier attempts, dropped

    # -- context manager ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._own:
            closer = getattr(self.link, "close", None)
            if closer is not None:
                closer()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Battery, printer, journal, reversals pending, `accepting` (None, or the code a new sale gets)."""
        r = self.request({"op": "status"})
        return {k: v for k, v in r.items() if k not in ("ok", "seq")}

    def open_sale(self, sale_id: int, items: Sequence[ItemLike], sale_time: str | None = None) -> Sale:
        """A new sale, OPEN. `sale_time` "YYYY-MM-DD HH:MM" goes on the receipt (else the terminal's clock)."""
        its = [as_item(i) for i in items]
        req: dict[str, Any] = {"op": "open", "id": sale_id, "items": [i.wire() for i in its]}
        if sale_time is not None:
            req["time"] = sale_time
        return self._sale(req, remember=("open", open_digest(its, sale_time), "items"))

    def pay(self, sale_id: int, method: str) -> Sale:
        """OPEN -> PAYMENT_PENDING (`card`, `qr` or `cash`): journaled before the payment request goes out."""
        return self._sale({"op": "pay", "id": sale_id, "method": method}, remember=("pay", method, "payment method"))

    def approve(self, sale_id: int, auth: str, last4: str | None = None) -> Sale:
        """-> PAID, receipt queued. Never refused for power or paper: the customer has paid."""
        req: dict[str, Any] = {"op": "approve", "id": sale_id, "auth": auth}
        if last4 is not None:
            req["last4"] = last4
        return self._sale(req, remember=("approve", f"{auth}:{last4 or ''}", "approval"))

    def decline(self, sale_id: int, reason: str | None = None) -> Sale:
        return self._sale(self._with_reason({"op": "decline", "id": sale_id}, reason))

    def void(self, sale_id: int, reason: str | None = None) -> Sale:
        """OPEN -> VOIDED; PAYMENT_PENDING -> REVERSAL_PENDING (a VOID slip prints)."""
        return self._sale(self._with_reason({"op": "void", "id": sale_id}, reason))

    def ack_reversal(self, sale_id: int) -> Sale:
        """REVERSAL_PENDING -> REVERSAL_ACKED, once the acquirer has the reversal."""
        return self._sale({"op": "ack_reversal", "id": sale_id})

    def sale(self, sale_id: int) -> Sale:
        return self._sale({"op": "sale", "id": sale_id})

    def reprint(self, sale_id: int | None = None) -> Sale:
        """A marked copy ("Reprint on request") of a printed sale (None: the last original since boot)."""
        req: dict[str, Any] = {"op": "reprint"}
        if sale_id is not None:
            req["id"] = sale_id
        return self._sale(req, check_id=sale_id is not None)

    def export(self, after: int = 0, limit: int = 4) -> ExportPage:
        """One page of finished sales from the electronic journal (limit 1-16)."""
        r = self.request({"op": "export", "after": after, "limit": limit})
        recs = r.get("records")
        nxt = r.get("next")
        if not isinstance(recs, list) or not (nxt is None or isinstance(nxt, int)):
            raise errors.ProtocolError(f"export reply without records/next: {r!r}")
        return ExportPage(recs, nxt)

    def export_all(self, after: int = 0, limit: int = 16) -> Iterator[dict[str, Any]]:
        """Every finished sale after the cursor, page by page."""
        for _ in range(_PAGES_MAX):
            page = self.export(after, limit)
            yield from page.records
            if page.next is None or page.next <= after:
                return
            after = page.next

    # -- the request/reply exchange -----------------------------------------------------------------
    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        """Send one request (any op) and return the ok reply, or raise the code's exception."""
        self._seq = self._seq % SEQ_MAX + 1
        seq = self._seq
        line = json.dumps(dict(req, seq=seq), ensure_ascii=False, separators=(",", ":")).encode()
        if len(line) > self.line_max:
            raise _local_refusal(errors.LineTooLong, f"request is {len(line)} bytes, over line_max {self.line_max}")
        wire = (_with_crc(line) if self.crc else line) + b"\n"
        for attempt in range(self.attempts):
            if attempt:
                self.retries += 1
                self._resync()
            self.link.write(wire)
            reply = self._await(seq)
            if reply is None:
                continue  # lost, damaged, or the terminal could not read our line: send it again
            if reply.get("ok") is True:
                return reply
            raise errors.from_reply(reply)
        raise errors.LinkTimeout(
            f"no reply to {req.get('op')!r} after {self.attempts} attempt(s) of {self.timeout_s} s: the request may "
            "or may not have been executed; repeat it unchanged or ask the sale's state"
        )

    def _await(self, seq: int) -> dict[str, Any] | None:
        deadline = self._clock() + self.timeout_s
        while self._clock() < deadline:
            line = self._line()
            if line is None:
                continue
            body, good = _split_crc(line)
            if self.crc and not good:
                continue  # damaged (or a stray line without CRC): as good as lost
            try:
                reply = json.loads(body)
            except ValueError:
                continue
            if not isinstance(reply, dict) or "ok" not in reply:
                continue
            rseq = reply.get("seq")
            if rseq == seq:
                if reply.get("ok") is False and reply.get("err") == "BAD_CRC":
                    return None  # our line was damaged on the way: send it again
                return reply
            if rseq is None and reply.get("ok") is False and reply.get("err") in _DAMAGE:
                return None  # the terminal could not read a line: ours, damaged
            self.stale_replies += 1
        return None

    def _line(self) -> bytes | None:
        """One reply line if one is complete (waits at most the link's read timeout)."""
        i = self._rx.find(b"\n")
        if i < 0:
            waiting = getattr(self.link, "in_waiting", 0)
            chunk = self.link.read(max(1, int(waiting or 0)))
            if chunk:
                self._rx += chunk
                if len(self._rx) > 64 * LINE_MAX:  # garbage without newlines: keep the tail only
                    del self._rx[: -LINE_MAX * 8]
            i = self._rx.find(b"\n")
            if i < 0:
                return None
        line = bytes(self._rx[:i]).rstrip(b"\r")
        del self._rx[: i + 1]
        return line

    def _resync(self) -> None:
        """Silence longer than the terminal's idle gap (a partial line there is dropped), and drop
        whatever arrived meanwhile except the replies we may still want (they carry their seq)."""
        self._sleep(self.resync_s)

    # -- helpers --------------------------------------------------------------------------------------
    def _check_same(self, op: str, sale_id: int, digest: str, what: str) -> None:
        had = self._sent.get((op, sale_id))
        if had is not None and had != digest:
            raise _local_refusal(
                errors.DuplicateId,
                f"sale {sale_id} was sent with different {what} by this client: nothing sent",
                "a new sale needs a new id; a retry must repeat the request unchanged",
            )

    def _remember(self, op: str, sale_id: int, digest: str) -> None:
        """The terminal may hold it now (it answered, or the reply was lost): later requests must match."""
        key = (op, sale_id)
        self._sent[key] = digest
        self._sent.move_to_end(key)
        while len(self._sent) > _REMEMBER * 3:
            self._sent.popitem(last=False)

    @staticmethod
    def _with_reason(req: dict[str, Any], reason: str | None) -> dict[str, Any]:
        if reason is not None:
            req["reason"] = reason
        return req

    def _sale(self, req: dict[str, Any], check_id: bool = True, remember: tuple[str, str, str] | None = None) -> Sale:
        sid0 = req.get("id")
        if remember is not None and isinstance(sid0, int):
            self._check_same(remember[0], sid0, remember[1], remember[2])
        try:
            r = self.request(req)
        except errors.LinkTimeout:
            if remember is not None and isinstance(sid0, int):
                self._remember(remember[0], sid0, remember[1])
            raise
        if remember is not None and isinstance(sid0, int):
            self._remember(remember[0], sid0, remember[1])
        sid = r.get("id")
        state = r.get("state")
        if not isinstance(sid, int) or not isinstance(state, str) or (check_id and sid != req.get("id")):
            raise errors.ProtocolError(f"reply to {req.get('op')!r} for sale {req.get('id')} is not about it: {r!r}")
        printing = r.get("printing")
        return Sale(sid, state, printing if isinstance(printing, str) else None, bool(r.get("copy")), r)
