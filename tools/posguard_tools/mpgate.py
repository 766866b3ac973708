"""The MicroPython gate: every firmware file must compile for the ESP32 and import on the unix port.

CPython forgives constructs MicroPython rejects (dataclasses, typing, some f-strings...); this is what
catches them before a board does. `python -m posguard_tools.mpgate [DIR]` prints one line per stage.
"""

from __future__ import annotations

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


_IMPORT_SCRIPT = """
import sys
import sim_heap
sim_heap.pin_firmware_budget()
bad = 0
for name in %r:
    try:
        __import__(name)
        print("OK " + name)
    except Exception as e:
        bad += 1
        print("FAIL %%s: %%s: %%s" %% (name, type(e).__name__, e))
import gc
gc.collect()
print("HEAP firmware_alloc=%%d free=%%d" %% (sim_heap.firmware_alloc(), gc.mem_free()))
sys.exit(1 if bad else 0)
"""


def import_errors(root: Path) -> list[str]:
    """Import every firmware module on the unix port with the ESP32's free heap; returns failures.

    The simulated hardware loads first and sim_heap pins the rest of the VM's heap, so the modules get
    exactly paths.HEAPSIZE (what an ESP32 without PSRAM leaves free).
    """
    names = module_names(root)
    env = paths.micropython_env([root])
    r = subprocess.run(
        [paths.venv_bin("micropython"), "-X", f"heapsize={paths.VM_HEAPSIZE}", "-c", _IMPORT_SCRIPT % (names,)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    errors = [line[5:] for line in r.stdout.splitlines() if line.startswith("FAIL ")]
    if r.returncode != 0 and not errors:
        errors.append((r.stderr or r.stdout).strip()[-500:])
    return errors


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else paths.FIRMWARE
    files = firmware_files(root)
    cerr = compile_errors(root)
    print(f"mpy-cross -march=xtensawin: {len(files) - len(cerr)}/{len(files)} firmware files compile")
    for e in cerr:
        print("  REJECTED " + e)
    ierr = import_errors(root)
    n = len(module_names(root))
    print(f"micropython ({paths.HEAPSIZE} firmware heap): {n - len(ierr)}/{n} firmware modules import")
    for e in ierr:
        print("  REJECTED " + e)
    return 1 if (cerr or ierr) else 0


if __name__ == "__main__":
    raise SystemExit(main())
