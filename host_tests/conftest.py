"""pytest harness: simulated hardware on the path, a fresh simulated world per test, and the
MicroPython suite (host_tests/mpy/mpy_test_*.py run on the unix port, one pytest item per function)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posguard_tools import paths

paths.use_simulated_hardware()

import sim_clock  # noqa: E402  (needs the path set above)
import sim_world  # noqa: E402

sim_clock.install()


class World(sim_world.World):
    """The fixtures' world (sim_world.World): a profile of boards/, its filesystem in the test's tmp
    folder (fs_dir, a Path here), the firmware of this checkout, power on."""

    def __init__(self, fs_dir: Path, profile_name: str = "devkit-1s", seed: int = 1) -> None:
        fs_dir.mkdir(parents=True, exist_ok=True)
        profile: dict[str, Any] = json.loads(paths.board_profile(profile_name).read_text())
        super().__init__(profile, str(fs_dir), str(paths.FIRMWARE), seed=seed)
        self.fs_dir = fs_dir
        self.power.on = True


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "fs")
    yield w
    w.close()
    import micropython

    micropython._clear()


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Any]:
    """A factory for worlds on another profile or seed: make_world("pos-2s", seed=3)."""
    made: list[World] = []

    def make(profile_name: str = "devkit-1s", seed: int = 1) -> World:
        w = World(tmp_path / f"fs-{profile_name}-{seed}-{len(made)}", profile_name, seed)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def printer_worlds() -> Iterator[Any]:
    """A factory of simulated boards with a printer: printer_worlds("pos-2s", pcfg={...}, paper_m=1)."""
    from posguard_tools.printer_world import PrinterWorld

    made: list[PrinterWorld] = []

    def build(profile: str = "pos-2s", pcfg: dict[str, Any] | None = None, **over: Any) -> PrinterWorld:
        w = PrinterWorld(profile, pcfg=pcfg, **over)
        made.append(w)
        return w

    yield build
    for w in made:
        w.close()


# ---------------------------------------------------------------------------------------------
# MicroPython suite: each host_tests/mpy/mpy_test_*.py runs once on the unix port with the ESP32's
# heap; every `def test_*` in it becomes a pytest item whose result comes from that run.

_MPY_TIMEOUT_S = 300
_results: dict[Path, dict[str, str]] = {}
_runtime_counts = {"cpython": [0, 0], "micropython": [0, 0]}  # passed, failed
_mpy_heap: dict[str, int] = {}


def _run_mpy_script(path: Path, tmp_root: Path) -> dict[str, str]:
    if path in _results:
        return _results[path]
    env = paths.micropython_env()
    env["POSGUARD_ROOT"] = str(paths.ROOT)
    tmp = tmp_root / path.stem
    tmp.mkdir(parents=True, exist_ok=True)
    env["POSGUARD_TMP"] = str(tmp)
    out: dict[str, str] = {}
    try:
        r = subprocess.run(
            [
                paths.venv_bin("micropython"),
                "-X",
                f"heapsize={paths.VM_HEAPSIZE}",
                str(paths.MPY_TESTS / "mpy_main.py"),
                path.stem,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=_MPY_TIMEOUT_S,
            cwd=str(tmp),
        )
        text = r.stdout
        tail = (r.stderr or "").strip()[-1500:]
    except subprocess.TimeoutExpired as e:
        text = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        tail = f"timed out after {_MPY_TIMEOUT_S} s"
    for line in text.splitlines():
        if line.startswith("PASS "):
            out[line[5:].strip()] = ""
        elif line.startswith("FAIL "):
            name, _, reason = line[5:].partition(":")
            out[name.strip()] = reason.strip() or "failed"
        elif line.startswith("HEAP "):
            m = re.search(r"peak_alloc=(\d+)", line)
            if m:
                _mpy_heap[path.name] = int(m.group(1))
    out["__tail__"] = tail + ("\n" + text[-1500:] if text else "")
    _results[path] = out
    return out


class MpyFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        names = re.findall(r"^def (test_\w+)\(", self.path.read_text(), re.M)
        for name in names:
            yield MpyItem.from_parent(self, name=name)


class MpyFailure(Exception):
    pass


class MpyItem(pytest.Item):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_properties.append(("runtime", "micropython"))

    def runtest(self) -> None:
        tmp_root = Path(self.config._tmp_path_factory.getbasetemp()) / "mpy"  # type: ignore[attr-defined]
        results = _run_mpy_script(self.path, tmp_root)
        if self.name not in results:
            raise MpyFailure(
                f"{self.name} did not report on the unix port (crash, import error or out of heap):\n"
                + results.get("__tail__", "")
            )
        if results[self.name]:
            raise MpyFailure(results[self.name])

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, MpyFailure):
            return f"[micropython, ESP32 split heap] {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"micropython::{self.name}"


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".py" and file_path.name.startswith("mpy_test_"):
        return MpyFile.from_parent(parent, path=file_path)
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.failed):
        return
    # (A mpy_test_*.py named on the command line is also collected as a CPython module by pytest's
    # python plugin: those items count as CPython, which they are.)
    runtime = "micropython" if ("runtime", "micropython") in report.user_properties else "cpython"
    _runtime_counts[runtime][0 if report.passed else 1] += 1 if not report.skipped else 0


def pytest_terminal_summary(terminalreporter: Any) -> None:
    tr = terminalreporter
    tr.section("posguard: results by runtime")
    for runtime, (p, f) in _runtime_counts.items():
        label = "CPython + simulated hardware" if runtime == "cpython" else (
            "MicroPython unix port (ESP32 heap model)"
        )
        tr.write_line(f"{label:48s} {p:4d} passed, {f:d} failed")
    if _mpy_heap:
        worst = max(_mpy_heap.items(), key=lambda kv: kv[1])
        tr.write_line(f"most heap a unix-port test left live (ESP32 heap model): {worst[1]} bytes ({worst[0]})")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("POSGUARD_TEST", "1")
    if sys.implementation.name != "cpython":
        raise pytest.UsageError("the pytest suites run on CPython; MicroPython runs inside them")
