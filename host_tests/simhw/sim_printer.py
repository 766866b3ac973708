# Simulated thermal receipt printer on a sim_uart peer (MicroPython subset; never deployed).
#
# Receive path (what the wire delivers, in order):
# - a receive buffer of a model's size; bytes arriving with 0 free are DROPPED and counted (`dropped`:
#   any test that sees it non-zero has found an overflow). BUSY (driven onto the board's busy pin) and
#   XOFF/XON follow the free space with hysteresis (docs/reference/escpos.md: busy at 16-20 free on a
#   45-72 byte buffer; released at twice that, as the 4 KB example busy at 128 / released at 256).
# - real-time DLE EOT n is answered the moment it arrives, wherever it is (also inside QR data).
# Mechanism (the parser runs only when the head is idle, so bytes wait in the buffer while a line prints):
# - row time = max(motor limit, strobes x (heat time + interval)); strobes = ceil(black dots in the row /
#   heating dots). Heat time is stretched by (V_ref / V)^2 to keep the energy per dot as the supply falls
#   (E = V^2 / R x t), so the printer slows down at low voltage. Motor limit: the model's mm/s at 8 dots
#   per mm (58 mm = 384 dots over 48 mm, escpos.md). Feeding: 2.1 ms per dot row (Adafruit's
#   dotFeedTime, battery-and-printer.md).
# - current while heating = dots heated at once x V / R_dot, R_dot = 176 Ohm (mid of 162-198 Ohm, Seiko
#   LTP02-245, battery-and-printer.md); drawn from sim_power.POWER as load "printer" (pack-side amps:
#   through a 90 % boost converter [EST] when the profile has one).
# - paper roll length and paper-out (sensor checked before each line), cover open, head too hot, cutter
#   error, a brownout of its own (supply under the model's minimum) that resets modes and the buffer.
# - it hangs on the board's pack (sim_power.PowerDomain.outage_since): while the pack is out of its
#   connector the mechanism stands still, and an outage longer than HOLDUP_US resets the controller
#   (buffer and modes gone, as brownout()); a shorter one (a connector bounce) leaves it running with
#   whatever its buffer holds. A board reset without an outage (brownout, watchdog) leaves it alone.
# What it printed is recorded (`printed`, bounded) with raw bytes: the host decodes GB18030 and renders.
import sim_firmware
import sim_power
import sim_uart
from sim_ring import Ring

# The firmware's encoder (borrowed, sim_firmware.py) for two facts the printer has from its own firmware:
# - which characters a UTF-8 printer draws double width: escpos.is_wide, the one source of that range
#   list (docs/reference/escpos.md, "Character width"). An independent copy here would be a second
#   opinion on a vendor's font, not a check.
# - the QR version a payload needs: escpos.qr_version. Not an oracle of its own on purpose: the
#   firmware's capacity table is checked against an independent QR encoder (the pinned qrcode
#   package) at every version boundary, host_tests/test_escpos.py; a copy here would check nothing.
_escpos = sim_firmware.borrow("posguard.escpos")
_is_wide = _escpos.is_wide

R_DOT_OHM = 176.0  # Seiko LTP02-245: 162-198 Ohm per dot (battery-and-printer.md)
BOOST_EFF = 0.9  # [EST] a small synchronous boost converter at 1-3 A
BOOST_V = 5.0  # [EST] the boost rail a 5-9 V panel printer is fed from
DOTS_PER_MM = 8  # 203 dpi: 384 dots across 48 mm of print width (escpos.md)
FEED_ROW_US = 2100  # Adafruit_Thermal dotFeedTime (battery-and-printer.md)
# How long the controller's logic rides through a lost supply on its input capacitance [EST, an
# assumption: no datasheet gives it; battery-and-printer.md "Printer controller hold-up"]. Longer than
# sim_day's 20 ms connector bounce (the printer keeps its buffer: the harder case for the firmware),
# far shorter than a pack pulled for seconds (the controller resets).
HOLDUP_US = 100000
LINE_SPACING = 30  # dots: ESC 2 default on 203 dpi mechanisms [EST]
# Share of a character cell's dots that are black, for the current model [EST: counted on a 12x24
# Latin font and a 24x24 song-ti Hanzi font, averaged over text; bold about 1.4 times].
INK_ASCII = 0.17
INK_CJK = 0.30
INK_BOLD = 1.4
_MAX_PRINTED = 4000  # printed-line records kept (oldest dropped)
_MAX_CMD = 8192  # longest command kept (a QR payload holds at most 7089 bytes)
_MAX_STEPS = 100000  # mechanism ops per sync() call (a runaway parser is a model bug)

# The physical printers the profiles name. Sources: escpos.md / battery-and-printer.md; [EST] marked.
MODELS = {
    "csn-a2": {
        "heat": (64, 800, 20),  # ESC 7 defaults: 64 dots, 800 us, 20 us (battery-and-printer.md)
        "v_ref": 7.2,  # [EST] the supply the default heat time is set for (5-9 V part)
        "v_min": 4.5,  # [EST] below this the controller resets
        "cn_at_power_on": False,
        "cut_ms": 0,
    },
    "gb18030-module": {
        "heat": (64, 800, 20),
        "v_ref": 7.2,
        "v_min": 4.5,
        "cn_at_power_on": True,  # many GB18030 printers start in Chinese mode (escpos.md)
        "cut_ms": 500,  # [EST] a partial cut on a small autocutter
    },
}


class ThermalPrinter:
    def __init__(self, board, model=None, **overrides):
        pcfg = board.profile["printer"]
        name = model or pcfg["model"]
        if name not in MODELS:
            raise ValueError("no printer model %r in sim_printer.MODELS" % name)
        cfg = dict(MODELS[name])
        # The board profile says how big the fitted printer's buffer is (escpos.md: 45-72 bytes on
        # panel printers); a test may override it.
        cfg["rx_buffer"] = pcfg["rx_buffer"]
        cfg["busy_free"] = pcfg["busy_free"]  # busy/XOFF at 16-20 free on small buffers (escpos.md)
        cfg["mm_per_s"] = float(pcfg["mm_per_s"])  # CSN-A2 datasheet: 50-80 mm/s; profiles use 50
        cfg["xon"] = pcfg["flow"] == "xon"
        cfg["answers_status"] = pcfg["answers_status"]
        for k in overrides:
            if k not in cfg and k not in ("paper_mm_left", "busy_pin", "busy_active_high", "encoding"):
                raise ValueError("unknown printer override %r" % k)
            cfg[k] = overrides[k]
        self.board = board
        self.cfg = cfg
        self.uart_id = pcfg["uart_id"]
        self.encoding = cfg.get("encoding", pcfg["encoding"])
        self.dots = 384 if pcfg["paper_mm"] == 58 else 576
        self.cutter = pcfg["cutter"]
        self.busy_pin = cfg.get("busy_pin", pcfg["busy"])
        self.busy_high = cfg.get("busy_active_high", pcfg.get("busy_active_high", True))
        self.rx = Ring(cfg["rx_buffer"])
        self.busy_free = cfg["busy_free"]
        self.release_free = min(cfg["rx_buffer"], 2 * cfg["busy_free"])
        self.paper_mm_left = cfg.get("paper_mm_left", 30000.0)  # [EST] a 58 mm x 30 m roll
        self.near_end_mm = 1000.0  # [EST] near-end sensor trips with about a metre left
        self.cover_open = False
        self.head_hot = False
        self.cutter_jam = False
        self.cutter_error = False
        self.silent = not cfg["answers_status"]  # a printer that never answers DLE EOT
        # counters a test or bench reads
        self.dropped = 0
        self.received = 0
        self.status_replies = 0
        self.rt_replies = 0  # DLE EOT commands recognised (answered unless silent)
        self.resets = 0
        self.peak_a = 0.0  # pack-side amps
        self.charge_as = 0.0  # pack-side ampere-seconds
        self.busy_us = 0  # time the mechanism spent printing or feeding
        self.rows = 0
        self.last_end_us = 0  # when the latest mechanism op ends (print time of a job)
        self.printed = []
        self.auto_wraps = 0
        self._t = board.clock.now_us()
        self._busy = False
        self._xoff = False
        self._rt = bytearray(2)  # the last two bytes seen, for DLE EOT detection
        self._op_end = None  # when the current mechanism op ends (us)
        self._op_mean_a = 0.0
        self._held = None  # an op waiting for the fault to clear
        self._maybe_rt = 0  # dropped bytes that may still turn out to be a DLE EOT (not counted yet)
        self._frozen_until = 0  # stall(): controller hung, BUSY held, nothing processed
        self._dark = False  # the supply has been gone longer than HOLDUP_US: reset, waiting for power
        self._reset_modes()
        board.uart_peers[self.uart_id] = self
        board.clock.add_listener(self._on_time)
        self._drive_busy()

    # -- modes ------------------------------------------------------------------------------------
    def _reset_modes(self):
        self.rx.clear()
        self.cn = self.cfg["cn_at_power_on"]
        self.align = 0
        self.bold = False
        self.wmul = 1
        self.hmul = 1
        self.ul = 0
        self.rev = False
        self.asb = 0
        heat = self.cfg["heat"]
        self.heat_dots, self.heat_us, self.heat_int_us = heat[0], heat[1], heat[2]
        self.speed = 9
        self.density = 0
        self._cmd = bytearray()
        self._need = 0
        self._segs = []
        self._seg = bytearray()
        self._seg_key = None
        self._line_dots = 0
        self._ink = 0.0
        self._lead = False  # half of a GB double-byte character seen
        self._partial = bytearray()  # bytes of a glyph not complete yet
        self._utf8_left = 0
        self._utf8_cp = 0
        self._qr = b""
        self._qr_module = 3
        self._qr_ecc = 0x30
        self._bc_h = 162
        self._bc_w = 3

    def brownout(self):
        """The printer's own supply dipped: it resets and forgets its modes and buffer (escpos.md)."""
        self.resets += 1
        self._op_end = None
        self._held = None
        self._set_load(0.0)
        self._reset_modes()
        self._drive_busy()

    # -- faults a test injects --------------------------------------------------------------------
    def open_cover(self):
        self.cover_open = True
        self._status_changed()

    def close_cover(self):
        self.cover_open = False
        self._status_changed()

    def stall(self, ms):
        """The controller hangs for ms: BUSY held, no bytes processed, status still answered."""
        self._frozen_until = self.board.clock.now_us() + int(ms * 1000)
        self._drive_busy()

    def set_head_hot(self, hot):
        """The head's thermistor trips (auto-recoverable: printing stops until it cools)."""
        self.head_hot = bool(hot)
        self._status_changed()

    def clear_cutter(self):
        self.cutter_jam = False
        self.cutter_error = False
        self._status_changed()

    def load_paper(self, mm=30000.0):
        self.paper_mm_left = mm
        self._status_changed()

    def inject_garbage(self, data):
        """Noise on the printer's TX line: bytes the firmware must tolerate."""
        sim_uart.send_to_board(self.board, self.uart_id, data, self.board.clock.now_us())

    def offline(self):
        return self.paper_mm_left <= 0 or self.cover_open or self.head_hot or self.cutter_error

    # -- status bytes (escpos.md) ----------------------------------------------------------------
    def status_byte(self, n):
        out = self.paper_mm_left <= 0
        near = self.paper_mm_left < self.near_end_mm
        if n == 1:
            return 0x12 | (0x08 if self.offline() else 0)
        if n == 2:
            err = self.cutter_error or self.head_hot
            return 0x12 | (0x04 if self.cover_open else 0) | (0x20 if out else 0) | (0x40 if err else 0)
        if n == 3:
            return 0x12 | (0x08 if self.cutter_error else 0) | (0x40 if self.head_hot else 0)
        if n == 4:
            return 0x12 | (0x0C if near else 0) | (0x60 if out else 0)
        return None

    def _reply(self, data, t_us, status=True):
        if self.silent and status:
            return
        self.status_replies += 1
        sim_uart.send_to_board(self.board, self.uart_id, data, t_us)

    def _status_changed(self):
        self._drive_busy()
        if self.asb:
            s1 = 0x10 | (0x08 if self.offline() else 0) | (0x20 if self.cover_open else 0)
            s2 = (0x08 if self.cutter_error else 0) | (0x40 if self.head_hot else 0)
            s3 = (0x03 if self.paper_mm_left < self.near_end_mm else 0) | (0x0C if self.paper_mm_left <= 0 else 0)
            self._reply(bytes((s1, s2, s3, 0)), self.board.clock.now_us())

    # -- the wire ----------------------------------------------------------------------------------
    def receive(self, data, t_us):
        self.sync(t_us)
        rt = self._rt
        for b in data:
            self.received += 1
            full = self.rx.n >= self.rx.cap
            if rt[0] == 0x10 and rt[1] == 0x04 and 1 <= b <= 4:
                # A real-time command acts even with the buffer full (escpos.md): losing its bytes
                # loses nothing, so a DLE EOT dropped for want of room is not counted.
                self.rt_replies += 1
                self._reply(bytes((self.status_byte(b),)), t_us)
                self._maybe_rt = 0
            else:
                prefix = b == 0x10 or (b == 0x04 and rt[1] == 0x10)
                if b == 0x10 or not prefix:
                    self.dropped += self._maybe_rt  # the pending DLE EOT turned out to be data
                    self._maybe_rt = 0
                if full:
                    if prefix:
                        self._maybe_rt += 1
                    else:
                        self.dropped += 1
            if not full:
                self.rx.put(b)
            if self._busy and self.cfg["xon"]:
                self._reply(b"\x13", t_us, False)  # data while busy: say XOFF again [EST]
            rt[0] = rt[1]
            rt[1] = b
        self._run(t_us)
        self._drive_busy()

    def on_break(self, t_us):
        pass

    def _wire_driven(self):
        w = getattr(self.board, "_sim_uart_wires", {}).get(self.uart_id)
        return w is not None and w.owner is not None

    def _on_time(self, t0_us, t1_us):
        p = sim_power.POWER
        if p is not None and p.outage_since is not None or not self._wire_driven():
            self.sync(t1_us)  # else the UART's listener syncs us frame by frame

    def _unpowered(self, since, t_us):
        # The pack is out: the mechanism ran until the contact went, then stands still (no motor, no
        # strobe); past the hold-up the controller is gone too, and comes back reset with the pack.
        if self._t < since:
            self._run(since)
            self._t = since
        if self._op_end is not None:
            self._op_end += t_us - self._t  # (a bounce: the line goes on where it stopped)
            self._set_load(0.0)
        self._t = t_us
        if not self._dark and t_us - since > HOLDUP_US:
            self._dark = True
            self.brownout()

    def sync(self, t_us):
        if t_us <= self._t:
            return
        p = sim_power.POWER
        since = p.outage_since if p is not None else None
        if since is not None:
            self._unpowered(since, t_us)
            return
        self._dark = False
        self._run(t_us)
        self._t = t_us
        self._drive_busy()

    def _drive_busy(self):
        free = self.rx.cap - self.rx.n
        if self._t < self._frozen_until or self.board.clock.now_us() < self._frozen_until:
            busy = True
        elif free <= self.busy_free:
            busy = True
        elif free >= self.release_free:
            busy = False
        else:
            busy = self._busy
        if busy != self._busy:
            self._busy = busy
            if self.cfg["xon"]:
                self._reply(b"\x13" if busy else b"\x11", self._t, False)
        if self.busy_pin is not None:
            level = 1 if busy == self.busy_high else 0
            self.board.drive_pin(self.busy_pin, level)

    # -- mechanism ----------------------------------------------------------------------------------
    def _supply_v(self):
        p = sim_power.POWER
        if p is None:
            return self.cfg["v_ref"]
        if self.board.profile["power"]["boost_converter"]:
            return BOOST_V
        return p.rail_v()

    def _set_load(self, printer_amps):
        p = sim_power.POWER
        if printer_amps <= 0:
            pack = 0.0
        elif self.board.profile["power"]["boost_converter"] and p is not None:
            pack = BOOST_V * printer_amps / (max(0.5, p.rail_v()) * BOOST_EFF)
        else:
            pack = printer_amps
        if pack > self.peak_a:
            self.peak_a = pack
        if p is not None:
            p.set_load("printer", pack)
        return pack

    def _run(self, t_us):
        # Finish ops that ended by t_us and parse on while the head is idle.
        if t_us < self._frozen_until:
            return
        for _ in range(_MAX_STEPS):
            if self._op_end is not None:
                if self._op_end > t_us:
                    return
                self._t = self._op_end
                self._op_end = None
                self._set_load(0.0)
            if self._held is not None:
                if self.offline():
                    return
                op = self._held
                self._held = None
                self._start(op[0], op[1], op[2], op[3])
                continue
            if self.offline() or not self._parse_one():
                return
        raise RuntimeError("sim_printer: runaway mechanism")

    def _start(self, rows_print, rows_feed, ink_dots, record):
        """Begin a mechanism op: rows_print rows with ink_dots black dots each, then rows_feed feed rows."""
        if self.offline() or (rows_print and self.paper_mm_left <= 0):
            self._held = (rows_print, rows_feed, ink_dots, record)
            self._status_changed()
            return
        v = self._supply_v()
        if v < self.cfg["v_min"]:
            self.brownout()
            return
        t_heat = self.heat_us * (self.cfg["v_ref"] / v) ** 2
        t_heat = min(t_heat, 4.0 * self.heat_us)
        heat_dots = max(8, self.heat_dots)
        strobes = 0 if ink_dots <= 0 else (int(ink_dots) + heat_dots - 1) // heat_dots
        row_min = 1000000.0 / (self.cfg["mm_per_s"] * DOTS_PER_MM * self.speed / 9.0)
        row_us = max(row_min, strobes * (t_heat + self.heat_int_us))
        dur = rows_print * row_us + rows_feed * FEED_ROW_US
        if record is not None and record[0] == "cut":
            dur += self.cfg["cut_ms"] * 1000 if self.cutter else 0
        dur = int(dur)
        if dur <= 0:
            self._record(record)
            return
        amps_peak = min(ink_dots, heat_dots) * v / R_DOT_OHM if rows_print else 0.0
        # mean over the op: every black dot is heated for t_heat once per row
        heat_as = rows_print * ink_dots * (v / R_DOT_OHM) * t_heat / 1e6
        amps_mean = heat_as / (dur / 1e6)
        try:
            self._set_load(amps_peak)  # the rail sees the peak first (brownout check) ...
        except sim_power.PowerLoss:
            # The first strobe took the pack under the brownout level: the board resets, and so does the
            # printer's controller on the same collapsing supply (its buffer and the line are lost; the firmware
            # reprints the receipt as a marked copy). Without this the line left in its buffer would be struck
            # again at every boot that follows: a brownout loop no real printer keeps up.
            self.brownout()
            raise
        pack_mean = self._set_load(amps_mean)  # ... then the op's mean for the battery's energy
        self.charge_as += pack_mean * dur / 1e6
        self.busy_us += dur
        self.rows += rows_print + rows_feed
        self.paper_mm_left -= (rows_print + rows_feed) / DOTS_PER_MM
        self._op_end = self._t + dur
        self.last_end_us = self._op_end
        self._record(record)
        if self.paper_mm_left <= 0 or self.paper_mm_left < self.near_end_mm:
            self._status_changed()

    def _record(self, rec):
        if rec is None:
            return
        if len(self.printed) >= _MAX_PRINTED:
            self.printed.pop(0)
        self.printed.append(rec)

    # -- parser ---------------------------------------------------------------------------------------
    def _parse_one(self):
        """Consume buffered bytes until a mechanism op starts. False when the buffer ran dry."""
        while self.rx.n and not self.offline():
            b = self.rx.get()
            if self._feed_byte(b):
                return True
        return False

    def _feed_byte(self, b):
        cmd = self._cmd
        if cmd:
            if len(cmd) > _MAX_CMD:
                self._cmd = bytearray()  # a command this long is garbage: drop it and resync
                self._need = 0
                return False
            cmd.append(b)
            if self._need == 0:
                self._need = self._length(cmd)
            if self._need and len(cmd) >= self._need:
                self._cmd = bytearray()
                self._need = 0
                return self._execute(cmd)
            return False
        if b in (0x1B, 0x1D, 0x1C, 0x10, 0x12):
            self._cmd = bytearray((b,))
            self._need = 0
            return False
        if b == 0x0A:
            return self._print_line(LINE_SPACING)
        if b < 0x20 or b == 0x7F:
            return False  # other control bytes are ignored
        return self._char(b)

    def _length(self, c):
        # Total length of the command in c once enough of it is known; 0 = need more bytes.
        n = len(c)
        if n < 2:
            return 0
        p, q = c[0], c[1]
        if p == 0x1B:
            if q in (0x40, 0x32, 0x76):
                return 2
            if q == 0x37:
                return 5
            if q == 0x24:
                return 4
            return 3
        if p == 0x1C:
            return 2
        if p == 0x10:
            return 3
        if p == 0x12:
            return 3  # DC2 # n and friends
        if p == 0x1D:
            if q == 0x56:
                if n < 3:
                    return 0
                return 4 if c[2] in (0x41, 0x42, 65, 66) else 3
            if q == 0x6B:
                if n < 4:
                    return 0
                if c[2] < 65:  # function A: NUL-terminated data
                    return n if (n > 3 and c[n - 1] == 0) else 0
                return 4 + c[3]
            if q == 0x28:
                if n < 5:
                    return 0
                return 5 + c[3] + 256 * c[4]
            return 3
        return 1

    def _style_key(self):
        return (self.cn, self.bold, self.wmul, self.hmul, self.ul, self.rev)

    def _char(self, b):
        # Double-byte GB in Chinese mode, UTF-8 sequences on UTF-8 printers, else one cell.
        if self.encoding in ("gb18030", "gbk") and self.cn and (b >= 0x81 or self._lead):
            if not self._lead:
                self._lead = True
                self._put_byte(b, 0)
                return False
            self._lead = False
            return self._put_byte(b, 24)
        if self.encoding == "utf-8" and b >= 0x80:
            if b >= 0xC0:
                self._utf8_left = 1 if b < 0xE0 else (2 if b < 0xF0 else 3)
                self._utf8_cp = b & (0x1F if b < 0xE0 else 0x0F)
                self._put_byte(b, 0)
                return False
            self._utf8_cp = (self._utf8_cp << 6) | (b & 0x3F)
            self._utf8_left -= 1
            if self._utf8_left > 0:
                self._put_byte(b, 0)
                return False
            return self._put_byte(b, 24 if _is_wide(self._utf8_cp) else 12)
        return self._put_byte(b, 12)

    def _put_byte(self, b, cell_dots):
        # cell_dots: width of the glyph this byte completes (0 = more bytes of it to come)
        self._partial.append(b)
        if not cell_dots:
            return False
        glyph = self._partial
        self._partial = bytearray()
        started = False
        w = cell_dots * self.wmul
        if self._line_dots + w > self.dots:
            # The printer wraps a too-long line by itself: a layout bug, counted.
            self.auto_wraps += 1
            started = self._print_line(0)
        key = self._style_key()
        if key != self._seg_key:
            self._close_seg()
            self._seg_key = key
        ink = INK_CJK if cell_dots == 24 else INK_ASCII
        if b == 0x20 and cell_dots == 12:
            ink = 0.0
        if self.bold:
            ink *= INK_BOLD
        if self.rev:
            ink = 1.0 - ink
        self._ink += cell_dots * self.wmul * ink
        self._line_dots += w
        self._utf8_cp = 0
        for x in glyph:
            self._seg.append(x)
        return started

    def _close_seg(self):
        if self._seg:
            self._segs.append((bytes(self._seg), self._seg_key))
        self._seg = bytearray()

    def _print_line(self, spacing):
        self._close_seg()
        self._seg_key = None
        segs = self._segs
        self._segs = []
        hmul = self.hmul
        for _, k in segs:
            if k[3] > hmul:
                hmul = k[3]
        ink = self._ink
        self._ink = 0.0
        self._line_dots = 0
        if not segs:
            self._start(0, max(spacing, 24), 0, ("text", self.align, ()))
            return True
        rows = 24 * hmul
        feed = max(0, spacing - rows)  # a line taller than the spacing advances by its height
        self._start(rows, feed, ink, ("text", self.align, tuple(segs)))
        return True

    def _execute(self, c):
        p, q = c[0], c[1]
        if p == 0x1B:
            if q == 0x40:
                self._close_seg()
                keep_rt = self._rt
                self._reset_modes_keep_buffer()
                self._rt = keep_rt
            elif q == 0x61:
                self.align = c[2] if c[2] < 3 else c[2] - 0x30
            elif q == 0x45:
                self.bold = bool(c[2] & 1)
            elif q == 0x2D:
                self.ul = c[2] & 3
            elif q == 0x64:
                if self._segs or self._seg:
                    return self._print_line(LINE_SPACING * max(1, c[2]))
                return self._feed_rows(c[2] * LINE_SPACING) if c[2] else False
            elif q == 0x4A:
                return self._feed_rows(c[2])
            elif q == 0x24:
                # ESC $: absolute position from the line start; the gap prints as blank cells
                target = c[2] + 256 * c[3]
                step = 12 * self.wmul
                started = False
                for _ in range(min(self.dots, max(0, target - self._line_dots)) // step):
                    started = self._put_byte(0x20, 12) or started
                return started
            elif q == 0x37:
                self.heat_dots = (c[2] + 1) * 8
                self.heat_us = c[3] * 10
                self.heat_int_us = c[4] * 10
            return False
        if p == 0x1C:
            if q == 0x26:
                self.cn = True
            elif q == 0x2E:
                self.cn = False
                self._lead = False
            return False
        if p == 0x10:
            return False  # DLE EOT was answered on arrival
        if p == 0x1D:
            if q == 0x21:
                self.wmul = ((c[2] >> 4) & 7) + 1
                self.hmul = (c[2] & 7) + 1
            elif q == 0x42:
                self.rev = bool(c[2] & 1)
            elif q == 0x61:
                self.asb = c[2]
            elif q == 0x68:
                self._bc_h = c[2]
            elif q == 0x77:
                self._bc_w = c[2]
            elif q == 0x72:
                out = self.paper_mm_left <= 0
                near = self.paper_mm_left < self.near_end_mm
                self._reply(bytes(((0x03 if near else 0) | (0x0C if out else 0),)), self._t)
            elif q == 0x56:
                if not self.cutter:
                    return False
                if self.cutter_jam:
                    self.cutter_error = True
                    self._status_changed()
                    return False
                self._start(0, 0, 0, ("cut",))
                return True
            elif q == 0x6B:
                return self._barcode(bytes(c[4:]))
            elif q == 0x28:
                return self._gs_paren(c)
            return False
        return False

    def _reset_modes_keep_buffer(self):
        # ESC @ clears modes but not bytes already behind it in the receive buffer
        rx = self.rx
        self._reset_modes()
        self.rx = rx

    def _feed_rows(self, rows):
        self._start(0, rows, 0, ("feed", rows))
        return True

    def _gs_paren(self, c):
        fn_class = c[2]
        if len(c) < 7:
            return False
        cn, fn = c[5], c[6]
        if fn_class == 0x6B and cn == 0x31:
            if fn == 0x43:
                self._qr_module = c[7]
            elif fn == 0x45:
                self._qr_ecc = c[7]
            elif fn == 0x50:
                self._qr = bytes(c[8:])
            elif fn == 0x51:
                return self._print_qr()
        elif fn_class == 0x4B:
            if cn == 0x31:  # print density -6..6: heat time +/-10 % a step [EST]
                d = c[6] if c[6] < 128 else c[6] - 256
                self.density = d
                self.heat_us = int(self.cfg["heat"][1] * (1 + 0.1 * d))
            elif cn == 0x32:  # print speed 1..9: fewer dots heated at once when slower [EST]
                self.speed = max(1, min(9, c[6]))
                self.heat_dots = max(8, (self.cfg["heat"][0] * self.speed // 9) // 8 * 8)
        return False

    def _print_qr(self):
        data = self._qr
        if not data:
            return False
        # version from the byte-mode capacity at the stored error level (the firmware's table, see above)
        ecc = self._qr_ecc - 0x30 if self._qr_ecc >= 0x30 else self._qr_ecc
        v = _qr_version(len(data), ecc & 3)
        modules = 17 + 4 * v
        rows = modules * self._qr_module
        ink = modules * self._qr_module * 0.5
        self._start(rows, 0, ink, ("qr", self.align, data, self._qr_module, v, ecc & 3))
        return True

    def _barcode(self, payload):
        modules = 11 * (len(payload) + 3) + 2  # CODE128: 11 modules a symbol + stop [EST upper bound]
        ink = modules * self._bc_w * 0.5
        self._start(self._bc_h, 24 + 6, ink, ("barcode", self.align, payload))
        return True


def _qr_version(n, ecc):
    # A payload over version 20 is refused by the firmware; a printer sent one anyway draws it at least
    # that large.
    return _escpos.qr_version(n, ecc) or 20


def attach(board, **overrides):
    """Put a printer of the profile's model on the board's printer UART."""
    return ThermalPrinter(board, **overrides)
