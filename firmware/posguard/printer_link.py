# Printer transport: bytes to the UART without ever freezing the firmware.
#
# The ESP32's UART.write() blocks without releasing the interpreter while its TX buffer is full, and a
# printer holding BUSY (paper out) never drains it (docs/reference/escpos.md). So every write here is
# a chunk no larger than the printer's BUSY margin, written only when the previous chunk has left
# (txdone), and every wait is an `await` with a deadline: a stuck printer stalls the job, not the board.
# Flow modes (profile printer.flow):
#   "cts"    BUSY wired to CTS, the hardware stops the wire; status polls bypass it (see query()).
#   "xon"    the printer sends XOFF/XON on its TX line; read by printer_status.Demux before each chunk.
#   "pacing" neither: Pacer estimates how long the mechanism needs and waits that long.
import asyncio
import time

from micropython import const

from posguard.escpos import status_query

_STALL_MS = const(1000)  # no progress for this long: the job asks the printer what is wrong
_QUERY_EXTRA_MS = const(60)  # printer turnaround allowance on top of the wire time of a status query
_FEED_ROW_US = const(2100)  # Adafruit_Thermal dotFeedTime (battery-and-printer.md)
_ADAFRUIT_ROW_US = const(30000)  # Adafruit_Thermal dotPrintTime: 30 ms a printed dot row
_BLANK_ROWS = const(30)  # a blank line: one LF byte feeds 24 dots + 6 of spacing (printer._LINE_DOTS)
_BIG_ROWS = const(48)  # a double-height line
_BIG_CELL_INK = const(24)  # black dots a row of one double-width Hanzi cell, at INK_WORST (printer.op_rows)
_CUT_US = const(600000)  # [EST] covers a 0.5 s autocutter (printer.op_rows)
# No single op books more mechanism time than this (a tall QR at the slowest heat is a few seconds):
# a longer wait can only be a stale deadline read across the ticks_us wrap.
_MAX_AHEAD_US = const(60000000)
MODES = ("cts", "xon", "pacing")


# MicroPython's asyncio.sleep(t) is sleep_ms(int(t * 1000)) (extmod/asyncio/core.py:62-63) and ESP32
# floats are single precision (ports/esp32/mpconfigport.h:69, MICROPY_FLOAT_IMPL_FLOAT): 45 of the whole
# ms values 1-5000 come out 1 ms short through a float. sleep_ms takes the integer as it is; CPython's
# asyncio has no sleep_ms and computes in doubles, where ms / 1000 * 1000 is exact.
_sleep_ms = getattr(asyncio, "sleep_ms", None)


def sleep_ms(ms):
    """asyncio sleep for a whole number of milliseconds, without a float on MicroPython."""
    if _sleep_ms is not None:
        return _sleep_ms(ms)
    return asyncio.sleep(ms / 1000)


def sleep_us(us):
    """asyncio sleep rounded up to whole milliseconds, at least 1: MicroPython's asyncio sleeps in ms
    (a shorter sleep would be a busy loop), and whole ms keep both runtimes' timers identical."""
    ms = (int(us) + 999) // 1000
    return sleep_ms(ms if ms > 0 else 1)


class Link:
    def __init__(self, uart, pcfg, demux, busy=None):
        mode = pcfg["flow"]
        if mode not in MODES:
            raise ValueError("printer.flow must be one of %s, got %r" % (", ".join(MODES), mode))
        if mode == "cts" and pcfg["busy"] is None:
            raise ValueError("printer.flow is 'cts' but printer.busy names no pin")
        self.uart = uart
        # With BUSY read as a GPIO, the UART's own CTS is switched off here, while the FIFO is still
        # empty: every chunk is written only when BUSY is off and is at most busy_free - 4 bytes, which
        # the printer takes even after it raises BUSY, so the hardware stop adds nothing, and bytes it
        # held in the FIFO could only be released by UART.init(), which first waits up to 1 s for TX
        # to drain (ports/esp32/machine_uart.c:304-307) with the whole event loop frozen.
        # Without the pin object the hardware CTS stays on and status is only read while the FIFO is
        # empty (a stuck printer is then reported "offline" instead of its fault).
        self.busy = busy
        if mode == "cts" and busy is not None:
            uart.init(flow=0)
        self.busy_level = 1 if pcfg["busy_active_high"] else 0
        self.mode = mode
        self.demux = demux
        self.frame_us = 10000000 // pcfg["baud"]  # 8N1: 10 bits a byte
        # In flight at most busy_free - 4 bytes: what the printer still takes after it signals busy,
        # less a status query (3 bytes) and one frame already on the wire.
        self.chunk = max(1, pcfg["busy_free"] - 4) if mode != "pacing" else 64
        self.stall_ms = _STALL_MS
        self.bytes_sent = 0
        self.queries = 0

    def _chunk_us(self, k):
        return k * self.frame_us

    def _clear(self):
        if not self.uart.txdone():
            return False
        return self.busy is None or self.busy.value() != self.busy_level

    async def _wait_txdone(self):
        """True once the last chunk has left the FIFO (and BUSY is off); False after stall_ms."""
        if self._clear():
            return True
        start = time.ticks_ms()
        while not self._clear():
            waited = time.ticks_diff(time.ticks_ms(), start)
            if waited > self.stall_ms:
                return False
            # 1 ms steps while the printer is just slow (the wire idles at most that long after BUSY
            # drops), coarser once it looks stuck.
            await sleep_us(1000 if waited < 100 else 20000)
        return True

    async def _wait_xon(self):
        d = self.demux
        d.poll()
        if not d.xoff:
            return True
        start = time.ticks_ms()
        while d.xoff:
            if time.ticks_diff(time.ticks_ms(), start) > self.stall_ms:
                return False
            await sleep_us(self._chunk_us(2))
            d.poll()
        return True

    async def send(self, mv, i=0, cont=None):
        """Send mv[i:] as far as the printer takes it; returns the offset reached (< len(mv): stalled).
        cont (Encoder.cont) marks bytes that continue an item: chunks end on item boundaries when
        they can, so a stall usually leaves the FIFO on a boundary where a status query is safe."""
        n = len(mv)
        chunk = self.chunk
        uart = self.uart
        while i < n:
            if not await self._wait_txdone():
                return i
            if self.mode == "xon" and not await self._wait_xon():
                return i
            k = n - i if n - i < chunk else chunk
            if cont is not None and i + k < n:
                j = k
                while j > 0 and cont[i + j]:
                    j -= 1
                if j > 0:
                    k = j
            uart.write(mv[i : i + k])  # cannot block: the FIFO is empty and k < 128
            i += k
            self.bytes_sent += k
            await sleep_us(self._chunk_us(k))
        return i

    def flowing(self):
        """The printer takes data: the last chunk has left and no XOFF is pending."""
        if self.mode == "xon":
            self.demux.poll()
            if self.demux.xoff:
                return False
        return self._clear()

    async def drain(self):
        return await self._wait_txdone()

    async def query(self, n, timeout_ms=None):
        """DLE EOT n; the reply byte, or None when the printer does not answer in time."""
        d = self.demux
        uart = self.uart
        d.poll()
        d.take_reply()  # a stale reply (e.g. to 10 04 n inside QR data) must not answer this query
        soft_cts = self.mode == "cts" and self.busy is not None
        if not soft_cts and not await self._wait_txdone():
            return None  # the query would queue behind data a held CTS (or XOFF) keeps in the FIFO
        # With the BUSY pin there is no hardware flow control (__init__): what sits in the FIFO is at
        # most one chunk, and a busy printer still has busy_free bytes free for it and the query.
        self.queries += 1
        uart.write(status_query(n))
        if timeout_ms is None:
            timeout_ms = (self.chunk + 8) * self.frame_us // 1000 + _QUERY_EXTRA_MS
        start = time.ticks_ms()
        step = self._chunk_us(2)
        while True:
            await sleep_us(step)
            d.poll()
            r = d.take_reply()
            if r >= 0:
                return r
            if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
                return None


def full_buffer_us(rx_buffer, big_row_us, cutter):
    """Mechanism time a full receive buffer can still hold, on the slow side: every byte in it as slow as
    the slowest byte of our own receipts: the LF of a blank line (_BLANK_ROWS fed), the cell and LF of a
    one-cell double-size line (_BIG_ROWS printed, two bytes), or a cut (GS V m n, four bytes). After a
    boot nobody knows what the printer holds (a connector bounce leaves it running with its buffer):
    this long after it reports online, whatever it held is on paper. At most _MAX_AHEAD_US (a longer
    deadline reads as stale): enough for buffers up to about 900 bytes at the default heat."""
    per = _BLANK_ROWS * _FEED_ROW_US
    big = _BIG_ROWS * int(big_row_us) // 2
    if big > per:
        per = big
    if cutter and _CUT_US // 4 > per:
        per = _CUT_US // 4
    t = rx_buffer * per
    return t if t < _MAX_AHEAD_US else _MAX_AHEAD_US


class Pacer:
    """Timing-only flow control: keep an estimate of when the mechanism will be idle and never send
    more than the printer's buffer can hold before then. Every assumption is on the slow side."""

    INK_WORST = 0.5  # [EST] share of a text cell's dots that can be black in one dot row
    HEAT_SAG = 2.5  # [EST] heat-time stretch a printer applies at its lowest supply (E = V^2 t / R)

    def __init__(self, pcfg, frame_us, adafruit=False):
        self.frame_us = frame_us
        self.rx_buffer = pcfg["rx_buffer"]
        self.cutter = pcfg.get("cutter", False)
        self.window = max(1, pcfg["rx_buffer"] - pcfg["busy_free"])
        self.row_min_us = 1000000 // (pcfg["mm_per_s"] * 8)  # 8 dots per mm (escpos.md: 384 dots = 48 mm)
        self.adafruit = adafruit
        self.heat_dots, self.heat_us, self.heat_int_us = 64, 800, 20  # ESC 7 defaults
        self._idle_at = time.ticks_us()

    def set_heat(self, dots, time_us, interval_us):
        self.heat_dots, self.heat_us, self.heat_int_us = max(8, dots), time_us, interval_us

    def row_us(self, ink_dots):
        if self.adafruit:
            return _ADAFRUIT_ROW_US
        strobes = (int(ink_dots) + self.heat_dots - 1) // self.heat_dots
        per = strobes * (self.heat_us * self.HEAT_SAG + self.heat_int_us)
        return per if per > self.row_min_us else self.row_min_us

    def full_us(self):
        return full_buffer_us(self.rx_buffer, self.row_us(_BIG_CELL_INK), self.cutter)

    def assume_full(self):
        """The printer may hold a full buffer we know nothing of (after a boot, after a pause): book a
        full buffer's worth of mechanism time from now."""
        self._idle_at = time.ticks_add(time.ticks_us(), self.full_us())

    async def before(self, nbytes):
        # Bytes of this op may arrive while the previous op prints, up to the buffer window.
        early = (nbytes if nbytes < self.window else self.window) * self.frame_us
        wait = self._ahead_us() - early
        if wait > 0:
            await sleep_us(wait)

    def after(self, nbytes, rows_print, rows_feed, ink_dots, extra_us=0):
        now = time.ticks_us()
        start = time.ticks_add(now, nbytes * self.frame_us)
        if self._ahead_us() > nbytes * self.frame_us:
            start = self._idle_at
        dur = int(rows_print * self.row_us(ink_dots) + rows_feed * _FEED_ROW_US + extra_us)
        self._idle_at = time.ticks_add(start, dur)

    def _ahead_us(self):
        """How long the mechanism is still busy. ticks_us wraps every 2**30 us (17.9 min) and
        ticks_diff is only valid within half of that, so a deadline left from a receipt printed
        long ago can read as up to 9 minutes in the future: no op ever books more than
        _MAX_AHEAD_US of work, so anything beyond that is stale and the mechanism is idle now."""
        ahead = time.ticks_diff(self._idle_at, time.ticks_us())
        if ahead > _MAX_AHEAD_US:
            self._idle_at = time.ticks_us()
            return 0
        return ahead

    async def idle(self):
        wait = self._ahead_us()
        if wait > 0:
            await sleep_us(wait)
