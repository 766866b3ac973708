"""A short seeded trading day on both runtimes: 0 lost sales, 0 brownouts during printing, every
interrupted paid sale reprinted exactly once as a marked copy (judged from the printer's output and
the journal on flash, not from the firmware's own word)."""

from __future__ import annotations

import importlib
from typing import Any

from posguard_tools import report, simday

sim_day = importlib.import_module("sim_day")  # simulator code (MicroPython subset, untyped)


def _check_day(rep: dict[str, Any]) -> None:
    assert rep["outcome"] == "time up", rep["outcome"]
    assert report.verdict(rep) == [], report.verdict(rep)
    assert rep["lost"] == []
    assert rep["brownouts_printing"] == 0
    assert rep["interrupted_paid"] == rep["interrupted_reprinted_once"]
    assert rep["interrupted_paid"] >= 1, "no cut landed on a paid sale: the day proves nothing"
    assert rep["approved"] >= 10
    # every paid sale is on paper once (original or, if interrupted, one copy) or still queued
    assert rep["receipts_original"] + rep["receipts_copy"] + len(rep["pending_reprint"]) >= rep["approved"]
    assert rep["counts"]["bad_lines_refused"] == rep["counts"]["bad_lines_sent"] == 3
    assert rep["crash_log"] == []


def test_short_day_on_cpython() -> None:
    rep = simday.run_day("devkit-1s", hours=1.5, seed=4, cuts=3, runtime="cpython")
    _check_day(rep)
    assert len(rep["series"]) >= 80
    assert set(rep["samples"]) >= {"original"}


def test_short_day_on_the_unix_port_within_the_heap() -> None:
    rep = simday.run_day("devkit-1s", hours=1.0, seed=4, cuts=3, runtime="micropython")
    _check_day(rep)
    # The firmware's live heap plus the simulator's churn inside the same 110 KB budget (the bench
    # reports the figure against the 60 KB target).
    assert 0 < rep["heap_peak_bytes"] <= 96 * 1024, rep["heap_peak_bytes"]


def test_naive_policy_day_runs_side_by_side() -> None:
    rep = simday.run_day("devkit-1s", hours=0.5, seed=2, cuts=0, policy="naive", runtime="cpython")
    assert rep["policy"] == "naive" and rep["approved"] >= 3
    assert rep["lost"] == []


def _text(s: bytes) -> tuple[str, int, tuple[tuple[bytes, Any], ...]]:
    return ("text", 0, ((s, None),))


def test_receipt_tracker_tells_a_copy_top_from_the_previous_copys_bottom() -> None:
    dup, note = b"*** DUPLICATE ***", b"Reprinted after power loss"
    body = [b"POSGUARD", b"devkit-1s", b"Sale      12", b"Time  x", b"Paid by  card"]
    recs = [_text(x) for x in [dup, note, *body[:2], b"Sale      12", *body[3:], note, dup]]
    recs += [_text(x) for x in [b"POSGUARD", b"devkit-1s", b"Sale      13", b"Paid by  cash", b"Thank you"]]
    recs += [_text(x) for x in [b"*** VOID ***", b"POSGUARD", b"devkit-1s", b"Sale      14", b"a", b"b", b"c"]]
    recs += [_text(x) for x in [b"POSGUARD", b"devkit-1s", b"Sale      15", b"Item"]]  # cut mid-receipt
    got = sim_day.parse_receipts(recs)
    assert got == [(12, "duplicate", True), (13, "original", True), (14, "void", True), (15, "original", False)]
