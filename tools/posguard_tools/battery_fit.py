"""Fit the simulator's equivalent-circuit cell model to a recorded discharge trace.

Provenance of the numbers in host_tests/simhw/sim_battery.py: `python -m posguard_tools.battery_fit`
over tools/posguard_tools/traces/battery_fresh_25c.csv.gz (Chen2020 LG M50 cell, PyBaMM SPMe, 25 C). For fixed RC time
constants the terminal voltage is linear in the OCV table and in R0/R1/R2 (piecewise linear in SoC), so
each (tau1, tau2) pair is one linear least-squares solve; the pair with the least RMS error wins.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt

from posguard_tools import traces

TRACE = traces.FRESH_25C
# Depth of discharge (share of the trace's charge drawn) at which the tables have nodes: denser where
# the OCV curve bends (near full and near empty).
OCV_DOD = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75,
           0.8, 0.84, 0.88, 0.9, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99, 1.0)
R_DOD = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
TAUS1 = (3.0, 5.0, 8.0, 12.0)
TAUS2 = (40.0, 60.0, 90.0, 150.0)

Arr = npt.NDArray[np.float64]


def load_trace(path: Path) -> tuple[Arr, Arr, Arr]:
    t, i, v = [], [], []
    with traces.open_text(path) as f:
        for row in csv.DictReader(f):
            t.append(float(row["t_s"]))
            i.append(float(row["i_a"]))
            v.append(float(row["v_cell"]))
    return np.array(t), np.array(i), np.array(v)


def hat_weights(x: Arr, nodes: Arr) -> Arr:
    idx = np.clip(np.searchsorted(nodes, x) - 1, 0, len(nodes) - 2)
    f = np.clip((x - nodes[idx]) / (nodes[idx + 1] - nodes[idx]), 0.0, 1.0)
    w = np.zeros((len(x), len(nodes)))
    rows = np.arange(len(x))
    w[rows, idx] = 1 - f
    w[rows, idx + 1] = f
    return w


def rc_unit(i: Arr, dt: Arr, tau: float) -> Arr:
    """Branch voltage per ohm, with the current of the previous row held over each interval."""
    u = np.zeros(len(i))
    a = np.exp(-dt / tau)
    for k in range(1, len(i)):
        u[k] = u[k - 1] * a[k] + i[k - 1] * (1 - a[k])
    return u


def fit(path: Path) -> dict[str, object]:
    t, i, v = load_trace(path)
    dt = np.diff(t, prepend=t[0])
    ah = np.concatenate([[0.0], np.cumsum(i[:-1] * dt[1:])]) / 3600.0
    q_ah = float(ah[-1])
    x = ah / q_ah
    wo = hat_weights(x, np.array(OCV_DOD))
    wr = hat_weights(x, np.array(R_DOD))
    best: dict[str, object] | None = None
    best_rms = 1e9
    for t1 in TAUS1:
        u1 = rc_unit(i, dt, t1)
        for t2 in TAUS2:
            u2 = rc_unit(i, dt, t2)
            a = np.hstack([wo, -wr * i[:, None], -wr * u1[:, None], -wr * u2[:, None]])
            p, *_ = np.linalg.lstsq(a, v, rcond=None)
            err = a @ p - v
            rms = float(np.sqrt(np.mean(err**2)))
            if rms < best_rms:
                n, m = len(OCV_DOD), len(R_DOD)
                best_rms = rms
                best = {
                    "q_ah": q_ah, "tau1_s": t1, "tau2_s": t2, "rms_mv": rms * 1000,
                    "max_mv": float(np.abs(err).max() * 1000),
                    "ocv_v": [round(float(z), 4) for z in p[:n]],
                    "r0_mohm": [round(float(z) * 1000, 2) for z in p[n:n + m]],
                    "r1_mohm": [round(float(z) * 1000, 2) for z in p[n + m:n + 2 * m]],
                    "r2_mohm": [round(float(z) * 1000, 2) for z in p[n + 2 * m:]],
                }
    assert best is not None
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trace", type=Path, default=TRACE)
    args = ap.parse_args()
    res = fit(args.trace)
    for k, val in res.items():
        print(k, "=", val)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
