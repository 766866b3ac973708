"""What `make test` runs: every gate CI checks, each to the end, then one summary a person can read.

    python -m posguard_tools.check [--fast] [--skip STAGE] [-- PYTEST ARGS...]

Stages: ruff (everything), mypy (host code), the MicroPython gate (mpy-cross -march=xtensawin over every
firmware file, then every firmware module imported on the unix port with the ESP32's heap), pytest under
CPython, which also drives the MicroPython suite (host_tests/mpy) on the unix port.
Each tool's result is read from its machine-readable output (ruff JSON, mypy's exit status and error
lines, pytest's JUnit XML), never scraped from text meant for people.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from posguard_tools import mpgate, paths

MYPY_TARGETS = ["tools/posguard_tools", "tools/posguard_client", "host_tests"]
STAGES = ("ruff", "mypy", "gate", "pytest")
console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    console.print("$ " + " ".join(cmd), markup=False)
    return subprocess.run(cmd, cwd=paths.ROOT, capture_output=True, text=True)


def stage_ruff(_: argparse.Namespace) -> tuple[bool, str]:
    r = _run([paths.venv_bin("ruff"), "check", "--output-format", "json", "."])
    try:
        findings = json.loads(r.stdout or "[]")
    except ValueError:
        print(r.stdout + r.stderr)
        return False, "ruff did not run: " + (r.stderr.strip().splitlines() or ["no output"])[-1]
    for f in findings:
        loc = f.get("location") or {}
        print(f"  {f['filename']}:{loc.get('row')}:{loc.get('column')}: {f['code']} {f['message']}")
    return r.returncode == 0 and not findings, "clean" if not findings else f"{len(findings)} findings"


def stage_mypy(_: argparse.Namespace) -> tuple[bool, str]:
    r = _run([paths.venv_bin("mypy"), "--no-error-summary", "--no-pretty", *MYPY_TARGETS])
    errors = [ln for ln in r.stdout.splitlines() if ": error:" in ln]
    for ln in r.stdout.splitlines() + r.stderr.splitlines():
        print("  " + ln)
    if r.returncode == 0:
        return True, "no issues in " + " ".join(MYPY_TARGETS)
    return False, f"{len(errors)} errors" if errors else "mypy failed: " + (r.stderr.strip() or "see above")


def stage_gate(_: argparse.Namespace) -> tuple[bool, str]:
    console.print("$ python -m posguard_tools.mpgate", markup=False)
    files = mpgate.firmware_files(paths.FIRMWARE)
    cerr = mpgate.compile_errors(paths.FIRMWARE)
    ierr, _costs = mpgate.import_report(paths.FIRMWARE)
    for e in cerr + ierr:
        print("  REJECTED " + e)
    n = len(mpgate.module_names(paths.FIRMWARE))
    code = mpgate.code_heap_bytes(paths.FIRMWARE)
    text = (
        f"{len(files) - len(cerr)}/{len(files)} files compile (xtensawin), "
        f"{n - len(ierr)}/{n} modules import (unix port)"
        + (f"; code in RAM if not frozen: {code // 1024} KB" if code else "")
    )
    print("  " + text, flush=True)
    return not (cerr or ierr), text


def junit_counts(xml_path: Path) -> dict[str, dict[str, int]]:
    """Passed/failed/skipped per runtime from pytest's JUnit XML (the runtime is a test property the
    MicroPython suite sets; everything else ran on CPython)."""
    out = {rt: {"passed": 0, "failed": 0, "skipped": 0} for rt in ("cpython", "micropython")}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        rt = "micropython" if props.get("runtime") == "micropython" else "cpython"
        if case.find("failure") is not None or case.find("error") is not None:
            out[rt]["failed"] += 1
        elif case.find("skipped") is not None:
            out[rt]["skipped"] += 1
        else:
            out[rt]["passed"] += 1
    return out


def stage_pytest(args: argparse.Namespace) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", f"--junitxml={xml}", "-o", "junit_family=xunit1",
               *(["-x"] if args.fast else []), *args.pytest_args]
        console.print("$ " + " ".join(cmd), markup=False)
        # Streamed, not captured: the suite is the long part and its progress is worth seeing.
        rc = subprocess.run(cmd, cwd=paths.ROOT).returncode
        if not xml.exists():
            return False, f"pytest exited {rc} without a report"
        c = junit_counts(xml)
    parts = [
        f"CPython {c['cpython']['passed']} passed, {c['cpython']['failed']} failed, {c['cpython']['skipped']} skipped",
        f"unix port {c['micropython']['passed']} passed, {c['micropython']['failed']} failed",
    ]
    return rc == 0, "; ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m posguard_tools.check", description="every gate CI checks")
    p.add_argument("--fast", action="store_true", help="stop at the first failing stage and the first failing test")
    p.add_argument("--skip", action="append", choices=STAGES, default=[], help="leave out a stage (repeatable)")
    p.add_argument("pytest_args", nargs="*", help="passed to pytest (put them after --)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stages: dict[str, Callable[[argparse.Namespace], tuple[bool, str]]] = {
        "ruff": stage_ruff, "mypy": stage_mypy, "gate": stage_gate, "pytest": stage_pytest,
    }
    t0 = time.perf_counter()
    results: list[tuple[str, bool, str]] = []
    try:
        for name, fn in stages.items():
            if name in args.skip:
                continue
            console.rule(name)
            ok, text = fn(args)
            results.append((name, ok, text))
            if args.fast and not ok:
                break
    except KeyboardInterrupt:
        console.print("make test interrupted: nothing was changed", markup=False)
        return 130
    table = Table(title=f"posguard make test summary ({time.perf_counter() - t0:.0f} s)", title_justify="left")
    table.add_column("gate")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for name, ok, text in results:
        table.add_row(name, "[green]PASS[/]" if ok else "[red]FAIL[/]", text)
    console.print(table)
    bad = [n for n, ok, _ in results if not ok]
    console.print("ALL GATES PASSED" if not bad else "FAILED: " + ", ".join(bad), markup=False)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
