# Simulated machine.UART of the esp32 port (MicroPython subset; never deployed).
#
# What it models, because the printer driver's correctness depends on it:
# - Baud-rate timing on the world clock: one frame = start + data bits + parity + stop bits.
# - The ESP32 transmit path: a 128-byte hardware FIFO (ESP32 TRM, UART FIFO length 128) behind an
#   optional driver ring buffer of `txbuf` bytes (esp32 port default 0 = none). The wire drains them one
#   frame at a time, and only while CTS allows when flow=UART.CTS.
# - `write()` BLOCKS while the FIFO and ring are full, like uart_write_bytes() with portMAX_DELAY on the
#   ESP32: virtual time advances inside the call, nothing else runs. If the far end never releases CTS the
#   board's watchdog fires (sim_power.WatchdogReset) - the freeze the firmware has to avoid. Without a
#   watchdog a real board hangs forever; the simulation raises sim_clock.Deadlock after _FREEZE_LIMIT_US.
# - An RX FIFO of `rxbuf` bytes: bytes the far end sends arrive one frame time apart and are dropped
#   (and counted) when the FIFO is full.
# - The far end is a peer object in sim_board.current.uart_peers[id] with:
#     peer.receive(data, t_us)   bytes that left the wire, with the time the last one finished
#     peer.sync(t_us)            optional: bring the peer's continuous state up to t_us (before CTS is
#                                sampled), e.g. a printer mechanism that frees buffer space
#   The peer drives the CTS pin net (board.drive_pin(cts, level)) and answers through
#   sim_uart.send_to_board(board, uart_id, data, t_us).
# - Signal inversion: INV_TX/INV_RX flip every data bit seen by the other side (a wrong polarity gives
#   garbage, as on a bench); INV_CTS flips how the CTS level is read (CTS is active-low: low = clear to send).
import sim_board
import sim_clock
from sim_ring import Ring

_HW_FIFO = 128  # ESP32 UART hardware FIFO length in bytes (ESP32 TRM, "UART FIFO")
_FREEZE_LIMIT_US = 600 * 1000000  # a blocked write with no watchdog: report a hang after 10 min virtual
_INIT_TX_WAIT_US = 1000000  # UART.init() waits this long at most for TX to drain (machine_uart.c:306)
_MAX_PENDING_RX = 64  # far-end chunks in flight on the RX wire (a runaway peer is a model bug)


def _wires(board):
    w = getattr(board, "_sim_uart_wires", None)
    if w is None:
        w = {}
        board._sim_uart_wires = w
    return w


class Wire:
    """One UART port of a board: its TX queue, the wire timing and the RX FIFO. Outlives UART objects
    (a reset drops the firmware's UART object; the port's listener stays on the world clock)."""

    def __init__(self, board, uart_id):
        self.board = board
        self.id = uart_id
        self.owner = None  # the live machine.UART; None after a reset or deinit
        self.frame_ns = 1041667  # 9600 8N1 until init() says otherwise
        self.tx_cap = _HW_FIFO
        self.txq = Ring(_HW_FIFO)
        self.next_free_ns = 0  # when the wire can start the next frame
        self.cts_pin = None
        self.flow_cts = False
        self.inv = 0
        self.rx_cap = 256
        self.rxq = Ring(257)
        self.rx_pending = []  # [ready_ns, byte] in arrival order, not yet in the FIFO
        self.rx_dropped = 0
        self.tx_bytes = 0
        self.cts_stalls = 0  # frames the wire could not start because CTS said stop
        self.init_wait_max_us = 0  # longest UART.init() spent waiting for TX (the event loop frozen)
        board.clock.add_listener(self._on_time)

    # -- configuration ------------------------------------------------------------------------
    def configure(self, owner, baud, bits, parity, stop, txbuf, rxbuf, cts, flow, invert):
        self.owner = owner
        frame_bits = 1 + bits + (0 if parity is None else 1) + stop
        self.frame_ns = frame_bits * 1000000000 // baud
        self.tx_cap = _HW_FIFO + (txbuf if txbuf > _HW_FIFO else 0)
        if self.txq.cap != self.tx_cap:
            self.txq = Ring(self.tx_cap)
        self.rx_cap = rxbuf
        if self.rxq.cap != rxbuf:
            self.rxq = Ring(rxbuf)
        self.cts_pin = cts
        self.flow_cts = bool(flow & UART.CTS) and cts is not None
        self.inv = invert
        now = self.board.clock.now_us() * 1000
        if self.next_free_ns < now:
            self.next_free_ns = now

    def drop_all(self):
        self.txq.clear()
        self.rxq.clear()
        self.rx_pending = []

    # -- TX side --------------------------------------------------------------------------------
    def cts_clear(self):
        if not self.flow_cts:
            return True
        level = self.board.pin_level(self.cts_pin)
        if self.inv & UART.INV_CTS:
            level ^= 1
        return level == 0  # CTS is active-low: low means "clear to send"

    def _on_time(self, t0_us, t1_us):
        live = self.board.uarts.get(self.id)
        if self.owner is None or live is not self.owner:
            # A reset or deinit: the driver and its buffers are gone with RAM.
            if self.txq.n or self.rxq.n or self.rx_pending:
                self.drop_all()
            self.owner = None
            return
        peer = self.board.uart_peers.get(self.id)
        end_ns = t1_us * 1000
        self._drain_tx(peer, end_ns)
        self._land_rx(end_ns)
        if peer is not None and hasattr(peer, "sync"):
            peer.sync(t1_us)

    def _drain_tx(self, peer, end_ns):
        fns = self.frame_ns
        t = self.next_free_ns
        q = self.txq
        sent = 0
        # One frame per step; a blocked CTS is re-sampled once per frame time (the hardware looks at it
        # before each frame, so this under-uses the wire by at most one frame per stall).
        while q.n and t + fns <= end_ns:
            if peer is not None and hasattr(peer, "sync"):
                peer.sync(t // 1000)
            if not self.cts_clear():
                self.cts_stalls += 1
                t += fns
                continue
            b = q.get()
            t += fns
            sent += 1
            if self.inv & UART.INV_TX:
                b ^= 0xFF
            if peer is not None:
                peer.receive(bytes((b,)), t // 1000)
        if not q.n and t < end_ns:
            t = end_ns  # an idle wire starts the next frame as soon as data is queued
        self.next_free_ns = t
        self.tx_bytes += sent

    def tx_free(self):
        return self.tx_cap - self.txq.n

    # -- RX side --------------------------------------------------------------------------------
    def peer_send(self, data, t_us):
        if self.owner is None:
            return  # nobody listening: the bytes fall on the floor, as on a board in reset
        if len(self.rx_pending) >= _MAX_PENDING_RX * 16:
            raise RuntimeError("sim_uart: far end floods the RX wire")
        t = t_us * 1000
        last = self.rx_pending[-1][0] if self.rx_pending else 0
        if last > t:
            t = last
        for b in data:
            t += self.frame_ns
            if self.inv & UART.INV_RX:
                b ^= 0xFF
            self.rx_pending.append([t, b])

    def _land_rx(self, now_ns):
        p = self.rx_pending
        while p and p[0][0] <= now_ns:
            b = p.pop(0)[1]
            if self.rxq.n >= self.rxq.cap:
                self.rx_dropped += 1
            else:
                self.rxq.put(b)


def wire_for(board, uart_id):
    ws = _wires(board)
    w = ws.get(uart_id)
    if w is None:
        w = Wire(board, uart_id)
        ws[uart_id] = w
    return w


# UART0's console RX pin per chip (docs/reference/esp32-port.md): until the firmware's own UART takes
# that pin, bytes arriving there go to the REPL.
_CONSOLE_RX = {"esp32": 3, "esp32s3": 44}


def _to_repl(board, uart_id, data):
    """A peer wired to the console RX pin talks to the REPL until a firmware UART owns the pin: a 0x03
    (Ctrl-C) there is a KeyboardInterrupt in whatever the board runs (boot.py, main.py's start)."""
    prof = getattr(board, "profile", None) or {}
    host = prof.get("host", {})
    if host.get("uart_id") != uart_id or host.get("rx") != _CONSOLE_RX.get(prof.get("mcu", "esp32")):
        return
    if wire_for(board, uart_id).owner is None and board.power.on and 3 in data:
        raise KeyboardInterrupt("0x03 from the host link on the console pins reached the REPL")


def send_to_board(board, uart_id, data, t_us=None):
    """What a peer calls to send bytes to the firmware (they arrive one frame time apart)."""
    if t_us is None:
        t_us = board.clock.now_us()
    _to_repl(board, uart_id, data)
    wire_for(board, uart_id).peer_send(data, t_us)


class UART:
    INV_TX = 1
    INV_RX = 2
    INV_RTS = 4
    INV_CTS = 8
    RTS = 1
    CTS = 2
    IRQ_RXIDLE = 4096  # present on recent esp32 ports; irq() is accepted and ignored here

    def __init__(
        self,
        id,
        baudrate=9600,
        bits=8,
        parity=None,
        stop=1,
        *,
        tx=None,
        rx=None,
        rts=None,
        cts=None,
        txbuf=None,
        rxbuf=None,
        timeout=None,
        timeout_char=None,
        invert=None,
        flow=None,
    ):
        b = sim_board.current
        if b is None:
            raise OSError("no simulated board is powered (sim_board.current is None)")
        if not isinstance(id, int) or id < 0 or id > 2:
            raise ValueError("UART(%r) does not exist" % (id,))
        self._board = b
        self._id = id
        self._wire = wire_for(b, id)
        self._baud = 9600
        self._bits = 8
        self._parity = None
        self._stop = 1
        self._tx = tx
        self._rx = rx
        self._rts = None
        self._cts = None
        self._txbuf = 0  # esp32 port default: no driver TX ring, only the hardware FIFO
        self._rxbuf = 256
        self._timeout = 0
        self._timeout_char = 0
        self._invert = 0
        self._flow = 0
        self._wire.drop_all()  # a freshly installed driver starts with empty buffers
        self._installed = False
        self.init(
            baudrate,
            bits,
            parity,
            stop,
            tx=tx,
            rx=rx,
            rts=rts,
            cts=cts,
            txbuf=txbuf,
            rxbuf=rxbuf,
            timeout=timeout,
            timeout_char=timeout_char,
            invert=invert,
            flow=flow,
        )
        b.uarts[id] = self

    def init(
        self,
        baudrate=None,
        bits=None,
        parity=None,
        stop=None,
        *,
        tx=None,
        rx=None,
        rts=None,
        cts=None,
        txbuf=None,
        rxbuf=None,
        timeout=None,
        timeout_char=None,
        invert=None,
        flow=None,
    ):
        if self._installed:
            self._wait_tx_before_init()
        self._installed = True
        if baudrate is not None:
            if baudrate <= 0 or baudrate > 5000000:
                raise ValueError("invalid baudrate")
            self._baud = baudrate
        if bits is not None:
            if bits not in (5, 6, 7, 8):
                raise ValueError("invalid data bits")
            self._bits = bits
        if parity is not None:
            if parity not in (0, 1):
                raise ValueError("invalid parity")
            self._parity = parity
        if stop is not None:
            if stop not in (1, 2):
                raise ValueError("invalid stop bits")
            self._stop = stop
        if tx is not None:
            self._tx = tx
        if rx is not None:
            self._rx = rx
        if rts is not None:
            self._rts = rts
        if cts is not None:
            self._cts = cts
        if txbuf is not None:
            if txbuf < 0:
                raise ValueError("txbuf must be >= 0")
            self._txbuf = txbuf
        if rxbuf is not None:
            # ESP-IDF requires an RX ring larger than the hardware FIFO (uart_driver_install)
            if rxbuf <= _HW_FIFO:
                rxbuf = _HW_FIFO + 1
            self._rxbuf = rxbuf
        if timeout is not None:
            self._timeout = timeout
        if timeout_char is not None:
            self._timeout_char = timeout_char
        if invert is not None:
            if invert & ~15:
                raise ValueError("invalid inversion mask")
            self._invert = invert
        if flow is not None:
            if flow & ~3:
                raise ValueError("invalid flow control mask")
            self._flow = flow
        self._wire.configure(
            self,
            self._baud,
            self._bits,
            self._parity,
            self._stop,
            self._txbuf,
            self._rxbuf,
            self._cts,
            self._flow,
            self._invert,
        )
        self._board.uarts[self._id] = self

    def _wait_tx_before_init(self):
        # ports/esp32/machine_uart.c:304-307: init() on an installed driver first calls
        # uart_wait_tx_done(uart_num, pdMS_TO_TICKS(1000)): up to 1 s blocked (nothing else runs) while
        # the FIFO cannot drain, e.g. CTS held by a busy printer. Then the settings change anyway.
        w = self._wire
        clock = self._board.clock
        start = clock.now_us()
        frame_us = max(1, w.frame_ns // 1000)
        while not self.txdone() and clock.now_us() - start < _INIT_TX_WAIT_US:
            clock.advance_us(min(frame_us, _INIT_TX_WAIT_US - (clock.now_us() - start)))
        waited = clock.now_us() - start
        if waited > w.init_wait_max_us:
            w.init_wait_max_us = waited

    def deinit(self):
        if self._board.uarts.get(self._id) is self:
            del self._board.uarts[self._id]
        self._wire.owner = None
        self._wire.drop_all()

    def _check(self):
        if self._wire.owner is not self:
            raise OSError("UART is not initialised (deinit or board reset)")

    def __repr__(self):
        return "UART(%d, baudrate=%d, bits=%d, parity=%s, stop=%d, tx=%s, rx=%s, txbuf=%d, rxbuf=%d, flow=%d)" % (
            self._id,
            self._baud,
            self._bits,
            self._parity,
            self._stop,
            self._tx,
            self._rx,
            self._txbuf,
            self._rxbuf,
            self._flow,
        )

    # -- status -------------------------------------------------------------------------------
    def any(self):
        self._check()
        w = self._wire
        w._land_rx(self._board.clock.now_us() * 1000)
        return w.rxq.n

    def txdone(self):
        self._check()
        w = self._wire
        return not w.txq.n and w.next_free_ns <= self._board.clock.now_us() * 1000

    # -- TX -------------------------------------------------------------------------------------
    def write(self, buf):
        """Queue every byte; blocks (virtual time passes) while the FIFO and ring are full."""
        self._check()
        w = self._wire
        clock = self._board.clock
        mv = memoryview(buf)
        n = len(mv)
        i = 0
        start = clock.now_us()
        frame_us = max(1, w.frame_ns // 1000)
        step = frame_us
        while i < n:
            free = w.tx_free()
            if free > 0:
                k = min(free, n - i)
                w.txq.put_from(mv, i, k)
                i += k
                step = frame_us
                continue
            if clock.now_us() - start > _FREEZE_LIMIT_US:
                raise sim_clock.Deadlock("UART(%d).write blocked for 10 min: the board is frozen" % self._id)
            # Wait a frame for the wire (if CTS allows) to make room; while nothing moves, look less
            # often (up to every 10 ms) so a frozen write costs little host time.
            clock.advance_us(step)
            if w.tx_free() == 0 and step < 10000:
                step = min(10000, step * 2)
        return n

    def flush(self):
        """Wait until everything is sent; like the esp32 port, raise a timeout when it cannot be."""
        self._check()
        w = self._wire
        clock = self._board.clock
        # esp32 port: the timeout covers the TX buffer at the baud rate (bytes * frame time) plus margin
        limit_us = (w.tx_cap * w.frame_ns) // 1000 + 100000
        start = clock.now_us()
        while not self.txdone():
            if clock.now_us() - start > limit_us:
                raise OSError(116, "ETIMEDOUT")
            clock.advance_us(max(1, w.frame_ns // 1000))

    def sendbreak(self):
        self._check()
        w = self._wire
        # A break holds TX low for more than a frame; the far end sees a 0x00 with a framing error.
        peer = self._board.uart_peers.get(self._id)
        if peer is not None and hasattr(peer, "on_break"):
            peer.on_break(self._board.clock.now_us())
        w.next_free_ns += 2 * w.frame_ns

    def irq(self, handler=None, trigger=0, hard=False):
        return None

    # -- RX -------------------------------------------------------------------------------------
    def _wait_rx(self, want, timeout_ms):
        # Wait (virtual time) until `want` bytes are in the FIFO or the timeout passes.
        w = self._wire
        clock = self._board.clock
        if timeout_ms <= 0:
            return
        deadline = clock.now_us() + timeout_ms * 1000
        while self.any() < want and clock.now_us() < deadline:
            step = max(1, w.frame_ns // 1000)
            clock.advance_us(min(step, deadline - clock.now_us()))

    def read(self, nbytes=None):
        self._check()
        w = self._wire
        if nbytes is None:
            self._wait_rx(1, self._timeout)
            if not self.any():
                return None
            return w.rxq.take(w.rxq.n)
        self._wait_rx(nbytes, self._timeout + self._timeout_char * nbytes)
        if not self.any():
            return None
        return w.rxq.take(min(nbytes, w.rxq.n))

    def readinto(self, buf, nbytes=None):
        self._check()
        w = self._wire
        if nbytes is None:
            nbytes = len(buf)
        self._wait_rx(nbytes, self._timeout + self._timeout_char * nbytes)
        k = min(nbytes, w.rxq.n, len(buf))
        if k == 0:
            return None
        for i in range(k):
            buf[i] = w.rxq.get()
        return k

    def readline(self):
        self._check()
        w = self._wire
        clock = self._board.clock
        deadline = clock.now_us() + self._timeout * 1000
        while True:
            self.any()
            i = w.rxq.index(10)
            if i >= 0:
                return w.rxq.take(i + 1)
            if clock.now_us() >= deadline:
                break
            clock.advance_us(min(max(1, w.frame_ns // 1000), deadline - clock.now_us()))
        if not w.rxq.n:
            return None
        return w.rxq.take(w.rxq.n)
