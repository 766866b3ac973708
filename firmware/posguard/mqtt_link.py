# The MQTT session for telemetry, over micropython-lib's umqtt.simple (a declared dependency:
# manifest.py require("umqtt.simple"), package.json deps). umqtt.simple blocks on its socket: connect,
# CONNACK, PUBACK and the rest of a message after check_msg() all wait without a timeout (its
# wait_msg() calls sock.setblocking(True)). The terminal must never wait on the network, so every
# socket it uses carries a short timeout: the library's `socket` is given a factory that sets one before
# connect(), and after connect() the client's socket is wrapped so that setblocking(True) means "block
# at most io_ms" (on ESP32 setblocking(True) is an infinite timeout: ports/esp32/modsocket.c:603-611,
# docs/reference/micropython-runtime.md "Sockets").
#
# TLS (mqtts://) is done here, not by the library: umqtt.simple 1.3.4 (the pinned PyPI release) wraps
# with `import ussl; ussl.wrap_socket(sock, **ssl_params)`: there is no `ussl` on MicroPython 1.22+ (the
# unix port: "ImportError: no module named 'ussl'"), and its defaults check no certificate at all. So the
# library is always given ssl=False and our socket factory wraps the TCP socket right after connect()
# with the port's built-in `tls` module: an SSLContext(PROTOCOL_TLS_CLIENT) checks the certificate by
# default (extmod/modtls_mbedtls.c:330-331) against the CA of network.ca_file (DER: PEM needs a build with
# MBEDTLS_PEM_PARSE_C, modtls_mbedtls.c:152-161, 517-524, and the unix port refuses it) and for the
# broker's host name (server_hostname, required with CERT_REQUIRED: modtls_mbedtls.c:789-794). The
# handshake runs under the connect timeout.
import usocket
from micropython import const

CONNECT_MS = const(1500)  # TCP connect + CONNACK on a LAN (a broker that is down refuses at once)
IO_MS = const(250)  # any later read or write; a PUBACK on a LAN takes a few ms


class TLSError(OSError):
    """The TLS session could not be set up: an untrusted or wrong certificate, or no readable CA file.
    Its args hold an error number only (the library's message names no secret, but is not kept)."""


class _TlsOnConnect:
    """A socket that becomes a TLS session once connected (umqtt.simple calls connect() on it)."""

    def __init__(self, sock, ca_file, host):
        self._raw = sock
        self._s = sock
        self._ca_file = ca_file
        self._host = host

    def connect(self, addr):
        self._raw.connect(addr)
        import tls

        try:
            with open(self._ca_file, "rb") as f:
                ca = f.read()
            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)  # verify_mode CERT_REQUIRED by default
            ctx.verify_mode = tls.CERT_REQUIRED
            ctx.load_verify_locations(ca)
            self._s = ctx.wrap_socket(self._raw, server_hostname=self._host)
        except Exception as e:  # noqa: BLE001 - OSError, ValueError (mbedtls): one clear kind of failure
            code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
            raise TLSError(code)

    def settimeout(self, t):
        # The TLS layer reads and writes through the TCP socket: its timeout bounds both.
        self._raw.settimeout(t)

    def setblocking(self, flag):
        self._raw.setblocking(flag)

    def read(self, n):
        return self._s.read(n)

    def write(self, data, n=None):
        if n is None:
            return self._s.write(data)
        return self._s.write(data[:n])

    def close(self):
        self._s.close()
        if self._s is not self._raw:
            self._raw.close()


class _BoundedSocket:
    def __init__(self, sock, io_ms):
        self._s = sock
        self._t = io_ms / 1000
        sock.settimeout(self._t)

    def setblocking(self, flag):
        self._s.settimeout(self._t if flag else 0)

    def read(self, n):
        return self._s.read(n)

    def write(self, data, n=None):
        if n is None:
            return self._s.write(data)
        return self._s.write(data, n)

    def close(self):
        self._s.close()


class _TimedSocketModule:
    """What umqtt.simple sees as `socket`: sockets that give up after connect_ms (and become TLS
    sessions on connect() when the profile says tls)."""

    def __init__(self, connect_ms, ca_file=None, host=None):
        self._t = connect_ms / 1000
        self._ca_file = ca_file
        self._host = host

    def socket(self, *args):
        s = usocket.socket(*args)
        s.settimeout(self._t)
        if self._ca_file is None:
            return s
        return _TlsOnConnect(s, self._ca_file, self._host)

    def getaddrinfo(self, *args):
        return usocket.getaddrinfo(*args)


def _library():
    from umqtt import simple

    return simple


class Session:
    """One MQTT connection: connect(), publish(), poll() for incoming messages, close(). Every call
    raises OSError (or the library's MQTTException) on a network problem; the caller backs off."""

    def __init__(self, cfg, client_id, on_message, connect_ms=CONNECT_MS, io_ms=IO_MS):
        self.cfg = cfg
        self.client_id = client_id
        self.on_message = on_message
        self.connect_ms = connect_ms
        self.io_ms = io_ms
        self.client = None

    def connect(self, will_topic=None, will_msg=None):
        simple = _library()
        cfg = self.cfg
        simple.socket = _TimedSocketModule(self.connect_ms, cfg.ca_file if cfg.tls else None, cfg.host)
        user, password = cfg.credentials()
        # ssl=False: TLS is our socket factory's (see the top of this file)
        c = simple.MQTTClient(self.client_id, cfg.host, cfg.port, user=user, password=password,
                              keepalive=0, ssl=False)
        if will_topic is not None:
            c.set_last_will(will_topic, will_msg, retain=True, qos=1)
        c.set_callback(self.on_message)
        try:
            c.connect(clean_session=False)
            c.sock = _BoundedSocket(c.sock, self.io_ms)
        except Exception:
            _close(c)
            raise
        self.client = c

    def subscribe(self, topic):
        self.client.subscribe(topic, qos=1)

    def publish(self, topic, payload, retain=False, qos=0):
        self.client.publish(topic, payload, retain, qos)

    def poll(self, most):
        """Handle at most `most` waiting messages (acks) without waiting for any (check_msg() answers
        None at once when nothing is there, and also after handing a message to on_message)."""
        for _ in range(most):
            self.client.check_msg()

    def close(self):
        c = self.client
        self.client = None
        if c is not None:
            _close(c)

    @property
    def connected(self):
        return self.client is not None


def _close(c):
    try:
        if c.sock is not None:
            c.sock.close()
    except Exception:  # noqa: BLE001 - closing a dead socket: nothing left to do
        pass
