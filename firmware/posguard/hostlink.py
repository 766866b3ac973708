# Host link framing: JSON lines from the cashier app over a UART. One preallocated line buffer, a hard
# cap on the line length (an over-long line is dropped up to its newline and answered with an error,
# never half-parsed), and replies written in chunks so a slow host never stalls the other tasks.
# Resynchronisation (docs/terminal.md "Framing"): a partial line that sees no new byte for _IDLE_GAP_MS
# is dropped (a crashed sender's fragment never spoils the next request), an over-long line also ends
# at such a gap (its newline may have been lost in an RX overflow), and a host that wants protection
# against spliced lines appends "*" and the CRC-32 of the line (8 hex digits): once one such line
# arrived, every later line must carry one.
import asyncio
import binascii
import json
import sys
import time

from micropython import const

from posguard.validate import HostError

_NL = const(10)
_CR = const(13)
_STAR = const(42)
_MAX_READS = const(8)  # reads per poll: bounded even when the host floods the line
_CHUNK = const(128)  # reply bytes per UART write; the ESP32 driver blocks when its TX buffer is full
_WRITE_DEADLINE_MS = const(2000)
# A partial line older than this is dropped. A 2 KB line at 9600 baud takes 2.1 s, but it keeps
# arriving: the gap counts from the last byte read, and the app never pauses inside a line.
IDLE_GAP_MS = const(1000)
_CRC_LEN = const(9)  # "*" + 8 hex digits
_DEPTH = const(6)  # reply levels written piece by piece; deeper values (none today) as one json.dumps
# MicroPython's str has the buffer protocol (its UTF-8 bytes, no copy); CPython's must be encoded.
_STR_BUFFER = sys.implementation.name == "micropython"


def pieces(obj, depth=_DEPTH):
    """json.dumps(obj) as a run of small strings, the same text byte for byte (the ", " and ": "
    separators both runtimes' json.dumps use, keys in the dict's own order). A reply of a few KB (an
    export page) then never needs a block of its size: after hours of trading the ESP32 heap has the
    bytes free but not in one piece."""
    t = type(obj)
    if depth and t is dict:
        yield "{"
        sep = False
        for k in obj:
            if sep:
                yield ", "
            yield json.dumps(k)
            yield ": "
            yield from pieces(obj[k], depth - 1)
            sep = True
        yield "}"
    elif depth and (t is list or t is tuple):
        yield "["
        sep = False
        for v in obj:
            if sep:
                yield ", "
            yield from pieces(v, depth - 1)
            sep = True
        yield "]"
    else:
        yield json.dumps(obj)


def _bytes_of(piece):
    return memoryview(piece) if _STR_BUFFER else memoryview(piece.encode())


def dumped_len(obj):
    """len(json.dumps(obj).encode()) without building the text: the bytes hostlink.send writes."""
    n = 0
    for p in pieces(obj):
        n += len(_bytes_of(p))
    return n


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    c |= 0x20
    if 97 <= c <= 102:
        return c - 87
    return -1


class HostLink:
    def __init__(self, uart, line_max, now_ms=None):
        self._uart = uart
        self._cap = line_max
        self._buf = bytearray(line_max + _CRC_LEN + 2)  # the line, its CRC suffix, CR and newline
        self._mv = memoryview(self._buf)
        self.buf = self._buf  # a polled line starts at offset 0: the app parses it in place
        self._out = bytearray(_CHUNK)  # a reply is assembled here, one UART write at a time
        self._out_mv = memoryview(self._out)
        self._out_n = 0  # reply bytes in _out
        self._crc = -1  # the reply's CRC-32 so far (-1: none asked for)
        self._n = 0  # bytes held
        self._scan = 0  # bytes already searched for a newline
        self._taken = 0  # bytes handed out by the last poll(), dropped on the next
        self._dropping = False  # inside a line longer than the cap
        self._now = now_ms if now_ms is not None else time.ticks_ms
        self._last_rx = self._now()
        self.crc_required = False  # the host opted into per-line CRCs
        self.lines_in = 0
        self.too_long = 0
        self.fragments = 0  # partial lines dropped at an idle gap
        self.bad_crc = 0
        self.replies_dropped = 0

    def counters(self):
        return {"lines": self.lines_in, "too_long": self.too_long, "fragments": self.fragments,
                "bad_crc": self.bad_crc, "crc": self.crc_required, "replies_dropped": self.replies_dropped}

    def poll(self):
        """One complete line as a memoryview (valid until the next poll), or None if none is complete.
        Raises HostError LINE_TOO_LONG once the newline of an over-long line has arrived (or the line
        ended at an idle gap)."""
        buf = self._buf
        mv = self._mv
        if self._taken:
            self._consume(self._taken)
            self._taken = 0
        cap = self._cap + _CRC_LEN
        got_any = False
        for k in range(_MAX_READS + 1):
            i = buf.find(b"\n", self._scan, self._n)
            while i >= 0:
                # A line always starts at offset 0: what came before it was consumed.
                end = i
                if end > 0 and buf[end - 1] == _CR:
                    end -= 1
                if self._dropping or end > cap:
                    self._dropping = False
                    self._consume(i + 1)
                    self.too_long += 1
                    raise HostError("LINE_TOO_LONG", "request longer than %d bytes" % self._cap,
                                    "send shorter requests (see host.line_max)")
                if end > 0:
                    self._taken = i + 1
                    self.lines_in += 1
                    return mv[0:end]
                # A blank line: keep-alive, no reply.
                self._consume(i + 1)
                i = buf.find(b"\n", 0, self._n)
            self._scan = self._n
            if self._n == len(buf):
                # Full and no newline: the line is over the cap. Drop it and everything up to its end.
                self._dropping = True
                self._n = 0
                self._scan = 0
            if k == _MAX_READS or not self._uart.any():
                break
            got = self._uart.readinto(mv[self._n :])
            if not got:
                break
            self._n += got
            got_any = True
        now = self._now()
        if got_any:
            self._last_rx = now
        elif (self._n or self._dropping) and time.ticks_diff(now, self._last_rx) > IDLE_GAP_MS:
            # The sender stopped inside a line: whatever comes next starts a new one.
            self._n = 0
            self._scan = 0
            if self._dropping:
                self._dropping = False
                self.too_long += 1
                raise HostError("LINE_TOO_LONG", "request longer than %d bytes" % self._cap,
                                "send shorter requests (see host.line_max)")
            self.fragments += 1
        return None

    def _consume(self, k):
        rest = self._n - k
        if rest:
            self._mv[0:rest] = self._mv[k : self._n]
        self._n = rest
        self._scan = 0

    def unwrap(self, line):
        """A polled line -> (request bytes, crc_used). Checks and strips an optional '*XXXXXXXX' CRC-32
        suffix; raises HostError BAD_CRC (the line is not executed) when it does not match, or when
        the host opted in and a line comes without one."""
        n = len(line)
        if n >= _CRC_LEN and line[n - _CRC_LEN] == _STAR:
            want = 0
            for j in range(n - 8, n):
                v = _hexval(line[j])
                if v < 0:
                    want = -1
                    break
                want = (want << 4) | v
            if want >= 0:
                body = line[: n - _CRC_LEN]
                if binascii.crc32(body) & 0xFFFFFFFF != want:
                    self.bad_crc += 1
                    raise HostError("BAD_CRC", "line CRC-32 does not match: not executed",
                                    "send the line again (CRC-32 of the JSON text, 8 hex digits after '*')")
                self.crc_required = True
                if len(body) > self._cap:
                    self.too_long += 1
                    raise HostError("LINE_TOO_LONG", "request longer than %d bytes" % self._cap,
                                    "send shorter requests (see host.line_max)")
                return body, True
        if n > self._cap:
            self.too_long += 1
            raise HostError("LINE_TOO_LONG", "request longer than %d bytes" % self._cap,
                            "send shorter requests (see host.line_max)")
        if self.crc_required:
            self.bad_crc += 1
            raise HostError("BAD_CRC", "this link uses line CRCs (the app opted in): a line without one is "
                            "not executed", "append '*' and the CRC-32 of the line (8 hex digits)")
        return line, False

    async def send(self, reply, crc=False):
        """Write one reply line (with a CRC-32 suffix when the request had one). Gives up (and counts
        it) if the UART takes no bytes for too long. The text goes out _CHUNK bytes at a time from
        one preallocated buffer, built from small pieces: no allocation the size of the reply."""
        self._out_n = 0
        self._crc = 0 if crc else -1  # -1: no CRC asked for
        for p in pieces(reply):
            if not await self._put(_bytes_of(p)):
                return False
        tail = "\n"
        if crc:
            value = binascii.crc32(self._out_mv[: self._out_n], self._crc) & 0xFFFFFFFF  # the text's last bytes
            self._crc = -1  # the suffix itself is not covered
            tail = "*%08x\n" % value
        return await self._put(_bytes_of(tail)) and await self._write(self._out_n)

    async def _put(self, b):
        """Append b to the reply chunk, writing each chunk that fills (and adding it to the CRC)."""
        out = self._out
        i = 0
        while i < len(b):
            n = self._out_n
            k = min(len(b) - i, _CHUNK - n)
            out[n : n + k] = b[i : i + k]
            self._out_n = n + k
            i += k
            if self._out_n == _CHUNK:
                if self._crc >= 0:
                    self._crc = binascii.crc32(out, self._crc)
                self._out_n = 0
                if not await self._write(_CHUNK):
                    return False
                await asyncio.sleep(0)
        return True

    async def _write(self, n):
        """The first n bytes of the reply buffer to the UART; False (counted) when it takes none for
        _WRITE_DEADLINE_MS."""
        mv = self._out_mv
        pos = 0
        idle_ms = 0
        while pos < n:
            w = self._uart.write(mv[pos:n])
            if w:
                pos += w
                idle_ms = 0
                if pos < n:
                    await asyncio.sleep(0)  # the driver's TX buffer is full: let the other tasks run
                continue
            if idle_ms >= _WRITE_DEADLINE_MS:
                self.replies_dropped += 1
                return False
            await asyncio.sleep(0.01)
            idle_ms += 10
        return True
