"""What `make test` runs: every gate CI checks, each to the end, then one summary a person can read.

    python -m posguard_tools.check [--fast] [PYTEST ARGS...]

Stages: ruff (everything), mypy (host code), the MicroPython gate (mpy-cross -march=xtensawin over every
firmware file, then every firmware module imported on the unix port with the ESP32's heap), pytest under
CPython, which also drives the MicroPython suite (host_tests/mpy) on the unix port.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from posguard_tools import mpgate, paths

MYPY_TARGETS = ["tools/posguard_tools", "host_tests"]


def _run(cmd: list[str]) -> tuple[int, str]:
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=paths.ROOT, capture_output=True, text=True)
    out = (r.stdout or "") + (r.stderr or "")
    print(out.rstrip(), flush=True)
    return r.returncode, out


def stage_ruff() -> tuple[bool, str]:
    rc, out = _run([paths.venv_bin("ruff"), "check", "."])
    m = re.search(r"Found (\d+) error", out)
    return rc == 0, "clean" if rc == 0 else f"{m.group(1) if m else 'some'} findings"


def stage_mypy() -> tuple[bool, str]:
    rc, out = _run([paths.venv_bin("mypy"), *MYPY_TARGETS])
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return rc == 0, last


def stage_gate() -> tuple[bool, str]:
    print("$ python -m posguard_tools.mpgate", flush=True)
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


def stage_pytest(extra: list[str]) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "pytest", *extra]
    print("$ " + " ".join(cmd), flush=True)
    # Streamed, not captured: the suite is the long part and its progress is worth seeing.
    p = subprocess.Popen(cmd, cwd=paths.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.stdout is not None
    tail: list[str] = []
    for line in p.stdout:
        sys.stdout.write(line)
        tail.append(line.rstrip())
        del tail[:-40]
    rc = p.wait()
    by_runtime = [
        re.sub(r"\s+", " ", ln.strip()) for ln in tail if " passed, " in ln and ("CPython" in ln or "MicroPython" in ln)
    ]
    final = next((ln.strip("= ") for ln in reversed(tail) if re.search(r"\d+ (passed|failed)", ln)), "no result")
    return rc == 0, "; ".join(by_runtime + [final])


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    results = []
    for name, fn in (("ruff", stage_ruff), ("mypy", stage_mypy), ("micropython gate", stage_gate)):
        print(f"\n=== {name}", flush=True)
        results.append((name, *fn()))
    print("\n=== pytest (CPython, and the unix port through host_tests/mpy)", flush=True)
    results.append(("pytest", *stage_pytest(args)))
    print("\n" + "=" * 100)
    print(f"posguard make test summary ({time.perf_counter() - t0:.0f} s)")
    for name, ok, text in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:18s} {text}")
    bad = [n for n, ok, _ in results if not ok]
    print("=" * 100)
    print("ALL GATES PASSED" if not bad else "FAILED: " + ", ".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
