"""The simulator's battery model against the reference trace, and the simulated ADC's error model."""

from __future__ import annotations

import math
from typing import Any

import battery_trace
import pytest
import sim_adc
import sim_battery


def _replay_model(cell: sim_battery.Battery, tr: dict[str, list[float]]) -> list[float]:
    t, i = tr["t_s"], tr["i_a"]
    out = [cell.terminal_v(i[0])]
    for k in range(1, len(t)):
        cell.step(t[k] - t[k - 1], i[k - 1])  # the previous row's current held over the interval
        out.append(cell.terminal_v(i[k]))
    return out


def test_model_fits_reference_trace_within_20mv() -> None:
    tr = battery_trace.load()
    model = _replay_model(sim_battery.Battery(cells=1, soc=1.0), tr)
    err = [m - v for m, v in zip(model, tr["v_cell"], strict=True)]
    rms_mv = 1000 * math.sqrt(sum(e * e for e in err) / len(err))
    max_mv = 1000 * max(abs(e) for e in err)
    print(f"\nbattery model vs battery_fresh_25c.csv: {len(err)} rows, RMS {rms_mv:.2f} mV, max {max_mv:.1f} mV")
    assert rms_mv <= 20.0
    assert max_mv < 100.0


def test_model_series_cells_temperature_and_aging() -> None:
    fresh = sim_battery.Battery(cells=2, soc=0.5)
    assert fresh.terminal_v(0.0) == pytest.approx(2 * 3.7467, abs=0.01)
    sag_fresh = fresh.terminal_v(0.0) - fresh.terminal_v(2.0)
    cold = sim_battery.Battery(cells=2, soc=0.5, temp_c=0.0)
    old = sim_battery.Battery(cells=2, soc=0.5, r_growth=2.0, fade=0.2)
    assert (cold.terminal_v(0.0) - cold.terminal_v(2.0)) / sag_fresh == pytest.approx(1.8, rel=0.05)
    assert (old.terminal_v(0.0) - old.terminal_v(2.0)) / sag_fresh == pytest.approx(2.0, rel=0.01)
    # A faded pack holds 80 % of the charge: the same draw empties it sooner.
    old.set_soc(1.0)
    assert old.usable_ah() == pytest.approx(0.8 * sim_battery.Q_AH)


def test_model_relaxes_after_a_pulse_and_charges_to_cv() -> None:
    cell = sim_battery.Battery(soc=0.5)
    for _ in range(600):
        cell.step(1.0, 0.3)  # settle at the idle current first
    v_rest = cell.terminal_v(0.3)
    for _ in range(6):
        cell.step(1.0, 2.0)
    v_after = cell.terminal_v(0.3)
    assert v_after < v_rest  # RC branches still polarised
    for _ in range(60):
        cell.step(1.0, 0.3)
    assert cell.terminal_v(0.3) > v_after + 0.003  # relaxation over tens of seconds, despite the drain
    cell.charge_a = 2.0
    for _ in range(4 * 3600):
        cell.step(1.0, 0.0)
    assert cell.soc() > 0.95
    assert cell.terminal_v(0.0) <= 4.2 + 1e-6


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
