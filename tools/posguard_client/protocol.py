"""The host link without I/O (docs/terminal.md "Host link protocol"): the one implementation of it on the
cashier's side.

`Terminal` (blocking CPython on a serial port) and the simulated cashier of `make sim`
(host_tests/simhw/sim_host.HostClient: virtual time, a simulated UART, CPython or the unix port) both drive
a `Session`; they own only the transport and the clock. A session builds each request line (its `seq`,
optional CRC-32, the line cap), judges each reply line (the answer to the request in flight, a late answer
to an earlier one, a line the terminal could not read so ours must go again, or junk), counts the
attempts, and remembers per sale id what `open`/`pay`/`approve` carried, so a second, different request
under the same id is refused before it is sent.

MicroPython subset (it runs inside the unix port): no typing at run time (the annotations CPython would
evaluate are strings, for mypy only), no dataclasses, no `from __future__`. Dicts are unordered there,
so lines are encoded here in a fixed key order: the same call gives the same bytes on both runtimes.
"""

import binascii
import hashlib
import json
import sys

from posguard_client import codes

if sys.implementation.name != "micropython":
    from typing import Any

# The terminal's caps (board profile "host", both boards; docs/terminal.md).
LINE_MAX = 2048
SEQ_MAX = 2**30 - 1
REMEMBER = 256  # sale ids whose open/pay/approve fields a session remembers (oldest forgotten first)

# What a reply line is to the request in flight (Session.judge).
MINE = "mine"  # its answer (ok or an error code)
RESEND = "resend"  # the terminal could not read our line (damaged on the wire): send the same line again
LATE = "late"  # an answer to an earlier attempt or request: dropped
JUNK = "junk"  # damaged (bad CRC), not JSON or not a reply: as good as lost

# Codes that, with no seq echoed, mean the terminal could not read a line: ours (always valid), damaged
# on the wire.
_DAMAGE = ("BAD_JSON", "BAD_CRC", "BAD_REQUEST", "LINE_TOO_LONG")
# Key order on the wire: the documented fields in the order Terminal has always written them, any other
# key after them (sorted), `seq` last.
_KEY_ORDER = (
    "op",
    "id",
    "items",
    "name",
    "qty",
    "price",
    "method",
    "auth",
    "last4",
    "reason",
    "time",
    "after",
    "limit",
)
_KEY_HEAD = tuple((k, '"' + k + '":') for k in _KEY_ORDER)


class Refusal(Exception):
    """A request refused before it is sent; `reply` looks like the terminal's error reply, with "local"."""

    def __init__(self, code: "str", msg: "str", todo: "str" = "") -> None:
        row = codes.entry(code)
        self.reply = {
            "ok": False,
            "seq": None,
            "err": code,
            "msg": msg,
            "do": todo or (row[3] if row is not None else ""),
            "local": True,
        }
        super().__init__(code + ": " + msg)


def error_class_name(code: "str") -> "str":
    """The posguard_client.errors class a reply with this code raises ("Refused" for an unknown code)."""
    row = codes.entry(code)
    return row[1] if row is not None else "Refused"


# -- encoding -------------------------------------------------------------------------------------------
# Written into one list of pieces and joined once: on the unix port the simulated cashier's garbage shares
# the firmware's heap budget.
if sys.implementation.name == "micropython":

    def _string(s: "str") -> "str":
        t = json.dumps(s)  # UTF-8 as it is, like CPython's with ensure_ascii=False, but \b and \f as \u00XX
        if "\\u000" in t:
            t = t.replace("\\u0008", "\\b").replace("\\u000c", "\\f")
        return t

else:

    def _string(s: "str") -> "str":
        return json.dumps(s, ensure_ascii=False)


def _emit(out: "list[str]", obj: "Any", seq: "int | None" = None) -> "None":
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(str(obj))
    elif isinstance(obj, str):
        out.append(_string(obj))
    elif isinstance(obj, (list, tuple)):
        sep = "["
        for v in obj:
            out.append(sep)
            _emit(out, v)
            sep = ","
        out.append("]" if sep == "," else "[]")
    elif isinstance(obj, dict):
        sep = "{"
        for k, head in _KEY_HEAD:
            if k in obj:
                out.append(sep)
                out.append(head)
                _emit(out, obj[k])
                sep = ","
        rest = [k for k in obj if k not in _KEY_ORDER and k != "seq"]
        if seq is None and "seq" in obj:
            seq = obj["seq"]
        for k in sorted(rest):
            out.append(sep)
            out.append(_string(k) + ":")
            _emit(out, obj[k])
            sep = ","
        if seq is not None:
            out.append(sep)
            out.append('"seq":')
            _emit(out, seq)
            sep = ","
        out.append("}" if sep == "," else "{}")
    elif isinstance(obj, float):
        out.append(json.dumps(obj))  # no request carries one; the runtimes may print floats differently
    else:
        raise TypeError(f"not JSON for the host link: {obj!r}")


def encode(obj: "Any", seq: "int | None" = None) -> "str":
    """Compact JSON, UTF-8 text as it is (not \\u escaped), keys in the wire order; `seq` (if given)
    replaces any the object has, last."""
    out: list[str] = []
    _emit(out, obj, seq)
    return "".join(out)


def with_crc(line: "bytes") -> "bytes":
    return line + b"*%08x" % (binascii.crc32(line) & 0xFFFFFFFF)


def split_crc(line: "bytes") -> "tuple[bytes, bool]":
    """(JSON text, CRC good). A line without a CRC suffix is not good (it only counts when crc is off)."""
    if len(line) >= 9 and line[-9] == 42:  # b"*" (an index, not a slice: nothing allocated)
        body = line[:-9]
        try:
            want = int(line[-8:], 16)
        except ValueError:
            return line, False
        return body, binascii.crc32(body) & 0xFFFFFFFF == want
    return line, False


# -- requests -------------------------------------------------------------------------------------------
def open_digest(items: "list[dict[str, Any]]", sale_time: "str | None") -> "str":
    """The digest the terminal stores with an opened sale (firmware/posguard/commands.py open_digest) over
    wire items ({"name", "qty", "price"}): the same bytes, so a retry is told from a different sale exactly
    as the terminal does."""
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it['name']}\x00{it['qty']}\x00{it['price']}\x01".encode())
    h.update(("t\x00" + (sale_time or "")).encode())
    return binascii.hexlify(h.digest()[:8]).decode()


def wire_item(name: "str", price: "int", qty: "int" = 1) -> "dict[str, Any]":
    return {"name": name, "qty": qty, "price": price}


# Each builder returns (request, memo): what the session remembers of it, (op, sale id, what it carried,
# what to call that in a refusal), or None.
def open_request(
    sale_id: "int", items: "list[dict[str, Any]]", sale_time: "str | None" = None, memo: "bool" = True
) -> "tuple[dict[str, Any], tuple[str, int, str, str] | None]":
    """`open`; items as wire items (see wire_item; "qty" may be left out for 1). memo=False: no digest
    (a session that remembers nothing needs none)."""
    its = [it if "qty" in it else wire_item(it["name"], it["price"]) for it in items]
    req: dict[str, Any] = {"op": "open", "id": sale_id, "items": its}
    if sale_time is not None:
        req["time"] = sale_time
    return req, ("open", sale_id, open_digest(its, sale_time), "items") if memo else None


def pay_request(sale_id: "int", method: "str") -> "tuple[dict[str, Any], tuple[str, int, str, str] | None]":
    return {"op": "pay", "id": sale_id, "method": method}, ("pay", sale_id, method, "payment method")


def approve_request(
    sale_id: "int", auth: "str", last4: "str | None" = None
) -> "tuple[dict[str, Any], tuple[str, int, str, str] | None]":
    req: dict[str, Any] = {"op": "approve", "id": sale_id, "auth": auth}
    if last4 is not None:
        req["last4"] = last4
    return req, ("approve", sale_id, auth + ":" + (last4 or ""), "approval")


def sale_request(
    op: "str", sale_id: "int | None" = None, reason: "str | None" = None
) -> "tuple[dict[str, Any], tuple[str, int, str, str] | None]":
    """decline, void (with an optional reason), ack_reversal, sale, reprint (id optional): nothing to remember."""
    req: dict[str, Any] = {"op": op}
    if sale_id is not None:
        req["id"] = sale_id
    if reason is not None:
        req["reason"] = reason
    return req, None


class Session:
    """One request at a time. `start` a request, send its line; `attempt()` before each send (False once
    the attempts are used up); hand every reply line to `judge`; `finish` with the answer (None: no usable
    reply after every attempt)."""

    def __init__(
        self,
        last_seq: "int" = 0,
        crc: "bool" = True,
        line_max: "int" = LINE_MAX,
        attempts: "int" = 3,
        remember: "int" = REMEMBER,
    ) -> None:
        self.seq = last_seq  # the seq of the latest request (the next one takes seq % SEQ_MAX + 1)
        self.crc = crc
        self.line_max = line_max
        self.attempts = attempts
        self.remember = remember
        self.busy = False  # a request is in flight (started, not finished)
        self.tries = 0  # sends of the request in flight
        self.retries = 0  # requests sent again (lost or damaged replies)
        self.stale_replies = 0  # replies to earlier attempts or requests, dropped
        self._memo: tuple[str, int, str, str] | None = None
        self._sent: dict[tuple[str, int], str] = {}  # (op, sale id) -> what it carried
        self._order: list[tuple[str, int]] = []  # oldest first (MicroPython dicts keep no order)

    def start(self, req: "dict[str, Any]", memo: "tuple[str, int, str, str] | None" = None) -> "bytes":
        """The line (with newline) of a new request; Refusal (nothing to send) when this session sent
        different fields under the same sale id, or the line is over line_max."""
        if memo is not None:
            had = self._sent.get((memo[0], memo[1]))
            if had is not None and had != memo[2]:
                raise Refusal(
                    "DUPLICATE_ID",
                    f"sale {memo[1]} was sent with different {memo[3]} by this client: nothing sent",
                    "a new sale needs a new id; a retry must repeat the request unchanged",
                )
        self.seq = self.seq % SEQ_MAX + 1
        line = encode(req, self.seq).encode()
        if len(line) > self.line_max:
            raise Refusal("LINE_TOO_LONG", f"request is {len(line)} bytes, over line_max {self.line_max}")
        self._memo = memo if self.remember > 0 else None
        self.busy = True
        self.tries = 0
        return (with_crc(line) if self.crc else line) + b"\n"

    def attempt(self) -> "bool":
        """May the line go (again)? Counts the send."""
        if not self.can_retry():
            return False
        if self.tries:
            self.retries += 1
        self.tries += 1
        return True

    def can_retry(self) -> "bool":
        """Is an attempt left for the request in flight?"""
        return self.tries < self.attempts

    def judge(self, line: "bytes") -> "tuple[str, dict[str, Any] | None]":
        """(verdict, reply dict or None) of one reply line (without its newline)."""
        body, good = split_crc(line)
        if self.crc and not good:
            return JUNK, None  # damaged (or a stray line without CRC): as good as lost
        try:
            reply = json.loads(body)
        except ValueError:
            return JUNK, None
        if type(reply) is not dict or "ok" not in reply:
            return JUNK, None
        rseq = reply.get("seq")
        if self.busy:
            if rseq == self.seq:
                if reply.get("ok") is False and reply.get("err") == "BAD_CRC":
                    return RESEND, reply  # our line was damaged on the way
                return MINE, reply
            if rseq is None and reply.get("ok") is False and reply.get("err") in _DAMAGE:
                return RESEND, reply  # the terminal could not read a line: ours, damaged
        self.stale_replies += 1  # with nothing in flight, every reply is late
        return LATE, reply

    def finish(self, reply: "dict[str, Any] | None") -> "None":
        """The request is over. Unless the terminal refused it (nothing changed there), it may hold what
        the request carried now: later requests under its sale id must match."""
        memo = self._memo
        self._memo = None
        self.busy = False
        if memo is None or (reply is not None and reply.get("ok") is not True):
            return
        key = (memo[0], memo[1])
        if key in self._sent:
            self._order.remove(key)
        self._sent[key] = memo[2]
        self._order.append(key)
        while len(self._order) > self.remember * 3:
            del self._sent[self._order.pop(0)]
