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

# Relaxation: one RC branch driven by the current, its resistance a share of the ohmic R0 (so slower
# kinetics, which raise R0, raise it too). Fitted on the five reference traces of the Chen2020 family
# (tools/posguard_tools/traces: rested-voltage residual 12 mV RMS; the receipt-minimum prediction is
# unbiased within 11 mV per trace for tau 60 s): an aged cell relaxes for minutes, the 11-28 s of the
# fresh cell (battery-and-printer.md) would read its slow tail as lost charge.
TAU_RC_S = 60.0
RC_SHARE = 0.6
# Ohmic resistance vs state of charge, relative to the flat middle: it rises below 20 % (all five
# reference traces: x1.03 at 20 %, x1.1-1.2 at 10 %, x1.1-1.3 at 5 %; the upper value is kept).
_R_SHAPE_SOC = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 100.0)
_R_SHAPE = (1.35, 1.25, 1.18, 1.08, 1.04, 1.0, 1.0)

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


def r_shape(soc):
    """Ohmic resistance at table SoC `soc` relative to mid-charge."""
    return _lerp(soc, _R_SHAPE_SOC, _R_SHAPE)


def rc_step(v_rc, amps, r_rc, dt_s):
    """The relaxation branch after dt_s with amps held (exact for a piecewise-constant current)."""
    if dt_s <= 0:
        return v_rc
    a = math.exp(-dt_s / TAU_RC_S)
    return v_rc * a + amps * r_rc * (1.0 - a)


class SocEstimator:
    """Thermodynamic SoC (% of the table) per cell: charge counting with the capacity the health fit
    learned, pulled by the voltage (I*R0 and relaxation corrected) where the table is steep enough.
    It starts only from a rested reading (or a saved state), never from a loaded voltage."""

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

    def start(self, soc):
        self.soc = 0.0 if soc < 0.0 else (100.0 if soc > 100.0 else soc)

    def update(self, v_cell, amps, prev_amps, r0, dt_s, may_init=True, fuse=True):
        """v_cell: measured per-cell voltage with `amps` flowing now; prev_amps flowed over the last
        dt_s seconds. r0: the ohmic resistance now. may_init: the reading is rested enough to start
        from. Returns SoC in %, or -1 while not started."""
        self.v_rc = rc_step(self.v_rc, prev_amps, r0 * RC_SHARE, dt_s)
        ocv = v_cell + amps * r0 + self.v_rc
        self.ocv = ocv
        soc_v = ocv_to_soc(ocv, self.chemistry)
        if self.soc < 0.0:
            if may_init:
                self.soc = soc_v
            return self.soc
        cap = self.capacity_ah
        pred = self.soc - prev_amps * dt_s / 3600.0 / cap * 100.0
        if not fuse:
            self.soc = 0.0 if pred < 0.0 else (100.0 if pred > 100.0 else pred)
            return self.soc
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

    def weight(self):
        """How much a rested voltage says about SoC here (0-1, the table slope squared)."""
        if self.soc < 0.0:
            return 0.0
        slope = slope_mv_per_pct(self.soc, self.chemistry)
        if slope >= _SLOPE_TRUSTED_MV:
            return 1.0
        return 0.0 if not self.trusts_voltage else (slope / _SLOPE_TRUSTED_MV) ** 2
