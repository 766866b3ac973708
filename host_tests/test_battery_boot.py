"""boot.py's battery check on a simulated board: a nearly empty pack sleeps (wake on the charger or a
timer) instead of brownout-rebooting, across many charge / discharge cycles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import sim_battery

from posguard_tools import paths

# A stand-in for the lead's main.py: the monitor, and a receipt every 90 s when the policy allows it.
APP = '''
import time
import sim_board
import sim_power
from posguard import hw, powermon, profile
prof = profile.load("board.json")
pins = prof["pins"]
mon = powermon.PowerMonitor(prof, hw.adc(pins["vbat_adc"]), charger_pin=hw.pin_in(pins["charger_present"]))
board = sim_board.current
n = 0
while True:
    mon.update()
    n += 1
    if n % 90 == 0 and mon.can_print(30)[0]:
        mon.set_load(True)
        sim_power.POWER.set_load("printer", 1.7)
        for _ in range(6):
            time.sleep_ms(1000)
            mon.update()
        sim_power.POWER.set_load("printer", 0.0)
        mon.set_load(False)
        board.test_receipts += 1
    time.sleep_ms(1000)
'''


def _firmware_dir(tmp_path: Path) -> Path:
    d = tmp_path / "fw"
    d.mkdir()
    shutil.copy(paths.FIRMWARE / "boot.py", d / "boot.py")
    (d / "main.py").write_text(APP)
    return d


def _small_pack_world(world: Any, tmp_path: Path, soc: float) -> tuple[Any, Any]:
    # A 0.4 Ah pack so that a full cycle takes about an hour of simulated time.
    prof = json.loads(json.dumps(world.profile))
    prof["battery"]["capacity_mah"] = 400
    world.board.profile = prof
    (Path(world.fs_dir) / "board.json").write_text(json.dumps(prof))
    world.board.firmware_dir = str(_firmware_dir(tmp_path))
    world.board.test_receipts = 0
    bat = sim_battery.Battery(soc=soc, capacity_ah=0.4)
    pack = sim_battery.PackWiring(world.board, bat)
    return bat, pack


def test_empty_pack_sleeps_at_boot_and_wakes_on_the_charger(world: Any, tmp_path: Path) -> None:
    bat, pack = _small_pack_world(world, tmp_path, soc=0.045)  # above idle brownout, below SHUTDOWN
    world.clock.call_at_us(90 * 60 * 10**6, lambda: pack.set_charger(1.0))
    r = world.board.run(until_ms=150 * 60 * 1000)
    assert world.power.brownouts == 0
    kinds = [x[1] for x in r["resets"]]
    assert kinds and set(kinds) == {"DeepSleep"}  # every stop was a deliberate deep sleep
    print("\n", r["resets"], world.board.test_receipts)
    # Timer looks every 30 min until the charger came, a wake on the charger pin, then 10-minute looks
    # while charging until the pack is over the SHUTDOWN level plus hysteresis.
    assert r["boots"] <= 8
    sleeps_ms = [x[0] for x in r["resets"]]
    assert max(sleeps_ms) < 90 * 60 * 1000 + 40 * 60 * 1000  # back in service within 40 min of charging
    assert world.board.test_receipts > 0  # once charging, the terminal printed again
    assert bat.soc() > 0.2


def test_no_boot_loop_across_many_cycles(world: Any, tmp_path: Path) -> None:
    bat, pack = _small_pack_world(world, tmp_path, soc=0.05)
    hour = 3600 * 10**6
    cycles = 3
    for c in range(cycles):  # plugged for 45 min, then off the charger until it runs flat and sleeps
        t0 = (c * 3 + 1) * hour
        world.clock.call_at_us(t0, lambda: pack.set_charger(1.0))
        world.clock.call_at_us(t0 + 45 * 60 * 10**6, lambda: pack.set_charger(0.0))
    r = world.board.run(until_ms=(cycles * 3 + 1) * 3600 * 1000)
    kinds = [x[1] for x in r["resets"]]
    print(f"\n{r['boots']} boots, {world.board.test_receipts} receipts, resets: {sorted(set(kinds))}, "
          f"lowest rail {world.power.min_v:.3f} V")
    assert world.power.brownouts == 0 and "PowerLoss" not in kinds
    assert world.power.min_v > world.profile["power"]["brownout_v"]
    # Each cycle: a wake on the charger, a shutdown when flat, and a few 30-minute timer looks.
    assert r["boots"] <= cycles * 6 + 3
    assert world.board.test_receipts >= cycles * 20


def test_boot_with_a_good_pack_goes_on_to_main(world: Any, tmp_path: Path) -> None:
    bat, pack = _small_pack_world(world, tmp_path, soc=0.9)
    r = world.board.run(until_ms=10 * 60 * 1000)
    assert r["boots"] == 1 and r["resets"] == [] and world.board.test_receipts >= 5
