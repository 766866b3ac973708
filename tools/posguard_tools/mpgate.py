"""The MicroPython gate: every firmware file must compile for the ESP32 and import on the unix port.

CPython forgives constructs MicroPython rejects (dataclasses, typing, some f-strings...); this is what
catches them before a board does. `python -m posguard_tools.mpgate [DIR]` prints one line per stage.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from posguard_tools import paths


def firmware_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def compile_errors(root: Path, march: str = "xtensawin") -> list[str]:
    """mpy-cross every file as the board build does; returns one message per file it rejects."""
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in firmware_files(root):
            r = subprocess.run(
                [paths.venv_bin("mpy-cross"), f"-march={march}", "-o", str(Path(tmp) / "x.mpy"), str(f)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if r.returncode != 0:
                errors.append(f"{f.relative_to(root)}: {(r.stderr or r.stdout).strip()}")
    return errors


def module_names(root: Path) -> list[str]:
    """Importable module names of the package(s) below root (boot.py/main.py run, not import)."""
    names = []
    for f in firmware_files(root):
        rel = f.relative_to(root).with_suffix("")
        if rel.parts[0] in ("boot", "main", "manifest") or len(rel.parts) == 1:
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


# One module per VM, so a module that cannot load on MicroPython (a CPython-only module or API, a
# syntax the VM lacks) fails by its own name. The heap here is generous: what the firmware may use at
# run time is bounded where it runs (sim_heap: the ESP32 port's split heap, code as frozen or counted as .mpy).
_ONE_MODULE_SCRIPT = """
import sys, gc
import sim_heap
sim_heap.pin_firmware_budget(budget=%d, preload=False)
try:
    __import__(%r)
except Exception as e:
    print("FAIL %%s: %%s: %%s" %% (%r, type(e).__name__, e))
    sys.exit(1)
gc.collect()
print("COST %%d" %% sim_heap.firmware_alloc())
"""

IMPORT_HEAP = 320 * 1024


def _mpy(script: str, env: dict[str, str], heapsize: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [paths.venv_bin("micropython"), "-X", f"heapsize={heapsize}", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def import_report(root: Path) -> tuple[list[str], dict[str, int]]:
    """Import each firmware module alone on the unix port.

    Returns (failures, heap bytes each module's import took with its dependencies).
    """
    env = paths.micropython_env([root])
    errors: list[str] = []
    costs: dict[str, int] = {}
    for name in module_names(root):
        r = _mpy(_ONE_MODULE_SCRIPT % (IMPORT_HEAP, name, name), env, paths.VM_HEAPSIZE)
        fails = [line[5:] for line in r.stdout.splitlines() if line.startswith("FAIL ")]
        costs_seen = [int(line[5:]) for line in r.stdout.splitlines() if line.startswith("COST ")]
        if fails:
            errors.extend(fails)
        elif r.returncode != 0 or not costs_seen:
            errors.append(f"{name}: {(r.stderr or r.stdout).strip()[-500:]}")
        else:
            costs[name] = costs_seen[0]
    return errors, costs


def import_errors(root: Path) -> list[str]:
    return import_report(root)[0]


def code_heap_bytes(root: Path) -> int | None:
    """Heap the package's code takes when deployed as .mpy (not frozen), as `posguard deploy` ships it and
    its heap check counts it (deploy_heapcheck); None if it does not load."""
    from posguard_tools import deploy_heapcheck

    try:
        return deploy_heapcheck.code_heap_bytes(deploy_heapcheck.compile_package(root))
    except (RuntimeError, subprocess.CalledProcessError):
        return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m posguard_tools.mpgate",
        description="every firmware file compiles for the ESP32 (mpy-cross) and imports on the unix port",
    )
    p.add_argument(
        "root", nargs="?", type=Path, default=paths.FIRMWARE, metavar="DIR",
        help="the firmware tree (default: this checkout's firmware/)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    root: Path = build_parser().parse_args(argv).root
    if not root.is_dir():
        print(f"mpgate: {root} is not a directory", file=sys.stderr)
        return 2
    files = firmware_files(root)
    cerr = compile_errors(root)
    print(f"mpy-cross -march=xtensawin: {len(files) - len(cerr)}/{len(files)} firmware files compile")
    for e in cerr:
        print("  REJECTED " + e)
    ierr, costs = import_report(root)
    n = len(module_names(root))
    print(f"micropython unix port: {n - len(ierr)}/{n} firmware modules import")
    for e in ierr:
        print("  REJECTED " + e)
    for name, cost in sorted(costs.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {name:28s} {cost:7d} bytes of heap to import (with its dependencies)")
    total = code_heap_bytes(root)
    if total is not None:
        print(f"  package as .mpy in RAM: {total} bytes (frozen builds keep it in flash; docs/device.md profiles)")
    return 1 if (cerr or ierr) else 0


if __name__ == "__main__":
    raise SystemExit(main())
