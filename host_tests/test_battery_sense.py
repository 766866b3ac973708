"""Reading the pack: trimmed mean, calibration on flash, sense-line faults, temperature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from posguard import battery, hw, powermon


class FixedADC:
    def __init__(self, uv: int) -> None:
        self.uv = uv
        self.samples: list[int] = []

    def read_uv(self) -> int:
        if self.samples:
            return self.samples.pop()
        return self.uv


def test_trimmed_mean_ignores_outliers(tmp_path: Path) -> None:
    adc = FixedADC(1_900_000)
    adc.samples = [3_100_000] * 10 + [0] * 10  # 20 wild samples out of 64: trimmed away (16 each side)
    s = battery.BatterySense(adc, 2.0, 1, str(tmp_path))
    assert s.read_mv() == pytest.approx(3800, abs=1)


@pytest.mark.parametrize("uv", [0, 20_000, 3_100_000])
def test_stuck_sense_line_is_a_fault_not_a_soc(tmp_path: Path, uv: int) -> None:
    s = battery.BatterySense(FixedADC(uv), 2.0, 1, str(tmp_path))
    with pytest.raises(battery.SenseFault):
        s.read_mv()


def test_implausible_pack_voltage_is_a_fault(tmp_path: Path) -> None:
    s = battery.BatterySense(FixedADC(2_400_000), 4.0, 1, str(tmp_path))  # 9.6 V on a 1S pack
    with pytest.raises(battery.SenseFault):
        s.read_mv()


def test_two_point_calibration_persists_atomically(tmp_path: Path) -> None:
    adc = FixedADC(2_000_000)  # raw 4000 mV through a nominal 2.0 divider
    s = battery.BatterySense(adc, 2.0, 1, str(tmp_path))
    g, o = s.calibrate(4080)  # one point: gain only
    assert g == pytest.approx(1.02) and o == 0.0
    assert s.read_mv() == pytest.approx(4080, abs=1)
    adc.uv = 1_700_000  # raw 3400 mV, meter says 3460
    g, o = s.calibrate(3460)
    assert s.read_mv() == pytest.approx(3460, abs=1)
    adc.uv = 2_000_000
    assert s.read_mv() == pytest.approx(4080, abs=1)  # the first point still holds: two-point fit
    assert not (tmp_path / "calib.json.tmp").exists()
    again = battery.BatterySense(adc, 2.0, 1, str(tmp_path))  # a reboot reads it back
    assert again.read_mv() == pytest.approx(4080, abs=1)


@pytest.mark.parametrize("bad", [4.08, 40800, 5000, "abc", None, 4800])
def test_absurd_calibration_is_refused_and_changes_nothing(tmp_path: Path, bad: Any) -> None:
    adc = FixedADC(2_000_000)
    s = battery.BatterySense(adc, 2.0, 1, str(tmp_path))
    s.calibrate(4020)
    before = (tmp_path / "calib.json").read_text()
    with pytest.raises(ValueError):
        s.calibrate(bad)
    assert (tmp_path / "calib.json").read_text() == before
    assert s.read_mv() == pytest.approx(4020, abs=1)


def test_corrupt_calibration_file_is_ignored_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "calib.json").write_text(json.dumps({"points": [[4000, 9000]]}))
    s = battery.BatterySense(FixedADC(2_000_000), 2.0, 1, str(tmp_path))
    assert s.gain == 1.0 and s.calib_error and "gain" in s.calib_error
    (tmp_path / "calib.json").write_text("{not json")
    s = battery.BatterySense(FixedADC(2_000_000), 2.0, 1, str(tmp_path))
    assert s.gain == 1.0


def test_calibration_removes_the_divider_error_on_a_simulated_board(make_world: Any) -> None:
    import sim_battery

    w = make_world("devkit-1s", seed=5)
    pack = sim_battery.PackWiring(w.board, sim_battery.Battery(soc=0.6), divider_error=0.012)
    w.power.set_load("board", 0.3)
    mon = powermon.PowerMonitor(w.profile, hw.adc(34), store_dir=str(w.fs_dir), auto_shutdown=False)
    true_mv = w.power.rail_v() * 1000
    mon.update()
    assert abs(mon.pack_v * 1000 - true_mv) > 30  # 1.2 % divider error: ~45 mV off before calibration
    mon.calibrate(round(true_mv))
    pack.battery.set_soc(0.2)  # a second, lower voltage point
    true2 = w.power.rail_v() * 1000
    mon.calibrate(round(true2))
    pack.battery.set_soc(0.8)
    true3 = w.power.rail_v() * 1000
    mon.update()
    assert abs(mon.pack_v * 1000 - true3) < 12  # within the ADC's noise after the trimmed mean


def test_thermistor_reads_pack_temperature(make_world: Any) -> None:
    import sim_battery

    w = make_world("pos-2s")
    pack = sim_battery.PackWiring(w.board, sim_battery.Battery(cells=2, soc=0.5, temp_c=3.0))
    s = battery.BatterySense(hw.adc(4), 4.0, 2, str(w.fs_dir), therm_adc=hw.adc(7))
    assert s.temp_c() == pytest.approx(3.0, abs=1.5)
    pack.battery.temp_c = 41.0
    assert s.temp_c() == pytest.approx(41.0, abs=1.5)


def test_mcu_temperature_only_where_the_chip_has_it(world: Any, make_world: Any) -> None:
    """ESP32-S3 has esp32.mcu_temperature() (calibrated, C); the original ESP32 only raw_temperature(), an
    uncalibrated register (often a stuck 128): never read as a temperature (issue 11). Without a thermistor
    such a board has no temperature, and says so."""
    import esp32

    world.board.mcu_temp_c = 12.0
    assert world.profile["mcu"] == "esp32"
    assert battery.mcu_temp_reader("esp32") is None
    s = battery.BatterySense(FixedADC(1_900_000), 2.0, 1, str(world.fs_dir), mcu_temp=None)
    assert s.temp_c() is None and s.temp_source == "none" and not s.temp_trusted
    assert esp32.raw_temperature() == 128  # the stuck register: 128 "F" would be 53 C
    mon = powermon.PowerMonitor(world.profile, FixedADC(1_900_000), store_dir=str(world.fs_dir))
    mon.update()
    assert mon.temp_c is None and mon.temp_source == "none"
    # An S3 board reads its calibrated sensor
    s3 = json.loads(json.dumps(world.profile))
    s3["mcu"] = "esp32s3"
    world.board.profile = s3
    reader = battery.mcu_temp_reader("esp32s3")
    s = battery.BatterySense(FixedADC(1_900_000), 2.0, 1, str(world.fs_dir), mcu_temp=reader)
    assert s.temp_c() == pytest.approx(12.0, abs=0.6) and s.temp_source == "mcu" and s.temp_trusted


def test_simulated_esp32_has_the_ports_temperature_functions(world: Any) -> None:
    """As ports/esp32/modesp32.c: raw_temperature only on the original ESP32, mcu_temperature only on the
    others (docs/reference/micropython-runtime.md)."""
    import esp32

    world.board.mcu_temp_c = 30.0
    with pytest.raises(AttributeError):
        esp32.mcu_temperature()
    world.board.raw_temp_reg = 87
    assert esp32.raw_temperature() == 87
    prof = json.loads(json.dumps(world.profile))
    prof["mcu"] = "esp32s3"
    world.board.profile = prof
    assert esp32.mcu_temperature() == 30
    with pytest.raises(AttributeError):
        esp32.raw_temperature()


def test_unknown_chemistry_is_a_clear_error(world: Any) -> None:
    prof = json.loads(json.dumps(world.profile))
    prof["battery"]["chemistry"] = "NiMH"
    with pytest.raises(ValueError, match="unknown battery chemistry 'NiMH'"):
        powermon.PowerMonitor(prof, FixedADC(1_900_000), store_dir=str(world.fs_dir))
