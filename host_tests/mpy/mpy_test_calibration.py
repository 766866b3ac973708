# Calibration with preview and undo on the real MicroPython VM (issue 14): save=False writes nothing, a
# saved calibration keeps the one it replaced in the same calib.json, calibrate_undo() brings it back.
import json

from mpy_test_battery import _monitor, _world


def _file(w):
    try:
        with open(w.board.fs_dir + "/calib.json") as f:
            return json.load(f)
    except OSError:
        return None


def test_preview_saves_nothing_then_save_and_undo():
    w = _world(soc=0.6)
    mon = _monitor(w)
    true_mv = int(w.power.rail_v() * 1000)
    g, o = mon.calibrate(true_mv, save=False)
    assert _file(w) is None and mon.sense.gain == 1.0 and g != 1.0
    g, o = mon.calibrate(true_mv)  # a fresh reading: the ADC's noise moves the gain a little
    saved = _file(w)
    assert saved["previous"] == [] and saved["gain"] == g and mon.sense.gain == g
    assert mon.calibrate_undo() == (1.0, 0.0)
    assert _file(w)["previous"] == saved["points"]
    assert _monitor(w).sense.gain == 1.0  # a reboot reads the undone state
    assert mon.calibrate_undo() == (g, o)  # and undo again is redo
