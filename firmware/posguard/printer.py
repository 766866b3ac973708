# The printer driver: the job runner the app and the sale state machine use (API: docs/printer.md).
# A job is a list of line ops (posguard/receipt.py), encoded one line at a time into one preallocated
# buffer and sent through printer_link. Faults pause the job and resume it when they clear; a job
# always ends as {"result": "printed"} or {"result": "failed", "line": N, "reason": ...}.
import asyncio
import time

from micropython import const

from posguard import escpos, printer_link, printer_status

R_DOT_OHM = 176.0  # dot resistance, mid of 162-198 Ohm (Seiko LTP02-245, battery-and-printer.md)
_PAUSE_POLL_MS = const(500)  # whole ms, no float (printer_link.sleep_ms says why)
_PAUSE_LIMIT_S = const(300)  # a fault not cleared in 5 minutes fails the job
_LINE_DOTS = const(30)  # 24-dot font + 6 dots of line spacing (ESC 2 default on 203 dpi heads)
_QR_QUIET = const(4)
_FLOW_POLL_MS = const(20)  # xon: the RX stream is read this often while _settle waits
HEATS = ("esc7", "density", "none")


def uart_args(pcfg):
    """Keyword arguments for hw.uart() that wire the printer as its profile says."""
    cts = pcfg["busy"] if pcfg["flow"] == "cts" else None
    return {
        "uart_id": pcfg["uart_id"],
        "baud": pcfg["baud"],
        "tx": pcfg["tx"],
        "rx": pcfg["rx"],
        "cts": cts,
        "invert_cts": cts is not None and not pcfg["busy_active_high"],
    }


def heat_for_supply(volts, max_amps, r_dot=R_DOT_OHM):
    """Heating dots (a multiple of 8, 8-256) keeping dots x V / R_dot under max_amps (battery-and-printer.md)."""
    if volts <= 0 or max_amps <= 0:
        raise ValueError("need a positive supply voltage and current limit")
    dots = int(max_amps * r_dot / volts) // 8 * 8
    return max(8, min(256, dots))


def op_rows(enc, op):
    """(print rows, feed rows, black dots per printed row, extra us) a line op costs the mechanism,
    used by pacing; black dots are counted on the slow side (Pacer.INK_WORST of every cell)."""
    kind = op[0]
    if kind == "text":
        style = op[3]
        h = 2 if style & (escpos.BIG | escpos.TALL) else 1
        w = 2 if style & escpos.BIG else 1
        rows = 24 * h
        ink = enc.cols(op[1]) * 12 * w * printer_link.Pacer.INK_WORST
        return rows, max(0, _LINE_DOTS - rows), ink, 0
    if kind == "qr":
        v, module = enc.qr_fit(len(op[1]))
        side = (17 + 4 * v) * module
        return side, 2 * _QR_QUIET * module, side * 0.5, 0
    if kind == "barcode":
        return 80, _LINE_DOTS, enc.dots * 0.5, 0
    if kind == "feed":
        return 0, op[1] * _LINE_DOTS, 0, 0
    if kind == "cut":
        return 0, 0, 0, 600000 if enc.cutter else 0  # [EST] covers a 0.5 s autocutter
    return 0, 0, 0, 0


class Printer:
    pause_limit_s = _PAUSE_LIMIT_S

    def __init__(self, uart, pcfg, on_event=None, busy=None, adafruit_pacing=False):
        if pcfg["heat"] not in HEATS:
            raise ValueError("printer.heat must be one of %s" % ", ".join(HEATS))
        self.uart = uart
        self.cfg = pcfg
        self.on_event = on_event
        self.enc = escpos.Encoder(pcfg["encoding"], pcfg["paper_mm"], pcfg["cutter"])
        self.demux = printer_status.Demux(uart)
        self.link = printer_link.Link(uart, pcfg, self.demux, busy)
        self.pacer = None
        if pcfg["flow"] == "pacing":
            self.pacer = printer_link.Pacer(pcfg, self.link.frame_us, adafruit_pacing)
        self.heat = (64, 800, 20)  # ESC 7 defaults (battery-and-printer.md)
        # Nothing sent since this boot: the printer may be offline and may still hold a full buffer of
        # the job we were sending when the power went (a connector bounce leaves it running). _settle().
        self._fresh = True
        self._lock = asyncio.Lock()
        self.last_status = None

    # -- heat ------------------------------------------------------------------------------------
    def set_heat(self, dots, time_us, interval_us):
        """Heat setting from the power policy; sent at the start of the next job."""
        if not (8 <= dots <= 2048 and 30 <= time_us <= 2550 and 0 <= interval_us <= 2550):
            raise ValueError("heat out of range: dots 8-2048, time 30-2550 us, interval 0-2550 us")
        self.heat = (dots, time_us, interval_us)
        if self.pacer is not None:
            self.pacer.set_heat(dots, time_us, interval_us)

    def _encode_heat(self, enc):
        dots, t, iv = self.heat
        mode = self.cfg["heat"]
        if mode == "esc7":
            enc.heat(dots, t, iv)
        elif mode == "density":
            # Slower speed = fewer dots heated at once; density follows the heat time (Epson GS ( K).
            speed = max(1, min(9, (dots * 9 + 32) // 64))
            density = max(-6, min(6, (t - 800) // 80))
            enc.density(density, speed)

    # -- status ----------------------------------------------------------------------------------
    async def status(self):
        async with self._lock:
            return await self._status()

    async def _status(self):
        if not self.cfg["answers_status"]:
            st = printer_status.decode(None, None, None)
            st["answered"] = False
            self.last_status = st
            return st
        q = self.link.query
        s1 = await q(1)
        s2 = await q(2) if s1 is not None else None
        s4 = await q(4) if s2 is not None else None
        st = printer_status.decode(s1, s2, s4)
        s3 = None
        if st["answered"] and (s1 & 0x08 or s2 & 0x40):
            s3 = await q(3)
        printer_status.fault_of(st, s3)
        self.last_status = st
        return st

    async def _fault(self):
        """The reason the printer cannot print now, confirmed twice (garbage on RX can fake one reply)."""
        if not self.cfg["answers_status"]:
            return "offline"
        st = await self._status()
        f = printer_status.fault_of(st)
        if f:
            f2 = printer_status.fault_of(await self._status())
            if f2 != f:
                return f2
        return f

    def _event(self, kind, detail):
        if self.on_event is not None:
            self.on_event(kind, detail)

    # -- jobs ------------------------------------------------------------------------------------
    async def start(self):
        """Ask the printer's status (DLE EOT: real-time, answered even with a full buffer, escpos.md) and,
        only when it can print, initialise it (ESC @, FS ., GS a 0). Returns the status. Offline, out of
        paper or cover open: nothing is sent (it would be dropped into a full buffer); the next job
        waits for the printer (every job starts with the same initialisation)."""
        async with self._lock:
            st = await self._status()
            if self.cfg["answers_status"] and printer_status.fault_of(st):
                return st
            await self._settle()
            enc = self.enc
            enc.clear()
            enc.init(False)
            await self._paced(enc.out())
            await self.link.send(enc.out())
            return st

    async def _settle(self):
        """Once per boot, before the first byte and with the printer online as far as it can say: let
        whatever it may still hold from before the boot drain. Pacing: a full buffer's worth of mechanism
        time is booked (Pacer.assume_full). XON/XOFF: the XOFF state is unknown after a reboot (the XOFF
        went to the firmware before it, and an idle printer never repeats it): wait the time a full
        buffer takes to print, reading the flow bytes meanwhile (one XON cannot end the wait early: noise
        on RX fakes it). BUSY on CTS needs nothing: the pin (or the UART's CTS) tells the truth from the
        first byte."""
        if not self._fresh:
            return
        self._fresh = False
        if self.pacer is not None:
            self.pacer.assume_full()
            return
        if self.link.mode != "xon":
            return
        d = self.demux
        limit_ms = printer_link.full_buffer_us(self.cfg["rx_buffer"], 0, self.cfg["cutter"]) // 1000
        start = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), start) < limit_ms:
            d.poll()
            await printer_link.sleep_ms(_FLOW_POLL_MS)
        d.poll()

    async def _paced(self, mv):
        """Pacing: wait until the printer has room for mv (bytes that print nothing: init, GS r)."""
        if self.pacer is not None:
            await self.pacer.before(len(mv))

    async def print_job(self, ops):
        async with self._lock:
            return await self._job(ops)

    async def _job(self, ops):
        res = {"result": "printed", "line": 0, "lines": len(ops), "reason": "", "pauses": 0, "bytes": 0}
        # Nothing goes to a printer that cannot print (a paper-out printer's buffer may be full).
        if self.cfg["answers_status"] and not await self._ready(res):
            return res
        await self._settle()
        enc = self.enc
        enc.clear()
        enc.init(False)
        self._encode_heat(enc)
        await self._paced(enc.out())
        if not await self._send(enc.out(), res):
            return res
        pacer = self.pacer
        for i in range(len(ops)):
            op = ops[i]
            res["line"] = i + 1
            enc.clear()
            try:
                escpos.encode_op(enc, op)
            except ValueError as e:
                return self._fail(res, "bad input: %s" % e)
            except OSError as e:  # a data file (the GB table) missing or broken: no retry can help
                return self._fail(res, "unprintable: %s" % e)
            mv = enc.out()
            if pacer is not None:
                if self.cfg["answers_status"] and not await self._ready(res):
                    return res
                await pacer.before(len(mv))
            if not await self._send(mv, res):
                return res
            if pacer is not None:
                rp, rf, ink, extra = op_rows(enc, op)
                pacer.after(len(mv), rp, rf, ink, extra)
        if not await self._finish(res):
            return res
        return res

    def _fail(self, res, reason):
        res["result"] = "failed"
        res["reason"] = reason
        self._event("failed", "%s at line %d" % (reason, res["line"]))
        return res

    async def _ready(self, res):
        """Pacing printers give no back-pressure: ask before each line, wait out a fault."""
        f = await self._fault()
        if not f:
            return True
        return await self._pause(res, f)

    async def _pause(self, res, fault):
        res["pauses"] += 1
        self._event("paused", "%s at line %d" % (fault, res["line"]))
        start = time.ticks_ms()
        pacer = self.pacer
        while time.ticks_diff(time.ticks_ms(), start) < self.pause_limit_s * 1000:
            await printer_link.sleep_ms(_PAUSE_POLL_MS)
            # A printer that cannot say what is wrong shows recovery by taking data again; a pacing link
            # always "takes" data (there is no back-pressure), so there only an answer clears it.
            took = pacer is None and self.link.flowing()
            f = "" if fault == "offline" and took else await self._fault()
            if not f:
                if pacer is not None:
                    # What it held while stopped prints now; the pacer's estimate ran out meanwhile.
                    pacer.assume_full()
                self._event("resumed", "%s cleared at line %d" % (fault, res["line"]))
                return True
            fault = f
        self._fail(res, fault)
        return False

    async def _send(self, mv, res):
        """All of mv (the encoder's output) to the printer, pausing through faults. False: the job
        failed (res says why)."""
        n = len(mv)
        off = 0
        stalled_since = None
        enc = self.enc
        while off < n:
            nxt = await self.link.send(mv, off, enc.cont)
            res["bytes"] += nxt - off
            moved = nxt > off
            off = nxt
            if off >= n:
                return True
            if moved:
                stalled_since = None
            now = time.ticks_ms()
            if stalled_since is None:
                stalled_since = now
            # Inside a command (a long QR payload) a status query would corrupt it: just keep waiting.
            f = await self._fault() if enc.safe_at(off) else ""
            if f:
                if not await self._pause(res, f):
                    return False
                stalled_since = None
            elif time.ticks_diff(now, stalled_since) > self.pause_limit_s * 1000:
                self._fail(res, "printer busy")
                return False
        return True

    async def _finish(self, res):
        """Wait until the printer has printed everything: GS r 1 is answered only after the data queued
        before it (escpos.md), so its reply marks the end; printers that never answer are done once
        they have taken the bytes (pacing: once the estimate says so)."""
        if self.pacer is not None:
            await self.pacer.idle()
        enc = self.enc
        if self.cfg["answers_status"]:
            enc.clear()
            enc.put(0x1D, 0x72, 0x31)
            self.demux.gsr = -1
            await self._paced(enc.out())
            if not await self._send(enc.out(), res):
                return False
        start = time.ticks_ms()
        while True:
            self.demux.poll()
            if self.link.flowing() and (not self.cfg["answers_status"] or self.demux.gsr >= 0):
                return True
            waited = time.ticks_diff(time.ticks_ms(), start)
            if waited > self.link.stall_ms:
                f = await self._fault()
                if f == "offline" and self.link.flowing():
                    return True  # took every byte but cannot confirm: as far as anyone can know, printed
                if f:
                    if not await self._pause(res, f):
                        return False
                    start = time.ticks_ms()
                elif waited > self.pause_limit_s * 1000:
                    self._fail(res, "printer busy")
                    return False
            await printer_link.sleep_us(5000)
