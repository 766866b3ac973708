"""The day's verdict fails loudly on heap trouble: a crash-log entry (a task that died, such as a
MemoryError while opening a sale) or a peak heap over the working-data budget makes `posguard sim`
print FAILED and exit non-zero, like a lost sale does. Built from report dicts: no day is run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from posguard_tools import cmd_sim, report, simday
from posguard_tools.deploy_heapcheck import DATA_HEAP_BYTES

_MEMORY_ERROR = "2000-01-01 00:43:10 host:open MemoryError: memory allocation failed, allocating 2032 bytes"


def clean_report(**changes: Any) -> dict[str, Any]:
    rep: dict[str, Any] = {
        "policy": "posguard", "runtime": "micropython", "board": "devkit-1s", "hours": 2.0, "seed": 1,
        "outcome": "time up", "lost": [], "brownouts_printing": 0, "printed_twice": [], "brownouts": 0,
        "interrupted_paid": 1, "interrupted_reprinted_once": 1, "printer_dropped_bytes": 0, "crash_log": [],
        "heap_peak_bytes": 50 * 1024, "wall_s": 60.0,
    }
    rep.update(changes)
    return rep


def test_a_clean_day_passes() -> None:
    assert report.verdict(clean_report()) == []
    assert report.verdict(clean_report(heap_peak_bytes=DATA_HEAP_BYTES)) == []  # at the budget: still in
    assert report.verdict(clean_report(runtime="cpython", heap_peak_bytes=None)) == []  # no heap figure


def test_a_crash_log_entry_fails_the_day() -> None:
    bad = report.verdict(clean_report(crash_log=[_MEMORY_ERROR]))
    assert len(bad) == 1 and "1 crash-log entries" in bad[0] and "MemoryError" in bad[0], bad


def test_a_heap_peak_over_the_budget_fails_the_day() -> None:
    bad = report.verdict(clean_report(heap_peak_bytes=DATA_HEAP_BYTES + 1600))
    assert len(bad) == 1 and "peak heap 61.6 KB" in bad[0], bad


@pytest.mark.parametrize("changes", [{"crash_log": [_MEMORY_ERROR] * 8}, {"heap_peak_bytes": 63 * 1024}])
def test_posguard_sim_exits_non_zero_on_heap_trouble(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    changes: dict[str, Any]) -> None:
    monkeypatch.setattr(simday, "run_day", lambda *a, **k: clean_report(**changes))
    monkeypatch.setattr(report, "write_outputs", lambda reports, out, profile: [])
    parser = argparse.ArgumentParser()
    cmd_sim.add_arguments(parser)
    args = parser.parse_args(["--hours", "2", "--runtime", "micropython", "--out", str(tmp_path)])
    assert cmd_sim.run(args) == 1
    assert "FAILED:" in capsys.readouterr().out
    monkeypatch.setattr(simday, "run_day", lambda *a, **k: clean_report())
    assert cmd_sim.run(args) == 0
