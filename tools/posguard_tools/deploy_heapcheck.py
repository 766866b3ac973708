"""Does the firmware fit the board's heap? Deploy asks before it copies anything (issue 13, item 12).

The ESP32 port's heap (host_tests/simhw/sim_heap.py, docs/reference/micropython-runtime.md) is 112000
bytes on an ESP32 without PSRAM (56 KB at boot plus one split area) and about 248000 on an ESP32-S3 without
PSRAM. Deployed as `.mpy` files, the whole package's bytecode lives in that heap next to the terminal's
working data; frozen into the firmware image (firmware/manifest.py) it lives in flash. The unix port
(64-bit: its objects are larger than on the 32-bit ESP32, so the figure errs on the safe side) measures
what the code takes.

Each shipped profile's deployment is decided here (`plan_for`) and proven by tests that run the firmware
in the modelled heap (host_tests/test_heap_budget.py, the virtual-board end-to-end test). On a board, the
probe reads gc.mem_free() (on the ESP32 port it includes the largest area the heap can still grow by,
docs/library/esp32.rst:93-98) after dropping posguard's modules that boot.py loaded, and `check` refuses
a deploy that cannot run with a message that says what to flash instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from posguard_tools import mpylib, paths

# The terminal's working data at its worst: the peak live heap of a trading day on the unix port is held
# to this by `make bench` (bench_app: "peak live heap on the unix port <= 60 KB").
DATA_HEAP_BYTES = 60 * 1024
# Imported only when needed: the REPL API when a technician asks for it (sim_heap never preloads it
# either), compaction when maintenance reclaims a sector (its ~2 KB then come out of the working-data
# budget, whose measured peak stays far below it: docs/device.md, Shipped profiles).
ON_DEMAND_MODULES = ("repl", "compaction")
LIB = "lib"  # the board's folder for micropython-lib dependencies (on sys.path after the root and .frozen)

# Appended to deploy's probe: the free heap with posguard's modules (loaded by boot.py) dropped again.
PROBE_SNIPPET = (
    "import gc\n"
    "for k in [k for k in sys.modules if k == 'posguard' or k.startswith('posguard.')]:\n"
    "    del sys.modules[k]\n"
    "for k in [k for k, v in globals().items() if str(v).startswith(\"<module 'posguard\")]:\n"
    "    del globals()[k]\n"
    "gc.collect()\n"
    "print('POSGUARD-HEAP %d' % gc.mem_free())\n"
)
_HEAP_LINE = re.compile(r"POSGUARD-HEAP (\d+)")

STOCK_FIRMWARE = {  # micropython.org/download board names, without and with PSRAM
    "esp32": ("ESP32_GENERIC", "ESP32_GENERIC-SPIRAM"),
    "esp32s3": ("ESP32_GENERIC_S3", "ESP32_GENERIC_S3-SPIRAM_OCT"),
    "esp32s3+psram": ("ESP32_GENERIC_S3-SPIRAM_OCT", "ESP32_GENERIC_S3-SPIRAM_OCT"),
}


def _sim_heap() -> ModuleType:
    """host_tests/simhw/sim_heap.py, the one place the port's heap areas are written down, loaded by
    path (putting simhw on sys.path would shadow CPython's time module with the simulated one)."""
    spec = importlib.util.spec_from_file_location("_posguard_sim_heap", paths.SIMHW / "sim_heap.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def chip_of_profile(profile: dict[str, Any]) -> str:
    """The heap model of a board profile (its mcu, "+psram" with PSRAM): host_tests/simhw/sim_heap.py."""
    chip: str = _sim_heap().chip_of(profile)
    return chip


def port_heap(chip: str) -> tuple[int, ...]:
    """Usable bytes of each heap area the ESP32 port gives the firmware on `chip` ("esp32s3+psram": with PSRAM)."""
    areas: tuple[int, ...] = tuple(_sim_heap().areas_for(chip))
    return areas


def free_heap_from_probe(stdout: str) -> int | None:
    m = _HEAP_LINE.search(stdout)
    return int(m.group(1)) if m else None


_MEASURE = """
import gc, sys
import sim_heap
sim_heap._import_all()
gc.collect()
a = gc.mem_alloc()
for name in %r:
    __import__(name)
gc.collect()
print("CODE %%d" %% (gc.mem_alloc() - a))
"""


def code_heap_bytes(mpy_files: dict[str, bytes], only: list[str] | None = None) -> int:
    """Heap the package's code takes on the unix port when loaded from these .mpy files (dest -> bytes),
    every module but the on-demand ones imported (or the modules `only` names, with what they import),
    the simulated hardware loaded before counting. Files under lib/ (the dependencies deploy copies,
    umqtt.simple) are imported from lib/, as on a board, so their code is counted too."""
    with tempfile.TemporaryDirectory(prefix="posguard-heapcheck-") as tmp:
        root = Path(tmp)
        names = []
        for dest, data in mpy_files.items():
            if not dest.endswith(".mpy"):
                continue
            out = root / dest
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            mod = dest[: -len(".mpy")].removeprefix(LIB + "/").replace("/", ".")
            if mod.endswith(".__init__") or mod.rsplit(".", 1)[-1] in ON_DEMAND_MODULES:
                continue
            names.append(mod)
        env = paths.micropython_env()
        env["MICROPYPATH"] = ":".join([str(root), str(root / LIB), str(paths.SIMHW), ".frozen"])
        r = subprocess.run(
            [paths.venv_bin("micropython"), "-X", "heapsize=4m", "-c", _MEASURE % (only or sorted(names),)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
            timeout=120,
        )
    m = re.search(r"CODE (\d+)", r.stdout)
    if m is None:
        raise RuntimeError(f"could not measure the firmware's code on the unix port: {(r.stderr or r.stdout)[-400:]}")
    return int(m.group(1))


def compile_package(firmware: Path = paths.FIRMWARE) -> dict[str, bytes]:
    """Every posguard/*.py as mpy-cross -march=xtensawin bytecode (what `posguard deploy` copies). Compiled
    files are kept in out/heapcheck/, keyed by the source bytes and the options, so a rerun compiles only
    what changed."""
    files: dict[str, bytes] = {}
    for src in sorted((firmware / "posguard").rglob("*.py")):
        rel = src.relative_to(firmware).as_posix()
        files[rel[: -len(".py")] + ".mpy"] = _compiled(src, rel)
    return files


def compile_deps(profile: dict[str, Any]) -> dict[str, bytes]:
    """The micropython-lib dependencies a .mpy deploy of this profile copies to lib/ (mpylib.deps_for:
    umqtt.simple with a `network` section), compiled as deploy compiles them."""
    files: dict[str, bytes] = {}
    for rel, src in mpylib.deps_for(profile):
        dest = f"{LIB}/{rel}"
        files[dest[: -len(".py")] + ".mpy"] = _compiled(src, dest)
    return files


def _compiled(src: Path, rel: str) -> bytes:
    """mpy-cross -march=xtensawin -O2 of src (rel: its name on the board), cached in out/heapcheck/ by
    the source bytes and the options."""
    cache = paths.OUT / "heapcheck"
    cache.mkdir(parents=True, exist_ok=True)
    opts = ["-march=xtensawin", "-O2", "-s", rel]
    key = hashlib.sha256(src.read_bytes() + "\0".join(opts).encode()).hexdigest()
    out = cache / f"{key}.mpy"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            [paths.venv_bin("mpy-cross"), *opts, "-o", str(tmp), str(src)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        tmp.replace(out)
    return out.read_bytes()


@dataclass(frozen=True)
class Plan:
    board: str
    chip: str
    heap: int  # bytes the port gives the firmware (all areas)
    largest_area: int  # no single object can be larger
    code: int  # the package's code as .mpy in RAM, measured on the unix port
    frozen: bool  # True: the package must be frozen into the firmware image

    @property
    def need_mpy(self) -> int:
        return self.code + DATA_HEAP_BYTES

    def stock_firmware(self) -> str:
        plain, spiram = STOCK_FIRMWARE[self.chip]
        if self.frozen:
            return f"{plain} built with FROZEN_MANIFEST=firmware/manifest.py (or stock {spiram} on a PSRAM module)"
        return plain

    def method(self) -> str:
        return "frozen build + `posguard deploy --frozen`" if self.frozen else "`posguard deploy` (.mpy)"


def plan_for(board: str, code: int | None = None) -> Plan:
    """The deployment a shipped profile needs: .mpy when code + working data fit the chip's heap.
    code: the package's code (code_heap_bytes of compile_package()), measured here when None; the
    dependencies the profile needs (umqtt.simple with a `network` section) are added to it."""
    profile = json.loads(paths.board_profile(board).read_text())
    chip = _sim_heap().chip_of(profile)
    areas = port_heap(chip)
    deps = compile_deps(profile)
    if code is None:
        code = code_heap_bytes({**compile_package(), **deps})
    elif deps:
        code += code_heap_bytes(deps)
    heap = sum(areas)
    return Plan(board, chip, heap, max(areas), code, code + DATA_HEAP_BYTES > heap)


def check(port: str, free: int | None, mpy_files: dict[str, bytes], frozen: bool) -> str | None:
    """None when the firmware fits `free` bytes of heap (gc.mem_free() on the device); else the message
    a deploy stops with. `mpy_files`: what deploy would copy (dest -> bytes)."""
    if free is None:
        return None  # an old probe without the heap line: nothing to judge by
    need = DATA_HEAP_BYTES
    code = 0
    if not frozen:
        code = code_heap_bytes(mpy_files)
        need += code
    if free >= need:
        return None
    kb = 1024
    if frozen:
        return (
            f"{port}: the board has {free // kb} KB of free heap (gc.mem_free()); the terminal's working data "
            f"needs {need // kb} KB. Free the heap (remove files in /lib that boot.py imports) or use a module "
            "with PSRAM."
        )
    return (
        f"{port}: posguard as .mpy does not fit this board's heap: {free // kb} KB free (gc.mem_free(), split "
        f"heap included), {need // kb} KB needed ({code // kb} KB of code as the unix port measures it + "
        f"{DATA_HEAP_BYTES // kb} KB of working data). Nothing was copied. Flash a firmware with posguard frozen "
        "in (ports/esp32: make BOARD=ESP32_GENERIC FROZEN_MANIFEST=<repo>/firmware/manifest.py) and deploy "
        "with --frozen, or use a module with PSRAM and the stock SPIRAM firmware (docs/device.md, "
        "'Shipped profiles')."
    )
