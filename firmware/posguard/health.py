# State of health, with age kept apart from cold:
# - resistance: every current edge (receipt start and end) gives R = dV/dI at the present temperature;
#   `r_now` follows it for the predictions. With a trusted temperature, a small Kalman filter fits
#   ln R = ln R25 + B * (1/T - 1/298.15): R25 (aging, a slow random walk) and the temperature factor B
#   (learned from the spread of temperatures the pack has seen, starting from an Arrhenius prior).
#   Without a trusted temperature nothing is learned about aging from the resistance.
# - capacity: only from charge counted between rested voltage points: a fit of the rested table SoC
#   against the net charge drawn (s = s0 - q * 100 / C), never from the resistance.
# - SoH = capacity share (the 25 C capacity: the table SoC is thermodynamic, cold does not shrink it);
#   "replace battery" at capacity <= 80 % or R25 >= 2x nominal, each only once it is known well enough.
# - lifetime charge in integer counters (coulomb.py); kept on flash in health.json, written rarely.
import math

from micropython import const

from posguard import battery, coulomb

# End of life: 80 % of initial capacity or 200 % of initial resistance (battery-and-printer.md).
_EOL_CAPACITY = 0.80
_EOL_RESISTANCE = 2.0
_MIN_STEP_A = 0.3  # smaller current steps give a dV too close to the ADC's noise
_R_NOW_ALPHA = 0.3  # r_now follows the edges (temperature and state of charge move it)
_R_OUTLIER = 2.0  # an edge more than 2x off r_now moves it only a little
# Temperature factor prior: Arrhenius B = 1915 K (x1.8 at 0 C, battery-and-printer.md), uncertain by
# +-1500 K: the traces of this family show x1.4 between 25 C and -10 C (B ~ 1000 K with contact R).
_B_PRIOR = 1915.0
_B_VAR = 1500.0 * 1500.0
_LNR_VAR0 = 0.5 * 0.5  # prior on ln R25 (the nominal is a datasheet figure)
_LNR_MEAS_VAR = 0.08 * 0.08  # one edge: ~8 % (ADC noise over a ~100 mV step, load jitter)
_LNR_WALK = 1e-6  # aging per edge: R25 may drift slowly, so old edges fade
_R_TRUST_EVENTS = const(20)  # edges with a trusted temperature before R25 can call "replace"
# Capacity fit: s = s0 - k * q, k = 100 / C (% per Ah); prior k from the rated capacity, +-35 %.
_K_REL_SD0 = 0.35
_S_MEAS_SD = 3.0  # % of SoC: a rested OCV reading through the table (+-25 mV at 8 mV/%)
# The capacity is fitted only once the rested points span this much SoC (charge between them): over a
# short span the slope is the relaxation's build-up after a rest, not the capacity.
_CAP_MIN_SPAN_PCT = 15.0
_S0_WALK = 0.02  # % per point: charge-count drift (a load model instead of a sensor)
_K_WALK_REL = 1e-4  # aging of the capacity per point
# The capacity is published (SoH, "replace battery") only from a fit whose rested points span this much:
# over shorter spans the table's shape error (+-1-2 % of SoC) still moves the slope by several %.
_CAP_PUBLISH_SPAN_PCT = 50.0
_REBASE_AH = 0.5  # keep the fit's charge axis small (float32 on the port)
# Charger fault: charger present this long without the open-circuit voltage rising by this much.
_CHG_WINDOW_S = const(600)
_CHG_RISE_MV = 10.0
_CHG_FULL_SOC = 95.0
# Flash wear: at most one write an hour, and only when something moved that matters.
_SAVE_EVERY_S = const(3600)
_SAVE_CAP_REL = 0.005
_SAVE_R_REL = 0.02
_SAVE_MAH = const(100)
HEALTH_FILE = "health.json"


def temp_x(temp_c):
    """1/T - 1/T25 with T clamped to -30..70 C (outside, the sensor is suspect)."""
    t = -30.0 if temp_c < -30.0 else (70.0 if temp_c > 70.0 else temp_c)
    return 1.0 / (t + 273.15) - 1.0 / 298.15


class Health:
    def __init__(self, r_nominal_ohm, capacity_ah, store_dir=""):
        self.r_nominal = r_nominal_ohm
        self.cap_nominal = capacity_ah
        self.path = battery._join(store_dir, HEALTH_FILE)
        self.charge = coulomb.NetCharge()
        self.charger_fault = False
        self._chg_s = 0.0
        self._chg_ocv0 = 0.0
        self._since_save_s = 0.0
        self._dirty = False
        self.saves = 0
        self.restarts = 0
        self.restart()
        if self._load():
            self._mark_saved()  # else: a new pack, whose first figures are saved at the first chance

    def restart(self):
        """Forget what was learned (a new pack): priors, no events, counters from zero."""
        self.r_now = 0.0  # 0: no edge seen since boot (then r25 * f(T) is used)
        self.r_now_events = 0
        self.lnr25 = math.log(self.r_nominal)
        self.b = _B_PRIOR
        self._p = [_LNR_VAR0, 0.0, _B_VAR]  # covariance of (ln R25, B): p00, p01, p11
        self.r_events = 0
        k0 = 100.0 / self.cap_nominal
        self.k = k0
        self.cap_pub = self.cap_nominal
        self.s0 = -1.0  # no rested point yet
        self._c = [0.0, 0.0, (k0 * _K_REL_SD0) ** 2]  # covariance of (s0, k): c00, c01, c11
        self.cap_events = 0
        self._q_first = None  # charge axis position of the first rested point since boot / restart
        self.charge = coulomb.NetCharge()
        self._ref_mah = 0
        self._ref_mas = 0
        self._dirty = True
        self._saved = (-1.0, -1.0, 0)  # whatever was on flash belongs to the old pack: save soon

    # -- derived figures --------------------------------------------------------------------------
    @property
    def r25(self):
        return math.exp(self.lnr25)

    @property
    def cap_ah(self):
        """The capacity (Ah at 25 C) as last published from a wide enough span."""
        return self.cap_pub

    def cap_fit_ah(self):
        """The running fit's capacity (what the charge counting uses)."""
        return 100.0 / self.k

    def r_factor(self, temp_c):
        """Resistance at temp_c relative to 25 C, with the learned B (25 C when unknown)."""
        if temp_c is None:
            return 1.0
        return math.exp(self.b * temp_x(temp_c))

    def r_at(self, temp_c):
        """The ohmic resistance now: the last edges if any, else R25 times the temperature factor."""
        if self.r_now_events:
            return self.r_now
        return self.r25 * self.r_factor(temp_c)

    def r_trusted(self):
        return self.r_events >= _R_TRUST_EVENTS

    def cap_trusted(self):
        return self.cap_events > 0

    def soh_pct(self):
        """State of health: the capacity share at 25 C (the resistance is `r_growth`, apart)."""
        s = 100.0 * self.cap_ah / self.cap_nominal
        return 100.0 if s > 100.0 else (0.0 if s < 0.0 else s)

    def r_growth(self):
        """R25 / nominal, or None while R25 is not known from trusted temperatures."""
        return self.r25 / self.r_nominal if self.r_trusted() else None

    def replace_battery(self):
        if self.cap_trusted() and self.cap_ah <= _EOL_CAPACITY * self.cap_nominal:
            return True
        return self.r_trusted() and self.r25 >= _EOL_RESISTANCE * self.r_nominal

    def cycles(self):
        return self.charge.out.ah() / self.cap_nominal

    # -- resistance -------------------------------------------------------------------------------
    def on_edge(self, dv, di, temp_c, temp_trusted):
        """A current edge of di (A, either sign) moved the voltage by dv (V per cell, same sign as -di
        for a real resistance). Returns R (ohm, at the present temperature) or None."""
        if di < 0:
            dv, di = -dv, -di
        if di < _MIN_STEP_A or dv <= 0:
            return None
        r = dv / di
        if not 0.2 * self.r_nominal <= r <= 10 * self.r_nominal:
            return None
        if self.r_now_events == 0:
            self.r_now = r
        else:
            a = _R_NOW_ALPHA
            if r > self.r_now * _R_OUTLIER or r < self.r_now / _R_OUTLIER:
                a = 0.05
            self.r_now += a * (r - self.r_now)
        self.r_now_events += 1
        if temp_trusted and temp_c is not None:
            self._fit_r(math.log(r), temp_x(temp_c))
        return r

    def _fit_r(self, y, x):
        p00, p01, p11 = self._p
        p00 += _LNR_WALK
        # Kalman update of (ln R25, B) with the measurement y = ln R25 + B x.
        s = p00 + 2.0 * x * p01 + x * x * p11 + _LNR_MEAS_VAR
        g0 = (p00 + x * p01) / s
        g1 = (p01 + x * p11) / s
        e = y - (self.lnr25 + self.b * x)
        lim = 3.0 * math.sqrt(s)  # one wild edge moves it at most 3 sigma
        e = lim if e > lim else (-lim if e < -lim else e)
        self.lnr25 += g0 * e
        self.b += g1 * e
        self.b = 0.0 if self.b < 0.0 else (6000.0 if self.b > 6000.0 else self.b)
        h0 = p00 + x * p01
        h1 = p01 + x * p11
        self._p = [p00 - g0 * h0, p01 - g0 * h1, p11 - g1 * h1]
        self.r_events += 1
        self._dirty = True

    # -- charge and capacity --------------------------------------------------------------------
    def count(self, amps, dt_ms):
        """Count the charge of one step (amps: + discharge, - charge) in the integer counters."""
        self.charge.add(amps, dt_ms)
        self._dirty = True

    def q_ah(self):
        """Net charge drawn since the fit's reference (Ah, small)."""
        return self.charge.net_ah_since(self._ref_mah, self._ref_mas)

    def fit_soc(self):
        """The capacity fit's SoC now (table %), or -1 before a rested point."""
        if self.s0 < 0:
            return -1.0
        return self.s0 - self.k * self.q_ah()

    def rested_point(self, soc_v, weight=1.0):
        """A rested voltage-based SoC (table %). weight 0-1: how much the table slope there lets the
        voltage say (flat regions say little)."""
        if weight <= 0.0:
            return
        q = self.q_ah()
        if q > _REBASE_AH or q < -_REBASE_AH:
            self._rebase(q)
            q = 0.0
        r = (_S_MEAS_SD / weight) ** 2
        if self.s0 < 0:
            self.s0 = soc_v + self.k * q
            self._c[0] = r
        if self._q_first is None:
            self._q_first = q
            return
        c00, c01, c11 = self._c
        c00 += _S0_WALK * _S0_WALK
        span = (self._q_first - q) * self.k
        if span < 0:
            span = -span
        if span < _CAP_MIN_SPAN_PCT:
            # The intercept only: the capacity keeps its value (and its uncertainty) until the span is there.
            e = soc_v - (self.s0 - self.k * q)
            g0 = c00 / (c00 + r)
            self.s0 += g0 * e
            self._c = [c00 * (1.0 - g0), c01 * (1.0 - g0), c11]
            return
        c11 += (self.k * _K_WALK_REL) ** 2
        # y = s0 - k q: H = (1, -q)
        s = c00 - 2.0 * q * c01 + q * q * c11 + r
        g0 = (c00 - q * c01) / s
        g1 = (c01 - q * c11) / s
        e = soc_v - (self.s0 - self.k * q)
        self.s0 += g0 * e
        self.k += g1 * e
        kmin = 100.0 / (1.5 * self.cap_nominal)
        kmax = 100.0 / (0.3 * self.cap_nominal)
        self.k = kmin if self.k < kmin else (kmax if self.k > kmax else self.k)
        h0 = c00 - q * c01
        h1 = c01 - q * c11
        self._c = [c00 - g0 * h0, c01 - g0 * h1, c11 - g1 * h1]
        if span >= _CAP_PUBLISH_SPAN_PCT:
            self.cap_pub = 100.0 / self.k
            self.cap_events += 1
        self._dirty = True

    def _rebase(self, q):
        """Move the fit's charge reference to now: s0' = s0 - k q; covariance through the same map."""
        c00, c01, c11 = self._c
        self.s0 -= self.k * q
        self._c = [c00 - 2.0 * q * c01 + q * q * c11, c01 - q * c11, c11]
        self._ref_mah, self._ref_mas = self.charge.net_mah_mas()
        if self._q_first is not None:
            self._q_first -= q

    # -- persistence ------------------------------------------------------------------------------
    def _load(self):
        d = battery.read_json(self.path)
        if not isinstance(d, dict):
            return False
        try:
            r = float(d["r25_mohm"]) / 1000.0
            c = float(d["cap_mah"]) / 1000.0
            b = float(d["b_k"])
            out = (int(d["out_mah"]), int(d["out_mas"]))
            into = (int(d["in_mah"]), int(d["in_mas"]))
            r_ev = int(d["r_events"])
            c_ev = int(d["cap_events"])
            c11 = float(d["cap_var"])
        except (KeyError, TypeError, ValueError):
            return False
        # Values far outside what a pack can be are a corrupt file, not a pack: keep the defaults.
        r_ok = 0.2 * self.r_nominal <= r <= 10 * self.r_nominal
        c_ok = 0.3 * self.cap_nominal <= c <= 1.5 * self.cap_nominal
        if not (r_ok and c_ok and 0.0 <= b <= 6000.0 and min(out + into) >= 0 and c11 >= 0.0):
            return False
        self.lnr25 = math.log(r)
        self.b = b
        self.r_events = r_ev
        # The saved figures are known about as well as the events say; the covariance restarts small.
        self._p = [0.05 * 0.05 if r_ev else _LNR_VAR0, 0.0, _B_VAR if r_ev < 100 else _B_VAR / 4]
        self.k = 100.0 / c
        self.cap_pub = c
        self.cap_events = c_ev
        self._c = [0.0, 0.0, c11]
        self.charge.out.set(out[0], out[1])
        self.charge.into.set(into[0], into[1])
        self._ref_mah, self._ref_mas = self.charge.net_mah_mas()
        return True

    def save(self):
        battery.write_json_atomic(
            self.path,
            {
                "r25_mohm": round(self.r25 * 1000, 2),
                "b_k": round(self.b, 1),
                "cap_mah": round(self.cap_ah * 1000, 1),
                "cap_var": self._c[2],
                "out_mah": self.charge.out.mah,
                "out_mas": self.charge.out.mas,
                "in_mah": self.charge.into.mah,
                "in_mas": self.charge.into.mas,
                "r_events": self.r_events,
                "cap_events": self.cap_events,
            },
        )
        self.saves += 1
        self._mark_saved()

    def _mark_saved(self):
        self._dirty = False
        self._since_save_s = 0.0
        self._saved = (self.cap_ah, self.r25, self.charge.out.mah + self.charge.into.mah)

    def worth_saving(self):
        c, r, mah = self._saved
        return (abs(self.cap_ah - c) >= _SAVE_CAP_REL * c or abs(self.r25 - r) >= _SAVE_R_REL * r
                or self.charge.out.mah + self.charge.into.mah - mah >= _SAVE_MAH)

    def maybe_save(self, dt_s, allowed):
        """At most hourly, only when flash writes are allowed and something moved that matters."""
        self._since_save_s += dt_s
        if self._dirty and allowed and self._since_save_s >= _SAVE_EVERY_S and self.worth_saving():
            try:
                self.save()
            except OSError:
                self._since_save_s = 0.0  # a full or failing filesystem must not stop the terminal

    # -- charger ------------------------------------------------------------------------------------
    def watch_charger(self, present, v_cell, soc_pct, dt_s):
        """v_cell: the smoothed idle terminal voltage per cell (measured, not modelled: a charger that
        works lifts it at once by I*R and then with the charge)."""
        if not present:
            self._chg_s = 0.0
            self.charger_fault = False
            return
        if self._chg_s == 0.0:
            self._chg_ocv0 = v_cell
        self._chg_s += dt_s
        if (v_cell - self._chg_ocv0) * 1000.0 >= _CHG_RISE_MV or soc_pct >= _CHG_FULL_SOC:
            self.charger_fault = False
            self._chg_s = dt_s  # restart the window from here: a charger can die later
            self._chg_ocv0 = v_cell
        elif self._chg_s >= _CHG_WINDOW_S:
            self.charger_fault = True
