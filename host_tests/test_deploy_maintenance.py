"""Issue 13, item 5 with the real clients: `posguard deploy` and `journal dump --port` to a virtual
board whose terminal is trading. mpremote's Ctrl-C leaves the port's watchdog counting, so both tools
restart the terminal into service mode (no watchdog) for their work and back into trading after it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from test_vboard import Vboard, start_vboard, stop_vboard

from posguard_tools import paths


def _posguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "posguard_tools.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=paths.ROOT)


def _trading(vb: Vboard, within_s: float = 20.0) -> str:
    deadline = time.monotonic() + within_s
    st = ""
    while time.monotonic() < deadline:
        st = vb.ctl("status")[0]
        if "at-repl" not in st and "power=on" in st:
            return st
        time.sleep(0.5)
    raise AssertionError(f"the terminal is not trading: {st}")


def test_deploy_and_dump_to_a_trading_terminal_go_through_service_mode(tmp_path: Path) -> None:
    # devkit-1s runs a frozen build (its heap cannot hold the package as .mpy: issue 13, item 12).
    vb = start_vboard(tmp_path, with_board=True, frozen=True)
    try:
        first = _posguard("deploy", "--port", vb.port, "--board", "devkit-1s", "--frozen")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "service mode" not in first.stdout  # a blank board was not trading: nothing to stop
        _trading(vb)
        again = _posguard("deploy", "--port", vb.port, "--board", "devkit-1s", "--frozen", "--force")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "the terminal was trading: restarted into service mode" in again.stdout, again.stdout
        assert "restarted into trading" in again.stdout, again.stdout
        _trading(vb)
        dump = _posguard("journal", "dump", "--port", vb.port)
        assert dump.returncode == 0, dump.stdout + dump.stderr
        st = _trading(vb)
        assert "watchdog" not in st, st
    finally:
        out = stop_vboard(vb)
    assert "watchdog reset" not in out, out[-2000:]
