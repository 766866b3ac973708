"""The simulated board: resets drop RAM and keep flash/files, brownouts, deep sleep, watchdog, IRQs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import machine
import micropython
import sim_board
import sim_power

MAIN_COUNTS_BOOTS = """
import machine, time, posguard
try:
    n = int(open("boots").read())
except OSError:
    n = 0
open("boots", "w").write(str(n + 1))
log = open("log", "a")
log.write("boot %d cause %d ram %s\\n" % (n + 1, machine.reset_cause(), hasattr(posguard, "_mark")))
log.close()
posguard._mark = True  # lives in RAM: a reset must forget it
for _ in range(1000):
    time.sleep_ms(100)
"""


def _firmware(tmp_path: Path, main: str, boot: str = "") -> str:
    d = tmp_path / "fw"
    d.mkdir(exist_ok=True)
    (d / "boot.py").write_text(boot)
    (d / "main.py").write_text(main)
    return str(d)


def _log(world: Any) -> list[str]:
    return (world.fs_dir / "log").read_text().splitlines()


def test_pulled_power_reboots_with_ram_gone_and_files_kept(world: Any, tmp_path: Path) -> None:
    world.board.firmware_dir = _firmware(tmp_path, MAIN_COUNTS_BOOTS)
    world.power.pull_at_ms(250, "test pulls the pack")
    world.power.pull_at_ms(700, "test pulls the pack")
    summary = world.board.run(until_ms=1000)
    assert summary["boots"] == 3
    assert [r[1] for r in summary["resets"]] == ["PowerLoss", "PowerLoss"]
    assert _log(world) == ["boot 1 cause 1 ram False", "boot 2 cause 1 ram False", "boot 3 cause 1 ram False"]
    assert world.power.cuts == 2


class _Bench:
    """A bench supply a test can turn down: the rail sags like a dying pack."""

    def __init__(self, volts: float) -> None:
        self.volts = volts

    def terminal_v(self, amps: float) -> float:
        return self.volts

    def step(self, dt_s: float, amps: float) -> None:
        pass


def test_brownout_resets_and_the_board_restarts_only_above_the_level(world: Any, tmp_path: Path) -> None:
    world.board.firmware_dir = _firmware(tmp_path, MAIN_COUNTS_BOOTS)
    supply = _Bench(3.7)
    world.power.set_source(supply)
    level = world.profile["power"]["brownout_v"]

    def sag() -> None:
        supply.volts = level - 0.01

    def restore() -> None:
        supply.volts = level + 0.02  # inside the restart hysteresis: still off

    def charge() -> None:
        supply.volts = 3.7

    world.clock.call_later_ms(300, sag)
    world.clock.call_later_ms(400, restore)
    world.clock.call_later_ms(5000, charge)
    summary = world.board.run(until_ms=6000)
    assert world.power.brownouts == 1
    assert summary["boots"] == 2
    assert world.power.min_v is not None and world.power.min_v < level
    # the second boot waited for the charger: not before 5 s
    assert world.board.resets[0][0] == 300


def test_deep_sleep_timer_wake(world: Any, tmp_path: Path) -> None:
    main = """
import machine
f = open("log", "a")
f.write("cause %d wake %d t %d\\n" % (machine.reset_cause(), machine.wake_reason(), __import__("time").ticks_ms()))
f.close()
if machine.reset_cause() != machine.DEEPSLEEP_RESET:
    machine.deepsleep(5000)
"""
    world.board.firmware_dir = _firmware(tmp_path, main)
    summary = world.board.run(until_ms=20000)
    assert summary["outcome"] == "firmware returned to the REPL"
    lines = _log(world)
    assert lines[0] == "cause 1 wake 0 t 0"
    assert lines[1] == "cause 4 wake 4 t 5000"
    assert world.power.loads["board"] == world.profile["power"]["idle_a"]  # awake again


def test_deep_sleep_wakes_on_the_charger_pin(world: Any, tmp_path: Path) -> None:
    pin = world.profile["pins"]["charger_present"]
    main = f"""
import machine
f = open("log", "a")
f.write("wake %d t %d\\n" % (machine.wake_reason(), __import__("time").ticks_ms()))
f.close()
if machine.reset_cause() != machine.DEEPSLEEP_RESET:
    machine.Pin({pin}, machine.Pin.IN)
    import sim_board
    sim_board.current.wake_ext0 = ({pin}, 1)  # what esp32.wake_on_ext0(pin, 1) records
    machine.deepsleep()
"""
    world.board.firmware_dir = _firmware(tmp_path, main)
    world.clock.call_later_ms(42_000, lambda: world.board.drive_pin(pin, 1))
    world.board.run(until_ms=60_000)
    assert _log(world) == ["wake 0 t 0", "wake 2 t 42000"]


def test_a_watchdog_that_is_not_fed_resets_the_board(world: Any, tmp_path: Path) -> None:
    main = """
import machine, time
open("log", "a").write("cause %d\\n" % machine.reset_cause())
if machine.reset_cause() != machine.WDT_RESET:
    machine.WDT(timeout=1000)
    time.sleep_ms(500)
    time.sleep_ms(700)
"""
    world.board.firmware_dir = _firmware(tmp_path, main)
    summary = world.board.run(until_ms=5000)
    assert [r[1] for r in summary["resets"]] == ["WatchdogReset"]
    assert _log(world) == ["cause 1", "cause 3"]


def test_rtc_memory_survives_a_soft_reset_but_not_power_loss(world: Any, tmp_path: Path) -> None:
    main = """
import machine, time
m = machine.RTC().memory()
open("log", "a").write("mem %r\\n" % (m,))
if m == b"":
    machine.RTC().memory(b"kept")
    machine.reset()
for _ in range(100):
    time.sleep_ms(100)
"""
    world.board.firmware_dir = _firmware(tmp_path, main)
    world.power.pull_at_ms(500)
    world.board.run(until_ms=2000)
    assert _log(world) == ["mem b''", "mem b'kept'", "mem b''", "mem b'kept'"]


def test_pin_irq_is_deferred_like_a_soft_irq(world: Any) -> None:
    seen: list[str] = []
    p = machine.Pin(39, machine.Pin.IN)
    p.irq(lambda pin: seen.append(repr(pin)), trigger=machine.Pin.IRQ_FALLING)
    world.board.drive_pin(39, 1)
    world.board.drive_pin(39, 0)
    assert seen == [], "a soft IRQ handler never runs inside the interrupt"
    micropython._run_pending()
    assert seen == ["Pin(39)"]


def test_schedule_queue_is_bounded_like_micropython() -> None:
    micropython._clear()
    for _ in range(8):
        micropython.schedule(lambda a: None, None)
    try:
        micropython.schedule(lambda a: None, None)
    except RuntimeError as e:
        assert "full" in str(e)
    else:
        raise AssertionError("the 9th schedule must fail like MicroPython's queue of 8")
    finally:
        micropython._clear()


def test_power_loss_is_not_an_exception_firmware_can_swallow() -> None:
    assert not issubclass(sim_power.PowerLoss, Exception)
    assert issubclass(sim_power.PowerLoss, BaseException)
    assert sim_board.current is None or sim_board.current.power is not None
