"""Fit the simulator's cell model to the whole family of reference traces at once.

Provenance of the numbers in host_tests/simhw/sim_battery.py: `python -m posguard_tools.battery_fit`
over the five traces in tools/posguard_tools/traces/ (Chen2020 LG M50 cell, PyBaMM SPMe with a lumped
thermal model; their capacity share, kinetics share, contact resistance and ambient are in traces/README.md).

One parameter set for the family; the four knobs act physically:
- capacity share `cap` scales the charge (Q = Q0 x cap, the OCV curve is a function of the share drawn) and,
  since less active material means more current per particle, divides the charge-transfer and the
  diffusion (relaxation) resistances;
- kinetics share `kin` (exchange-current density) divides the charge-transfer resistance, and the
  relaxation resistance as kin^KIN_RELAX;
- contact resistance adds to R0 as it is;
- temperature: an Arrhenius-like factor exp(E x (1/T - 1/298.15)) per mechanism (electrolyte, charge
  transfer, diffusion; the diffusion factor also slows the relaxation time constant), with the three E
  fitted to the family, and a small linear OCV temperature coefficient.

Per cell: V = OCV(x) + K_T (T - 25 C) - I (R_contact + RE a_e(T) + RK(x) a_k(T) / (kin cap)) - V_rc, where the
RC branch has resistance RD(x) a_d(T) / (cap kin^KIN_RELAX) and time constant TAU x a_d(T). For fixed
nonlinear parameters (Q0, the three E, TAU, KIN_RELAX) the voltage is linear in the OCV table, K_T, RE and
the RK / RD tables, so each candidate is one least-squares solve over all five traces (fed the traces'
own cell temperature); `--search` refines the nonlinear ones by coordinate descent on total + worst RMS.
The lumped thermal model (heat capacity, thermal resistance to ambient) is fitted afterwards from the
traces' temperature rise against the heat I x (OCV - V).
"""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import numpy.typing as npt

from posguard_tools import traces

Arr = npt.NDArray[np.float64]

# (capacity share, kinetics share, contact resistance ohm, ambient C): traces/README.md
KNOBS: dict[str, tuple[float, float, float, float]] = {
    "fresh_25c": (1.0, 1.0, 0.020, 25.0),
    "fresh_m10c": (1.0, 1.0, 0.020, -10.0),
    "aged85_5c": (0.85, 0.60, 0.050, 5.0),
    "aged90_35c_busy": (0.90, 0.70, 0.040, 35.0),
    "worn70_15c": (0.70, 0.40, 0.080, 15.0),
}
# Depth of discharge (charge drawn / (Q0 x cap)) at the table nodes: denser where the OCV curve bends.
OCV_DOD = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75,
           0.8, 0.84, 0.88, 0.9, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99, 1.0)
R_DOD = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
# The nonlinear parameters found by `--search` (total 3.4 mV RMS over the five traces, worst 4.2 mV).
THETA = {"q0_ah": 5.06, "e_elec_k": 787.5, "e_kin_k": 2425.0, "e_diff_k": 750.0, "tau_s": 75.0, "kin_relax": 0.43}
SUB = 3  # every third row in the solve (the RC states are computed at full resolution)
T_REF = 298.15


def load(name: str) -> dict[str, Arr]:
    cols: dict[str, list[float]] = {"t_s": [], "i_a": [], "v_cell": [], "temp_c": []}
    with traces.open_text(name) as f:
        for row in csv.DictReader(f):
            for k, lst in cols.items():
                lst.append(float(row[k]))
    z = {k: np.array(v) for k, v in cols.items()}
    dt = np.diff(z["t_s"], prepend=z["t_s"][0])
    z["dt"] = dt
    z["ah"] = np.concatenate([[0.0], np.cumsum(z["i_a"][:-1] * dt[1:])]) / 3600.0
    z["tk"] = z["temp_c"] + 273.15
    return z


def hat_weights(x: Arr, nodes: Arr) -> Arr:
    idx = np.clip(np.searchsorted(nodes, x) - 1, 0, len(nodes) - 2)
    f = np.clip((x - nodes[idx]) / (nodes[idx + 1] - nodes[idx]), 0.0, 1.0)
    w = np.zeros((len(x), len(nodes)))
    rows = np.arange(len(x))
    w[rows, idx] = 1 - f
    w[rows, idx + 1] = f
    return w


def rc_state(drive: Arr, dt: Arr, tau: Arr) -> Arr:
    """An RC branch's voltage per unit of `drive`, the previous row's drive held over each interval."""
    out = np.zeros(len(drive))
    a = np.exp(-dt / tau)
    acc = 0.0
    for k in range(1, len(drive)):
        acc = acc * a[k] + drive[k - 1] * (1.0 - a[k])
        out[k] = acc
    return out


def arrhenius(tk: Arr, e_k: float) -> Arr:
    return np.asarray(np.exp(e_k * (1.0 / tk - 1.0 / T_REF)))


def design(z: dict[str, Arr], name: str, th: dict[str, float]) -> tuple[Arr, Arr]:
    cap, kin, r_contact, _ = KNOBS[name]
    i, tk = z["i_a"], z["tk"]
    x = z["ah"] / (th["q0_ah"] * cap)
    wo = hat_weights(x, np.array(OCV_DOD))
    wr = hat_weights(x, np.array(R_DOD))
    a_d = arrhenius(tk, th["e_diff_k"])
    s_k = arrhenius(tk, th["e_kin_k"]) / (kin * cap)
    s_d = a_d / (cap * kin ** th["kin_relax"])
    u = rc_state(i * s_d, z["dt"], th["tau_s"] * a_d)
    a = np.hstack([wo, (tk - T_REF)[:, None], -(i * arrhenius(tk, th["e_elec_k"]))[:, None],
                   -wr * (i * s_k)[:, None], -wr * u[:, None]])
    return a, z["v_cell"] + i * r_contact


def solve(data: dict[str, dict[str, Arr]], th: dict[str, float]) -> tuple[Arr, dict[str, float]]:
    blocks = [design(z, n, th) for n, z in data.items()]
    a = np.vstack([b[0][::SUB] for b in blocks])
    y = np.concatenate([b[1][::SUB] for b in blocks])
    p, *_ = np.linalg.lstsq(a, y, rcond=None)
    rms = {n: float(np.sqrt(np.mean((b[0] @ p - b[1]) ** 2)) * 1000) for n, b in zip(data, blocks, strict=True)}
    return p, rms


def score(rms: dict[str, float]) -> float:
    vals = list(rms.values())
    return float(np.sqrt(np.mean(np.square(vals)))) + 0.5 * max(vals)


def search(data: dict[str, dict[str, Arr]], th: dict[str, float], rounds: int = 5) -> dict[str, float]:
    steps = {"q0_ah": 0.02, "e_elec_k": 300.0, "e_kin_k": 600.0, "e_diff_k": 500.0, "tau_s": 20.0, "kin_relax": 0.2}
    best = score(solve(data, th)[1])
    for r in range(rounds):
        for key in steps:
            for sign in (1.0, -1.0):
                while True:
                    cand = dict(th)
                    cand[key] = max(0.0, th[key] + sign * steps[key])
                    s = score(solve(data, cand)[1])
                    if s >= best - 1e-3:
                        break
                    best, th = s, cand
        print(f"round {r}: score {best:.3f} {th}", flush=True)
        steps = {k: v / 2 for k, v in steps.items()}
    return th


def thermal(data: dict[str, dict[str, Arr]], th: dict[str, float], p: Arr) -> tuple[float, float]:
    """Heat capacity (J/K) and thermal resistance to ambient (K/W) from the traces' temperature rise."""
    xs, ys = [], []
    n = len(OCV_DOD)
    for name, z in data.items():
        cap, _, _, amb = KNOBS[name]
        ocv = hat_weights(z["ah"] / (th["q0_ah"] * cap), np.array(OCV_DOD)) @ p[:n] + p[n] * (z["tk"] - T_REF)
        heat = z["i_a"] * (ocv - z["v_cell"])
        k = 60  # one-minute means: the rise is slow, the pulses are not
        m = (len(heat) - 1) // k
        t = z["temp_c"][: m * k + 1: k]
        xs.append(np.column_stack([heat[: m * k].reshape(m, k).mean(axis=1), -(t[:-1] - amb)]))
        ys.append(np.diff(t) / k)
    c, *_ = np.linalg.lstsq(np.vstack(xs), np.concatenate(ys), rcond=None)
    return float(1.0 / c[0]), float(c[0] / c[1])


def fit(do_search: bool = False) -> dict[str, object]:
    data = {n: load(n) for n in KNOBS}
    th = search(data, dict(THETA)) if do_search else dict(THETA)
    p, rms = solve(data, th)
    n, m = len(OCV_DOD), len(R_DOD)
    heat_cap, r_th = thermal(data, th, p)
    return {
        **th,
        "rms_mv": {k: round(v, 2) for k, v in rms.items()},
        "ocv_v": [round(float(z), 4) for z in p[:n]],
        "k_t_mv_per_k": round(float(p[n]) * 1000, 3),
        "r_elec_mohm": round(float(p[n + 1]) * 1000, 2),
        "r_kin_mohm": [round(float(z) * 1000, 2) for z in p[n + 2: n + 2 + m]],
        "r_diff_mohm": [round(float(z) * 1000, 2) for z in p[n + 2 + m:]],
        "heat_cap_j_per_k": round(heat_cap, 1),
        "r_thermal_k_per_w": round(r_th, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--search", action="store_true", help="refine the nonlinear parameters (a few minutes)")
    args = ap.parse_args()
    print(json.dumps(fit(args.search), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
