"""State of health: capacity fade learned across a discharge, cycles, persistence of health.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from posguard import health, hw, powermon


def test_capacity_fade_is_learned_from_a_discharge(make_world: Any) -> None:
    import sim_battery

    w = make_world("devkit-1s")
    prof = json.loads(json.dumps(w.profile))
    prof["battery"]["capacity_mah"] = 500  # a small pack: the test discharges it in simulated minutes
    w.board.profile = prof
    bat = sim_battery.Battery(soc=0.95, capacity_ah=0.5, fade=0.2)  # really holds 0.4 Ah
    sim_battery.PackWiring(w.board, bat)
    w.power.set_load("board", 0.3)
    mon = powermon.PowerMonitor(prof, hw.adc(34), store_dir=str(w.fs_dir), auto_shutdown=False)
    for _ in range(60):  # receipts every 90 s down to about a third of the charge
        for _ in range(84):
            mon.update()
            w.clock.advance_us(1_000_000)
        mon.set_load(True)
        w.power.set_load("printer", 1.7)
        for _ in range(6):
            w.clock.advance_us(1_000_000)
            mon.update()
        w.power.set_load("printer", 0.0)
        mon.set_load(False)
        if bat.soc() < 0.3:
            break
    assert mon.health.cap_events >= 1
    assert mon.health.cap_ah == pytest.approx(0.4, rel=0.1)
    assert mon.soh_pct <= 88
    assert mon.cycles == pytest.approx((0.95 - bat.soc()) * 0.4 / 0.5, rel=0.1)


def test_replace_battery_at_80_percent_capacity(tmp_path: Path) -> None:
    h = health.Health(0.04, 5.0, str(tmp_path))
    h.rested_point(90.0)
    h.count(2.0, 3600)  # 2.0 Ah drawn
    h.rested_point(40.0)  # 50 % of SoC for 2.0 Ah: 4.0 Ah, 80 % of 5 Ah
    assert h.cap_ah == pytest.approx(4.0)
    assert h.replace_battery() and h.soh_pct() == pytest.approx(80.0)


def test_health_survives_a_reboot_and_rejects_a_corrupt_file(tmp_path: Path) -> None:
    h = health.Health(0.04, 5.0, str(tmp_path))
    assert h.on_step(0.085, 1.7, 25.0) == pytest.approx(0.05)
    h.count(1.0, 3600)
    h.save()
    again = health.Health(0.04, 5.0, str(tmp_path))
    assert again.r25 == pytest.approx(0.05) and again.discharged_ah == pytest.approx(1.0)
    (tmp_path / "health.json").write_text(json.dumps({"r25_mohm": 1e9, "cap_mah": 5000, "discharged_ah": 1}))
    assert health.Health(0.04, 5.0, str(tmp_path)).r25 == 0.04  # absurd values: defaults kept
    (tmp_path / "health.json").write_text("garbage")
    assert health.Health(0.04, 5.0, str(tmp_path)).r25 == 0.04


def test_resistance_is_normalised_to_25c() -> None:
    h = health.Health(0.04, 5.0)
    h.path = "/nonexistent/health.json"
    r = h.on_step(0.085 * 1.8, 1.7, 0.0)  # a cold pack sags 1.8x more
    assert r == pytest.approx(0.05, rel=0.02)
    assert h.on_step(0.01, 0.1, 25.0) is None  # too small a step to measure
    assert h.on_step(-0.05, 1.7, 25.0) is None  # a rise is not a resistance
