"""The one world builder (host_tests/simhw/sim_world.py) behind the trading day and the virtual board."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posguard_tools import paths, simday

paths.use_simulated_hardware()
sim_battery: Any = importlib.import_module("sim_battery")  # simulator code (MicroPython subset, untyped)
sim_board: Any = importlib.import_module("sim_board")
sim_day: Any = importlib.import_module("sim_day")
sim_power: Any = importlib.import_module("sim_power")
sim_world: Any = importlib.import_module("sim_world")


@pytest.fixture
def built(tmp_path: Path) -> Iterator[Any]:
    w = sim_world.World(simday.load_profile("devkit-1s"), str(tmp_path), str(paths.FIRMWARE), seed=3,
                        clock_ms=5000)
    yield w
    _forget()


def _forget() -> None:
    sim_board.current = None
    sim_power.POWER = None


def test_world_is_one_board_on_its_clock_and_power(built: Any) -> None:
    assert built.clock.now_ms() == 5000
    assert built.board.clock is built.clock and built.board.power is built.power
    assert sim_board.current is built.board and sim_power.POWER is built.power
    assert built.board.seed == 3 and built.power.brownout_v == built.profile["power"]["brownout_v"]
    assert built.add_journal() is built.board.partitions[built.profile["journal"]["label"]]
    assert built.add_host().uart_id == built.profile["host"]["uart_id"]
    assert built.add_printer() is built.printer


@pytest.mark.parametrize("rests", [True, False])
def test_a_pulled_pack_gives_nothing_and_rests_or_freezes(built: Any, rests: bool) -> None:
    bat = sim_battery.Battery(soc=0.5)
    built.add_pack(bat, rests=rests)
    assert built.power.source is built.conn and built.conn.battery is bat
    built.conn.step(60.0, 1.0)  # a minute at 1 A: the pack sags (polarisation) and has given charge
    assert built.conn.discharged_ah > 0.0 and bat.v_rc > 0.0
    sagged = bat.v_rc
    built.conn.connected = False
    assert built.conn.terminal_v(0.5) == 0.0
    built.conn.step(600.0, 1.0)  # the board's load reaches no pack while it is pulled
    assert (bat.v_rc < sagged) if rests else (bat.v_rc == sagged)


def test_the_day_is_built_by_the_world_builder(tmp_path: Path) -> None:
    day = sim_day.Day(simday.load_profile("devkit-1s"), str(tmp_path), str(paths.FIRMWARE), hours=0.1, seed=4)
    try:
        assert isinstance(day, sim_world.World)
        assert day.power.source is day.conn and day.conn.rests
        assert day.peer is day.host and day.flash is day.board.partitions[day.profile["journal"]["label"]]
    finally:
        _forget()
