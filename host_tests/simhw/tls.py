# CPython stand-in for MicroPython's built-in `tls` module (extmod/modtls_mbedtls.c; on the unix port and
# the ESP32 the built-in module wins over this file). Only what posguard.mqtt_link calls, never kinder:
#   - SSLContext(PROTOCOL_TLS_CLIENT) checks the certificate by default (modtls_mbedtls.c:330-331) and
#     then needs server_hostname (ValueError otherwise, modtls_mbedtls.c:789-794);
#   - load_verify_locations(cadata) is positional and takes DER: PEM is parsed only when the build has
#     MBEDTLS_PEM_PARSE_C (modtls_mbedtls.c:152-161, 517-524) and the unix port here refuses it ("invalid
#     cert"), so the stand-in refuses PEM too;
#   - a certificate that fails the check raises ValueError with the verify text (modtls_mbedtls.c:830-843),
#     other handshake failures OSError;
#   - the session reads and writes through the TCP socket it wraps, so that socket's timeout bounds them
#     (here: the usocket stand-in's CPython socket is swapped for the TLS one, so its settimeout and
#     setblocking still reach the socket that does the I/O). Stream semantics as host_tests/simhw/usocket.py.
import errno
import ssl as _ssl

import usocket

PROTOCOL_TLS_CLIENT = 0
PROTOCOL_TLS_SERVER = 1
CERT_NONE = 0  # MBEDTLS_SSL_VERIFY_NONE
CERT_OPTIONAL = 1
CERT_REQUIRED = 2


class SSLContext:
    def __init__(self, protocol):
        if protocol != PROTOCOL_TLS_CLIENT:
            raise ValueError("the stand-in is a client only")
        self.verify_mode = CERT_REQUIRED
        self._ca = None

    def load_verify_locations(self, cadata):
        data = bytes(cadata) if isinstance(cadata, (bytes, bytearray)) else cadata.encode()
        if b"-----BEGIN " in data:
            raise ValueError("invalid cert")
        probe = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        try:
            probe.load_verify_locations(cadata=data)
        except (_ssl.SSLError, ValueError):
            raise ValueError("invalid cert")
        self._ca = data

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        if server_side:
            raise ValueError("the stand-in is a client only")
        if self.verify_mode == CERT_REQUIRED and server_hostname is None:
            raise ValueError("CERT_REQUIRED requires server_hostname")
        ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        if self.verify_mode == CERT_NONE:
            ctx.check_hostname = False
            ctx.verify_mode = _ssl.CERT_NONE
        elif self._ca is not None:
            ctx.load_verify_locations(cadata=self._ca)
        raw = sock._s
        try:
            s = ctx.wrap_socket(raw, server_hostname=server_hostname)
        except _ssl.SSLCertVerificationError as e:
            raise ValueError("certificate verify failed: %s" % e.verify_message)
        except TimeoutError:
            raise OSError(errno.ETIMEDOUT, "ETIMEDOUT")
        except _ssl.SSLError:
            raise OSError(errno.ECONNABORTED, "ECONNABORTED")
        sock._s = s
        return _SSLSocket(s, sock)


class _NothingYetIsBlocking:
    """The CPython TLS socket, its "no data yet" (SSLWantReadError) raised as a plain socket's
    BlockingIOError, so the usocket stand-in's stream semantics apply unchanged."""

    def __init__(self, s):
        self._t = s

    def recv(self, n):
        try:
            return self._t.recv(n)
        except _ssl.SSLWantReadError:
            raise BlockingIOError(errno.EAGAIN, "EAGAIN")

    def __getattr__(self, name):
        return getattr(self._t, name)


class _SSLSocket(usocket.socket):
    def __init__(self, s, tcp):
        self._s = _NothingYetIsBlocking(s)
        # the wrapped TCP socket's timeout and wait bookkeeping (usocket charges waits to the virtual clock)
        self._timeout = tcp._timeout
        self._wrote = False
