# CPython stand-in for MicroPython's usocket (the unix port and the ESP32 use their built-in socket: a
# built-in module wins over this file there). Only what umqtt.simple and posguard.mqtt_link call, with
# MicroPython's stream semantics, never kinder: read(n) on a blocking socket waits for all n bytes (or
# the end of the stream, or the timeout: OSError ETIMEDOUT, as ports/unix/modsocket.c raises it); on a
# non-blocking socket it returns None when nothing is there.
import errno
import socket as _s


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    return _s.getaddrinfo(host, port, _s.AF_INET, _s.SOCK_STREAM)


class socket:
    def __init__(self, *args):
        self._s = _s.socket(_s.AF_INET, _s.SOCK_STREAM)

    def connect(self, addr):
        try:
            self._s.connect(addr)
        except TimeoutError:
            raise OSError(errno.ETIMEDOUT, "ETIMEDOUT")

    def settimeout(self, t):
        self._s.settimeout(t)

    def setblocking(self, flag):
        self._s.setblocking(flag)

    def read(self, n):
        out = b""
        while len(out) < n:
            try:
                got = self._s.recv(n - len(out))
            except BlockingIOError:
                return out if out else None
            except TimeoutError:
                raise OSError(errno.ETIMEDOUT, "ETIMEDOUT")
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
            raise OSError(errno.ETIMEDOUT, "ETIMEDOUT")
        return len(data)

    def close(self):
        self._s.close()
