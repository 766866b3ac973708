"""Telemetry against a real MQTT broker (amqtt in a subprocess on a loopback port): the firmware on the
simulated board (CPython, virtual time paced to a few ms of real time per simulated second) publishes
through umqtt.simple (installed from PyPI by posguard_tools.mpylib) to the broker, and a back office
(posguard_tools.mqtt_wire) on another thread reads health and events and acks the reversals.

Faults: the broker is down at boot, killed mid-day, and back later. Every event queued meanwhile and
every pending reversal arrives after it is back; nothing published carries a card number, an item, an
approval code or a credential."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_app import Counter

from posguard_tools import mpylib
from posguard_tools.backoffice import Office
from posguard_tools.broker import Broker
from posguard_tools.mqtt_wire import retained

PAN = "4111111111111111"
SECRET = "wifi-s3cret-pw"
ITEMS = [{"name": "拿铁 Latte", "qty": 2, "price": 1800}, {"name": "Croissant", "price": 1200}]
PACE_S = 0.004  # real seconds per simulated second: acks from the back office arrive "in time"


@pytest.fixture(scope="module", autouse=True)
def umqtt_on_path() -> None:
    lib = str(mpylib.install())
    if lib not in sys.path:
        sys.path.insert(0, lib)


def network(url: str, terminal: str = "t01", interval_s: int = 10, queue_max: int = 8) -> dict[str, Any]:
    return {"wifi_ssid": "shop", "wifi_password": SECRET, "broker": url, "terminal": terminal,
            "interval_s": interval_s, "tls": False, "user": None, "password": None, "queue_max": queue_max}


def paced(c: Counter, until_s: int) -> None:
    def tick(t: int) -> None:
        time.sleep(PACE_S)
        if t < until_s:
            c.day.clock.call_at_us((t + 1) * 1_000_000, lambda: tick(t + 1))

    c.day.clock.call_at_us(1_000_000, lambda: tick(1))


def counter(tmp: Path, net: dict[str, Any]) -> Counter:
    c = Counter(tmp)
    c.day.profile["network"] = net
    with open(c.day.fs_dir + "/board.json", "w") as f:
        f.write(json.dumps(c.day.profile))
    return c


def test_broker_down_at_boot_killed_mid_day_and_back(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")  # not started: down at boot
    c = counter(tmp_path / "fs", network(broker.url))
    office = Office(broker.port, "t01")
    office.start()
    c.day.printer.paper_mm_left = 60.0  # the first receipt ends the roll: a paper_out event
    c.at(10, {"op": "open", "id": 102, "items": ITEMS})
    c.at(12, {"op": "pay", "id": 102, "method": "card"})
    c.at(14, {"op": "void", "id": 102, "reason": "acquirer timeout"})  # a reversal pending, broker down
    c.at(20, {"op": "open", "id": 101, "items": ITEMS, "time": "2026-11-24 09:00"})
    c.at(22, {"op": "pay", "id": 101, "method": "card"})
    c.at(24, {"op": "approve", "id": 101, "auth": "A1B2C3", "last4": "4242"})
    c.at(46, {"op": "open", "id": 103, "items": [{"name": f"card {PAN}", "price": 100}]})  # refused
    c.day.clock.call_at_us(60_000_000, broker.start)  # the broker comes up a minute after boot
    c.day.clock.call_at_us(150_000_000, lambda: broker.stop(kill=True))  # ...is killed...
    c.at(160, {"op": "status"})
    c.day.clock.call_at_us(170_000_000, lambda: c.day.printer.load_paper())
    c.at(200, {"op": "open", "id": 104, "items": ITEMS})  # a sale while the broker is away
    c.at(202, {"op": "pay", "id": 104, "method": "qr"})
    c.at(204, {"op": "void", "id": 104})  # a second reversal, born offline
    c.day.clock.call_at_us(300_000_000, broker.start)  # ...and back
    last = c.at(560, {"op": "status"})
    paced(c, 600)
    try:
        c.run(600)
        time.sleep(0.3)
    finally:
        office.stop.set()
        office.join(timeout=5)
    try:
        status = c.replies[last]
        tel = status["telemetry"]
        assert tel["connected"] and tel["failures"] >= 2, json.dumps(status)
        assert tel["queued"] == 0 and tel["dropped"] == 0, tel
        # Both reversals reached the back office (at least once) and its acks reached the journal.
        assert office.acked == {102, 104}
        assert c.states([101, 102, 104]) == {101: "CLOSED", 102: "REVERSAL_ACKED", 104: "REVERSAL_ACKED"}
        assert status["reversals"] == []
        # Events in order, none lost: paper out (before the broker was up), then the fault cleared.
        events = office.events()
        names = [e["e"] for e in events]
        assert names.count("paper_out") == 1, names
        ns = [e["n"] for e in events]
        assert ns == sorted(set(ns)) and ns == list(range(ns[0], ns[0] + len(ns))), ns  # in order, no gap
        # Health is retained: a client that subscribes now gets the latest at once.
        m = retained("127.0.0.1", broker.port, "posguard/t01/health")
        assert m is not None and m.retain, m
        health = json.loads(m.payload)
        assert health["battery"]["soc_pct"] > 0 and health["reversals"] == 0 and "v" in health
        # Nothing published carries a card number, an item, an approval code or a credential.
        blob = b"".join(msg.payload for msg in office.messages) + m.payload
        for secret in (PAN, "A1B2C3", "Latte", "Croissant", SECRET, "4242"):
            assert secret.encode() not in blob, secret
        crash = Path(c.day.fs_dir, "crash.log")
        assert SECRET not in json.dumps(c.replies) + (crash.read_text(errors="replace") if crash.exists() else "")
    finally:
        broker.stop()
