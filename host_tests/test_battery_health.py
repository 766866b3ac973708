"""State of health (issue 11): capacity only from charge between rested points, a learned temperature
factor that keeps cold apart from age, "replace battery" only for real aging, health.json on flash with
bounded writes, and a pack swap that restarts learning."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from posguard import health, hw, powermon


def _discharge(h: health.Health, cap_true: float, s_from: float, s_to: float, noise_pct: float = 1.0,
               seed: int = 1) -> None:
    """Rested points every 1 % of a discharge of a pack holding cap_true Ah, the voltage's SoC noisy."""
    rng = random.Random(seed)
    s = s_from
    step_ah = cap_true / 100.0
    while s > s_to:
        h.count(2.0, int(step_ah / 2.0 * 3600 * 1000))  # 2 A until 1 % of the true capacity is drawn
        s -= 1.0
        h.rested_point(s + rng.gauss(0.0, noise_pct))


@pytest.mark.parametrize("cap_true", [5.0, 4.25, 3.5])
def test_capacity_learned_from_charge_between_rested_points(tmp_path: Path, cap_true: float) -> None:
    h = health.Health(0.055, 5.0, str(tmp_path))
    _discharge(h, cap_true, 98.0, 58.0)
    assert h.cap_events == 0 and h.soh_pct() == 100.0  # a 40 % span is not yet published
    _discharge(h, cap_true, 58.0, 28.0, seed=2)
    assert h.cap_events >= 1
    assert h.soh_pct() == pytest.approx(min(100.0, cap_true / 5.0 * 100.0), abs=3.0)
    assert h.replace_battery() is (cap_true <= 4.0)


def test_capacity_is_never_taken_from_resistance(tmp_path: Path) -> None:
    h = health.Health(0.055, 5.0, str(tmp_path))
    for _ in range(200):
        h.on_edge(0.5, 2.0, 25.0, True)  # 250 mOhm: 4.5x nominal, an old pack by resistance...
    assert h.soh_pct() == 100.0 and h.cap_ah == 5.0  # ...says nothing about how much charge it holds
    assert h.r_growth() is not None and h.r_growth() > 4.0 and h.replace_battery()


def _r_true(r25: float, b: float, t: float) -> float:
    return r25 * math.exp(b * health.temp_x(t))


def test_temperature_factor_is_learned_and_cold_is_not_age(tmp_path: Path) -> None:
    # This family's resistance rises x1.4 from 25 C to -10 C (B ~ 1000 K), not the x2.35 Arrhenius prior.
    rng = random.Random(3)
    h = health.Health(0.055, 5.0, str(tmp_path))
    for _day in range(30):  # a month of mornings at 0-10 C and afternoons at 25-35 C
        for t in (rng.uniform(0, 10), rng.uniform(25, 35)):
            for _ in range(20):
                h.on_edge(_r_true(0.055, 1000.0, t) * rng.gauss(1.0, 0.03) * 1.7, 1.7, t, True)
    assert h.b == pytest.approx(1000.0, rel=0.15)
    assert h.r25 == pytest.approx(0.055, rel=0.05)
    assert not h.replace_battery()


@pytest.mark.parametrize("temp_c", [-10.0, 0.0])
def test_a_fresh_pack_in_the_cold_is_not_replaced(tmp_path: Path, temp_c: float) -> None:
    h = health.Health(0.055, 5.0, str(tmp_path))
    for _ in range(400):  # a whole cold day of receipts, both edges
        h.on_edge(_r_true(0.055, 1000.0, temp_c) * 1.7, 1.7, temp_c, True)
    assert h.r_growth() is not None and h.r_growth() < 1.5
    assert not h.replace_battery() and h.soh_pct() == 100.0


def test_no_trusted_temperature_learns_no_aging(tmp_path: Path) -> None:
    h = health.Health(0.055, 5.0, str(tmp_path))
    for _ in range(100):
        assert h.on_edge(0.3, 1.7, None, False) is not None  # the edge still sets the resistance now...
    assert h.r_now == pytest.approx(0.3 / 1.7)
    assert h.r_events == 0 and h.r_growth() is None and not h.replace_battery()  # ...but not R25


def test_edges_both_ways_and_bad_edges(tmp_path: Path) -> None:
    h = health.Health(0.04, 5.0, str(tmp_path))
    assert h.on_edge(0.085, 1.7, 25.0, True) == pytest.approx(0.05)
    assert h.on_edge(-0.085, -1.7, 25.0, True) == pytest.approx(0.05)  # a receipt's end: a rise, a fall
    assert h.on_edge(0.01, 0.1, 25.0, True) is None  # too small a step to measure
    assert h.on_edge(-0.05, 1.7, 25.0, True) is None  # a rise under more load is not a resistance


def test_health_survives_a_reboot_and_rejects_a_corrupt_file(tmp_path: Path) -> None:
    h = health.Health(0.04, 5.0, str(tmp_path))
    for _ in range(30):
        h.on_edge(0.085, 1.7, 25.0, True)
    h.count(1.0, 3_600_000)
    _discharge(h, 4.0, 98.0, 28.0)
    h.save()
    again = health.Health(0.04, 5.0, str(tmp_path))
    assert again.r25 == pytest.approx(h.r25, rel=0.01) and again.cap_ah == pytest.approx(h.cap_ah, rel=0.001)
    assert again.charge.out.total_mas() == h.charge.out.total_mas()  # the integer counters, exact
    assert again.cap_events == h.cap_events and again.replace_battery()
    for bad in ({"r25_mohm": 1e9, "cap_mah": 5000}, {"r25_mohm": 40, "cap_mah": 5000, "b_k": -5}, "junk"):
        (tmp_path / "health.json").write_text(json.dumps(bad))
        fresh = health.Health(0.04, 5.0, str(tmp_path))
        assert fresh.r25 == pytest.approx(0.04) and fresh.cap_ah == 5.0  # defaults kept


def test_flash_writes_are_hourly_and_only_when_something_moved(tmp_path: Path) -> None:
    h = health.Health(0.04, 5.0, str(tmp_path))
    h.maybe_save(3600, True)
    assert h.saves == 1  # a new pack's first figures
    for _ in range(48):  # two idle days: the counters creep, nothing that matters moves
        h.count(0.0002, 3_600_000)
        h.maybe_save(3600, True)
    assert h.saves == 1
    for hour in range(24):  # a trading day: 0.5 A for 24 h, health hardly moves, the counter does
        h.count(0.5, 3_600_000)
        h.maybe_save(3600, hour % 2 == 0)  # and flash writes only when the power policy allows them
    assert 2 <= h.saves <= 1 + 12  # at most hourly, only in allowed hours, only after 100 mAh moved


def test_pack_swap_restarts_learning(make_world: Any) -> None:
    import sim_battery

    w = make_world("devkit-1s")
    old = sim_battery.Battery(soc=0.3, r_growth=2.5)
    sim_battery.PackWiring(w.board, old)
    w.power.set_load("board", 0.3)
    mon = powermon.PowerMonitor(w.profile, hw.adc(34), store_dir=str(w.fs_dir), auto_shutdown=False,
                                mcu_temp=lambda: 25.0)

    def receipts(n: int) -> None:
        for _ in range(n):
            for _ in range(60):
                mon.update()
                w.clock.advance_us(1_000_000)
            mon.set_load(True)
            w.power.set_load("printer", 1.7)
            for _ in range(6):
                w.clock.advance_us(1_000_000)
                mon.update()
            w.power.set_load("printer", 0.0)
            mon.set_load(False)

    receipts(15)
    r_old = mon.r_int_mohm
    assert mon.health.r_growth() is not None and mon.health.r_growth() > 2.0
    restarts = mon.health.restarts
    sim_battery.PackWiring(w.board, sim_battery.Battery(soc=0.95))  # a fresh full pack in its place
    receipts(6)
    assert mon.health.restarts == restarts + 1
    assert mon.r_int_mohm < 0.7 * r_old and not mon.replace_battery
    # Control: the same pack taken out and put back (same voltage, same resistance) restarts nothing.
    receipts(2)
    assert mon.health.restarts == restarts + 1
