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

The protocol itself (lines, seq, CRC, what a reply is to the request in flight, the per-sale memory) is
`protocol.Session`, which the simulated cashier of `make sim` drives too; this class adds the serial
port, the clock and the typed answers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from posguard_client import errors, protocol
from posguard_client.protocol import LINE_MAX, SEQ_MAX

ID_MAX = 2**31 - 1
RESYNC_S = 1.0  # the terminal's idle gap (hostlink.IDLE_GAP_MS): silence that ends any partial line
_PAGES_MAX = 100_000  # export_all: a guard against a cursor that never advances
T = TypeVar("T")


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
    return protocol.open_digest([it.wire() for it in items], sale_time)


class _FromSession(Generic[T]):
    """An attribute of a Terminal that lives in its protocol session."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Terminal, objtype: type | None = None) -> T:
        return cast(T, getattr(obj.session, self.name))

    def __set__(self, obj: Terminal, value: T) -> None:
        setattr(obj.session, self.name, value)


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
        self.resync_s = resync_s
        self._clock = clock
        self._sleep = sleep
        # A random first seq: a late reply from a previous session of the app cannot match ours.
        last_seq = random.randrange(1, SEQ_MAX) if first_seq is None else first_seq
        self.session = protocol.Session(last_seq, crc=crc, line_max=line_max, attempts=attempts)
        self._rx = bytearray()

    # The session's settings and counters, as attributes of the terminal.
    attempts = _FromSession[int]()
    crc = _FromSession[bool]()
    line_max = _FromSession[int]()
    retries = _FromSession[int]()  # requests sent again (lost or damaged replies)
    stale_replies = _FromSession[int]()  # replies to earlier attempts, dropped

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
        return self._sale(*protocol.open_request(sale_id, [as_item(i).wire() for i in items], sale_time))

    def pay(self, sale_id: int, method: str) -> Sale:
        """OPEN -> PAYMENT_PENDING (`card`, `qr` or `cash`): journaled before the payment request goes out."""
        return self._sale(*protocol.pay_request(sale_id, method))

    def approve(self, sale_id: int, auth: str, last4: str | None = None) -> Sale:
        """-> PAID, receipt queued. Never refused for power or paper: the customer has paid."""
        return self._sale(*protocol.approve_request(sale_id, auth, last4))

    def decline(self, sale_id: int, reason: str | None = None) -> Sale:
        return self._sale(*protocol.sale_request("decline", sale_id, reason))

    def void(self, sale_id: int, reason: str | None = None) -> Sale:
        """OPEN -> VOIDED; PAYMENT_PENDING -> REVERSAL_PENDING (a VOID slip prints)."""
        return self._sale(*protocol.sale_request("void", sale_id, reason))

    def ack_reversal(self, sale_id: int) -> Sale:
        """REVERSAL_PENDING -> REVERSAL_ACKED, once the acquirer has the reversal."""
        return self._sale(*protocol.sale_request("ack_reversal", sale_id))

    def sale(self, sale_id: int) -> Sale:
        return self._sale(*protocol.sale_request("sale", sale_id))

    def reprint(self, sale_id: int | None = None) -> Sale:
        """A marked copy ("Reprint on request") of a printed sale (None: the last original since boot)."""
        req, _ = protocol.sale_request("reprint", sale_id)
        return self._sale(req, None, check_id=sale_id is not None)

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
    def request(self, req: dict[str, Any], memo: tuple[str, int, str, str] | None = None) -> dict[str, Any]:
        """Send one request (any op) and return the ok reply, or raise the code's exception. `memo` (from the
        protocol's request builders) is what the session remembers of a sale operation."""
        try:
            wire = self.session.start(req, memo)
        except protocol.Refusal as e:
            raise errors.from_reply(e.reply) from None
        while self.session.attempt():
            if self.session.tries > 1:
                self._resync()
            self.link.write(wire)
            reply = self._await()
            if reply is None:
                continue  # lost, damaged, or the terminal could not read our line: send it again
            self.session.finish(reply)
            if reply.get("ok") is True:
                return reply
            raise errors.from_reply(reply)
        self.session.finish(None)
        raise errors.LinkTimeout(
            f"no reply to {req.get('op')!r} after {self.attempts} attempt(s) of {self.timeout_s} s: the request may "
            "or may not have been executed; repeat it unchanged or ask the sale's state"
        )

    def _await(self) -> dict[str, Any] | None:
        """The reply to the request in flight, or None: none in time, or the terminal asks for it again."""
        deadline = self._clock() + self.timeout_s
        while self._clock() < deadline:
            line = self._line()
            if line is None:
                continue
            verdict, reply = self.session.judge(line)
            if verdict == protocol.MINE:
                return reply
            if verdict == protocol.RESEND:
                return None
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
    def _sale(self, req: dict[str, Any], memo: tuple[str, int, str, str] | None, check_id: bool = True) -> Sale:
        r = self.request(req, memo)
        sid = r.get("id")
        state = r.get("state")
        if not isinstance(sid, int) or not isinstance(state, str) or (check_id and sid != req.get("id")):
            raise errors.ProtocolError(f"reply to {req.get('op')!r} for sale {req.get('id')} is not about it: {r!r}")
        printing = r.get("printing")
        return Sale(sid, state, printing if isinstance(printing, str) else None, bool(r.get("copy")), r)
