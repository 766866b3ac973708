"""Bring a trading terminal into service mode for a host tool, and back (issue 13, item 5).

mpremote's first contact interrupts main.py (Ctrl-C), but the ESP32 port's watchdog keeps counting
(ports/esp32/machine_wdt.c: no deinit; a soft reset does not stop it either): a copy that takes longer
than the timeout ends in a watchdog panic mid-copy. So a tool that finds the terminal was running asks
the firmware to restart into service mode (`posguard.maint.enter()`: an RTC-memory mark and
machine.reset(), which stops the watchdog), waits for the board to answer again, does its work, and
restarts it into trading (`maint.leave()`). A board that was not trading is left as it was.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from dataclasses import dataclass

from posguard_tools import paths

# Read-only: what runs, without importing anything heavy on the board. app.current is set as the
# terminal starts, just before it arms the watchdog (posguard/app.py Terminal.run).
STATE_SCRIPT = (
    "import sys\n"
    "a = sys.modules.get('posguard.app')\n"
    "run = 1 if (a is not None and getattr(a, 'current', None) is not None) else 0\n"
    "try:\n"
    "    from posguard import maint\n"
    "    svc = 1 if maint.requested() else 0\n"
    "    has = 1\n"
    "except ImportError:\n"
    "    svc = 0\n"
    "    has = 0\n"
    "print('POSGUARD-STATE %d %d %d' % (run, svc, has))\n"
)
_ENTER = "from posguard import maint\nprint('POSGUARD-MAINT')\nmaint.enter()\n"
_LEAVE = "from posguard import maint\nprint('POSGUARD-MAINT')\nmaint.leave()\n"
_RESET_WAIT_S = 4.0  # the exec that resets the board never gets its end marker: give up on it after this
BACK_WITHIN_S = 30.0  # a board answers again within this after machine.reset() (boot log, boot.py, main.py)


class MaintenanceError(Exception):
    """The board could not be brought into service mode; the message says why and what to do."""


@dataclass(frozen=True)
class State:
    trading: bool  # posguard's terminal was running (its watchdog is armed)
    service: bool  # the service-mode mark is set (no watchdog)
    has_maint: bool  # the firmware on the board knows maint.enter()/leave()


def _mpremote(port: str, script: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    # `resume`: no soft reset on entering the raw REPL. A soft reset would drop the modules that say a
    # terminal ran (and keep its watchdog counting: the port's main.c soft_reset loop never stops it).
    try:
        return subprocess.run(
            [paths.venv_bin("mpremote"), "connect", port, "resume", "exec", script],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None


def parse_state(text: str) -> State | None:
    m = re.search(r"POSGUARD-STATE (\d) (\d) (\d)", text)
    if not m:
        return None
    return State(m.group(1) == "1", m.group(2) == "1", m.group(3) == "1")


def state(port: str, timeout: float = 20.0) -> State | None:
    r = _mpremote(port, STATE_SCRIPT, timeout)
    return None if r is None or r.returncode != 0 else parse_state(r.stdout)


def _exec_until_reset(port: str, script: str) -> None:
    """Run a script that ends in machine.reset(): the exec's reply never completes, so stop mpremote
    once the script said it got there (or after _RESET_WAIT_S)."""
    proc = subprocess.Popen(
        [paths.venv_bin("mpremote"), "connect", port, "resume", "exec", script],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + _RESET_WAIT_S
    try:
        while b"POSGUARD-MAINT" not in seen and proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.1)
            if ready:
                seen += os.read(proc.stdout.fileno(), 256)
        time.sleep(0.2)  # the reset itself
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def _enter_and_wait(port: str) -> None:
    # machine.reset() cuts the exec off: its reply never completes. What counts is the state afterwards.
    _exec_until_reset(port, _ENTER)
    deadline = time.monotonic() + BACK_WITHIN_S
    last: State | None = None
    while time.monotonic() < deadline:
        last = state(port, timeout=max(1.0, min(10.0, deadline - time.monotonic())))
        if last is not None and last.service:
            return
        time.sleep(0.5)
    raise MaintenanceError(
        f"{port}: the board did not come back in service mode within {BACK_WITHIN_S:.0f} s after machine.reset() "
        f"(last answer: {last}); power-cycle it and try again"
    )


def enter(port: str, st: State) -> bool:
    """Put a trading terminal into service mode. True when it did (the caller must leave() after)."""
    if not st.trading or st.service:
        return False
    if not st.has_maint:
        raise MaintenanceError(
            f"{port}: the firmware on the board is trading and has no service mode (posguard.maint): its "
            "watchdog would reset the board during the copy. Power-cycle it holding nothing, interrupt it "
            "with Ctrl-C and deploy within 8 s, or flash a blank MicroPython first"
        )
    _enter_and_wait(port)
    return True


def leave(port: str) -> None:
    """Back to trading: clear the mark and restart; boot.py and main.py run and arm the watchdog.
    Not checked by another exec: that would interrupt the terminal again (and leave its watchdog armed)."""
    _exec_until_reset(port, _LEAVE)
