"""Bench: the terminal as a whole. A trading day in virtual time on CPython (simulated hours per wall
second; the 12 h day should take <= 30 s), the same day inside the unix port (peak live heap held by
the firmware and the simulator's churn within the ESP32's 110 KB; target <= 60 KB), and receipts per
charge with posguard's power policy against the naive one on an aged pack."""

from __future__ import annotations

from typing import Any

from posguard_tools import simday


def run(quick: bool) -> dict[str, Any]:
    hours = 2.0 if quick else 12.0
    mpy_hours = 1.0 if quick else 12.0
    day = simday.run_day("devkit-1s", hours=hours, seed=1, cuts=3, runtime="cpython")
    mpy = simday.run_day("devkit-1s", hours=mpy_hours, seed=1, cuts=3, runtime="micropython")
    cmp_hours = 2.0 if quick else 14.0
    pg = simday.run_day("devkit-1s", hours=cmp_hours, seed=7, cuts=0, aged=True, policy="posguard")
    nv = simday.run_day("devkit-1s", hours=cmp_hours, seed=7, cuts=0, aged=True, policy="naive")
    speed = hours / day["wall_s"] if day["wall_s"] else 0.0
    rows = [
        [f"{hours:g} h day on CPython: wall time", f"{day['wall_s']:.1f} s", "12 h in <= 30 s"],
        ["simulated hours per wall second", f"{speed:.2f}", ">= 0.4"],
        [f"{mpy_hours:g} h day on the unix port: wall time", f"{mpy['wall_s']:.1f} s", ""],
        ["peak live heap on the unix port", f"{mpy['heap_peak_bytes'] / 1024:.1f} KB", "<= 60 KB"],
        ["sales lost (CPython / unix port)", f"{len(day['lost'])} / {len(mpy['lost'])}", "0"],
        ["brownouts during printing (CPython / unix port)",
         f"{day['brownouts_printing']} / {mpy['brownouts_printing']}", "0"],
        ["interrupted paid sales reprinted once",
         f"{day['interrupted_reprinted_once']} of {day['interrupted_paid']}", "all"],
        [f"receipts per charge, aged pack, {cmp_hours:g} h: posguard", str(pg["receipts_per_charge"]), ""],
        [f"receipts per charge, aged pack, {cmp_hours:g} h: naive", str(nv["receipts_per_charge"]), ""],
        ["brownouts during printing: posguard / naive", f"{pg['brownouts_printing']} / {nv['brownouts_printing']}",
         "0 / -"],
        ["sales lost: posguard / naive", f"{len(pg['lost'])} / {len(nv['lost'])}", "0 / -"],
    ]
    keep = ("hours", "wall_s", "approved", "receipts_original", "receipts_copy", "lost", "brownouts_printing",
            "interrupted_paid", "interrupted_reprinted_once", "receipts_per_charge", "soc_end_pct",
            "soc_last_receipt_pct", "heap_peak_bytes", "refused", "boots")
    data = {name: {k: r.get(k) for k in keep} for name, r in
            (("cpython_day", day), ("micropython_day", mpy), ("aged_posguard", pg), ("aged_naive", nv))}
    return {"title": "terminal: trading day, heap, policy", "rows": rows, "data": data}
