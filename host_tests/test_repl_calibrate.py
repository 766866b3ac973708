"""The technician's calibration (issue 14): `pos.calibrate(mv)` only shows what would change; with
confirm=True it saves, keeping the replaced calibration in the same atomic write, so `pos.calibrate_undo()`
brings it back. And `pos.battery()` prints cycles a person can read, whatever float width the chip has."""

from __future__ import annotations

import json
import re
import struct
import types
from pathlib import Path
from typing import Any

import pytest

from posguard import app, battery, hw, powermon, repl


@pytest.fixture
def pos(make_world: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The REPL module on a simulated devkit with a 1.2 % divider error, in development mode."""
    import sim_battery

    w = make_world("devkit-1s", seed=5)
    sim_battery.PackWiring(w.board, sim_battery.Battery(soc=0.6), divider_error=0.012)
    w.power.set_load("board", 0.3)
    mon = powermon.PowerMonitor(w.profile, hw.adc(34), store_dir=str(w.fs_dir), auto_shutdown=False)
    monkeypatch.setattr(app, "mode", "dev")
    monkeypatch.setattr(repl, "_t", lambda: types.SimpleNamespace(mon=mon))
    return types.SimpleNamespace(mon=mon, calib=Path(w.fs_dir) / battery.CALIB_FILE,
                                 true_mv=round(w.power.rail_v() * 1000))


def test_calibrate_shows_first_saves_on_confirm_and_undoes(pos: Any, capsys: pytest.CaptureFixture[str]) -> None:
    mon, mv = pos.mon, pos.true_mv
    mon.update()
    off_before = abs(mon.pack_v * 1000 - mv)
    assert off_before > 30  # the divider error the calibration is for

    repl.calibrate(mv)  # what the docs show: copying it must not change the terminal
    out = capsys.readouterr().out
    assert re.search(r"would set: gain 1\.0\d{3} offset \+0 mV \(now gain 1\.0000 offset \+0 mV", out), out
    assert f"nothing saved: pos.calibrate({mv}, confirm=True) saves it" in out
    assert not pos.calib.exists() and mon.sense.gain == 1.0

    repl.calibrate(mv, confirm=True)
    out = capsys.readouterr().out
    assert "calibrated: gain" in out and "pos.calibrate_undo()" in out
    saved = json.loads(pos.calib.read_text())
    assert saved["previous"] == [] and len(saved["points"]) == 1
    assert abs(mon.pack_v * 1000 - mv) < 12

    repl.calibrate_undo()
    assert "restored: gain 1.0000 offset +0 mV" in capsys.readouterr().out
    assert mon.sense.gain == 1.0 and abs(mon.pack_v * 1000 - mv) > 30
    assert json.loads(pos.calib.read_text())["previous"] == saved["points"]  # undo twice is redo
    assert battery.BatterySense(hw.adc(34), 2.0, 1, str(pos.calib.parent)).gain == 1.0  # a reboot agrees

    repl.calibrate_undo()
    assert mon.sense.gain == pytest.approx(saved["gain"])


def test_nothing_to_undo_and_refusals_change_nothing(pos: Any, capsys: pytest.CaptureFixture[str]) -> None:
    repl.calibrate_undo()
    assert "nothing to undo" in capsys.readouterr().out
    pos.calib.write_text(json.dumps({"points": [[4000.0, 4050.0]], "gain": 1.0125, "offset_mv": 0.0}))
    repl.calibrate_undo()  # a calib.json from before undo existed keeps no previous calibration
    assert "nothing to undo" in capsys.readouterr().out
    repl.calibrate(4.195, confirm=True)  # volts, not millivolts
    assert "refused:" in capsys.readouterr().out
    assert json.loads(pos.calib.read_text())["gain"] == 1.0125


def test_a_reset_during_the_save_keeps_undo_possible(pos: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    repl.calibrate(pos.true_mv, confirm=True)
    first = json.loads(pos.calib.read_text())

    def cut(src: str, dst: str) -> None:
        raise OSError("power cut before the rename")

    monkeypatch.setattr(battery.os, "rename", cut)
    with pytest.raises(OSError):
        pos.mon.sense.undo()
    monkeypatch.undo()
    # After the reboot: only calib.json.tmp is left, and it is whole (the undone state with its previous).
    again = battery.BatterySense(hw.adc(34), 2.0, 1, str(pos.calib.parent))
    assert again.gain == 1.0 and again.undo() == pytest.approx((first["gain"], first["offset_mv"]))


def _f32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


@pytest.mark.parametrize("cycles", [0.00016255000000000002, 0.1 + 0.2, 1234.5678, 0.0])
@pytest.mark.parametrize("width", ["double", "float32"])
def test_battery_prints_cycles_with_two_decimals(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                  cycles: float, width: str) -> None:
    value = _f32(cycles) if width == "float32" else cycles  # the ESP32 port's floats are single precision
    mon = types.SimpleNamespace(
        update=lambda: None, temp_c=None, pack_v=_f32(4.1), soc_pct=80.0, state_name="OK", soh_pct=99.0,
        r_int_mohm=41.0, cycles=value, replace_battery=False, charger_fault=False, fault=None,
        can_print=lambda: (True, None),
    )
    monkeypatch.setattr(app, "mode", "dev")
    monkeypatch.setattr(repl, "_t", lambda: types.SimpleNamespace(mon=mon))
    repl.battery()
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("health"))
    assert re.fullmatch(r"health  : 99 %  R 41 mOhm  \d+\.\d\d cycles", line), line
