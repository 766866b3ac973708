# Host link framing: JSON lines from the cashier app over a UART. One preallocated line buffer, a hard
# cap on the line length (an over-long line is dropped up to its newline and answered with an error,
# never half-parsed), and replies written in chunks so a slow host never stalls the other tasks.
import asyncio
import json

from micropython import const

from posguard.validate import HostError

_NL = const(10)
_CR = const(13)
_MAX_READS = const(8)  # reads per poll: bounded even when the host floods the line
_CHUNK = const(128)  # reply bytes per UART write; the ESP32 driver blocks when its TX buffer is full
_WRITE_DEADLINE_MS = const(2000)


class HostLink:
    def __init__(self, uart, line_max):
        self._uart = uart
        self._cap = line_max
        self._buf = bytearray(line_max + 2)  # the line, its optional CR and the newline
        self._mv = memoryview(self._buf)
        self._n = 0  # bytes held
        self._scan = 0  # bytes already searched for a newline
        self._taken = 0  # bytes handed out by the last poll(), dropped on the next
        self._dropping = False  # inside a line longer than the cap
        self.lines_in = 0
        self.too_long = 0
        self.replies_dropped = 0

    def poll(self):
        """One complete line as a memoryview (valid until the next poll), or None if none is complete.
        Raises HostError LINE_TOO_LONG once the newline of an over-long line has arrived."""
        buf = self._buf
        mv = self._mv
        if self._taken:
            rest = self._n - self._taken
            if rest:
                mv[0:rest] = mv[self._taken : self._n]
            self._n = rest
            self._scan = 0
            self._taken = 0
        for k in range(_MAX_READS + 1):
            i = buf.find(b"\n", self._scan, self._n)
            while i >= 0:
                # A line always starts at offset 0: what came before it was consumed.
                end = i
                if end > 0 and buf[end - 1] == _CR:
                    end -= 1
                if self._dropping or end > self._cap:
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
                return None
            got = self._uart.readinto(mv[self._n :])
            if not got:
                return None
            self._n += got
        return None

    def _consume(self, k):
        rest = self._n - k
        if rest:
            self._mv[0:rest] = self._mv[k : self._n]
        self._n = rest
        self._scan = 0

    async def send(self, reply):
        """Write one reply line. Gives up (and counts it) if the UART takes no bytes for too long."""
        data = json.dumps(reply).encode() + b"\n"
        mv = memoryview(data)
        pos = 0
        idle_ms = 0
        while pos < len(data):
            n = self._uart.write(mv[pos : pos + _CHUNK])
            if n:
                pos += n
                idle_ms = 0
                if pos < len(data):
                    await asyncio.sleep(0)
                continue
            if idle_ms >= _WRITE_DEADLINE_MS:
                self.replies_dropped += 1
                return False
            await asyncio.sleep(0.01)
            idle_ms += 10
        return True
