# State of charge from voltage: open-circuit-voltage tables per chemistry, the temperature factor of
# the pack's resistance, and the estimator that fuses the voltage with the charge the firmware knows it
# drew (smoothing that cannot move faster than the current could).
import math

from micropython import const

# OCV per cell vs state of charge at 25 C, NMC811 (Chen2020 / LG M50, PyBaMM equilibrium curve;
# docs/reference/battery-and-printer.md). SoC in %, ascending.
_NMC_SOC = (0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0)
_NMC_V = (2.500, 3.109, 3.296, 3.485, 3.581, 3.667, 3.751, 3.841, 3.948, 4.042, 4.097, 4.124, 4.200)
# LFP: flat, 0.3-4 mV per % from 20 to 90 % (battery-and-printer.md); the knees are a typical LFP
# curve [EST]. Voltage alone cannot place SoC there: the estimator counts charge (see GAIN_FLAT).
_LFP_SOC = (0.0, 5.0, 10.0, 20.0, 30.0, 50.0, 70.0, 90.0, 95.0, 100.0)
_LFP_V = (2.500, 3.000, 3.200, 3.250, 3.275, 3.300, 3.325, 3.340, 3.380, 3.600)

CHEMISTRIES = {"NMC": (_NMC_SOC, _NMC_V), "LFP": (_LFP_SOC, _LFP_V)}
# A table slope under this (mV per %) makes voltage a weak SoC witness: the correction is scaled down.
_SLOPE_TRUSTED_MV = 5.0

# Resistance vs temperature: x1.5-2.2 at 0 C, x0.6-0.7 at 45 C (battery-and-printer.md). Arrhenius with
# B = 1915 K gives x1.8 at 0 C and x0.67 at 45 C.
_ARRHENIUS_B = 1915.0
# Relaxation after a pulse: one RC branch, tau 11-28 s fitted on Chen2020 (battery-and-printer.md);
# its resistance as a share of R0 is an estimate [EST] (the simulator's fit gives about 0.45).
TAU_RC_S = 20.0
RC_SHARE = 0.5

# Fusion of voltage and charge counting: the voltage pulls the estimate with this time constant at
# rest, slower under load (the I*R correction is only as good as the resistance estimate).
_FUSE_REST_S = const(300)
_FUSE_LOAD_S = const(1200)
_MAX_RATE_A_FLOOR = 0.5  # the voltage may move SoC at most as fast as this current (or the real one)


def table(chemistry):
    t = CHEMISTRIES.get(chemistry)
    if t is None:
        raise ValueError("unknown battery chemistry %r (known: %s)" % (chemistry, ", ".join(sorted(CHEMISTRIES))))
    return t


def voltage_reliable(chemistry):
    """False for flat chemistries (LFP): SoC must come from charge counting, voltage only at the knees."""
    return chemistry != "LFP"


def _lerp(x, xs, ys):
    n = len(xs)
    if x <= xs[0]:
        return ys[0]
    if x >= xs[n - 1]:
        return ys[n - 1]
    k = 0
    while k < n - 2 and xs[k + 1] < x:
        k += 1
    return ys[k] + (ys[k + 1] - ys[k]) * (x - xs[k]) / (xs[k + 1] - xs[k])


def ocv_to_soc(v_cell, chemistry="NMC"):
    s, v = table(chemistry)
    return _lerp(v_cell, v, s)


def soc_to_ocv(soc, chemistry="NMC"):
    s, v = table(chemistry)
    return _lerp(soc, s, v)


def slope_mv_per_pct(soc, chemistry="NMC"):
    s, v = table(chemistry)
    n = len(s)
    k = 0
    while k < n - 2 and s[k + 1] < soc:
        k += 1
    return 1000.0 * (v[k + 1] - v[k]) / (s[k + 1] - s[k])


def r_temp_factor(temp_c):
    """Resistance at temp_c relative to 25 C (clamped to -30..70 C: outside, the sensor is suspect)."""
    t = -30.0 if temp_c < -30.0 else (70.0 if temp_c > 70.0 else temp_c)
    return math.exp(_ARRHENIUS_B * (1.0 / (t + 273.15) - 1.0 / 298.15))


def capacity_temp_factor(temp_c):
    """Usable capacity vs 25 C: about 60 % at -20 C (battery-and-printer.md [DS]), linear between [EST]."""
    if temp_c >= 25.0:
        return 1.0
    f = 1.0 - 0.4 * (25.0 - temp_c) / 45.0
    return 0.6 if f < 0.6 else f


def rc_step(v_rc, amps, r_rc, dt_s):
    """The relaxation branch after dt_s with amps held (exact for a piecewise-constant current)."""
    if dt_s <= 0:
        return v_rc
    a = math.exp(-dt_s / TAU_RC_S)
    return v_rc * a + amps * r_rc * (1.0 - a)


class SocEstimator:
    """Thermodynamic SoC (% of the table) per cell, from the voltage with the I*R and relaxation
    corrections, fused with charge counting. Everything is float state: no allocation per update."""

    def __init__(self, chemistry, capacity_ah):
        table(chemistry)  # unknown chemistry: ValueError now, not a wrong SoC later
        self.chemistry = chemistry
        self.capacity_ah = capacity_ah
        self.trusts_voltage = voltage_reliable(chemistry)
        self.soc = -1.0  # -1: not yet initialised
        self.v_rc = 0.0
        self.ocv = 0.0  # last corrected open-circuit voltage per cell

    def reset(self):
        self.soc = -1.0
        self.v_rc = 0.0

    def update(self, v_cell, amps, prev_amps, r0, dt_s, cap_factor=1.0):
        """v_cell: measured per-cell voltage with `amps` flowing now; prev_amps flowed over the last
        dt_s seconds. r0: the cell's ohmic resistance now (temperature applied). Returns SoC in %."""
        self.v_rc = rc_step(self.v_rc, prev_amps, r0 * RC_SHARE, dt_s)
        ocv = v_cell + amps * r0 + self.v_rc
        self.ocv = ocv
        soc_v = ocv_to_soc(ocv, self.chemistry)
        if self.soc < 0.0:
            self.soc = soc_v
            return soc_v
        cap = self.capacity_ah * cap_factor
        drawn = prev_amps * dt_s / 3600.0 / cap * 100.0
        pred = self.soc - drawn
        tau = _FUSE_LOAD_S if amps > prev_amps + 0.2 or amps > 1.0 else _FUSE_REST_S
        k = dt_s / tau
        if k > 1.0:
            k = 1.0
        slope = slope_mv_per_pct(pred, self.chemistry)
        if slope < _SLOPE_TRUSTED_MV:
            # The voltage's SoC uncertainty grows as 1/slope, so its weight falls as slope squared; on a
            # flat chemistry (LFP) the flat region is charge counting only, voltage counts at the knees.
            k = 0.0 if not self.trusts_voltage else k * (slope / _SLOPE_TRUSTED_MV) ** 2
        corr = k * (soc_v - pred)
        # The voltage may pull SoC no faster than a real current could move it.
        rate_a = amps if amps > _MAX_RATE_A_FLOOR else _MAX_RATE_A_FLOOR
        lim = rate_a * dt_s / 3600.0 / cap * 100.0
        if corr > lim:
            corr = lim
        elif corr < -lim:
            corr = -lim
        s = pred + corr
        self.soc = 0.0 if s < 0.0 else (100.0 if s > 100.0 else s)
        return self.soc
