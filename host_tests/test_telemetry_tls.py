"""Telemetry over TLS (mqtts://) against a real broker: amqtt with a TLS listener whose certificate a
throwaway CA signed (made with the `openssl` command at test time). The firmware on the simulated board
(CPython; host_tests/simhw/tls.py stands in for the port's `tls` module) checks the broker's certificate
against network.ca_file: with the right CA it connects and publishes health; with another CA the
session is refused as a clear telemetry error ("TLSError") while the sale goes through. No credential
(Wi-Fi password, broker password) appears in status, the crash log or anything published."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_telemetry_broker import SECRET, counter, network, paced, umqtt_on_path  # noqa: F401

from posguard_tools.broker import Broker, make_ca, make_server_cert, to_der
from posguard_tools.mqtt_wire import retained

BROKER_SECRET = "broker-s3cret-pw"
ITEMS = [{"name": "Tea", "price": 900}]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no `openssl` command on this machine: the TLS tests need it to make a test certificate")
    d = tmp_path_factory.mktemp("certs")
    ca = make_ca(d, "ca")
    other, _ = make_ca(d, "other-ca")
    cert, key = make_server_cert(d, ca)
    return {"ca": to_der(ca[0]), "other": to_der(other), "cert": cert, "key": key}


def tls_day(tmp: Path, certs: dict[str, Path], ca: str) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """A minute of trading with telemetry to the broker's TLS listener, the CA file `ca` on the board.
    Returns (the last status reply, the retained health (read on the plain listener) or None, everything
    the board said or kept: its replies, its crash log and the health)."""
    broker = Broker(tmp / "broker", tls=(certs["cert"], certs["key"]))
    net = network(broker.tls_url)
    net.update(tls=True, ca_file="ca.der", user="t01", password=BROKER_SECRET)
    c = counter(tmp / "fs", net)
    shutil.copy(certs[ca], Path(c.day.fs_dir, "ca.der"))
    c.at(20, {"op": "open", "id": 101, "items": ITEMS})
    c.at(22, {"op": "pay", "id": 101, "method": "card"})
    c.at(24, {"op": "approve", "id": 101, "auth": "A1B2C3", "last4": "4242"})
    last = c.at(58, {"op": "status"})
    paced(c, 60)
    broker.start()
    try:
        c.run(60)
        health = retained("127.0.0.1", broker.port, "posguard/t01/health", timeout_s=2.0)
    finally:
        broker.stop()
    assert c.states([101]) == {101: "CLOSED"}  # the sale went through either way
    crash = Path(c.day.fs_dir, "crash.log")
    left = json.dumps(c.replies) + (crash.read_text(errors="replace") if crash.exists() else "")
    if health is not None:
        left += health.payload.decode()
    return c.replies[last], (json.loads(health.payload) if health is not None else None), left


def test_tls_with_the_brokers_ca_connects_and_publishes(tmp_path: Path, certs: dict[str, Path]) -> None:
    status, health, left = tls_day(tmp_path, certs, "ca")
    tel = status["telemetry"]
    assert tel["connected"] and tel["failures"] == 0 and tel["error"] is None, tel
    assert health is not None and health["battery"]["soc_pct"] > 0, health  # sent through the TLS listener
    for secret in (SECRET, BROKER_SECRET):
        assert secret not in left, secret


def test_an_untrusted_certificate_is_a_clear_error_and_trading_continues(
    tmp_path: Path, certs: dict[str, Path]
) -> None:
    status, health, left = tls_day(tmp_path, certs, "other")
    tel = status["telemetry"]
    assert not tel["connected"] and tel["published"] == 0, tel
    assert tel["failures"] >= 2 and tel["error"].startswith("TLSError"), tel  # tried again, backed off
    assert health is None  # nothing reached the broker
    for secret in (SECRET, BROKER_SECRET):
        assert secret not in left, secret
