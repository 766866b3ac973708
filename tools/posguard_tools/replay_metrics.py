"""Figures of a replayed reference trace (issue 4's proof): SoC error, false allows, unused charge,
resistance error. The truth comes from the trace itself: its soc_usable column and its own pulses."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posguard_tools import cmd_replay, traces

TRACE = traces.FRESH_25C


def load_trace(path: Path = TRACE) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {k: [] for k in ("t_s", "i_a", "v_cell", "temp_c", "soc_usable", "printing")}
    with traces.open_text(path) as f:
        for row in csv.DictReader(f):
            for k, v in cols.items():
                v.append(float(row[k]))
    return cols


def replay_trace(profile: dict[str, Any], tr: dict[str, list[float]], cutoff_v_cell: float | None,
                 v_noise_v: float = 0.0, seed: int = 1) -> list[dict[str, Any]]:
    import random

    rng = random.Random(seed)
    cols = ["t_s", "v_cell", "printing", "temp_c"]
    rows = []
    for t, v, p, tc in zip(tr["t_s"], tr["v_cell"], tr["printing"], tr["temp_c"], strict=True):
        vv = v + (rng.gauss(0.0, v_noise_v) if v_noise_v else 0.0)
        rows.append([repr(t), repr(vv), repr(p), repr(tc)])
    return list(cmd_replay.replay(profile, rows, cols, None, cutoff_v_cell))


@dataclass
class Pulse:
    start: int  # first row of the pulse
    end: int  # one past the last row
    v_min: float


def pulses(tr: dict[str, list[float]]) -> list[Pulse]:
    out = []
    p, v = tr["printing"], tr["v_cell"]
    k, n = 0, len(p)
    while k < n:
        if p[k] >= 0.5:
            j = k
            while j < n and p[j] >= 0.5:
                j += 1
            out.append(Pulse(k, j, min(v[k:j])))
            k = j
        else:
            k += 1
    return out


@dataclass
class Figures:
    soc_rms: float
    soc_max: float
    soc_max_last20: float
    false_allows: int
    unused_pct: float
    first_refusal_soc: float
    last_feasible_soc: float
    r_err_max_pct: float
    r_err_p95_pct: float
    r_events: int


def figures(tr: dict[str, list[float]], out: list[dict[str, Any]], cutoff_v_cell: float,
            soc_truth: bool = True) -> Figures:
    n = len(tr["t_s"])
    truth = [s * 100 for s in tr["soc_usable"]]
    err = [float(o["soc_pct"]) - t for o, t in zip(out, truth, strict=True)]
    ps = pulses(tr)
    # For each row, the next real pulse (starting at or after it) tells whether a receipt started then
    # could really finish: the trace's pulse is the receipt.
    nxt_ok: list[bool | None] = [None] * n
    pi = len(ps) - 1
    cur: Pulse | None = None
    for k in range(n - 1, -1, -1):
        while pi >= 0 and ps[pi].start >= k:
            cur = ps[pi]
            pi -= 1
        nxt_ok[k] = None if cur is None else cur.v_min >= cutoff_v_cell
    allowed = [int(o["can_print"]) == 1 for o in out]
    false_allows = sum(1 for k in range(n) if allowed[k] and nxt_ok[k] is False)
    feasible = [p for p in ps if p.v_min >= cutoff_v_cell]
    last_ok = feasible[-1].start if feasible else 0
    # First refusal after the start-up readings (the monitor needs one reading before it answers).
    first_ref = next((k for k in range(n) if not allowed[k] and tr["t_s"][k] > 10), n - 1)
    r_errs = []
    for p in ps[1:]:  # the first pulse starts at t=0 with no idle reading before it
        # The idle row before the current ramp, and the first row at the full pulse current.
        i0 = p.start - 1
        while i0 > 0 and tr["i_a"][i0] > tr["i_a"][i0 - 1] + 1e-9:
            i0 -= 1
        i_idle = tr["i_a"][i0]
        i1 = p.start
        while i1 < p.end - 1 and tr["i_a"][i1] < max(tr["i_a"][p.start:p.end]) - 1e-9:
            i1 += 1
        di = tr["i_a"][i1] - i_idle
        if di < 0.3:
            continue
        r_true = (tr["v_cell"][i0] - tr["v_cell"][i1]) / di * 1000
        r_est = float(out[min(p.end, n - 1)]["r_int_mohm"])
        r_errs.append(abs(r_est - r_true) / r_true * 100)
    r_errs.sort()
    return Figures(
        soc_rms=math.sqrt(sum(e * e for e in err) / n) if soc_truth else float("nan"),
        soc_max=max(abs(e) for e in err) if soc_truth else float("nan"),
        soc_max_last20=max(abs(e) for e, t in zip(err, truth, strict=True) if t <= 20) if soc_truth else float("nan"),
        false_allows=false_allows,
        unused_pct=truth[first_ref] - truth[last_ok],
        first_refusal_soc=truth[first_ref],
        last_feasible_soc=truth[last_ok],
        r_err_max_pct=r_errs[-1] if r_errs else float("nan"),
        r_err_p95_pct=r_errs[int(0.95 * (len(r_errs) - 1))] if r_errs else float("nan"),
        r_events=len(r_errs),
    )
