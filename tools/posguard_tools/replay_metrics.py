"""Figures of a replayed reference trace, with issue 11's definitions written once here.

For a trace and a cutoff V (per cell):
- a *receipt* is a row where `printing` goes 0 -> 1 (it lasts while `printing` stays 1); it is *feasible*
  when `v_cell` stays >= V over all its rows;
- *false allow*: `can_print` was 1 on the row before a receipt that was not feasible;
- *unused*: `soc_usable` at the first feasible receipt refused (`can_print` 0 on the row before it) minus
  `soc_usable` at the last feasible receipt, in %; 0 when none was refused;
- *merchant SoC truth*: with Q(t) the charge drawn so far and Q_end the charge drawn at the start of the
  last feasible receipt, truth(t) = max(0, Q_end - Q(t)) / Q_end;
- SoC error: `soc_pct` minus the merchant truth, RMS and max over the rows after the first 10 minutes
  (a row whose `soc_pct` is empty there counts as a 100 % error);
- SoH error: `soh_pct` on the last row minus the trace's capacity share (traces/README.md), in points.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posguard_tools import cmd_replay, paths, traces

TRACE = traces.FRESH_25C
SETTLE_S = 600.0  # the SoC error is scored after the first 10 minutes
# Capacity share (state of health by capacity) of each reference trace (traces/README.md).
CAPACITY_SHARE = {"fresh_25c": 1.00, "fresh_m10c": 1.00, "aged85_5c": 0.85, "aged90_35c_busy": 0.90,
                  "worn70_15c": 0.70}
FRESH = ("fresh_25c", "fresh_m10c")
ACCEPT_CUTOFF_V = 3.0  # issue 11: devkit-1s, 1 cell, 3.0 V per cell


def load_trace(path: str | Path = TRACE) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {k: [] for k in ("t_s", "i_a", "v_cell", "temp_c", "soc_usable", "printing")}
    with traces.open_text(path) as f:
        for row in csv.DictReader(f):
            for k, v in cols.items():
                v.append(float(row[k]))
    return cols


def replay_trace(profile: dict[str, Any], tr: dict[str, list[float]], cutoff_v_cell: float | None,
                 v_noise_v: float = 0.0, seed: int = 1, cells: int | None = None,
                 with_current: bool = True) -> list[dict[str, Any]]:
    """The trace through cmd_replay.replay (the path `posguard replay` takes), i_a included unless
    with_current is False (then the board's load model)."""
    import random

    rng = random.Random(seed)
    cols = ["t_s", "v_cell", "printing", "temp_c"] + (["i_a"] if with_current else [])
    rows = []
    for k, (t, v, p, tc) in enumerate(zip(tr["t_s"], tr["v_cell"], tr["printing"], tr["temp_c"], strict=True)):
        vv = v + (rng.gauss(0.0, v_noise_v) if v_noise_v else 0.0)
        row = [repr(t), repr(vv), repr(p), repr(tc)]
        if with_current:
            row.append(repr(tr["i_a"][k]))
        rows.append(row)
    return list(cmd_replay.replay(profile, rows, cols, cells, cutoff_v_cell))


def replay_named(name: str, board: str = "devkit-1s", cutoff_v_cell: float = ACCEPT_CUTOFF_V,
                 cells: int = 1) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    """Replay reference trace `name` as the issue's acceptance does: `posguard replay --board devkit-1s
    --cells 1 --cutoff-v-cell 3.0 --trace NAME`."""
    tr = load_trace(name)
    prof = cmd_replay.load_profile(board)
    return tr, replay_trace(prof, tr, cutoff_v_cell, cells=cells)


# Traces of the same family that are not in the repository, made by the simulator's pack model (fitted on
# the five reference traces by battery_fit.py): capacity share, kinetics share, contact ohm, ambient C,
# idle A, receipt A, receipt s, period s. The first is the worst case (an aged cell at 10 C, busy).
FAMILY = {
    "aged80_10c_busy": (0.80, 0.5, 0.060, 10.0, 0.35, 2.5, 8, 40),
    "aged85_10c_busy": (0.85, 0.6, 0.050, 10.0, 0.35, 2.5, 8, 40),
    "fresh_0c": (1.0, 1.0, 0.020, 0.0, 0.30, 2.0, 6, 90),
    "worn75_25c": (0.75, 0.45, 0.070, 25.0, 0.25, 2.2, 7, 60),
    "aged90_m5c_slow": (0.90, 0.7, 0.040, -5.0, 0.30, 2.0, 6, 150),
    "fresh_40c_busy": (1.0, 1.0, 0.020, 40.0, 0.35, 2.5, 8, 40),
}


def family_trace(cap: float, kin: float, contact: float, temp_c: float, idle_a: float, rx_a: float, rx_s: int,
                 period_s: int) -> dict[str, list[float]]:
    """A discharge of the simulator's pack from full to 2.5 V under a POS duty cycle, 1 s rows, in the
    reference traces' columns (soc_usable: the share of the charge still to be drawn before 2.5 V)."""
    paths.use_simulated_hardware()
    import sim_battery

    b = sim_battery.Battery(soc=1.0, temp_c=temp_c, cap_share=cap, kinetics=kin, contact_ohm=contact)
    rows: list[list[float]] = []
    t = 0
    while t < 30 * 3600:
        printing = t >= period_s and t % period_s < rx_s
        a = rx_a if printing else idle_a
        v = b.terminal_v(a)
        if v < 2.5:
            break
        rows.append([float(t), a, v, b.cell_c, 0.0, 1.0 if printing else 0.0])
        b.step(1.0, a)
        t += 1
    total = sum(r[1] for r in rows) / 3600.0
    q = 0.0
    for r in rows:
        r[4] = (total - q) / total
        q += r[1] / 3600.0
    return {k: [r[j] for r in rows] for j, k in enumerate(("t_s", "i_a", "v_cell", "temp_c", "soc_usable", "printing"))}


def family_figures(name: str) -> Figures:
    """The acceptance figures on simulated family trace `name` (FAMILY)."""
    args = FAMILY[name]
    tr = family_trace(*args)
    out = replay_trace(cmd_replay.load_profile("devkit-1s"), tr, ACCEPT_CUTOFF_V, cells=1)
    return figures(tr, out, ACCEPT_CUTOFF_V, args[0])


@dataclass
class Pulse:
    start: int  # first row of the pulse (printing 0 -> 1)
    end: int  # one past the last row
    v_min: float


def pulses(tr: dict[str, list[float]]) -> list[Pulse]:
    """Receipts: rows where printing goes 0 -> 1 (a trace that starts printing has no receipt at row 0)."""
    out = []
    p, v = tr["printing"], tr["v_cell"]
    n = len(p)
    for k in range(1, n):
        if p[k] >= 0.5 > p[k - 1]:
            j = k
            while j < n and p[j] >= 0.5:
                j += 1
            out.append(Pulse(k, j, min(v[k:j])))
    return out


def charge_drawn(tr: dict[str, list[float]]) -> list[float]:
    """Q(t) in Ah: the current of each row held until the next row's time."""
    t, i = tr["t_s"], tr["i_a"]
    q = [0.0]
    for k in range(1, len(t)):
        q.append(q[-1] + i[k - 1] * (t[k] - t[k - 1]) / 3600.0)
    return q


def merchant_truth(tr: dict[str, list[float]], cutoff_v_cell: float) -> list[float]:
    """truth(t) in %: max(0, Q_end - Q(t)) / Q_end, Q_end at the start of the last feasible receipt."""
    q = charge_drawn(tr)
    feasible = [p for p in pulses(tr) if p.v_min >= cutoff_v_cell]
    if not feasible:
        return [0.0] * len(q)
    q_end = q[feasible[-1].start]
    return [max(0.0, q_end - x) / q_end * 100.0 for x in q]


def _f(x: Any) -> float | None:
    if x is None or x == "":
        return None
    return float(x)


@dataclass
class Figures:
    receipts: int
    feasible: int
    false_allows: int
    refused_feasible: int
    unused_pct: float
    first_refusal_soc: float  # soc_usable (%) at the first feasible receipt refused (nan: none)
    last_feasible_soc: float
    soc_rms: float  # vs the merchant truth, after SETTLE_S
    soc_max: float
    soc_max_all: float  # over every row with a soc_pct (the first readings included)
    soh_end: float
    soh_err: float  # soh_pct at the end minus the capacity share (points); nan without a share
    replace_end: bool
    r_end_mohm: float


def figures(tr: dict[str, list[float]], out: list[dict[str, Any]], cutoff_v_cell: float,
            capacity_share: float | None = None) -> Figures:
    n = len(tr["t_s"])
    ps = pulses(tr)
    allowed = [_f(o["can_print"]) == 1 for o in out]
    feasible = [p.v_min >= cutoff_v_cell for p in ps]
    false_allows = sum(1 for p, ok in zip(ps, feasible, strict=True) if not ok and allowed[p.start - 1])
    refused = [p for p, ok in zip(ps, feasible, strict=True) if ok and not allowed[p.start - 1]]
    last_ok = [p for p, ok in zip(ps, feasible, strict=True) if ok]
    su = [s * 100.0 for s in tr["soc_usable"]]
    last_soc = su[last_ok[-1].start] if last_ok else float("nan")
    if refused and last_ok:
        first_ref = su[refused[0].start]
        unused = first_ref - last_soc
    else:
        first_ref = float("nan")
        unused = 0.0
    truth = merchant_truth(tr, cutoff_v_cell)
    errs = []
    errs_all = []
    for k in range(n):
        s = _f(out[k]["soc_pct"])
        if s is not None:
            errs_all.append(abs(s - truth[k]))
        if tr["t_s"][k] >= SETTLE_S:
            errs.append(100.0 if s is None else s - truth[k])
    soh = _f(out[-1]["soh_pct"])
    soh_end = float("nan") if soh is None else soh
    return Figures(
        receipts=len(ps),
        feasible=len(last_ok),
        false_allows=false_allows,
        refused_feasible=len(refused),
        unused_pct=unused,
        first_refusal_soc=first_ref,
        last_feasible_soc=last_soc,
        soc_rms=math.sqrt(sum(e * e for e in errs) / len(errs)) if errs else float("nan"),
        soc_max=max(abs(e) for e in errs) if errs else float("nan"),
        soc_max_all=max(errs_all) if errs_all else float("nan"),
        soh_end=soh_end,
        soh_err=soh_end - capacity_share * 100.0 if capacity_share is not None else float("nan"),
        replace_end=_f(out[-1]["replace_battery"]) == 1,
        r_end_mohm=_f(out[-1]["r_int_mohm"]) or float("nan"),
    )


def named_figures(name: str) -> Figures:
    """The acceptance figures of reference trace `name` (issue 11's replay)."""
    paths.use_simulated_hardware()
    tr, out = replay_named(name)
    return figures(tr, out, ACCEPT_CUTOFF_V, CAPACITY_SHARE.get(name))
