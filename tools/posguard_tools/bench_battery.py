"""Bench section `battery`: the issue's figures on the reference trace, the simulator's fit, and receipts
per charge and brownouts of posguard's policy against naive fixed-threshold policies on simulated packs
(fresh, aged, cold) for both board profiles."""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from typing import Any

from posguard_tools import battery_sim, paths, replay_metrics

# Naive policies: print while the raw pack reading (no load compensation) is above a fixed per-cell
# threshold, always at the default heat. 3.3 V is a common "low battery" level; 3.1 V sits just above
# the 3.0 V per-cell brownout of both profiles.
NAIVE_V_CELL = (3.3, 3.1)
CONDITIONS = {
    "fresh 25C": {},
    "aged 2xR 80%": {"r_growth": 2.0, "fade": 0.2},
    "cold 0C": {"temp_c": 0.0},
}


def _model_rms_mv(tr: dict[str, list[float]]) -> float:
    paths.use_simulated_hardware()
    import sim_battery

    cell = sim_battery.Battery(cells=1, soc=1.0)
    t, i, v = tr["t_s"], tr["i_a"], tr["v_cell"]
    se = (cell.terminal_v(i[0]) - v[0]) ** 2
    for k in range(1, len(t)):
        cell.step(t[k] - t[k - 1], i[k - 1])
        se += (cell.terminal_v(i[k]) - v[k]) ** 2
    return 1000 * math.sqrt(se / len(t))


def _plot(tr: dict[str, list[float]], out: list[dict[str, Any]], path: str) -> str:
    """SoC estimate vs the trace's soc_usable, and where receipts were allowed (out/battery_replay.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_h = [t / 3600 for t in tr["t_s"]]
    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    a.plot(t_h, [s * 100 for s in tr["soc_usable"]], label="trace soc_usable", lw=2)
    a.plot(t_h, [float(o["soc_pct"]) for o in out], label="posguard soc_pct", lw=1)
    a.set_ylabel("SoC %")
    a.legend()
    b.plot(t_h, tr["v_cell"], lw=0.5, label="v_cell")
    allowed = [tr["v_cell"][k] if int(out[k]["can_print"]) else float("nan") for k in range(len(out))]
    b.plot(t_h, allowed, lw=0.5, label="can_print = 1")
    b.axhline(2.5, color="k", lw=0.5)
    b.set_ylabel("V per cell")
    b.set_xlabel("hours")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _one_run(job: tuple[str, str, str, float, bool, float]) -> dict[str, Any]:
    profile, cond, policy, naive_v, heat_scaling, soc0 = job
    w = battery_sim.SimWorld(profile, soc=soc0, **CONDITIONS[cond])  # type: ignore[arg-type]
    try:
        o = battery_sim.run_discharge(w, policy, naive_v_cell=naive_v, heat_scaling=heat_scaling)
    finally:
        w.close()
    d = asdict(o)
    d.update(profile=profile, condition=cond, policy=_label(policy, naive_v, heat_scaling))
    return d


def _label(policy: str, naive_v: float, heat_scaling: bool) -> str:
    if policy == "naive":
        return f"naive {naive_v:.1f} V/cell"
    return "posguard" if heat_scaling else "posguard, no heat scaling"


def run(quick: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    tr = replay_metrics.load_trace()
    # The trace's printer is a fixed-current load (2.0 A printing): replay it as that, on devkit-1s.
    prof = battery_sim.trace_printer_profile(json.loads(paths.board_profile("devkit-1s").read_text()))

    rms = _model_rms_mv(tr)
    rows.append(["sim battery model vs trace, RMS", f"{rms:.2f} mV", "<= 20 mV"])
    data["model_rms_mv"] = rms

    for cutoff, label in ((2.5, "trace cutoff 2.5 V"), (None, "devkit-1s brownout 3.0 V")):
        out = replay_metrics.replay_trace(prof, tr, cutoff)
        f = replay_metrics.figures(tr, out, 2.5 if cutoff else prof["power"]["brownout_v"], soc_truth=cutoff == 2.5)
        data[f"replay {label}"] = asdict(f)
        if cutoff == 2.5:
            paths.OUT.mkdir(parents=True, exist_ok=True)
            data["plot"] = _plot(tr, out, str(paths.OUT / "battery_replay.png"))
            rows.append([f"replay ({label}): SoC RMS error", f"{f.soc_rms:.2f} %", "<= 3 %"])
            rows.append([f"replay ({label}): SoC max error", f"{f.soc_max:.2f} %", ""])
            rows.append([f"replay ({label}): SoC max error, last 20 %", f"{f.soc_max_last20:.2f} %", ""])
            rows.append([f"replay ({label}): resistance error max / p95",
                         f"{f.r_err_max_pct:.1f} / {f.r_err_p95_pct:.1f} % ({f.r_events} steps)", "<= 10 %"])
        rows.append([f"replay ({label}): false allows", f.false_allows, "0"])
        rows.append([f"replay ({label}): SoC unused at first refusal", f"{f.unused_pct:.2f} %", "<= 2 %"])

    profiles = ["devkit-1s"] if quick else ["devkit-1s", "pos-2s"]
    conds = ["fresh 25C", "aged 2xR 80%"] if quick else list(CONDITIONS)
    soc0 = 0.3 if quick else 1.0
    jobs: list[tuple[str, str, str, float, bool, float]] = []
    for p in profiles:
        for c in conds:
            jobs.append((p, c, "posguard", 0.0, True, soc0))
            if not quick:
                jobs.append((p, c, "posguard", 0.0, False, soc0))
            for v in NAIVE_V_CELL:
                jobs.append((p, c, "naive", v, False, soc0))
    with ProcessPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(_one_run, jobs))
    data["policies"] = results
    what = "receipts per charge" if soc0 >= 1.0 else f"receipts from {soc0:.0%} charge"
    for r in results:
        target = "0 brownouts" if r["policy"].startswith("posguard") else ""
        rows.append([f"{r['profile']} {r['condition']}, {r['policy']}: {what} / brownouts",
                     f"{r['receipts']} / {r['brownouts']}", target])
    data["seconds"] = time.perf_counter() - t0
    return {"title": "battery: state of charge, health and power policy", "rows": rows, "data": data}
