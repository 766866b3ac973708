""""A broker outage changes no sale's latency": the same seeded terminal day with the broker up, killed for
the middle third and restarted, and with the network gone (every connect times out). The simulated
sockets charge each wait to the virtual clock, as a blocking call holds the chip's event loop
(host_tests/simhw/usocket.py), so the latencies compared here are virtual time and deterministic: no timing
of the host machine is asserted. The bench row (posguard bench --only telemetry) shows p50/p99/max."""

from __future__ import annotations

from pathlib import Path

import pytest

from posguard_tools import outage_latency
from posguard_tools.outage_latency import SCENARIOS, Probe

HOURS = 0.75
CONNECT_MS = 1500  # firmware/posguard/mqtt_link.py CONNECT_MS


@pytest.fixture(scope="module")
def days() -> dict[str, Probe]:
    return {sc: outage_latency.run_day(sc, HOURS) for sc in SCENARIOS}


def test_network_waits_take_simulated_time(days: dict[str, Probe]) -> None:
    # The model is not kinder than the chip: connects, CONNACK, SUBACK and PUBACK cost round trips, and
    # with the network gone every attempt costs the whole connect timeout.
    up = days["broker up"]
    assert up.waits and all(b - a == 5000 for a, b in up.waits), up.waits[:5]
    gone = days["network gone"].waits
    assert len(gone) >= 5 and all(b - a == CONNECT_MS * 1000 for a, b in gone), gone[:5]


def test_no_sale_request_is_in_flight_during_a_network_wait(days: dict[str, Probe]) -> None:
    for sc, probe in days.items():
        assert len(probe.latency) >= 20, (sc, len(probe.latency))
        assert probe.held() == [], sc


def test_the_outage_changes_no_latency_before_it_and_no_bound_after(days: dict[str, Probe]) -> None:
    up = days["broker up"]
    down = days["broker down mid-day"]
    kill_us = int(HOURS * 3600e6) // 3
    before = {k: v for k, v in up.latency.items() if up.sent_at[k] < kill_us}
    assert before and all(down.latency[k] == v for k, v in before.items())
    # After it, the firmware's own poll phase moves (a refused connect costs a round trip of simulated
    # time): a latency may move inside the idle poll period (app.py _POLL_IDLE_MS, 400 ms), never more.
    worst = max(up.latency.values())
    for sc in ("broker down mid-day", "network gone"):
        assert max(days[sc].latency.values()) <= worst + 400_000, sc


def test_no_connect_while_a_sale_waits_for_its_payment_host(tmp_path: Path) -> None:
    # The 3 h day of the bench with the network gone: an approval 5-6 s after "pay" (the acquirer's
    # answer) came in while a connect attempt held the loop for CONNECT_MS. A sale open in the journal
    # holds connects back now, for at most one interval (an app that left a sale open).
    from posguard import netconfig, telemetry

    now = [0]
    attempts: list[int] = []

    class Session:
        connected = False

        def connect(self, *args: object) -> None:
            attempts.append(now[0])
            raise OSError(110)

        def close(self) -> None:
            pass

    class Book:
        live = {5: [2]}  # sales.PAYMENT_PENDING

        def reversals(self) -> list[int]:
            return []

    cfg = netconfig.check({"wifi_ssid": None, "wifi_password": None, "broker": "mqtt://127.0.0.1:1", "terminal": "t1",
                           "interval_s": 60, "tls": False, "user": None, "password": None, "queue_max": 4})
    t = telemetry.Telemetry(cfg, dict, Book(), Session(), str(tmp_path / "q"), lambda: False, None, lambda: now[0])
    for _ in range(59):
        t.step()
        now[0] += 1000
    assert attempts == []
    for _ in range(3):
        t.step()
        now[0] += 1000
    assert attempts and attempts[0] >= 59000  # the app has been silent about it for a whole interval
    Book.live = {}
    assert not t._sale_open()
