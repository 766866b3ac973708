"""Run a simulated trading day (host_tests/simhw/sim_day.py) on CPython or inside the MicroPython
unix port, and return its report dict. The day itself is MicroPython-subset code: the same world,
the same seeded customers, the same firmware, on either runtime."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    rep: dict[str, Any] = day.run(args["cuts"])
    return rep


def run_micropython(args: dict[str, Any], progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="posguard-mpday-") as tmp:
        a = Path(tmp) / "args.json"
        out = Path(tmp) / "out.json"
        a.write_text(json.dumps(args))
        cmd = [paths.venv_bin("micropython"), "-X", f"heapsize={MPY_VM_HEAP}",
               str(paths.SIMHW / "sim_day_main.py"), str(a), str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=paths.micropython_env(), cwd=args["fs_dir"])
        assert proc.stdout is not None
        tail: list[str] = []
        start = time.monotonic()
        for line in proc.stdout:
            if line.startswith("PROGRESS ") and progress is not None:
                progress(int(line.split()[1]) / 100)
            else:
                tail = (tail + [line.rstrip()])[-20:]
            if time.monotonic() - start > MPY_TIMEOUT_S:
                proc.kill()
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
    """A one-line progress bar on stderr (nothing when stderr is not a terminal, except the end)."""

    def __init__(self, label: str, width: int = 40) -> None:
        self.label = label
        self.width = width
        self.last = -1
        self.tty = sys.stderr.isatty()

    def __call__(self, frac: float) -> None:
        pct = max(0, min(100, int(frac * 100)))
        if pct == self.last:
            return
        self.last = pct
        if self.tty or pct % 10 == 0:
            n = pct * self.width // 100
            end = "\r" if self.tty else "\n"
            sys.stderr.write(f"{self.label} [{'#' * n}{'.' * (self.width - n)}] {pct:3d}%{end}")
            sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
