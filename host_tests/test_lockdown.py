"""Issue 12, item 12: production lockdown. A locked terminal ignores Ctrl-C while trading, never falls
back to a REPL that could read its RAM, and its REPL API answers only the read-only status; service
mode needs the service button held for 3 s while trading, then released (never held at reset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import micropython
import pytest
import sim_power


def test_service_mode_is_the_long_press_mark_never_a_button_held_at_boot(world: Any) -> None:
    from posguard import app, maint

    prof = world.profile
    world.board.drive_pin(prof["pins"]["service"], 0)  # held at boot: on a board that is ROM download mode
    assert app.service_mode(prof) is False
    world.board.drive_pin(prof["pins"]["service"], 1)
    import machine

    machine.RTC().memory(maint.MARK)  # what the long press while trading leaves before its restart
    assert app.service_mode(prof) is True
    machine.RTC().memory(b"")
    assert app.service_mode(prof) is False


def test_locked_terminal_ignores_ctrl_c_and_resets_instead_of_a_repl(world: Any, tmp_path: Path,
                                                                    monkeypatch: Any) -> None:
    from posguard import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "board.json").write_text(__import__("json").dumps(world.profile))
    (tmp_path / app.LOCK_FILE).write_text("locked\n")
    seen: list[int] = []

    async def trading(prof: Any, wrap_monitor: Any = None) -> None:
        seen.append(micropython.kbd_intr_char)
        raise RuntimeError("a bug that ends the event loop")

    monkeypatch.setattr(app, "run", trading)
    monkeypatch.setattr(micropython, "kbd_intr_char", 3)
    with pytest.raises(sim_power.SoftReset):
        app.main("board.json")
    assert seen == [-1] and app.mode == "production"
    assert "main RuntimeError" in (tmp_path / "crash.log").read_text()


def test_unlocked_board_keeps_ctrl_c(world: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from posguard import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "board.json").write_text(__import__("json").dumps(world.profile))
    seen: list[int] = []

    async def trading(prof: Any, wrap_monitor: Any = None) -> None:
        seen.append(micropython.kbd_intr_char)

    monkeypatch.setattr(app, "run", trading)
    monkeypatch.setattr(micropython, "kbd_intr_char", 3)
    app.main("board.json")
    assert seen == [3] and app.mode == "dev"


@pytest.mark.parametrize(("name", "args"), [("journal", ()), ("reprint", (78,)), ("last_receipt", ()),
                                            ("battery", ()), ("calibrate", (4100,)), ("test_print", ())])
def test_locked_repl_api_exposes_no_sale_and_changes_nothing(name: str, args: tuple[Any, ...], monkeypatch: Any,
                                                              capsys: Any) -> None:
    from posguard import app, repl

    def no_terminal() -> Any:
        raise AssertionError("a locked REPL API touched the terminal")

    monkeypatch.setattr(app, "mode", "production")
    monkeypatch.setattr(repl, "_t", no_terminal)
    getattr(repl, name)(*args)
    assert "locked (production mode)" in capsys.readouterr().out


def test_lock_and_unlock_need_service_mode(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    from posguard import app, repl

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(app, "mode", "service")
    repl.lock()
    assert app.locked()
    monkeypatch.setattr(app, "mode", "production")
    repl.unlock()
    assert app.locked(), "unlocked from production mode"
    monkeypatch.setattr(app, "mode", "service")
    repl.unlock()
    assert not app.locked()


def test_locked_repl_still_answers_the_read_only_status(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    import importlib
    import json

    from posguard_tools import paths

    sim_day = importlib.import_module("sim_day")
    prof = json.loads(paths.board_profile("devkit-1s").read_text())
    day = sim_day.Day(prof, str(tmp_path), str(paths.FIRMWARE), hours=1.0, seed=3)
    day.power.on = True
    monkeypatch.chdir(tmp_path)
    from posguard import app, repl

    monkeypatch.setattr(app, "current", None)
    monkeypatch.setattr(app, "running", False)
    monkeypatch.setattr(repl, "_term", None)
    monkeypatch.setattr(app, "mode", "production")
    repl.status()
    repl.journal()
    out = capsys.readouterr().out
    assert "battery :" in out and "journal :" in out and "sales   :" in out
    assert "journal: locked (production mode)" in out and "erases" not in out
