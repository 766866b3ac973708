# The optional "network" section of board.json (telemetry to an MQTT broker, docs/fleet.md). Checked
# at load like the rest of the profile; error messages name the key and never show a credential.
from micropython import const

INTERVAL_MIN_S = const(10)
INTERVAL_MAX_S = const(3600)
QUEUE_MIN = const(4)
QUEUE_MAX = const(256)
_TEXT_MAX = const(64)
_ID_MAX = const(32)

# key -> type code (s str, i int, b bool; ? allows null)
_KEYS = {
    "wifi_ssid": "s?",  # null: no Wi-Fi to join (the unix port, or an Ethernet board)
    "wifi_password": "s?",
    "broker": "s",  # mqtt://host[:port] or mqtts://host[:port]
    "terminal": "s",  # the topic name: posguard/<terminal>/...
    "interval_s": "i",
    "tls": "b",
    "user": "s?",
    "password": "s?",
    "queue_max": "i",
}
# Optional keys (absent means null). ca_file: the broker's CA certificate (DER) on the device's
# filesystem; required with tls: a TLS session that checks no certificate keeps nobody out.
_OPTIONAL = {"ca_file": "s?"}
_SECRET = ("wifi_password", "password", "user")


class Config:
    """A checked network section. repr() and as_status() never show a credential."""

    def __init__(self, net):
        self.ssid = net["wifi_ssid"]
        self._wifi_password = net["wifi_password"]
        self.host, self.port, tls_url = parse_broker(net["broker"])
        self.tls = net["tls"]
        self.terminal = net["terminal"]
        self.interval_s = net["interval_s"]
        self._user = net["user"]
        self._password = net["password"]
        self.queue_max = net["queue_max"]
        self.ca_file = net.get("ca_file")

    def wifi_password(self):
        return self._wifi_password

    def credentials(self):
        return self._user, self._password

    def as_status(self):
        return {"broker": "%s:%d" % (self.host, self.port), "terminal": self.terminal, "tls": self.tls,
                "interval_s": self.interval_s}

    def __repr__(self):
        return "<network %s:%d as %s>" % (self.host, self.port, self.terminal)


def parse_broker(url):
    """'mqtt://host[:port]' -> (host, port, tls). Default ports 1883 / 8883."""
    tls = False
    if url.startswith("mqtts://"):
        tls = True
        rest = url[8:]
    elif url.startswith("mqtt://"):
        rest = url[7:]
    else:
        raise ValueError("profile key 'network.broker' must start with mqtt:// or mqtts://")
    if "@" in rest or "/" in rest:
        raise ValueError("profile key 'network.broker' must be scheme://host[:port] (credentials go in "
                         "network.user and network.password)")
    port = 8883 if tls else 1883
    if ":" in rest:
        rest, p = rest.rsplit(":", 1)
        try:
            port = int(p)
        except ValueError:
            raise ValueError("profile key 'network.broker' has a port that is not a number")
        if not 1 <= port <= 65535:
            raise ValueError("profile key 'network.broker' port must be 1-65535")
    if not rest:
        raise ValueError("profile key 'network.broker' names no host")
    return rest, port, tls


def _type_ok(code, v):
    if v is None:
        return code.endswith("?")
    t = code[0]
    if t == "i":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "b":
        return isinstance(v, bool)
    return isinstance(v, str)


def check(net):
    """A decoded network section -> Config, or ValueError naming the key (never its value)."""
    if not isinstance(net, dict):
        raise ValueError("profile key 'network' must be an object or null")
    for key in net:
        if key not in _KEYS and key not in _OPTIONAL:
            raise ValueError("unknown profile key 'network.%s'" % key)
    for key, code in _KEYS.items():
        if key not in net:
            raise ValueError("missing profile key 'network.%s'" % key)
        if not _type_ok(code, net[key]):
            raise ValueError("profile key 'network.%s' has the wrong type" % key)
        v = net[key]
        if isinstance(v, str) and (len(v) > _TEXT_MAX or (key not in _SECRET and not v)):
            raise ValueError("profile key 'network.%s' must be 1-%d characters" % (key, _TEXT_MAX))
    for key, code in _OPTIONAL.items():
        if not _type_ok(code, net.get(key)):
            raise ValueError("profile key 'network.%s' has the wrong type" % key)
    tid = net["terminal"]
    if len(tid) > _ID_MAX:
        raise ValueError("profile key 'network.terminal' must be 1-%d characters" % _ID_MAX)
    for ch in tid:
        if not (ch.isalpha() or ch.isdigit() or ch in "-_") or ord(ch) > 127:
            raise ValueError("profile key 'network.terminal' may hold only ASCII letters, digits, - and _ "
                             "(it is an MQTT topic level)")
    if not INTERVAL_MIN_S <= net["interval_s"] <= INTERVAL_MAX_S:
        raise ValueError("profile key 'network.interval_s' must be %d-%d" % (INTERVAL_MIN_S, INTERVAL_MAX_S))
    if not QUEUE_MIN <= net["queue_max"] <= QUEUE_MAX:
        raise ValueError("profile key 'network.queue_max' must be %d-%d" % (QUEUE_MIN, QUEUE_MAX))
    tls = parse_broker(net["broker"])[2]
    if tls != net["tls"]:
        raise ValueError("profile key 'network.tls' must be true exactly when network.broker is mqtts://")
    ca = net.get("ca_file")
    if tls and not ca:
        raise ValueError("profile key 'network.ca_file' must name the broker's CA certificate when network.tls "
                         "is true (the broker's certificate is always checked)")
    if ca is not None and (not tls or len(ca) > _TEXT_MAX):
        raise ValueError("profile key 'network.ca_file' must be 1-%d characters, with network.tls only"
                         % _TEXT_MAX)
    if (net["user"] is None) != (net["password"] is None):
        raise ValueError("profile keys 'network.user' and 'network.password' go together")
    if (net["wifi_ssid"] is None) and net["wifi_password"] is not None:
        raise ValueError("profile key 'network.wifi_password' needs network.wifi_ssid")
    return Config(net)
