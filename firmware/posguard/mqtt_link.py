# The MQTT session for telemetry, over micropython-lib's umqtt.simple (a declared dependency:
# manifest.py require("umqtt.simple"), package.json deps). umqtt.simple blocks on its socket: connect,
# CONNACK, PUBACK and the rest of a message after check_msg() all wait without a timeout (its
# wait_msg() calls sock.setblocking(True)). The terminal must never wait on the network, so every
# socket it uses carries a short timeout: the library's `socket` is given a factory that sets one before
# connect(), and after connect() the client's socket is wrapped so that setblocking(True) means "block
# at most io_ms" (on ESP32 setblocking(True) is an infinite timeout: ports/esp32/modsocket.c:603-611,
# docs/reference/micropython-runtime.md "Sockets").
import usocket
from micropython import const

CONNECT_MS = const(1500)  # TCP connect + CONNACK on a LAN (a broker that is down refuses at once)
IO_MS = const(250)  # any later read or write; a PUBACK on a LAN takes a few ms


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
    """What umqtt.simple sees as `socket`: sockets that give up after connect_ms."""

    def __init__(self, connect_ms):
        self._t = connect_ms / 1000

    def socket(self, *args):
        s = usocket.socket(*args)
        s.settimeout(self._t)
        return s

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
        simple.socket = _TimedSocketModule(self.connect_ms)
        user, password = self.cfg.credentials()
        c = simple.MQTTClient(self.client_id, self.cfg.host, self.cfg.port, user=user, password=password,
                              keepalive=0, ssl=self.cfg.tls)
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
