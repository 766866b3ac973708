"""`posguard repl` (`make repl`): the port it opens, `--port vboard` resolved to the running virtual
board's pty, and a real session on one through a terminal (mpremote repl needs a tty)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_vboard import start_vboard, stop_vboard

from posguard_tools import cmd_repl, paths, vboard_state

_TIMEOUT_S = 40


def test_a_serial_port_is_opened_as_given(tmp_path: Path) -> None:
    # `make repl PORT=/dev/ttyUSB0` stays `mpremote connect /dev/ttyUSB0 repl`, whatever a state file says.
    assert cmd_repl.command("/dev/ttyUSB0", tmp_path / "none.json") == [
        paths.venv_bin("mpremote"), "connect", "/dev/ttyUSB0", "repl"]


def test_without_a_virtual_board_vboard_is_a_clear_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "posguard_tools.cli", "repl", "--port", "vboard", "--state", str(tmp_path / "vb.json")],
        capture_output=True, text=True, timeout=_TIMEOUT_S,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith("repl: no virtual board is running:") and "make vboard" in r.stderr, r.stderr


def test_make_repl_goes_through_posguard() -> None:
    r = subprocess.run(["make", "-n", "repl", "PORT=vboard"], cwd=paths.ROOT, capture_output=True, text=True,
                       timeout=_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    assert "posguard repl --port vboard" in r.stdout, r.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty and /proc: the virtual board's platform")
def test_repl_on_the_running_virtual_board(tmp_path: Path) -> None:
    vb = start_vboard(tmp_path, with_board=False)
    try:
        assert vboard_state.resolve_port("vboard", vb.state) == vb.port
        # The user's terminal: mpremote repl puts its stdin in raw mode, so it needs a tty.
        pid, fd = pty.fork()
        if pid == 0:  # the child: `posguard repl --port vboard` (execs mpremote)
            os.execv(sys.executable, [sys.executable, "-m", "posguard_tools.cli", "repl", "--port", "vboard",
                                      "--state", str(vb.state)])
        try:
            seen = _read_until(fd, b"Connected to MicroPython")
            os.write(fd, b"\r")
            seen += _read_until(fd, b">>> ")
            os.write(fd, b"print(6 * 7, 'from the board')\r")
            seen += _read_until(fd, b"42 from the board")
            os.write(fd, b"\x1d")  # Ctrl-]: leave mpremote
            _, status = os.waitpid(pid, 0)
            pid = 0
        finally:
            if pid:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, seen
        assert f"Connected to MicroPython at {vb.port}".encode() in seen, seen
    finally:
        stop_vboard(vb)


def _read_until(fd: int, want: bytes) -> bytes:
    got = b""
    deadline = time.monotonic() + _TIMEOUT_S
    while want not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"no {want!r} from posguard repl: {got!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child ended
                break
            if not chunk:
                break
            got += chunk
    assert want in got, f"no {want!r} from posguard repl: {got!r}"
    return got
