"""Run a simulated trading day (host_tests/simhw/sim_day.py) on CPython or inside the MicroPython
unix port, and return its report dict. The day itself is MicroPython-subset code: the same world,
the same seeded customers, the same firmware, on either runtime."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from posguard_tools import paths

RUNTIMES = ("cpython", "micropython")
POLICIES = ("posguard", "naive")
# The unix port's heap holds the simulator too; sim_heap pins the firmware's share (the ESP32 heap model).
# Re-pinning at every reboot needs a fresh contiguous block, hence the room.
MPY_VM_HEAP = "4m"
MPY_TIMEOUT_S = 3600


def load_profile(board: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(paths.board_profile(board).read_text())
    return data


class _Interrupt:
    """Ctrl-C while a CPython day runs: the first one asks the day to stop at its next simulated instant
    (a clock listener ends the simulation there, as the end of the day would, so no firmware task is
    left half-run with an exception nobody retrieves), and the run then ends with KeyboardInterrupt
    instead of a report; a second one interrupts at once. A KeyboardInterrupt raised inside the
    firmware would be the board's own Ctrl-C (sim_board: back to the REPL), not the host's."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def listener(self, t0_us: int, t1_us: int) -> None:
        if self.requested:
            import sim_power

            raise sim_power.SimulationEnd("interrupted (Ctrl-C)")

    def on_end(self) -> None:
        if self.requested:
            raise KeyboardInterrupt  # the day is over unfinished: no report

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.on_sigint)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.requested and exc_type is None:
            raise KeyboardInterrupt  # pressed after the day's last instant: still no report


def run_cpython(args: dict[str, Any], progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    paths.use_simulated_hardware()
    import sim_clock

    sim_clock.install()
    import importlib

    sim_day = importlib.import_module("sim_day")  # simulator code (MicroPython subset, untyped)
    day = sim_day.Day(args["profile"], args["fs_dir"], args["firmware_dir"], args["hours"], args["seed"],
                      args["cuts"], args["aged"], args["temp_c"], args["policy"], args["soc"], args["pack"],
                      args["charger"])
    if progress is not None:
        day.on_progress = progress
    with _Interrupt() as stop:
        day.clock.add_listener(stop.listener)
        day.on_end = stop.on_end
        rep: dict[str, Any] = day.run(args["cuts"])
    return rep


def run_micropython(args: dict[str, Any], progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="posguard-mpday-") as tmp:
        a = Path(tmp) / "args.json"
        out = Path(tmp) / "out.json"
        a.write_text(json.dumps(args))
        cmd = [paths.venv_bin("micropython"), "-X", f"heapsize={MPY_VM_HEAP}",
               str(paths.SIMHW / "sim_day_main.py"), str(a), str(out)]
        # Its own session: a Ctrl-C at the terminal reaches this process only, which ends the VM (below)
        # instead of the VM taking it for a Ctrl-C on the board's console.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=paths.micropython_env(), cwd=args["fs_dir"], start_new_session=True)
        try:
            return _follow(proc, out, progress)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for f in (proc.stdout, proc.stderr):
                if f is not None:
                    f.close()


def _follow(proc: subprocess.Popen[str], out: Path, progress: Callable[[float], None] | None) -> dict[str, Any]:
    assert proc.stdout is not None
    tail: list[str] = []
    start = time.monotonic()
    for line in proc.stdout:
        if line.startswith("PROGRESS ") and progress is not None:
            progress(int(line.split()[1]) / 100)
        else:
            tail = (tail + [line.rstrip()])[-20:]
        if time.monotonic() - start > MPY_TIMEOUT_S:
            raise RuntimeError(f"the unix-port day took longer than {MPY_TIMEOUT_S} s")
    err = proc.stderr.read() if proc.stderr is not None else ""
    if proc.wait() != 0 or not out.exists():
        raise RuntimeError("the unix-port day failed:\n" + "\n".join(tail) + "\n" + err[-3000:])
    rep: dict[str, Any] = json.loads(out.read_text())
    return rep


def run_day(board: str = "devkit-1s", hours: float = 12.0, seed: int = 1, cuts: int = 3, aged: bool = False,
            temp_c: float = 25.0, policy: str = "posguard", runtime: str = "cpython",
            progress: Callable[[float], None] | None = None, soc: float = 1.0, pack: str | None = None,
            charger: bool = True) -> dict[str, Any]:
    """One day. `pack`: a preset of the cell family (sim_battery.PACKS) or "CAP,KIN,CONTACT_MOHM"; None is
    "fresh" (or "aged85" with aged=True). `soc`: the charge at opening (0-1). `charger`: the merchant plugs
    the charger when the terminal refuses a sale for battery."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
    with tempfile.TemporaryDirectory(prefix="posguard-day-") as fs:
        args = {"profile": load_profile(board), "fs_dir": fs, "firmware_dir": str(paths.FIRMWARE), "hours": hours,
                "seed": seed, "cuts": cuts, "aged": aged, "temp_c": temp_c, "policy": policy, "soc": soc,
                "pack": pack, "charger": charger}
        t0 = time.monotonic()
        rep = run_micropython(args, progress) if runtime == "micropython" else run_cpython(args, progress)
        rep["wall_s"] = round(time.monotonic() - t0, 2)
        rep["runtime"] = runtime
        rep["aged"] = aged
        rep["temp_c"] = temp_c
        crash = Path(fs) / "crash.log"
        rep["crash_log"] = crash.read_text().splitlines() if crash.exists() else []
        return rep


def check_pack(pack: str) -> tuple[float, float, float]:
    """(capacity share, kinetics share, contact ohm) of a --pack value; ValueError saying what is wrong."""
    paths.use_simulated_hardware()
    import importlib

    sim_battery = importlib.import_module("sim_battery")  # simulator code (MicroPython subset, untyped)
    knobs: tuple[float, float, float] = sim_battery.pack_knobs(pack)
    return knobs


class ProgressBar:
    """The day's progress on stderr, as a context manager: a rich progress bar on a terminal; on anything
    else (a pipe, a CI log) one plain line every 10 %, without escape codes."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = -1
        self._bar: Progress | None = None
        if sys.stderr.isatty():
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True))
            self._task = self._bar.add_task(label, total=100)

    def __enter__(self) -> ProgressBar:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()

    def __call__(self, frac: float) -> None:
        pct = max(0, min(100, int(frac * 100)))
        if pct == self.last:
            return
        self.last = pct
        if self._bar is not None:
            self._bar.update(self._task, completed=pct)
        elif pct % 10 == 0:
            sys.stderr.write(f"{self.label} {pct:3d}%\n")
            sys.stderr.flush()

    def done(self) -> None:
        """Stop the live bar (idempotent), leaving its last state on the terminal."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
