"""Bench section "fleet": `posguard sim --fleet` timing and what the fleet view flagged (docs/fleet.md).
The issue's target is 20 terminals x 12 h in <= 120 s wall on this machine's 2 cores; that run takes far
longer today (docs/fleet.md "Not done yet"), so the full size here is 20 terminals x 1 h until it is fixed;
quick: 4 terminals x 0.5 h. Wall time on a shared machine depends on what else runs, so the section also
gives the CPU seconds the terminals' days took (the sum over the workers) and what that makes the target
run on two otherwise idle cores: 240 terminal-hours at the measured CPU per terminal-hour, halved."""

from __future__ import annotations

from typing import Any

from posguard_tools import fleet_sim


def run(quick: bool) -> dict[str, Any]:
    n, hours = (4, 0.5) if quick else (20, 1.0)
    rep = fleet_sim.run_fleet(n, hours)
    ts = rep["terminals"]
    ran_out = [t for t in ts if t["ran_out_h"] is not None]
    flagged = [t for t in ts if t["flagged"].get("dies before close") is not None]
    warned_first = [t for t in ran_out if (t["flagged"].get("dies before close") or 1e9) < t["ran_out_h"]]
    per_h = rep["cpu_s"] / (n * hours)
    rows: list[list[Any]] = [
        [f"{n} terminals x {hours:g} h, wall", f"{rep['wall_s']} s", "(20 x 12 h: <= 120 s, not met yet)"],
        ["... CPU of the terminals' days (sum over workers)", f"{rep['cpu_s']} s", ""],
        ["CPU per simulated terminal-hour", f"{per_h:.2f} s", "<= 1.0 s for the target"],
        ["20 x 12 h on 2 idle cores at that rate (projected)", f"{per_h * 240 / 2:.0f} s", "<= 120 s"],
        ["MQTT messages the fleet view received", rep["messages"], ""],
        ["terminals that ran out before closing", len(ran_out), ""],
        ["... flagged 'dies before close' before they ran out", len(warned_first), f"{len(ran_out)}"],
        ["terminals flagged 'dies before close'", len(flagged), ""],
        ["terminals flagged 'replace battery'", sum(1 for t in ts if "replace battery" in t["flagged"]), ""],
        ["sales lost / brownouts while printing", f"{sum(t['lost'] for t in ts)} / "
                                                  f"{sum(t['brownouts_printing'] for t in ts)}", "0 / 0"],
    ]
    return {"title": "Fleet: simulated terminals against one broker", "rows": rows, "data": rep}
