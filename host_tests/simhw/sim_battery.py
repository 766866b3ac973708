# Equivalent-circuit Li-ion pack for the simulated board (MicroPython subset; never deployed).
#
# Per cell: terminal = OCV(dod) - I*R0(dod) - V1 - V2, two RC branches (tau1, tau2), all tables piecewise
# linear in depth of discharge (share of the usable charge drawn). N cells in series multiply the
# voltage; the current is the same. Used as a sim_power.PowerDomain source: terminal_v(amps),
# step(dt_s, amps). Discharge current is positive; a charger adds charge_a into the pack.
#
# Sources of the numbers:
# - Tables, Q, tau1, tau2: least-squares fit to tools/posguard_tools/traces/battery_fresh_25c.csv.gz (Chen2020 LG M50,
#   PyBaMM SPMe, 25 C, 20 mOhm wiring) by tools/posguard_tools/battery_fit.py; terminal-voltage RMS
#   error of the fit ~1.1 mV (host_tests/test_battery_model.py re-runs the whole trace and prints it).
#   The OCV column agrees with the reference's equilibrium curve (50 % usable: 3.747 V vs 3.751 V).
# - Temperature: pulse resistance x1.5-2.2 at 0 C and x0.6-0.7 at 45 C (battery-and-printer.md): an
#   Arrhenius factor exp(B*(1/T - 1/298.15)) with B = 1915 K gives x1.8 at 0 C and x0.67 at 45 C.
#   Capacity: ~60 % at -20 C (battery-and-printer.md [DS]); linear between -20 C and 25 C [EST].
# - Aging: `fade` (share of capacity lost) and `r_growth` (resistance multiplier); end of life is 80 %
#   capacity or 200 % resistance (battery-and-printer.md).
# - Charger: constant current `charge_a` until 4.2 V per cell, then constant voltage (current tapers).
import math

from sim_rng import Rng

Q_AH = 5.0415  # usable charge of the trace's duty cycle (fit)
TAU1_S = 5.0
TAU2_S = 60.0
_OCV_DOD = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7,
            0.75, 0.8, 0.84, 0.88, 0.9, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99, 1.0)
_OCV_V = (4.1778, 4.1422, 4.1116, 4.0961, 4.0758, 4.0314, 3.9861, 3.9439, 3.8838, 3.8369, 3.7949,
          3.7467, 3.7033, 3.6675, 3.6316, 3.5845, 3.531, 3.487, 3.4596, 3.3889, 3.32, 3.2512, 3.1819,
          3.0988, 3.0414, 2.9623, 2.8515, 2.695)
_R_DOD = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
# Ohms at 25 C; R0 includes the trace's 20 mOhm contact and wiring resistance.
_R0 = (0.05689, 0.05134, 0.04828, 0.04751, 0.04929, 0.05126, 0.05625, 0.05957, 0.07085)
_R1 = (0.00144, 0.00109, 0.00193, 0.00161, 0.0017, 0.00142, 0.00419, 0.00582, 0.02027)
_R2 = (0.03263, 0.01522, 0.02372, 0.02257, 0.01801, 0.01654, 0.02982, 0.01764, 0.07125)
_ARRHENIUS_B = 1915.0
_V_FULL = 4.2  # charger's constant-voltage level per cell (NMC)
_V_FLOOR = 2.0  # beyond the table the cell collapses; clamp so the model stays finite


def _interp(x, xs, ys):
    n = len(xs)
    if x <= xs[0]:
        return ys[0]
    if x >= xs[n - 1]:
        # Past empty: keep falling along the last segment's slope (a cell driven past cutoff collapses).
        k = n - 2
    else:
        k = 0
        while xs[k + 1] < x:
            k += 1
    f = (x - xs[k]) / (xs[k + 1] - xs[k])
    return ys[k] + (ys[k + 1] - ys[k]) * f


class Battery:
    def __init__(self, cells=1, soc=1.0, temp_c=25.0, fade=0.0, r_growth=1.0, capacity_ah=Q_AH):
        if cells < 1:
            raise ValueError("cells must be >= 1")
        self.cells = cells
        self.temp_c = temp_c
        self.fade = fade
        self.r_growth = r_growth
        self.capacity_ah = capacity_ah
        self.charge_a = 0.0  # charger current offered (A); 0: no charger
        self.v1 = 0.0
        self.v2 = 0.0
        self.drawn_ah = 0.0
        self.set_soc(soc)

    # -- state --------------------------------------------------------------------------------
    def usable_ah(self):
        t = self.temp_c
        cold = 1.0 if t >= 25.0 else max(0.6, 1.0 - 0.4 * (25.0 - t) / 45.0)
        return self.capacity_ah * (1.0 - self.fade) * cold

    def set_soc(self, soc):
        self.drawn_ah = (1.0 - soc) * self.usable_ah()
        self.v1 = 0.0
        self.v2 = 0.0

    def soc(self):
        return 1.0 - self.drawn_ah / self.usable_ah()

    def _dod(self):
        d = self.drawn_ah / self.usable_ah()
        return 0.0 if d < 0.0 else d

    def _r_scale(self):
        tk = self.temp_c + 273.15
        return self.r_growth * math.exp(_ARRHENIUS_B * (1.0 / tk - 1.0 / 298.15))

    def ocv_cell(self):
        v = _interp(self._dod(), _OCV_DOD, _OCV_V)
        return _V_FLOOR if v < _V_FLOOR else v

    def r0_cell(self):
        return _interp(min(self._dod(), 1.0), _R_DOD, _R0) * self._r_scale()

    def _charger_a(self, amps):
        """Current the charger pushes in: CC up to charge_a, CV at 4.2 V per cell."""
        if self.charge_a <= 0.0:
            return 0.0
        headroom = _V_FULL - (self.ocv_cell() - self.v1 - self.v2)
        if headroom <= 0.0:
            return 0.0
        cv = headroom / self.r0_cell() + amps  # what keeps the terminal at 4.2 V with this load
        return self.charge_a if cv > self.charge_a else (cv if cv > 0.0 else 0.0)

    # -- PowerDomain source interface -----------------------------------------------------------
    def terminal_v(self, amps):
        net = amps - self._charger_a(amps)
        v = self.ocv_cell() - net * self.r0_cell() - self.v1 - self.v2
        return self.cells * (v if v > 0.0 else 0.0)

    def step(self, dt_s, amps):
        if dt_s <= 0.0:
            return
        net = amps - self._charger_a(amps)
        d = min(self._dod(), 1.0)
        s = self._r_scale()
        r1 = _interp(d, _R_DOD, _R1) * s
        r2 = _interp(d, _R_DOD, _R2) * s
        a1 = math.exp(-dt_s / TAU1_S)
        a2 = math.exp(-dt_s / TAU2_S)
        self.v1 = self.v1 * a1 + net * r1 * (1.0 - a1)
        self.v2 = self.v2 * a2 + net * r2 * (1.0 - a2)
        self.drawn_ah += net * dt_s / 3600.0
        if self.drawn_ah < 0.0:
            self.drawn_ah = 0.0


# -- wiring the pack into a simulated board -------------------------------------------------------
# NTC on the thermistor pin (pos-2s): 10 kOhm at 25 C, B = 3950 K, 10 kOhm pull-up from 3.3 V; the same
# constants are in firmware/posguard/battery.py (the usual NTC 103 part; an [EST] board choice).
NTC_R25 = 10000.0
NTC_B = 3950.0
NTC_PULLUP = 10000.0
NTC_VCC = 3.3


def ntc_volts(temp_c):
    r = NTC_R25 * math.exp(NTC_B * (1.0 / (temp_c + 273.15) - 1.0 / 298.15))
    return NTC_VCC * r / (r + NTC_PULLUP)


class PackWiring:
    """The pack on a board: the rail's source, the sense divider into the ADC pin, the thermistor,
    and the charger-present input. The divider carries a per-unit ratio error of up to +/-1.5 %
    (1 % resistors add 30-75 mV per cell, battery-and-printer.md) that calibration must remove."""

    def __init__(self, board, battery, divider_error=None):
        self.board = board
        self.battery = battery
        prof = board.profile
        pins = prof["pins"]
        if divider_error is None:
            divider_error = Rng(getattr(board, "seed", 1) + 17, mult=2246822519, add=7).uniform(-0.015, 0.015)
        self.ratio = prof["battery"]["divider_ratio"] * (1.0 + divider_error)
        self.sense_fault = None  # None, "open" (pin pulled to 0 V) or "short" (pin at the pack)
        board.power.set_source(battery)
        board.analog_sources[pins["vbat_adc"]] = self.sense_volts
        if pins["thermistor_adc"] is not None:
            board.analog_sources[pins["thermistor_adc"]] = self.ntc_pin_volts
        self.charger_pin = pins["charger_present"]
        if self.charger_pin is not None:
            board.drive_pin(self.charger_pin, 0)

    def sense_volts(self):
        if self.sense_fault == "open":
            return 0.0
        v = self.board.power.rail_v()
        if self.sense_fault == "short":
            return v
        return v / self.ratio

    def ntc_pin_volts(self):
        return ntc_volts(self.battery.temp_c)

    def set_charger(self, amps, working=True):
        """Plug (amps > 0) or unplug (0) a charger. working=False: present but delivering nothing."""
        self.battery.charge_a = amps if working else 0.0
        if self.charger_pin is not None:
            self.board.drive_pin(self.charger_pin, 1 if amps > 0 else 0)
