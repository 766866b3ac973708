"""Where things are in a posguard checkout, and how to put the firmware and simulator on a module path."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
SIMHW = ROOT / "host_tests" / "simhw"
MPY_TESTS = ROOT / "host_tests" / "mpy"
BOARDS = ROOT / "boards"
OUT = ROOT / "out"
# The one board every command assumes when --board is not given (shown in each --help).
DEFAULT_BOARD = "devkit-1s"
HEAPSIZE = "110k"  # an ESP32 without PSRAM has about 110 KB of free heap (micropython-runtime.md)
# The unix port's heap also holds the simulated hardware and the firmware's code (frozen into flash on a
# production board), which a board's heap does not: the VM gets this much, and
# host_tests/simhw/sim_heap.py pins a ballast so the firmware's working data sees exactly HEAPSIZE free.
VM_HEAPSIZE = "2m"  # room for the largest modelled heap (an S3 with PSRAM: about 1 MB) and the simulator


def use_simulated_hardware() -> None:
    """Let this CPython process import the firmware and the simulated machine/esp32 modules."""
    for p in (str(SIMHW), str(FIRMWARE)):
        if p not in sys.path:
            sys.path.insert(0, p)


def venv_bin(name: str) -> str:
    """A console script of the project's environment (the one running this interpreter), else PATH."""
    cand = Path(sys.executable).parent / name
    if cand.exists():
        return str(cand)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make test` or `make setup` to build .venv")
    return found


def micropython_env(extra: list[Path] | None = None) -> dict[str, str]:
    """Environment for the unix port: firmware + simulated hardware on MICROPYPATH, then its frozen libs."""
    parts = [str(p) for p in (extra or [])] + [str(FIRMWARE), str(SIMHW), str(MPY_TESTS), ".frozen"]
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(parts)
    return env


def board_profile(name: str) -> Path:
    path = BOARDS / f"{name}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in BOARDS.glob("*.json")))
        raise FileNotFoundError(f"no board profile '{name}' (known: {known})")
    return path
