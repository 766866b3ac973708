# Max-size host requests on a fragmented heap (unix port, the ESP32 heap model): after hours of trading
# the heap has tens of KB free but no free block much over 1 KB. The firmware's host task (HostLink ->
# Terminal.host_loop -> validation -> commands -> the reply) must answer every request of a long run of
# 2 KB lines without a MemoryError: it parses each line where it lies and writes each reply from a
# preallocated chunk, never a copy the size of a line or a reply. Before that, each request made two
# 2 KB copies (the line as bytes, then as str) and each reply three of its own size.
import binascii
import gc
import json
import sys

import mpy_runner

from posguard import app, commands
from posguard.hostlink import HostLink

LINE_MAX = 2048
ROUNDS = 12
HOLE = 1024  # the largest free block the fragmented heap keeps (the 2 h day's measured: 1248 bytes)
_MPY = sys.implementation.name == "micropython"


class Done(BaseException):
    """Every line answered: ends Terminal.host_loop (which catches Exception, never this)."""


class Wire:
    """The cashier app on the host UART: sends one request line, waits for its reply, sends the next,
    as the app does. Nothing is allocated per request: the lines are prebuilt, replies land in a buffer."""

    def __init__(self, lines, rounds):
        self.lines = lines
        self.total = len(lines) * rounds
        self.k = 0  # lines sent whole
        self.pos = 0  # bytes of the current line sent
        self.waiting = False  # a line was sent, its reply has not ended
        self.reply = bytearray(4096)
        self.rn = 0
        self.replies = 0
        self.internal = 0
        self.codes = {}

    def any(self):
        if self.waiting:
            return 0
        if self.k >= self.total:
            raise Done()
        return 1

    def readinto(self, mv):
        line = self.lines[self.k % len(self.lines)]
        n = min(len(mv), 256, len(line) - self.pos)
        mv[0:n] = memoryview(line)[self.pos : self.pos + n]
        self.pos += n
        if self.pos == len(line):
            self.k += 1
            self.pos = 0
            self.waiting = True
        return n

    def write(self, buf):
        n = len(buf)
        for i in range(n):
            c = buf[i]
            if c == 10:
                self._reply()
            else:
                self.reply[self.rn] = c
                self.rn += 1
        return n

    def _reply(self):
        line = bytes(memoryview(self.reply)[: self.rn])
        assert b"*" in line, line
        body, crc = line.rsplit(b"*", 1)  # the request had a CRC
        assert int(crc, 16) == binascii.crc32(body) & 0xFFFFFFFF, "reply CRC does not match"
        rep = json.loads(body)
        self.rn = 0
        self.replies += 1
        code = rep.get("err") or "OK"
        self.codes[code] = self.codes.get(code, 0) + 1
        if code == "INTERNAL":
            self.internal += 1
        self.waiting = False


class Crashes:
    def __init__(self):
        self.count = 0
        self.last = None

    def record(self, name, e):
        self.count += 1
        self.last = "%s %s: %s" % (name, type(e).__name__, e)


class Jobs:
    problem = None
    parked = None
    active = None

    def pending(self):
        return 0

    def owed(self):
        return 0


def _line(obj):
    """obj as one request line of exactly LINE_MAX bytes before its newline: the JSON text padded with
    JSON whitespace, then '*' and its CRC-32 (the host opted into line CRCs: unwrap and the reply's CRC
    run too)."""
    b = json.dumps(obj).encode()
    b = b[:-1] + b" " * (LINE_MAX - 9 - len(b)) + b"}"
    return b + b"*%08x\n" % (binascii.crc32(b) & 0xFFFFFFFF)


def _lines():
    items = [{"name": "拿铁咖啡 Latte grande %02d" % i, "qty": 999, "price": 499} for i in range(20)]
    not_json = b"{" + b"x" * (LINE_MAX - 11) + b"}"
    not_json += b"*%08x\n" % (binascii.crc32(not_json) & 0xFFFFFFFF)
    return [_line({"op": "open", "id": 7, "seq": 1, "items": items}), _line({"op": "status", "seq": 2}), not_json,
            _line({"op": "export", "seq": 3}), _line({"op": "status", "seq": 4})]


def _fragment():
    """Leave the heap with its free space in blocks of about HOLE bytes: fill it with HOLE-byte pieces,
    then free every other one (first fit lays the pieces side by side). Returns the pieces kept."""
    if not _MPY:
        return []
    pieces = []
    gc.collect()
    try:
        while True:
            pieces.append(bytearray(HOLE - 32))  # its data: HOLE - 32 bytes, its header elsewhere
    except MemoryError:
        pass
    pins = pieces[1::2]
    del pieces
    gc.collect()
    return pins


def test_max_size_requests_on_a_fragmented_heap_never_raise_memory_error():
    import asyncio

    prof = {"host": {"line_max": LINE_MAX, "items_max": 20, "name_max": 32, "amount_max": 10000000}}
    lines = _lines()
    for ln in lines:
        assert len(ln) == LINE_MAX + 1, len(ln)
    wire = Wire(lines, ROUNDS)
    term = app.Terminal(prof)
    term.crash = Crashes()
    term.link = HostLink(wire, LINE_MAX)
    term.cmds = commands.Commands(None, Jobs(), None, None, None)
    pins = _fragment()
    try:
        if _MPY:
            gc.collect()
            import sim_heap

            biggest = sim_heap._largest_block()
            assert biggest < 2 * HOLE, "the heap is not fragmented: a %d-byte block is free" % biggest
            assert gc.mem_free() > 20 * HOLE, gc.mem_free()  # plenty of heap, only not in one piece
        try:
            asyncio.run(term.host_loop())
        except Done:
            pass
    finally:
        del pins
        gc.collect()
    assert term.crash.count == 0, term.crash.last
    assert wire.replies == wire.total and wire.internal == 0, (wire.replies, wire.codes)
    # Every request was read whole and judged: the opens and the export find no journal here, the
    # statuses answer, the line of x is not JSON.
    assert wire.codes == {"JOURNAL_FAULT": 2 * ROUNDS, "OK": 2 * ROUNDS, "BAD_JSON": ROUNDS}, wire.codes


def test_reply_pieces_are_json_dumps_byte_for_byte():
    from posguard.hostlink import dumped_len, pieces

    replies = [
        {"ok": True, "seq": 1, "id": 7, "state": "OPEN"},
        {"ok": False, "seq": None, "err": "BAD_JSON", "msg": "request is not valid JSON", "do": "send one"},
        {"records": [{"id": 7, "body": {"t": "2026-11-24 21:58", "i": [["拿铁 Latte", 2, 1800]], "h": "ab"},
                      "last4": "", "cursor": 12, "reason": None}, {}], "next": None, "ok": True, "seq": 3},
        {"battery": {"soc_pct": 41.5, "replace": False, "temp_source": "mcu"}, "reversals": [], "link": (1, 2)},
    ]
    for r in replies:
        want = json.dumps(r).encode()
        got = b"".join(p.encode() for p in pieces(r))
        assert got == want, (got, want)
        assert dumped_len(r) == len(want), (dumped_len(r), len(want))


if __name__ == "__main__":
    mpy_runner.main(globals())
