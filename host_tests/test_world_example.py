"""One world builder (issue 14): the example in docs/architecture.md ("Building a world") runs as written,
and every world the tests and tools build is a sim_world.World that closes cleanly."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from posguard_tools import battery_sim, paths

paths.use_simulated_hardware()
sim_board: Any = importlib.import_module("sim_board")  # simulator code (MicroPython subset, untyped)
sim_power: Any = importlib.import_module("sim_power")
sim_world: Any = importlib.import_module("sim_world")


def _documented_example() -> str:
    text = (paths.ROOT / "docs" / "architecture.md").read_text()
    section = text.split("### Building a world", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _closes(w: Any) -> None:
    assert isinstance(w, sim_world.World)
    assert sim_board.current is w.board and sim_power.POWER is w.power and w.power.on
    w.close()
    assert sim_board.current is None and sim_power.POWER is None and not w.power.on


def test_the_documented_example_builds_a_world(tmp_path: Path) -> None:
    ns: dict[str, Any] = {"tmp_path": tmp_path}
    exec(compile(_documented_example(), "docs/architecture.md", "exec"), ns)
    w = ns["w"]
    assert w.printer is not None and w.board.uart_peers
    assert w.conn.discharged_ah > 0.0  # a minute at the board's load came out of the pack
    _closes(w)


def test_the_fixtures_worlds_are_sim_worlds(world: Any, make_world: Any, printer_worlds: Any) -> None:
    assert isinstance(world, sim_world.World) and world.power.on and world.fs_dir.is_dir()
    w = make_world("pos-2s", seed=3)
    assert w.board.seed == 3 and w.profile["mcu"] == "esp32s3"
    _closes(w)
    p = printer_worlds("pos-2s", soc=0.5)
    assert p.printer is not None and p.battery.soc() == 0.5 and p.power.source is p.conn
    _closes(p)


def test_the_battery_tools_world_is_a_sim_world() -> None:
    w = battery_sim.SimWorld("devkit-1s", seed=2, soc=0.4)
    assert w.power.source is w.conn and w.pack.battery is w.battery
    assert w.power.loads["board"] == w.profile["power"]["idle_a"]
    fs = Path(w.fs_dir)
    _closes(w)
    assert not fs.exists()  # its temporary filesystem went with it
