# State of health: internal resistance from the voltage step when the printer starts (normalised to
# 25 C, smoothed across events), capacity fade from charge counted between two rested voltage points,
# equivalent full cycles, "replace battery", and the charger-fault watch. Kept on flash in health.json.
from micropython import const

from posguard import battery, soc

# End of life: 80 % of initial capacity or 200 % of initial resistance (battery-and-printer.md).
_EOL_CAPACITY = 0.80
_EOL_RESISTANCE = 2.0
_MIN_STEP_A = 0.3  # smaller current steps give a dV too close to the ADC's noise
_R_ALPHA = 0.25  # smoothing across step events (a dot-count load is uncertain by ~10 %)
_R_OUTLIER = 2.0  # a step more than 2x off the estimate moves it only a little
# Capacity: learn from discharges spanning at least 40 % of SoC between rested voltage readings.
_CAP_MIN_SPAN_PCT = 40.0
_CAP_ALPHA = 0.3
# Charger fault: charger present this long without the open-circuit voltage rising by this much.
_CHG_WINDOW_S = const(600)
_CHG_RISE_MV = 10.0
_CHG_FULL_SOC = 95.0
_SAVE_EVERY_S = const(3600)
HEALTH_FILE = "health.json"


class Health:
    def __init__(self, r_nominal_ohm, capacity_ah, store_dir=""):
        self.r_nominal = r_nominal_ohm
        self.cap_nominal = capacity_ah
        self.path = battery._join(store_dir, HEALTH_FILE)
        self.r25 = r_nominal_ohm
        self.r_events = 0
        self.cap_ah = capacity_ah
        self.cap_events = 0
        self.discharged_ah = 0.0
        self._anchor_soc = -1.0  # rested SoC where the current capacity measurement started
        self._anchor_ah = 0.0
        self.charger_fault = False
        self._chg_s = 0.0
        self._chg_ocv0 = 0.0
        self._since_save_s = 0.0
        self._dirty = False
        self._load()

    # -- persistence ------------------------------------------------------------------------------
    def _load(self):
        d = battery.read_json(self.path)
        if not isinstance(d, dict):
            return
        try:
            r = float(d["r25_mohm"]) / 1000.0
            c = float(d["cap_mah"]) / 1000.0
            ah = float(d["discharged_ah"])
        except (KeyError, TypeError, ValueError):
            return
        # Values far outside what a pack can be are a corrupt file, not a pack: keep the defaults.
        r_ok = 0.2 * self.r_nominal <= r <= 10 * self.r_nominal
        if r_ok and 0.2 * self.cap_nominal <= c <= 1.5 * self.cap_nominal and ah >= 0:
            self.r25 = r
            self.cap_ah = c
            self.discharged_ah = ah
            self.r_events = int(d.get("r_events", 1))
            self.cap_events = int(d.get("cap_events", 0))

    def save(self):
        battery.write_json_atomic(
            self.path,
            {
                "r25_mohm": round(self.r25 * 1000, 2),
                "cap_mah": round(self.cap_ah * 1000, 1),
                "discharged_ah": round(self.discharged_ah, 4),
                "r_events": self.r_events,
                "cap_events": self.cap_events,
            },
        )
        self._dirty = False
        self._since_save_s = 0.0

    def maybe_save(self, dt_s, allowed):
        """Save at most hourly, and only when flash writes are allowed (not CRITICAL or lower)."""
        self._since_save_s += dt_s
        if self._dirty and allowed and self._since_save_s >= _SAVE_EVERY_S:
            try:
                self.save()
            except OSError:
                pass  # a full or failing filesystem must not stop the terminal; retried next hour

    # -- resistance -------------------------------------------------------------------------------
    def on_step(self, dv, di, temp_c):
        """A load step di (A) moved the voltage by dv (V per cell, positive = sag). Returns R or None."""
        if di < _MIN_STEP_A or dv <= 0:
            return None
        r = dv / di / soc.r_temp_factor(temp_c)
        if not 0.2 * self.r_nominal <= r <= 10 * self.r_nominal:
            return None
        if self.r_events == 0:
            self.r25 = r
        else:
            a = _R_ALPHA
            if r > self.r25 * _R_OUTLIER or r < self.r25 / _R_OUTLIER:
                a = 0.05
            self.r25 += a * (r - self.r25)
        self.r_events += 1
        self._dirty = True
        return r

    # -- capacity and cycles --------------------------------------------------------------------
    def count(self, amps, dt_s):
        if amps > 0:
            self.discharged_ah += amps * dt_s / 3600.0
            self._dirty = True

    def rested_point(self, soc_pct):
        """A rested (relaxed, idle) voltage-based SoC: closes a capacity measurement if it spans enough."""
        if self._anchor_soc < 0 or soc_pct > self._anchor_soc:
            self._anchor_soc = soc_pct
            self._anchor_ah = self.discharged_ah
            return
        span = self._anchor_soc - soc_pct
        if span >= _CAP_MIN_SPAN_PCT:
            c = (self.discharged_ah - self._anchor_ah) / (span / 100.0)
            if 0.3 * self.cap_nominal < c < 1.5 * self.cap_nominal:
                self.cap_ah += _CAP_ALPHA * (c - self.cap_ah) if self.cap_events else (c - self.cap_ah)
                self.cap_events += 1
                self._dirty = True
            self._anchor_soc = soc_pct
            self._anchor_ah = self.discharged_ah

    def cycles(self):
        return self.discharged_ah / self.cap_nominal

    # -- verdicts ----------------------------------------------------------------------------------
    def soh_pct(self):
        """Capacity share, or the resistance mapped so that 2x nominal = 80 %: whichever is worse."""
        cap = 100.0 * self.cap_ah / self.cap_nominal
        res = 100.0 - 20.0 * (self.r25 / self.r_nominal - 1.0)
        s = cap if cap < res else res
        return 100.0 if s > 100.0 else (0.0 if s < 0.0 else s)

    def replace_battery(self):
        return self.r25 >= _EOL_RESISTANCE * self.r_nominal or self.cap_ah <= _EOL_CAPACITY * self.cap_nominal

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
