# The cashier app's end of the host-link UART (MicroPython subset; never deployed).
#
# HostPeer is the far end of the firmware's host UART: it collects reply lines as the wire delivers
# them and sends request lines with sim_uart.send_to_board (one frame time per byte, as the wire does).
# HostClient adds what a real cashier app does on top: one request at a time, a sequence number per
# request matched against the reply's "seq", a reply timeout, and retries of the same request (the
# protocol is idempotent, so a retry after a reset is safe).
import json

import sim_uart

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
        self._rx = bytearray()
        self.replies = []  # decoded replies not taken by a handler (bounded)
        self.on_reply = None  # fn(reply dict)
        self.bad_replies = 0
        self.bytes_in = 0
        self.lines_out = 0
        board.uart_peers[self.uart_id] = self

    # -- sim_uart peer interface ------------------------------------------------------------------
    def receive(self, data, t_us):
        self.bytes_in += len(data)
        for b in data:
            if b == 10:
                self._line(bytes(self._rx))
                self._rx = bytearray()
            elif len(self._rx) < _MAX_LINE:
                self._rx.append(b)
            else:
                self.bad_replies += 1
                self._rx = bytearray()

    def _line(self, raw):
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
        self.send_raw(json.dumps(obj).encode() + b"\n")


class HostClient:
    """One request at a time with a timeout and retries; replies go to the request's callback."""

    def __init__(self, peer, clock, timeout_ms=2500, retry_ms=3000, max_tries=200):
        self.peer = peer
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.retry_ms = retry_ms
        self.max_tries = max_tries  # 200 x 3 s: ten minutes of a board that does not answer
        self.seq = 0
        self._cur = None  # [request, callback, tries, timer]
        self._waiting = []  # requests queued behind the current one (bounded by the caller)
        self.timeouts = 0
        self.gave_up = 0
        self.sent = 0
        peer.on_reply = self._on_reply

    def busy(self):
        return self._cur is not None

    def request(self, req, cb):
        """Send req (a dict without seq) and call cb(reply) — or cb(None) when it gives up."""
        if self._cur is not None:
            if len(self._waiting) >= 16:
                cb(None)
                return
            self._waiting.append((req, cb))
            return
        self.seq += 1
        req["seq"] = self.seq
        self._cur = [req, cb, 0, None]
        self._send()

    def _send(self):
        cur = self._cur
        cur[2] += 1
        self.sent += 1
        self.peer.send(cur[0])
        cur[3] = self.clock.call_later_ms(self.timeout_ms, self._timeout)

    def _timeout(self):
        cur = self._cur
        if cur is None:
            return
        self.timeouts += 1
        cur[3] = None
        if cur[2] >= self.max_tries:
            self.gave_up += 1
            self._finish(None)
            return
        cur[3] = self.clock.call_later_ms(self.retry_ms, self._resend)

    def _resend(self):
        if self._cur is not None:
            self._cur[3] = None
            self._send()

    def _on_reply(self, rep):
        cur = self._cur
        if cur is None or rep.get("seq") != cur[0]["seq"]:
            return  # a late reply to a request already retried and answered
        if cur[3] is not None:
            self.clock.cancel(cur[3])
            cur[3] = None
        self._finish(rep)

    def _finish(self, rep):
        cb = self._cur[1]
        self._cur = None
        cb(rep)
        if self._cur is None and self._waiting:
            req, cb2 = self._waiting.pop(0)
            self.request(req, cb2)
