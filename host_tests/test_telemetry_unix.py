"""Telemetry on the MicroPython unix port against a real broker (amqtt on a loopback port): the firmware's
Telemetry and mqtt_link over micropython-lib's umqtt.simple and the port's sockets
(host_tests/mpy/telemetry_probe.py). Health retained, queued events and both reversals delivered, the
back office's acks reach the sale book, and the heap does not grow from step to step."""

from __future__ import annotations

import json
from pathlib import Path

from posguard_tools import bench_telemetry
from posguard_tools.backoffice import Office
from posguard_tools.broker import Broker
from posguard_tools.mqtt_wire import retained


def test_unix_port_publishes_to_a_real_broker(tmp_path: Path) -> None:
    with Broker(tmp_path / "broker") as broker:
        office = Office(broker.port, "unix1")
        office.start()
        try:
            res = bench_telemetry.run_probe(broker.port, 80, tmp_path)
        finally:
            office.stop.set()
            office.join(timeout=5)
        m = retained("127.0.0.1", broker.port, "posguard/unix1/health")
    assert res["connected"] and res["failures"] == 0 and res["queued"] == 0, res
    assert sorted(res["acked"]) == [7, 8] and office.acked == {7, 8}, res
    assert [e["e"] for e in office.events()] == ["paper_out", "battery_low"]
    assert m is not None and m.retain and json.loads(m.payload)["battery"]["receipts_left"] == 210
    # No allocation growth: after the first steps the live heap stays where it was (within 1 KB).
    assert res["heap_end"] - res["heap_after_warmup"] < 1024, res
