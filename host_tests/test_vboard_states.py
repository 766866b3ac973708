"""Issue 13, items 14-16: the virtual board behaves like a board in every state it can be in.

- A power cycle from the friendly REPL, the raw REPL, a running terminal, service mode and the ROM's
  download mode never jams it: the next VM gets a board's terminal settings (Ctrl-C interrupts, mpremote
  connects).
- A watchdog the firmware armed keeps running while the board sits at the REPL and across a soft reset
  (the port's machine.WDT cannot be stopped), and the board says it reset.
- `service hold` + `reset` (GPIO0 low at reset: the ROM's download mode, no MicroPython) has a way out:
  `service release` + `reset`, applied by the bridge while no world runs.
- `--ctl` with a bad address names the fix."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from test_vboard import Vboard, start_vboard, stop_vboard

from posguard_tools import paths

_CLIENT_TIMEOUT_S = 15  # a jammed board makes mpremote wait forever: fail well before the suite's limit

# Like the firmware's main.py: with the service mark in RTC memory (posguard.maint) it returns to the
# REPL at once (no tasks, no watchdog); otherwise it runs forever. WDT_MS > 0 arms the watchdog and
# feeds it, as the terminal does.
_MAIN = """\
import time
import machine
if machine.RTC().memory() == b"PGSVC":
    print("posguard: service mode")
else:
    wdt = machine.WDT(timeout=WDT_MS) if WDT_MS else None
    while True:
        time.sleep_ms(50)
        if wdt is not None:
            wdt.feed()
"""


_ENTER_SERVICE = "import machine\nmachine.RTC().memory(b'PGSVC')\nmachine.reset()\n"


def _mpremote(vb: Vboard, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [paths.venv_bin("mpremote"), "connect", vb.port, *args],
            capture_output=True,
            text=True,
            timeout=_CLIENT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"mpremote {args} hung: the board is jammed") from e


def _exec(vb: Vboard, code: str) -> str:
    r = _mpremote(vb, "exec", code)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def _boots(vb: Vboard) -> int:
    status = vb.ctl("status")[0]
    return int(status.split("boots=")[1].split()[0]) if "boots=" in status else -1


def _wait_boots(vb: Vboard, at_least: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while _boots(vb) < at_least:
        assert time.monotonic() < deadline, f"the board did not boot again: {vb.ctl('status')}"
        time.sleep(0.1)


def _read_port(fd: int, until: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while until not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            seen += os.read(fd, 4096)
    return seen


def _wait_status(vb: Vboard, part: str, seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    while True:
        status = vb.ctl("status")[0]
        if part in status:
            return status
        assert time.monotonic() < deadline, f"status never showed {part!r}: {status}"
        time.sleep(0.1)


def _power_cycle_then_exec(vb: Vboard, state: str, comes_back: str = "boots=", then_exec: bool = True) -> None:
    reply = vb.ctl("power cycle")[0]
    assert reply.startswith("ok power cycle"), (state, reply)
    time.sleep(1.2)  # the pack is back after 1 s
    _wait_status(vb, comes_back)  # the terminal runs again (or, with the button held, the ROM waits)
    if then_exec:
        assert _exec(vb, "print('alive after', 'cycle')") == "alive after cycle", state


def test_power_cycle_from_every_board_state(tmp_path: Path) -> None:
    vb = start_vboard(tmp_path, with_board=True, main_py=_MAIN.replace("WDT_MS", "0"))
    try:
        _wait_boots(vb, 1)
        _power_cycle_then_exec(vb, "running terminal")
        # mpremote left the board in its friendly REPL (the VM's terminal is raw while it reads).
        _power_cycle_then_exec(vb, "friendly REPL")
        fd = os.open(vb.port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"\r\x03\x03\r\x01")
            assert b"raw REPL" in _read_port(fd, b"raw REPL", 10)
            _power_cycle_then_exec(vb, "raw REPL")
        finally:
            os.close(fd)
        # Service mode: the mark in RTC memory and machine.reset() typed at the REPL (what posguard.maint
        # does); main.py returns to the REPL. A power cycle clears RTC memory: the terminal trades again.
        try:  # machine.reset() ends the exec: mpremote never gets its end marker (as on a board)
            subprocess.run(
                [paths.venv_bin("mpremote"), "connect", vb.port, "exec", _ENTER_SERVICE],
                capture_output=True,
                timeout=4,
            )
        except subprocess.TimeoutExpired:
            pass
        _wait_status(vb, "at-repl")
        out = _mpremote(vb, "resume", "exec", "import machine; print(machine.RTC().memory())").stdout
        assert out.strip() == "b'PGSVC'", out
        _power_cycle_then_exec(vb, "service mode")
        # The button held through a reset: GPIO0 low, the ROM's download mode, no REPL at all.
        assert vb.ctl("service hold")[0].startswith("ok service hold")
        assert vb.ctl("reset")[0].startswith("ok reset")
        _wait_status(vb, "rom-download")
        _power_cycle_then_exec(vb, "ROM download mode", comes_back="rom-download", then_exec=False)
        # The way out: release the button and reset, with no world running to apply them.
        assert vb.ctl("service release")[0].startswith("ok service release")
        assert vb.ctl("reset")[0].startswith("ok reset")
        _wait_status(vb, "boots=")  # the terminal runs again
        assert _exec(vb, "print('back')") == "back"
    finally:
        log = stop_vboard(vb)
    assert "hard reset: reset button" in log and "ROM download mode" in log, log


def test_watchdog_runs_on_at_the_repl_and_across_soft_reset(tmp_path: Path) -> None:
    vb = start_vboard(tmp_path, with_board=True, main_py=_MAIN.replace("WDT_MS", "3000"))
    try:
        _wait_boots(vb, 1)
        # mpremote interrupts main.py (Ctrl-C), soft-resets (the watchdog goes on), runs the code, leaves.
        assert _exec(vb, "print('quick')") == "quick"
        fd = os.open(vb.port, os.O_RDWR | os.O_NOCTTY)
        try:
            seen = _read_port(fd, b"watchdog reset", 12)
        finally:
            os.close(fd)
        assert b"vboard: watchdog reset" in seen, seen
        _wait_boots(vb, 3)  # the first boot, mpremote's soft reset, the watchdog's reset
        cause = _mpremote(vb, "resume", "exec", "import machine; print(machine.reset_cause())").stdout.strip()
        assert cause == "3", cause  # machine.WDT_RESET
    finally:
        stop_vboard(vb)


def test_ctl_names_the_fix_for_a_bad_address() -> None:
    for addr, want in (
        ("localhost", "a host name without a port"),
        ("127.0.0.1:http", "is not a number"),
        ("127.0.0.1:70000", "outside 1..65535"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "posguard_tools.cli", "vboard", "--ctl", addr, "status"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 2 and want in r.stderr and "CONTROL address" in r.stderr, r.stderr
        assert "invalid literal" not in r.stderr
