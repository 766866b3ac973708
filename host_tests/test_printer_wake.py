"""A paid sale's receipt cut by the SHUTDOWN deep sleep (the power-fail input's safe stop, taken while
the receipt prints), the terminal woken by the charger, and a printer that does not answer for minutes
after the wake (longer than Printer.pause_limit_s, so the recovered copy's first job fails "offline").
The journal owes that receipt: it must come back while the terminal trades, as soon as the printer
answers (no reboot needed), print once as a marked copy, before any new sale's receipt, and no new sale
is taken while the printer cannot print."""

from __future__ import annotations

import sys
from pathlib import Path

from test_app import Counter, sale_script

_SID = 41
_CUT_S = 30.5  # the original prints from about 29 s (after the boot's 20 s rest)
_CHARGER_S = 90.0  # the merchant plugs the charger: the wake
_ANSWERS_S = 520.0  # the printer answers status again (silent since the cut)


def test_copy_owed_after_a_deep_sleep_prints_once_when_the_printer_answers(tmp_path: Path) -> None:
    c = Counter(tmp_path)
    day = c.day
    pr = day.printer
    pins = day.profile["pins"]
    done: list[tuple[int, str, bool, float]] = []  # (sale, kind, complete, when it started on paper, s)
    day.tracker.commit = lambda sid, kind, complete: done.append((sid, kind, complete, day.receipt_since_us / 1e6))
    sale_script(c, _SID, 25)

    def power_fail() -> None:
        pr.silent = True
        day.board.drive_pin(pins["power_fail"], 0)  # the supervisor: safe stop (PowerMonitor.shutdown)

    day.clock.call_at_us(int(_CUT_S * 1e6), power_fail)
    day.clock.call_at_us(int(40e6), lambda: day.board.drive_pin(pins["power_fail"], 1))
    day.clock.call_at_us(int(_CHARGER_S * 1e6), lambda: day.pack.set_charger(day.profile["power"]["charge_a"]))

    def answers() -> None:
        pr.silent = False

    day.clock.call_at_us(int(_ANSWERS_S * 1e6), answers)
    held: dict[str, int] = {}

    def look() -> None:  # the firmware's printer worker, just before the printer answers again
        jobs = sys.modules["posguard.app"].current.jobs
        held.update(failed=jobs.counts["failed"], queued=jobs.pending(), boots=day.board.boots)

    day.clock.call_at_us(int((_ANSWERS_S - 1) * 1e6), look)
    during = c.at(_ANSWERS_S - 30, {"op": "open", "id": 42, "items": [{"name": "Tea", "price": 300}]})
    sale_script(c, 43, _ANSWERS_S + 15)  # a new sale once the terminal sees the printer back
    after = c.at(_ANSWERS_S + 60, {"op": "sale", "id": _SID})
    c.run(_ANSWERS_S + 70)

    assert [r[1] for r in day.board.resets] == ["DeepSleep"], day.board.resets
    assert (_SID, "original", False) == done[0][:3], done  # the sleep cut the original mid-receipt
    full = [r[:3] for r in done if r[2]]
    # the owed copy first, once, marked; then the new sale's original
    assert full == [(_SID, "duplicate", True), (43, "original", True)], done
    copy_at = [r[3] for r in done if r[:3] == (_SID, "duplicate", True)][0]
    # bound: the worker re-polls a failed job's printer every 5 s (printjobs._RETRY_S), then the pacer
    # books a full buffer (about 4 s on devkit-1s) before the first byte
    assert _ANSWERS_S < copy_at < _ANSWERS_S + 12, copy_at
    # the copy's first job failed ("offline" after pause_limit_s) and stayed queued, in this boot
    assert held == {"failed": 1, "queued": 1, "boots": 2}, held
    assert c.replies[during]["err"] == "PRINTER_FAULT", c.replies[during]
    assert c.replies[after]["state"] == "CLOSED"
