# Telemetry's parts without a network (run on the unix port with the 110 KB heap, and on CPython):
# the flash queue's bound and order, the network section's checks, the
# backoff schedule, "never while a sale is in progress", events from status transitions, and that no
# credential, card number or item reaches anything published.
import json
import os

from posguard import netconfig, profile, telemetry
from posguard.telemetry_queue import PAYLOAD_MAX, SLOT, EventQueue

PAN = "4111111111111111"
SECRET = "wifi-s3cret-pw"


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _net(**kw):
    n = {"wifi_ssid": "shop", "wifi_password": SECRET, "broker": "mqtt://192.168.1.10:1883", "terminal": "t01",
         "interval_s": 60, "tls": False, "user": None, "password": None, "queue_max": 8}
    for k, v in kw.items():
        n[k] = v
    return n


def _raises(fn, *words):
    try:
        fn()
    except ValueError as e:
        msg = str(e)
        for w in words:
            assert w in msg, msg
        assert SECRET not in msg and "hunter2" not in msg, msg
        return msg
    raise AssertionError("no error")


def test_queue_keeps_order_drops_oldest_and_survives_a_reboot():
    path = "tq_test.q"
    _rm(path)
    q = EventQueue(path, 4)
    assert len(q) == 0 and q.peek() is None
    for k in range(6):  # two more than it holds
        q.push(b"ev%d" % k)
    assert len(q) == 4 and q.dropped == 2
    assert os.stat(path)[6] == 12 + 4 * SLOT  # preallocated: the file never grows
    seq, data = q.peek()
    assert data == b"ev2", data  # the oldest two were dropped, first in first out
    q.pop(seq)
    q2 = EventQueue(path, 4)  # a reboot: RAM gone, the file is all there is
    assert len(q2) == 3 and q2.dropped == 2 and q2.peek()[1] == b"ev3"
    got = []
    while len(q2):
        s, d = q2.peek()
        got.append(d)
        q2.pop(s)
    assert got == [b"ev3", b"ev4", b"ev5"]
    q2.push(b"x" * PAYLOAD_MAX)
    try:
        q2.push(b"x" * (PAYLOAD_MAX + 1))
        raise AssertionError("an oversized event was stored")
    except ValueError:
        pass
    assert EventQueue(path, 8).dropped == 0  # another size (profile changed): a fresh queue
    _rm(path)


def test_network_section_checks_name_the_key_never_the_secret():
    cfg = netconfig.check(_net())
    assert (cfg.host, cfg.port, cfg.tls) == ("192.168.1.10", 1883, False)
    assert SECRET not in repr(cfg) and SECRET not in json.dumps(cfg.as_status())
    assert netconfig.check(_net(broker="mqtts://b.example", tls=True, ca_file="ca.pem")).port == 8883
    _raises(lambda: netconfig.check(_net(broker="mqtts://b.example", tls=True)), "network.ca_file")
    _raises(lambda: netconfig.check(_net(ca_file="ca.pem")), "network.ca_file")
    _raises(lambda: netconfig.check(_net(broker="http://x")), "network.broker")
    _raises(lambda: netconfig.check(_net(broker="mqtt://u:hunter2@host")), "network.broker")
    _raises(lambda: netconfig.check(_net(tls=True)), "network.tls")
    _raises(lambda: netconfig.check(_net(terminal="a/b")), "network.terminal")
    _raises(lambda: netconfig.check(_net(terminal="#")), "network.terminal")
    _raises(lambda: netconfig.check(_net(interval_s=9)), "network.interval_s", "10-3600")
    _raises(lambda: netconfig.check(_net(interval_s=3601)), "network.interval_s")
    netconfig.check(_net(interval_s=10))
    netconfig.check(_net(interval_s=3600))
    _raises(lambda: netconfig.check(_net(queue_max=3)), "network.queue_max", "4-256")
    netconfig.check(_net(queue_max=4))
    netconfig.check(_net(queue_max=256))
    _raises(lambda: netconfig.check(_net(queue_max=257)), "network.queue_max")
    _raises(lambda: netconfig.check(_net(user="u", password=None)), "network.user")
    _raises(lambda: netconfig.check(_net(wifi_password=123)), "network.wifi_password")
    bad = _net()
    bad["extra"] = 1
    _raises(lambda: netconfig.check(bad), "network.extra")


def test_profile_takes_an_optional_network_section():
    root = os.getenv("POSGUARD_ROOT") or __file__.rsplit("/host_tests/", 1)[0]
    with open(root + "/boards/devkit-1s.json") as f:
        data = json.load(f)
    assert "network" not in data
    profile.validate(data)
    data["network"] = _net()
    profile.validate(data)
    data["network"] = _net(interval_s=1)
    try:
        profile.validate(data)
        raise AssertionError("a bad network section loaded")
    except profile.ProfileError as e:
        assert "network.interval_s" in str(e) and SECRET not in str(e)


class _Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


class _Session:
    """Stands in for mqtt_link.Session: records what would go out; `fail` makes the next calls raise."""

    def __init__(self):
        self.connected = False
        self.fail = False
        self.attempts = []
        self.out = []
        self.polls = 0

    def connect(self, will_topic=None, will_msg=None):
        self.attempts.append(clock.t)
        if self.fail:
            raise OSError(111)
        self.connected = True

    def subscribe(self, topic):
        pass

    def publish(self, topic, payload, retain=False, qos=0):
        if self.fail:
            raise OSError(104)
        self.out.append((topic, payload, retain, qos))

    def poll(self, most):
        self.polls += 1

    def close(self):
        self.connected = False


clock = _Clock()


class _Book:
    def __init__(self):
        self.pending = [7]
        self.acked = []

    def reversals(self):
        return list(self.pending)

    def reversal_acked(self, sid):
        self.pending.remove(sid)
        self.acked.append(sid)


def _status(state="OK", replace=False, problem=None):
    return {"battery": {"soc_pct": 55.5, "state": state, "soh_pct": 90.0, "replace": replace, "pan": PAN,
                        "receipts_left": 120, "warning": None},
            "printer": {"problem": problem, "queued": 0, "owed": 0, "items": ["Latte"]},
            "journal": {"fill_pct": 10}, "reversals": [7], "accepting": None, "uptime_s": 5, "crashes": 0,
            "last_sale": {"auth": "A1B2C3", "name": "Latte"}}


def _tel(st, busy=None, queue_max=8):
    path = "tq_tel.q"
    _rm(path)
    clock.t = 0
    s = _Session()
    t = telemetry.Telemetry(netconfig.check(_net(interval_s=60, queue_max=queue_max)), lambda: st[0], _Book(), s,
                            path, busy, None, clock)
    return t, s


def test_backoff_doubles_to_five_minutes_and_resets_on_success():
    st = [_status()]
    t, s = _tel(st)
    s.fail = True
    for _ in range(3000):  # 50 minutes, one step a second
        t.step()
        clock.t += 1000
    gaps = [b - a for a, b in zip(s.attempts, s.attempts[1:])]
    assert gaps[:9] == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000], gaps
    assert max(gaps) == 300000 and len(s.attempts) < 20
    s.fail = False
    clock.t = s.attempts[-1] + 300000
    t.step()
    assert s.connected and t.counters()["backoff_s"] == 1
    _rm("tq_tel.q")


def test_never_connects_while_a_sale_is_in_progress():
    st = [_status()]
    busy = [True]
    t, s = _tel(st, lambda: busy[0])
    for _ in range(600):
        t.step()
        clock.t += 1000
    assert s.attempts == []  # ten minutes of steady trading: no connect attempt
    busy[0] = False
    t.step()
    assert s.connected and len(s.attempts) == 1
    n = len(s.out)
    busy[0] = True
    for _ in range(59):
        t.step()
        clock.t += 1000
    assert len(s.out) == n  # connected, but a sale is on: nothing published for up to an interval
    for _ in range(3):
        t.step()
        clock.t += 1000
    assert len(s.out) > n  # ...then a publish between two requests (milliseconds on a LAN)
    _rm("tq_tel.q")


def test_events_health_and_reversals_carry_no_secret():
    st = [_status()]
    t, s = _tel(st)
    t.step()
    st[0] = _status(state="LOW", problem="paper out")
    t.step()
    st[0] = _status(state="CRITICAL", replace=True, problem="cover open")
    t.step()
    topics = [o[0] for o in s.out]
    events = [json.loads(o[1])["e"] for o in s.out if o[0].endswith("/events")]
    assert events == ["battery_low", "paper_out", "battery_critical", "replace_battery", "printer_fault"], events
    health = [json.loads(o[1]) for o in s.out if o[0].endswith("/health")]
    assert health and all(o[2] for o in s.out if o[0].endswith("/health"))  # retained
    assert health[-1]["battery"]["receipts_left"] == 120 and "pan" not in health[-1]["battery"]
    assert "posguard/t01/reversals" in topics and all(o[3] == 1 for o in s.out if o[0].endswith("/reversals"))
    blob = b"".join(o[1] for o in s.out).decode()
    for secret in (PAN, SECRET, "A1B2C3", "Latte"):
        assert secret not in blob, secret
    assert SECRET not in json.dumps(t.counters())
    # The ack: the reversal leaves the journal's pending list and is not sent again.
    t.on_message(b"posguard/t01/ack", b'{"reversal": 7}')
    t.on_message(b"posguard/t01/ack", b'{"reversal": 7}')  # at-least-once: a repeated ack changes nothing
    t.on_message(b"posguard/t01/ack", b"x" * 200)
    assert t.book.acked == [7] and t.acks == 1 and t.bad_acks == 2
    _rm("tq_tel.q")


def test_offline_events_beyond_the_queue_are_dropped_oldest_first_and_counted():
    st = [_status()]
    t, s = _tel(st, queue_max=4)
    s.fail = True
    for k in range(6):
        st[0] = _status(problem="paper out" if k % 2 == 0 else None)
        t.step()
        clock.t += 1000
    assert len(t.queue) == 3 and t.queue.dropped == 0  # three paper-out events, within the bound
    for k in range(10):
        st[0] = _status(problem="paper out" if k % 2 == 0 else None)
        t.step()
        clock.t += 1000
    assert len(t.queue) == 4 and t.queue.dropped == 8 - 4
    s.fail = False
    clock.t += 400000
    t.step()
    ev = [json.loads(o[1]) for o in s.out if o[0].endswith("/events")]
    assert [e["n"] for e in ev] == [5, 6, 7, 8] and t.counters()["dropped"] == 4
    _rm("tq_tel.q")


def test_power_loss_event_names_the_sales():
    st = [_status()]
    t, s = _tel(st)
    t.boot_events({"voided": [3, 4], "reversal_pending": [1, 4], "reprint": [5], "closed": [6], "pending": []})
    t.boot_events({"voided": [], "reversal_pending": [1], "reprint": [], "closed": [], "pending": []})  # no news
    t.boot_events(None)
    t.step()
    ev = [json.loads(o[1]) for o in s.out if o[0].endswith("/events")]
    assert len(ev) == 1 and ev[0]["e"] == "power_loss_recovered", ev
    assert (ev[0]["voided"], ev[0]["reprinted"], ev[0]["reversals"]) == ([3, 4], [5], [4])
    # Sixteen ids in each list do not fit a 186-byte slot: trimmed, and said so.
    ids = list(range(1000000000, 1000000016))
    assert t.event("power_loss_recovered", voided=ids, reprinted=ids, reversals=ids) is not None
    _rm("tq_tel.q")
