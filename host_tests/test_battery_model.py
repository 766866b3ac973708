"""The simulator's battery model against the five reference traces of its cell family, its knobs and
charger, and the simulated ADC's error model."""

from __future__ import annotations

import csv
import math
from typing import Any

import pytest
import sim_adc
import sim_battery

from posguard_tools import battery_fit, traces

# Each reference trace as the preset pack at the trace's ambient (tools/posguard_tools/traces/README.md).
TRACE_PACKS = {
    "fresh_25c": ("fresh", 25.0),
    "fresh_m10c": ("fresh", -10.0),
    "aged85_5c": ("aged85", 5.0),
    "aged90_35c_busy": ("aged90", 35.0),
    "worn70_15c": ("worn70", 15.0),
}


def _trace(name: str) -> list[tuple[float, float, float]]:
    with traces.open_text(name) as f:
        return [(float(r["t_s"]), float(r["i_a"]), float(r["v_cell"])) for r in csv.DictReader(f)]


def _rms_mv(cell: sim_battery.Battery, rows: list[tuple[float, float, float]]) -> tuple[float, float]:
    """Run the trace's own current through the model; (RMS, max) of the terminal-voltage error in mV."""
    t0, i0, v0 = rows[0]
    err = cell.terminal_v(i0) - v0
    se, mx = err * err, abs(err)
    for t, i, v in rows[1:]:
        cell.step(t - t0, i0)  # the previous row's current held over the interval
        t0, i0 = t, i
        err = cell.terminal_v(i) - v
        se += err * err
        mx = max(mx, abs(err))
    return 1000 * math.sqrt(se / len(rows)), 1000 * mx


def test_presets_are_the_traces_knobs() -> None:
    for name, (pack, amb) in TRACE_PACKS.items():
        cap, kin, contact, ambient = battery_fit.KNOBS[name]
        assert sim_battery.PACKS[pack] == (cap, kin, contact)
        assert ambient == amb


@pytest.mark.parametrize("name", list(TRACE_PACKS))
def test_model_reproduces_each_trace_of_the_family(name: str) -> None:
    pack, amb = TRACE_PACKS[name]
    rms, mx = _rms_mv(sim_battery.Battery.of_pack(pack, soc=1.0, temp_c=amb), _trace(name))
    print(f"\nbattery model ({pack}, {amb:g} C) vs battery_{name}.csv: RMS {rms:.2f} mV, max {mx:.1f} mV")
    assert rms <= 20.0
    assert mx < 80.0


def test_one_parameter_set_cannot_fit_a_wrong_pack() -> None:
    # The knobs matter: the worn trace run through a fresh pack (or a fresh trace through the worn one) is
    # far off, so the fit above is the family's physics, not per-trace tuning.
    rms, _ = _rms_mv(sim_battery.Battery.of_pack("fresh", soc=1.0, temp_c=15.0), _trace("worn70_15c"))
    assert rms > 40.0


def test_knobs_act_physically() -> None:
    fresh = sim_battery.Battery(cells=2, soc=0.5)
    assert fresh.terminal_v(0.0) == pytest.approx(2 * 3.7502, abs=0.01)
    r25 = fresh.r0_cell()
    # contact adds as it is
    wired = sim_battery.Battery(soc=0.5, contact_ohm=0.070)
    assert wired.r0_cell() - r25 == pytest.approx(0.050, abs=1e-9)
    # cold raises every resistance and slows the relaxation; heat lowers them
    cold, hot = sim_battery.Battery(soc=0.5, temp_c=-10.0), sim_battery.Battery(soc=0.5, temp_c=45.0)
    assert 1.4 < cold.r0_cell() / r25 < 1.7 and 0.8 < hot.r0_cell() / r25 < 0.95
    assert cold._branch()[1] > fresh._branch()[1] > hot._branch()[1]
    # kinetics raises the charge-transfer part and the relaxation, not the contact or the electrolyte
    slow = sim_battery.Battery(soc=0.5, kinetics=0.5)
    rk = slow.r0_cell() - r25
    assert 0.005 < rk < 0.015
    assert slow._branch()[0] > fresh._branch()[0]
    # capacity: the same draw empties it sooner, at the same OCV share
    worn = sim_battery.Battery(soc=0.5, cap_share=0.7)
    assert worn.usable_ah() == pytest.approx(0.7 * sim_battery.Q_AH)
    assert worn.ocv_cell() == pytest.approx(fresh.ocv_cell())
    # the old knobs keep their exact meaning
    old = sim_battery.Battery(cells=2, soc=0.5, r_growth=2.0, fade=0.2)
    assert (old.terminal_v(0.0) - old.terminal_v(2.0)) / (fresh.terminal_v(0.0) - fresh.terminal_v(2.0)) == \
        pytest.approx(2.0, rel=1e-6)
    assert old.usable_ah() == pytest.approx(0.8 * sim_battery.Q_AH)


def test_pack_presets_and_custom_specs() -> None:
    assert sim_battery.pack_knobs("worn70") == (0.70, 0.40, 0.080)
    assert sim_battery.pack_knobs("0.8,0.5,60") == (0.8, 0.5, 0.060)
    for bad in ("new", "0.8,0.5", "x,0.5,60", "0.3,0.5,60", "0.8,0.1,60", "0.8,0.5,500"):
        with pytest.raises(ValueError):
            sim_battery.pack_knobs(bad)
    b = sim_battery.Battery.of_pack("aged85", cells=2, soc=0.4, temp_c=5.0)
    assert (b.cap_share, b.kinetics, b.contact_ohm, b.temp_c, b.cells) == (0.85, 0.60, 0.050, 5.0, 2)


def test_cell_warms_under_load_and_settles_to_ambient() -> None:
    cell = sim_battery.Battery(soc=0.8, temp_c=5.0)
    for _ in range(3600):
        cell.step(1.0, 2.0)
    warm = cell.cell_c
    assert 5.5 < warm < 9.0  # the aged85 trace at 5 C reaches 6.4 C on a lighter duty
    for _ in range(4 * 3600):
        cell.step(1.0, 0.0)
    assert cell.cell_c == pytest.approx(5.0, abs=0.1)
    cell.temp_c = 30.0  # moved elsewhere: the thermistor reads it at once
    assert cell.cell_c == 30.0


def test_aged_cell_relaxes_for_minutes() -> None:
    def recovery(cell: sim_battery.Battery) -> tuple[float, float]:
        for _ in range(900):
            cell.step(1.0, 0.3)
        for _ in range(8):
            cell.step(1.0, 2.5)
        v0 = cell.terminal_v(0.3)
        for _ in range(60):
            cell.step(1.0, 0.3)
        v60 = cell.terminal_v(0.3)
        for _ in range(240):
            cell.step(1.0, 0.3)
        return v60 - v0, cell.terminal_v(0.3) - v60

    fresh = recovery(sim_battery.Battery.of_pack("fresh", soc=0.5))
    worn = recovery(sim_battery.Battery.of_pack("worn70", soc=0.5, temp_c=5.0))
    assert worn[0] > fresh[0] > 0.001
    assert worn[1] > 0.001  # still rising between 1 and 5 minutes after the receipt, despite the drain


def test_charger_is_cc_then_cv_with_a_trickle_when_deep() -> None:
    cell = sim_battery.Battery(soc=0.5)
    cell.charge_a = 1.0
    assert cell.charging_a(0.3) == pytest.approx(1.0)  # constant current, the load fed first
    deep = sim_battery.Battery(soc=0.0)
    deep.drawn_ah = deep.usable_ah() * 1.02  # driven past empty: rests under 2.9 V
    deep.charge_a = 1.0
    assert deep.charging_a(0.0) == pytest.approx(0.1)  # TP4056: C/10 below 2.9 V
    for _ in range(6 * 3600):
        cell.step(1.0, 0.3)
        assert cell.terminal_v(0.3) <= 4.2 + 1e-6
    assert cell.soc() > 0.97
    assert 0.3 <= cell.charging_a(0.3) < 0.9  # constant voltage: the current has tapered below the CC level
    cell.charge_a = 0.0
    assert cell.charging_a(0.3) == 0.0


def _adc_world(world: Any, volts: float, mcu: str = "esp32") -> Any:
    world.board.profile["mcu"] = mcu
    world.board.analog_sources[34] = lambda: volts
    return sim_adc.ADC(34, atten=sim_adc.ADC.ATTN_11DB)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6, 7, 8])
def test_adc_error_stays_in_documented_band(make_world: Any, seed: int) -> None:
    w = make_world("devkit-1s", seed)
    for v in (0.3, 1.0, 1.8, 2.4):
        adc = _adc_world(w, v)
        mean = sum(adc.read_uv() for _ in range(256)) / 256 / 1e6
        assert abs(mean - v) <= 0.060  # ESP32 11 dB calibrated band (battery-and-printer.md)


def test_adc_noise_attenuation_and_clipping(world: Any) -> None:
    adc = _adc_world(world, 1.5)
    s = [adc.read_uv() for _ in range(500)]
    spread_lsb = (max(s) - min(s)) / (3.1e6 / 4095)
    assert 10 < spread_lsb <= 26  # about 25 LSB of noise
    adc.atten(sim_adc.ADC.ATTN_0DB)
    assert adc.read_uv() > 1.0e6 and adc.read() == 4095  # over range: saturated, not 1.5 V
    world.board.analog_sources[34] = lambda: 5.0
    adc.atten(sim_adc.ADC.ATTN_11DB)
    assert 3.0e6 <= adc.read_uv() <= 3.1e6  # pinned at the saturation code, not 5 V
    adc.width(sim_adc.ADC.WIDTH_9BIT)
    assert adc.read() == 511
    assert adc.read_u16() == 65535
    with pytest.raises(ValueError):
        adc.atten(7)
    adc.init()
    assert adc._atten == sim_adc.ADC.ATTN_11DB  # init() without atten= resets to 11 dB


def test_adc_accepts_pin_objects(world: Any) -> None:
    import machine

    world.board.analog_sources[34] = lambda: 1.0
    adc = machine.ADC(machine.Pin(34), atten=machine.ADC.ATTN_11DB)
    assert abs(adc.read_uv() - 1.0e6) < 80000
