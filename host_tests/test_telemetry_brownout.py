"""The `brownout` event against a real broker (amqtt on a loopback port), the firmware on the simulated
board (CPython). The ESP32 port reports a brownout as a plain power-on reset (ports/esp32/modmachine.c:
237-240), and so does the simulator (host_tests/simhw/sim_power.py PowerLoss.cause): the firmware infers it
from a receipt the reset cut mid-print and a low or worn pack at its first reading after boot. The same
cut on a full pack (a pulled pack) is a power loss, not a brownout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_app import Counter
from test_telemetry_broker import ITEMS, network, paced, umqtt_on_path  # noqa: F401

from posguard_tools.backoffice import Office
from posguard_tools.broker import Broker


def cut_mid_receipt(tmp: Path, soc: float) -> list[dict[str, Any]]:
    """A sale whose receipt the power cuts mid-print (the rail under the brownout level, or the pack
    pulled: the board cannot tell); the events the back office received, in order."""
    with Broker(tmp / "broker") as broker:
        c = Counter(tmp / "fs", soc=soc)
        c.day.profile["network"] = network(broker.url)
        with open(c.day.fs_dir + "/board.json", "w") as f:
            f.write(json.dumps(c.day.profile))
        office = Office(broker.port, "t01")
        office.start()
        c.at(30, {"op": "open", "id": 101, "items": ITEMS})
        c.at(32, {"op": "pay", "id": 101, "method": "card"})
        c.at(34, {"op": "approve", "id": 101, "auth": "A1B2C3", "last4": "4242"})
        c.day.clock.call_at_us(35_000_000, lambda: c.day.power.cut("brownout at 2.95 V"))
        paced(c, 120)
        try:
            c.run(120)
        finally:
            office.stop.set()
            office.join(timeout=5)
        return office.events()


@pytest.mark.parametrize(("soc", "brownout"), [(0.1, True), (1.0, False)], ids=["low-pack", "full-pack"])
def test_a_cut_receipt_on_a_low_pack_is_reported_as_a_brownout(tmp_path: Path, soc: float, brownout: bool) -> None:
    events = cut_mid_receipt(tmp_path, soc)
    names = [e["e"] for e in events]
    assert names.count("power_loss_recovered") == 1, names
    rec = next(e for e in events if e["e"] == "power_loss_recovered")
    assert rec["reprinted"] == [101], rec
    if brownout:
        assert names.count("brownout") == 1, names
        b = next(e for e in events if e["e"] == "brownout")
        assert b["sales"] == [101] and b["state"] in ("LOW", "CRITICAL", "SHUTDOWN"), b
    else:
        assert "brownout" not in names, names
