# The cashier app's end of the host-link UART (MicroPython subset; never deployed).
#
# HostPeer is the far end of the firmware's host UART: it collects reply lines as the wire delivers
# them and sends request lines with sim_uart.send_to_board (one frame time per byte, as the wire does).
# HostClient is the cashier app on top: the protocol itself (request lines with their seq and optional
# CRC-32, which reply answers the request in flight, when the same line must go again) is
# posguard_client.protocol.Session, the very core posguard_client.Terminal drives on a serial port; this
# file adds only the simulated wire and virtual time (a reply timeout, the pause before a retry).
import json
import sys


def _tools_dir():
    # posguard_client lives in the repository's tools/ (the cashier app library); CPython has it
    # installed, the unix port's module path lists only firmware/ and host_tests/.
    f = __file__
    here = f.rsplit("/", 1)[0] if "/" in f else "."
    return here + "/../../tools"


if sys.implementation.name == "micropython" and _tools_dir() not in sys.path:
    sys.path.append(_tools_dir())

import sim_uart  # noqa: E402

from posguard_client import protocol  # noqa: E402

_MAX_LINE = 16384  # a reply longer than this is a firmware bug: the peer drops it and counts it
_MAX_REPLIES = 64
_CHUNK = 24  # bytes handed to the simulated wire at once


class _Sender:
    def __init__(self, board, uart_id, chunk):
        self.board = board
        self.uart_id = uart_id
        self.chunk = chunk

    def fire(self):
        sim_uart.send_to_board(self.board, self.uart_id, self.chunk)


class HostPeer:
    def __init__(self, board, uart_id=None):
        self.board = board
        self.uart_id = board.profile["host"]["uart_id"] if uart_id is None else uart_id
        # Preallocated when the world is built (before sim_heap pins the firmware's areas): a reply line grown
        # byte by byte would reallocate inside the firmware's modelled heap, a cost the chip never pays (the
        # host is another machine).
        self._rx = bytearray(_MAX_LINE)
        self._n = 0
        self.replies = []  # decoded replies not taken by a handler (bounded)
        self.on_reply = None  # fn(reply dict): takes every reply while set (tests, the day's bad-lines probe)
        self.on_line = None  # fn(raw line bytes): the client, while no on_reply is set
        self.bad_replies = 0
        self.bytes_in = 0
        self.lines_out = 0
        board.uart_peers[self.uart_id] = self

    # -- sim_uart peer interface ------------------------------------------------------------------
    def receive(self, data, t_us):
        self.bytes_in += len(data)
        for b in data:
            if b == 10:
                n = self._n
                self._n = 0
                self._line(bytes(memoryview(self._rx)[:n]))
            elif self._n < _MAX_LINE:
                self._rx[self._n] = b
                self._n += 1
            else:
                self.bad_replies += 1
                self._n = 0

    def _line(self, raw):
        if self.on_reply is None and self.on_line is not None:
            self.on_line(raw)
            return
        try:
            obj = json.loads(raw)
        except ValueError:
            self.bad_replies += 1
            return
        if type(obj) is not dict or "ok" not in obj:
            self.bad_replies += 1
            return
        if self.on_reply is not None:
            self.on_reply(obj)
            return
        if len(self.replies) >= _MAX_REPLIES:
            self.replies.pop(0)
        self.replies.append(obj)

    # -- sending ----------------------------------------------------------------------------------
    def send_raw(self, data):
        """Bytes onto the wire as they are (tests send broken lines this way). Handed to the wire in
        small chunks at the times the wire would take them, so the simulated UART never holds a whole
        request in flight (its per-byte bookkeeping would otherwise eat the unix port's heap budget)."""
        self.lines_out += 1
        board = self.board
        clock = board.clock
        frame_us = 10000000 // board.profile["host"]["baud"]  # 8N1: 10 bits per byte
        t0 = clock.now_us()
        n = len(data)
        for i in range(0, n, _CHUNK):
            chunk = data[i : i + _CHUNK]
            if i == 0:
                sim_uart.send_to_board(board, self.uart_id, chunk)
            else:
                clock.call_at_us(t0 + i * frame_us, _Sender(board, self.uart_id, chunk).fire)

    def send(self, obj):
        """A request dict as it is (seq included, no CRC), encoded as posguard_client encodes lines."""
        self.send_raw(protocol.encode(obj).encode() + b"\n")


class HostClient:
    """One request at a time on a protocol.Session: a reply timeout, then the same line again after a
    pause, up to max_tries sends. Terminal's operations, each with a callback last: cb(reply dict), or
    cb(None) when it gives up; a request the session refuses before sending gets its local refusal."""

    def __init__(self, peer, clock, timeout_ms=2500, retry_ms=3000, max_tries=200, crc=False, last_seq=0):
        self.peer = peer
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.retry_ms = retry_ms  # silence before a retry (the terminal drops a partial line after 1 s)
        # max_tries: 200 x 5.5 s, a quarter of an hour of a board that does not answer. The per-sale-id
        # memory is off: the day never reuses an id (a sale lost to a power cut is rung up under a new
        # one), and on the unix port its entries would be charged to the firmware's heap budget.
        self.session = protocol.Session(last_seq, crc=crc, attempts=max_tries, remember=0)
        self._cur = None  # [line, callback, timer]
        self._waiting = []  # requests queued behind the current one (bounded)
        self.timeouts = 0
        self.gave_up = 0
        self.sent = 0
        peer.on_line = self._on_line

    def busy(self):
        return self._cur is not None

    # -- Terminal's operations (posguard_client.terminal), with a callback ------------------------------
    def open_sale(self, sale_id, items, sale_time, cb):
        self.call(protocol.open_request(sale_id, items, sale_time, self.session.remember > 0), cb)

    def pay(self, sale_id, method, cb):
        self.call(protocol.pay_request(sale_id, method), cb)

    def approve(self, sale_id, auth, last4, cb):
        self.call(protocol.approve_request(sale_id, auth, last4), cb)

    def decline(self, sale_id, reason, cb):
        self.call(protocol.sale_request("decline", sale_id, reason), cb)

    def void(self, sale_id, reason, cb):
        self.call(protocol.sale_request("void", sale_id, reason), cb)

    def ack_reversal(self, sale_id, cb):
        self.call(protocol.sale_request("ack_reversal", sale_id), cb)

    def sale(self, sale_id, cb):
        self.call(protocol.sale_request("sale", sale_id), cb)

    def reprint(self, sale_id, cb):
        self.call(protocol.sale_request("reprint", sale_id), cb)

    def status(self, cb):
        self.call(({"op": "status"}, None), cb)

    # -- the exchange -------------------------------------------------------------------------------
    def call(self, built, cb):
        """built: (request, memo) from a protocol builder."""
        if self._cur is not None:
            if len(self._waiting) >= 16:
                cb(None)
                return
            self._waiting.append((built, cb))
            return
        try:
            line = self.session.start(built[0], built[1])
        except protocol.Refusal as e:
            cb(e.reply)
            return
        self._cur = [line, cb, None]
        self._send()

    def _send(self):
        cur = self._cur
        if not self.session.attempt():
            self.gave_up += 1
            self._finish(None)
            return
        self.sent += 1
        self.peer.send_raw(cur[0])
        cur[2] = self.clock.call_later_ms(self.timeout_ms, self._timeout)

    def _timeout(self):
        cur = self._cur
        if cur is None:
            return
        self.timeouts += 1
        cur[2] = None
        self._again()

    def _again(self):
        if not self.session.can_retry():
            self.gave_up += 1
            self._finish(None)
            return
        self._cur[2] = self.clock.call_later_ms(self.retry_ms, self._resend)

    def _resend(self):
        if self._cur is not None:
            self._cur[2] = None
            self._send()

    def _on_line(self, raw):
        cur = self._cur
        verdict, rep = self.session.judge(raw)  # with nothing in flight: late (counted)
        if verdict == protocol.JUNK:
            self.peer.bad_replies += 1
        if cur is None or (verdict != protocol.MINE and verdict != protocol.RESEND):
            return
        if cur[2] is not None:
            self.clock.cancel(cur[2])
            cur[2] = None
        if verdict == protocol.RESEND:
            self._again()  # the terminal could not read our line: the same line after the pause
            return
        self._finish(rep)

    def _finish(self, rep):
        cb = self._cur[1]
        self._cur = None
        self.session.finish(rep)
        cb(rep)
        while self._cur is None and self._waiting:
            built, cb2 = self._waiting.pop(0)
            self.call(built, cb2)
