# CPython stand-in for MicroPython's usocket (the unix port and the ESP32 use their built-in socket: a
# built-in module wins over this file there). Only what umqtt.simple and posguard.mqtt_link call, with
# MicroPython's stream semantics, never kinder: read(n) on a blocking socket waits for all n bytes (or
# the end of the stream, or the timeout: OSError ETIMEDOUT, as ports/unix/modsocket.c raises it); on a
# non-blocking socket it returns None when nothing is there.
#
# Time: on the chip a blocking socket call holds the whole asyncio loop (the host link, the printer)
# until it returns, so each wait is charged to the simulated world's clock: a connect or a read that
# has to wait for the peer costs one LAN round trip (RTT_US), a call that times out costs its whole
# timeout, and a non-blocking call or a write (into the stack's send buffer) costs nothing
# (docs/reference/micropython-runtime.md "Sockets"). UNREACHABLE = True models a network that is gone
# (the broker's host does not answer: every connect and every wait times out) without waiting for real.
import errno
import socket as _s

import sim_clock

RTT_US = 5000  # a LAN round trip over Wi-Fi, on the slow side (docs/reference/micropython-runtime.md)
UNREACHABLE = False
ON_WAIT = None  # fn(t0_us, t1_us) after each charged wait (a bench's probe), or None


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    return _s.getaddrinfo(host, port, _s.AF_INET, _s.SOCK_STREAM)


def _wait(us):
    if us > 0:
        t0 = sim_clock.CLOCK.now_us()
        sim_clock.CLOCK.advance_us(us)
        if ON_WAIT is not None:
            ON_WAIT(t0, sim_clock.CLOCK.now_us())


class socket:
    def __init__(self, *args):
        self._s = _s.socket(_s.AF_INET, _s.SOCK_STREAM)
        self._timeout = None  # None: blocking without a limit; 0: non-blocking
        self._wrote = False  # written since the last read: the next blocking read waits for the answer

    def _timed_out(self):
        t = self._timeout
        if t is None:
            # ESP32: setblocking(True) is an infinite timeout (modsocket.c:603-611): the board hangs.
            raise RuntimeError("a blocking socket call without a timeout would wait forever on ESP32")
        _wait(int(t * 1000000))
        return OSError(errno.ETIMEDOUT, "ETIMEDOUT")

    def connect(self, addr):
        if UNREACHABLE:
            raise self._timed_out()
        try:
            self._s.connect(addr)
        except TimeoutError:
            raise self._timed_out()
        except OSError:
            _wait(RTT_US)  # refused: the peer's host answered with a reset
            raise
        _wait(RTT_US)

    def settimeout(self, t):
        self._timeout = t
        self._s.settimeout(t)

    def setblocking(self, flag):
        self._timeout = None if flag else 0
        self._s.setblocking(flag)

    def _waits(self):
        """A blocking read right after this side wrote (CONNACK, SUBACK, PUBACK) waits for the peer's
        answer: one round trip. The rest of a packet, or a message already there, costs nothing. Decided
        from the calls alone, not from what the host's broker happened to have sent yet: deterministic."""
        if self._timeout == 0:
            return False  # a non-blocking read never waits (and leaves the answer to the next one)
        wrote = self._wrote
        self._wrote = False
        return wrote

    def read(self, n):
        if UNREACHABLE and self._timeout != 0:
            raise self._timed_out()
        if self._waits():
            _wait(RTT_US)
        out = b""
        while len(out) < n:
            try:
                got = self._s.recv(n - len(out))
            except BlockingIOError:
                return out if out else None
            except TimeoutError:
                raise self._timed_out()
            if not got:
                break
            out += got
        return out

    def write(self, data, n=None):
        if isinstance(data, str):
            data = data.encode()  # MicroPython's stream write takes str as its UTF-8 bytes
        if n is not None:
            data = data[:n]
        try:
            self._s.sendall(bytes(data))
        except TimeoutError:
            raise self._timed_out()
        self._wrote = True
        return len(data)

    def close(self):
        self._s.close()
