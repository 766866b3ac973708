# The power policy: the load model (what the firmware draws idle and printing at a heat setting), the
# prediction of a receipt's minimum voltage, the heat setting that keeps the peak within what the pack
# can deliver now, and the OK / LOW / CRITICAL / SHUTDOWN / FAULT states with hysteresis.
import math
from collections import namedtuple

from micropython import const

from posguard import soc

OK = const(0)
LOW = const(1)
CRITICAL = const(2)
SHUTDOWN = const(3)
FAULT = const(4)
NAMES = ("OK", "LOW", "CRITICAL", "SHUTDOWN", "FAULT")

STANDARD_LINES = const(30)
_DWELL = const(3)  # consecutive updates a new state must persist (a noisy reading cannot flap it)
_PARK_S = const(120)  # time in CRITICAL at 0 % to finish or park the current sale before SHUTDOWN
_NOMINAL_CELL_V = 3.7  # NMC nominal, the voltage the profile's print current is quoted at [EST]
# Peak head current = dots heated at once x head voltage / dot resistance; the dot resistance is
# 162-198 Ohm (battery-and-printer.md, Seiko LTP02-245): the lower bound gives the safe (highest) peak.
_R_DOT_MIN_OHM = 162.0
_FULL_CELL_V = 4.2  # NMC full charge (battery-and-printer.md OCV table): a direct pack's highest head voltage
_MIN_DOTS = const(8)  # ESC 7 n1 = 0: (0 + 1) * 8 dots at once
_RADIO_A = 0.24  # ESP32 Wi-Fi transmit (battery-and-printer.md)

# ESC 7 n1 n2 n3 for CSN-A2-class printers: dots (n1+1)*8, time n2*10 us, interval n3*10 us
# (battery-and-printer.md). peak_a is the predicted pack-side peak current (idle included).
HeatSetting = namedtuple("HeatSetting", ("n1", "n2", "n3", "dots", "time_us", "interval_us", "peak_a"))


class LoadModel:
    """Pack-side current the firmware knows it draws, as two figures:
    - mean (print_extra_a): the extra current averaged over a receipt at the profile's default heat
      dots, measured per board (devkit-1s: the reference trace's 2.0 A receipt minus 0.30 A idle). It is
      the charge a receipt draws: energy, the SoC estimator's I*R compensation, the RC branch.
    - peak (peak_extra_a): the current while `dots` are heated at once, dots x V_head / R_dot
      (battery-and-printer.md), with R_dot at its 162 Ohm lower bound. Behind a boost converter the head
      sees the boost rail and the pack supplies constant power, V_head x I_head / (efficiency x V_pack),
      so the pack current rises as the pack sags; on a direct pack the head sees the pack voltage.
    The peak is what the pack's R0 sees at every strobe, so it sets a receipt's lowest voltage."""

    def __init__(self, prof):
        p = prof["power"]
        pol = prof["policy"]
        self.idle_a = p["idle_a"]
        self.print_a = p["print_a"]
        self.receipt_s = p["receipt_s"]
        self.charge_a = p["charge_a"]
        self.boost = p["boost_converter"]
        self.boost_v = p["boost_v"]
        self.boost_eff = p["boost_eff"]
        # A printer whose pack-side peak is known as a fixed current (at the default heat dots), e.g. the
        # reference trace's constant 2.0 A pulses; null: predicted from the dots as above.
        self.fixed_peak_a = p["print_peak_a"]
        eff_ok = self.boost_v and self.boost_eff and 0.0 < self.boost_eff <= 1.0
        if self.boost and self.fixed_peak_a is None and not eff_ok:
            raise ValueError("power.boost_converter needs power.boost_v and power.boost_eff (0-1]")
        self.cells = prof["battery"]["cells_series"]
        # The lowest pack voltage a receipt may reach (the policy's floor): a boost converter draws
        # its highest current there. PowerMonitor sets it from its own cutoff.
        self.floor_v = p["brownout_v"] + pol["margin_mv"] / 1000.0
        self.dots = pol["heat_dots"]
        self.time_us = pol["heat_time_us"]
        self.interval_us = pol["heat_interval_us"]
        # Lowest heat the policy offers: half the dots at once, so a receipt takes at most about twice
        # as long (a slower receipt is still a sale; fewer dots would make it crawl) [EST].
        self.min_dots = max(_MIN_DOTS, (self.dots // 16) * 8)
        self.radio = False

    def base_a(self):
        return self.idle_a + (_RADIO_A if self.radio else 0.0)

    def print_extra_a(self, dots, v_pack):
        """Mean extra pack current while printing at `dots` (energy and I*R compensation)."""
        a = self.print_a * dots / self.dots
        if not self.boost and v_pack > 0:
            a *= v_pack / (self.cells * _NOMINAL_CELL_V)
        return a

    def peak_extra_a(self, dots, v_pack):
        """Extra pack current while `dots` are heated at once with the pack at v_pack volts."""
        if self.fixed_peak_a is not None:
            return self.fixed_peak_a * dots / self.dots
        if self.boost:
            head_a = dots * self.boost_v / _R_DOT_MIN_OHM
            return self.boost_v * head_a / (self.boost_eff * v_pack)
        return dots * v_pack / _R_DOT_MIN_OHM

    def peak_v(self, v_pack):
        """The pack voltage to predict a receipt's peak at: behind a boost converter the floor (or the
        pack now, if lower), where constant power draws the most; on a direct pack the pack now (the
        head current falls as it sags)."""
        if self.boost:
            return v_pack if 0 < v_pack < self.floor_v else self.floor_v
        return v_pack if v_pack > 0 else self.cells * _FULL_CELL_V

    def peak_a(self, dots, v_pack):
        """Predicted pack-side peak current (idle included) of a receipt started at v_pack (<= 0: no
        reading yet, the worst case)."""
        return self.base_a() + self.peak_extra_a(dots, self.peak_v(v_pack))

    def mean_a(self, dots, v_pack):
        """Predicted pack-side mean current (idle included) of a receipt started at v_pack."""
        return self.base_a() + self.print_extra_a(dots, v_pack)

    def receipt_time_s(self, lines, dots):
        # Fewer dots at once means more strobes per dot row: the print takes longer, not less energy.
        slow = self.dots / dots if dots < self.dots else 1.0
        return self.receipt_s * lines / STANDARD_LINES * slow

    def heat(self, dots, v_pack):
        """The HeatSetting for `dots` at once, with the heat time scaled to keep energy per dot
        (E = V^2 / R * t) at the head's voltage."""
        dots = (dots // 8) * 8
        if dots < _MIN_DOTS:
            dots = _MIN_DOTS
        t = self.time_us
        if not self.boost and v_pack > 0:
            k = (self.cells * _NOMINAL_CELL_V / v_pack) ** 2
            k = 0.5 if k < 0.5 else (2.0 if k > 2.0 else k)
            t = int(t * k)
        n2 = t // 10
        n2 = 255 if n2 > 255 else n2
        n3 = self.interval_us // 10
        n3 = 255 if n3 > 255 else n3
        return HeatSetting(dots // 8 - 1, n2, n3, dots, n2 * 10, n3 * 10, self.peak_a(dots, v_pack))


def predict_min_cell_v(ocv_cell, v_rc, r0, soc_ref, cap_ah, amps, t_s, chemistry, peak_a=None):
    """Lowest per-cell voltage at the end of t_s seconds of a receipt drawing `amps` on average and
    `peak_a` (default: amps) while the head strobes: OCV after the charge drawn, minus the relaxation
    branch grown toward amps*R1, minus peak_a*R0 at the end's state of charge
    (docs/reference/battery-and-printer.md: V = OCV - I*R0 - V_RC)."""
    if peak_a is None:
        peak_a = amps
    a = math.exp(-t_s / soc.TAU_RC_S)
    v_rc_end = v_rc * a + amps * r0 * soc.RC_SHARE * (1.0 - a)
    d_soc = amps * t_s / 3600.0 / cap_ah * 100.0
    ocv_end = ocv_cell - (soc.soc_to_ocv(soc_ref, chemistry) - soc.soc_to_ocv(soc_ref - d_soc, chemistry))
    r_end = r0 * soc.r_shape(soc_ref - d_soc) / soc.r_shape(soc_ref)
    return ocv_end - peak_a * r_end - v_rc_end


def empty_soc_ref(floor_cell, v_rc, r0, soc_now, cap_ah, amps, t_s, chemistry, peak_a=None, bias=0.0):
    """Table SoC at which a receipt (mean `amps`, strobe peak `peak_a`, t_s long), started with the
    relaxation branch at v_rc, would end exactly at floor_cell (cutoff plus margin, per cell): the 0 %
    of the usable scale. r0 is the resistance at soc_now; it grows toward empty as r_shape says.
    bias: the learned error of the prediction (measured minus predicted). Bisection: 14 steps."""
    if peak_a is None:
        peak_a = amps
    lo = 0.0
    hi = 100.0
    base = soc.r_shape(soc_now)
    for _ in range(14):
        mid = (lo + hi) * 0.5
        v = predict_min_cell_v(soc.soc_to_ocv(mid, chemistry), v_rc, r0 * soc.r_shape(mid) / base, mid, cap_ah,
                               amps, t_s, chemistry, peak_a) + bias
        if v >= floor_cell:
            hi = mid
        else:
            lo = mid
    return hi


class PowerPolicy:
    def __init__(self, prof):
        pol = prof["policy"]
        self.low = pol["low_pct"]
        self.critical = pol["critical_pct"]
        self.shutdown = pol["shutdown_pct"]
        self.hyst = pol["hysteresis_pct"]
        if not 0 <= self.shutdown <= self.critical <= self.low <= 100:
            raise ValueError("policy needs 0 <= shutdown_pct <= critical_pct <= low_pct <= 100")
        self.state = OK
        self._pending = OK
        self._count = 0
        self._critical_s = 0.0

    def _level(self, soc_pct):
        # The state of charge only warns (LOW): whether a receipt may start is the pulse prediction's
        # call (CRITICAL below), and SHUTDOWN follows it at 0 %. critical_pct adds a floor to that
        # prediction for profiles that want one (0: none).
        if soc_pct < self.critical:
            return CRITICAL
        if soc_pct < self.low:
            return LOW
        return OK

    def target(self, soc_pct, rx_headroom_v, rx_hyst_v, idle_ok, fault):
        if fault:
            return FAULT
        if not idle_ok:
            return SHUTDOWN
        cur = self.state if self.state != FAULT else OK
        down = self._level(soc_pct)
        up = self._level(soc_pct - self.hyst)
        if down > cur:
            lvl = down
        elif up < cur:
            lvl = up
        else:
            lvl = cur
        # The receipt check: enter CRITICAL when a standard receipt would not finish; leave it only
        # with a clear margin (rx_hyst_v) so a voltage wobbling at the limit does not flap.
        if rx_headroom_v < 0 or (cur >= CRITICAL and rx_headroom_v < rx_hyst_v):
            if lvl < CRITICAL:
                lvl = CRITICAL
        if lvl == CRITICAL and soc_pct <= self.shutdown and rx_headroom_v < 0:
            lvl = SHUTDOWN
        if lvl == SHUTDOWN and self._critical_s < _PARK_S and cur < SHUTDOWN:
            lvl = CRITICAL  # at 0 % first give the current sale time to finish or park
        return lvl

    def step(self, soc_pct, rx_headroom_v, rx_hyst_v, idle_ok, fault, dt_s):
        t = self.target(soc_pct, rx_headroom_v, rx_hyst_v, idle_ok, fault)
        if self.state == CRITICAL:
            self._critical_s += dt_s
        else:
            self._critical_s = 0.0
        if t == self.state:
            self._count = 0
        elif t == FAULT:
            self.state = FAULT  # a sense fault acts at once: no confident SoC from a broken line
            self._count = 0
        elif t == self._pending:
            if dt_s > 0:  # several readings at one instant are one look, not three
                self._count += 1
            if self._count >= _DWELL:
                self.state = t
                self._count = 0
        else:
            self._pending = t
            self._count = 1
        return self.state
