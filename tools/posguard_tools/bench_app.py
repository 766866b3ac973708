"""Bench: the terminal as a whole. A trading day in virtual time on CPython (simulated hours per wall
second; the 12 h day should take <= 30 s), the same day inside the unix port (peak live heap held by
the firmware and the simulator's churn within the ESP32's 110 KB; target <= 60 KB), the default `make sim`
day's battery story (warning, refusal, charger, unused charge at the first refusal against the simulator's
own limit), and receipts per charge with posguard's power policy against the naive one on every pack preset
of the cell family (no charger: the day runs the pack out)."""

from __future__ import annotations

from typing import Any

from posguard_tools import cmd_sim, simday

PACK_SOC = 0.6  # the preset days open at 60 %: every preset runs out before the close


def _story_rows(rep: dict[str, Any]) -> list[list[str]]:
    w = rep.get("first_warning")
    f = rep.get("first_battery_refusal")
    d = f"story day ({rep['hours']:g} h from {rep['soc_start_pct']:g} %)"
    return [
        [f"{d}: first low-battery warning", "none" if not w else f"{w[0]:.2f} h \"{w[1]}\"", "before refusal"],
        [f"{d}: first refusal for battery", "none" if not f else f"{f[0]:.2f} h (pack at {f[1]:.1f} %)", ""],
        [f"{d}: charge unused then (sim's own limit)", "-" if not f else f"{f[3]:.2f} % ({f[2]} receipts)",
         "<= 2 %"],
        [f"{d}: sales refused for battery", str(rep["refused"].get("BATTERY_CRITICAL", 0)), ""],
        [f"{d}: on charger / sales completed on it",
         f"{rep.get('charger_h', 0):.1f} h / {rep.get('approved_after_charger', 0)}", ""],
        [f"{d}: brownouts / sales lost", f"{rep['brownouts']} / {len(rep['lost'])}", "0 / 0"],
    ]


def run(quick: bool) -> dict[str, Any]:
    hours = 2.0 if quick else 12.0
    mpy_hours = 1.0 if quick else 12.0
    day = simday.run_day("devkit-1s", hours=hours, seed=1, cuts=3, runtime="cpython", soc=1.0)
    mpy = simday.run_day("devkit-1s", hours=mpy_hours, seed=1, cuts=3, runtime="micropython", soc=1.0)
    # the default `make sim` day (quick: a short morning that runs out, as the test's)
    story = (simday.run_day("devkit-1s", hours=2.5, seed=3, cuts=0, soc=0.16) if quick else
             simday.run_day("devkit-1s", hours=12.0, seed=1, cuts=3, soc=cmd_sim.DEFAULT_SOC_PCT / 100))
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
        *_story_rows(story),
    ]
    keep = ("hours", "wall_s", "approved", "receipts_original", "receipts_copy", "lost", "brownouts",
            "brownouts_printing", "interrupted_paid", "interrupted_reprinted_once", "receipts_per_charge",
            "soc_end_pct", "soc_last_receipt_pct", "heap_peak_bytes", "refused", "boots", "pack", "soc_start_pct",
            "first_warning", "first_battery_refusal", "charger_h", "approved_after_charger")
    data: dict[str, Any] = {name: {k: r.get(k) for k in keep} for name, r in
                            (("cpython_day", day), ("micropython_day", mpy), ("default_story_day", story))}
    # receipts per charge on each preset, posguard vs naive, no charger
    cmp_hours = 3.0 if quick else 14.0
    soc = 0.2 if quick else PACK_SOC
    packs = ("fresh", "worn70") if quick else cmd_sim.PACKS
    for pack in packs:
        res = {pol: simday.run_day("devkit-1s", hours=cmp_hours, seed=7, cuts=0, policy=pol, soc=soc, pack=pack,
                                   charger=False) for pol in ("posguard", "naive")}
        pg, nv = res["posguard"], res["naive"]
        rows += [
            [f"{pack}, {cmp_hours:g} h from {soc:.0%}: receipts per charge, posguard / naive",
             f"{pg['receipts_per_charge']} / {nv['receipts_per_charge']}", ""],
            [f"{pack}: brownouts during printing, posguard / naive",
             f"{pg['brownouts_printing']} / {nv['brownouts_printing']}", "0 / -"],
            [f"{pack}: sales lost, posguard / naive", f"{len(pg['lost'])} / {len(nv['lost'])}", "0 / -"],
        ]
        for pol, r in res.items():
            data[f"{pack}_{pol}"] = {k: r.get(k) for k in keep}
    return {"title": "terminal: trading day, heap, battery story, policy per pack", "rows": rows, "data": data}
