"""Issue 13, item 12: the heap as the ESP32 port has it, and a deployment per profile that fits it.

- The unix-port runs get the port's heap: a 56 KB initial area plus split areas on the ESP32 (64 KB plus
  two on the S3), no object larger than an area (host_tests/simhw/sim_heap.py).
- Each shipped profile's deployment is proven in that heap: the package as .mpy either fits next to the
  terminal's working data, or the profile needs a frozen build (and the end-to-end test runs it so).
- Deploy's check reads gc.mem_free() on the device and refuses what cannot run, saying what to flash."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_vboard import Vboard, start_vboard, stop_vboard

from posguard_tools import deploy_heapcheck, paths


def _run_mpy(script: str, extra: list[Path] | None = None) -> str:
    env = paths.micropython_env(extra)
    r = subprocess.run(
        [paths.venv_bin("micropython"), "-X", f"heapsize={paths.VM_HEAPSIZE}", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


_SPLIT_PROBE = """
import gc
import sim_heap
sim_heap.pin_firmware_budget(preload=False%s)
gc.collect()
print("FREE", gc.mem_free())
for n in %r:
    try:
        b = bytearray(n)
        del b
        print(n, "ok")
    except MemoryError:
        print(n, "refused")
    gc.collect()
two = []
try:
    for i in range(2):
        two.append(bytearray(%d))
    print("both ok")
except MemoryError:
    print("both refused")
"""


def test_esp32_heap_is_two_areas_not_one_block() -> None:
    # The default unix-port heap is the ESP32's (the harsher chip): 112000 bytes in two 56000-byte areas.
    out = _run_mpy(_SPLIT_PROBE % ("", (50000, 60000), 50000)).split("\n")
    free = int(out[0].split()[1])
    assert 100_000 < free < 116_000, out
    assert out[1:4] == ["50000 ok", "60000 refused", "both ok"], out  # one 50 KB object per area


def test_esp32s3_heap_grows_like_the_port() -> None:
    out = _run_mpy(_SPLIT_PROBE % (", chip='esp32s3'", (118000, 125000), 100000)).split("\n")
    free = int(out[0].split()[1])
    assert 240_000 < free < 252_000, out
    # The largest area holds 118 KB, none holds 125 KB; two 100 KB objects do not both fit.
    assert out[1:4] == ["118000 ok", "125000 refused", "both refused"], out


@pytest.fixture(scope="module")
def package() -> Iterator[dict[str, bytes]]:
    yield deploy_heapcheck.compile_package()


_LOAD_INTO_HEAP = """
import gc
import sim_heap
sim_heap.pin_firmware_budget(preload=False, chip=%r)
try:
    for name in %r:
        __import__(name)
    gc.collect()
    print("LOADED free", gc.mem_free())
except MemoryError as e:
    print("NO ROOM", e)
"""


@pytest.mark.parametrize("board", sorted(p.stem for p in paths.BOARDS.glob("*.json")))
def test_each_profiles_deployment_is_proven_in_its_heap(board: str, package: dict[str, bytes]) -> None:
    code = deploy_heapcheck.code_heap_bytes(package)
    plan = deploy_heapcheck.plan_for(board, code)
    names = sorted(
        d[:-4].replace("/", ".")
        for d in package
        if not d.endswith("__init__.mpy") and d[:-4].rsplit("/", 1)[-1] not in deploy_heapcheck.ON_DEMAND_MODULES
    )
    with tempfile.TemporaryDirectory() as tmp:
        for dest, data in package.items():
            (Path(tmp) / dest).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / dest).write_bytes(data)
        out = _run_mpy(_LOAD_INTO_HEAP % (plan.chip, names), [Path(tmp)])
    if plan.frozen:
        # The package's code alone leaves less than the working data needs (or does not load at all): this
        # profile runs a build with the package frozen into flash.
        assert "NO ROOM" in out or int(out.split()[-1]) < deploy_heapcheck.DATA_HEAP_BYTES, out
    else:
        assert out.startswith("LOADED"), out
        assert int(out.split()[-1]) >= deploy_heapcheck.DATA_HEAP_BYTES, out


def test_shipped_profiles_deploy_as_documented(package: dict[str, bytes]) -> None:
    code = deploy_heapcheck.code_heap_bytes(package)
    plans = {b: deploy_heapcheck.plan_for(b, code) for b in ("devkit-1s", "pos-2s")}
    assert (plans["devkit-1s"].chip, plans["devkit-1s"].frozen) == ("esp32", True)
    assert (plans["pos-2s"].chip, plans["pos-2s"].frozen) == ("esp32s3+psram", False)
    doc = (paths.ROOT / "docs" / "device.md").read_text()
    for plan in plans.values():
        assert plan.stock_firmware().split()[0] in doc


def test_check_refuses_what_cannot_run(package: dict[str, bytes]) -> None:
    esp32 = sum(deploy_heapcheck.port_heap("esp32"))
    s3 = sum(deploy_heapcheck.port_heap("esp32s3+psram"))  # pos-2s's module
    msg = deploy_heapcheck.check("/dev/ttyUSB0", esp32, package, frozen=False)
    assert msg is not None and "does not fit" in msg and "--frozen" in msg and "Nothing was copied" in msg
    assert deploy_heapcheck.check("/dev/ttyUSB0", s3, package, frozen=False) is None
    assert deploy_heapcheck.check("/dev/ttyUSB0", esp32, package, frozen=True) is None
    low = deploy_heapcheck.check("/dev/ttyUSB0", 30 * 1024, package, frozen=True)
    assert low is not None and "working data" in low
    assert deploy_heapcheck.check("/dev/ttyUSB0", None, package, frozen=False) is None  # no figure: no verdict


@pytest.mark.parametrize("chip", ["esp32", "esp32s3+psram"])
def test_probe_reads_the_virtual_boards_heap(tmp_path: Path, chip: str, package: dict[str, bytes]) -> None:
    vb: Vboard = start_vboard(tmp_path, with_board=False, chip=chip)
    try:
        out = vb.exec("import sys\n" + deploy_heapcheck.PROBE_SNIPPET)
    finally:
        stop_vboard(vb)
    free = deploy_heapcheck.free_heap_from_probe(out)
    assert free is not None and abs(free - sum(deploy_heapcheck.port_heap(chip))) < 8 * 1024, out
    verdict = deploy_heapcheck.check(vb.port, free, package, frozen=False)
    assert (verdict is None) == (chip == "esp32s3+psram"), verdict
