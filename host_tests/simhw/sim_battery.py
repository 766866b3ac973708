# Equivalent-circuit Li-ion pack for the simulated board (MicroPython subset; never deployed).
#
# One cell family (the reference traces' Chen2020 LG M50, PyBaMM SPMe with a lumped thermal model) and the
# four knobs the traces vary, each acting physically (tools/posguard_tools/traces/README.md):
#   cap_share   share of the active material left: the charge Q = Q0 x cap; less material also means more
#               current per particle, so it divides the charge-transfer and the diffusion resistances;
#   kinetics    share of the electrode kinetics (exchange-current density) left: divides the
#               charge-transfer resistance, and the relaxation (diffusion) branch as kinetics^KIN_RELAX;
#   contact_ohm contact and wiring resistance, added to R0 as it is;
#   temp_c      ambient; the cell warms by its own heat (lumped: heat capacity, thermal resistance), and
#               each mechanism follows an Arrhenius-like factor exp(E (1/T - 1/298.15)) fitted to the family.
# Per cell: terminal = OCV(x) + K_T (T - 25) - I R0 - V_rc, x = charge drawn / Q,
#   R0 = contact + RE a_e(T) + RK(x) a_k(T) / (kin cap), and one RC branch RD(x) a_d(T) / (cap kin^KIN_RELAX)
#   with time constant TAU_S a_d(T) (an aged or cold cell relaxes for minutes).
# N cells in series multiply the voltage; the current is the same. Used as a sim_power.PowerDomain source:
# terminal_v(amps), step(dt_s, amps). Discharge current is positive; a charger adds charge_a into the pack.
#
# Sources of the numbers: one least-squares fit over all five traces in tools/posguard_tools/traces/ by
# `python -m posguard_tools.battery_fit` (tables, E factors, Q0, TAU_S, KIN_RELAX, then the thermal pair
# from the traces' temperature rise). Terminal-voltage RMS of this model, driven by each trace's current
# from its ambient (host_tests/test_battery_model.py re-runs all five and prints them): 3-5 mV.
# - r_growth (extra resistance multiplier) and fade (capacity lost) are the older, non-physical knobs,
#   kept for tests that want an exact "2x resistance" pack.
# - Charger: constant current `charge_a` until 4.2 V per cell, then constant voltage (the current tapers);
#   below 2.9 V per cell a trickle of charge_a / 10 (TP4056 datasheet, docs/reference/battery-and-printer.md).
#   The board's load sits on the same node, so the charger's current feeds the load first, and with the
#   board's 0.3 A idle load its C/10 end-of-charge is never reached: it floats at 4.2 V.
import math

from sim_rng import Rng

Q_AH = 5.06  # fresh charge from full to the OCV table's end (fit; the trace drew 5.04 Ah to 2.5 V)
TAU_S = 75.0  # relaxation time constant at 25 C
KIN_RELAX = 0.43
E_ELEC_K = 787.5  # Arrhenius-like factors (K): electrolyte / ohmic, charge transfer, diffusion
E_KIN_K = 2425.0
E_DIFF_K = 750.0
R_ELEC = 0.02287  # ohm at 25 C
K_T = 0.000538  # OCV temperature coefficient, V/K
HEAT_CAP_J_K = 213.0  # lumped thermal model of the PyBaMM cell (fit)
R_THERMAL_K_W = 9.92
CONTACT_OHM = 0.020  # the fresh trace's contact and wiring
_OCV_DOD = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7,
            0.75, 0.8, 0.84, 0.88, 0.9, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99, 1.0)
_OCV_V = (4.1676, 4.1379, 4.1106, 4.0994, 4.0781, 4.0338, 3.9894, 3.9474, 3.8874, 3.8414, 3.7986, 3.7502,
          3.7076, 3.6721, 3.6353, 3.5864, 3.5321, 3.4882, 3.4603, 3.3818, 3.3100, 3.2455, 3.1763, 3.0883,
          3.0261, 2.9356, 2.8153, 2.6274)
_R_DOD = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
_RK = (0.01067, 0.00929, 0.00849, 0.00827, 0.00900, 0.00959, 0.01129, 0.01227, 0.01746)  # charge transfer
_RD = (0.03292, 0.02611, 0.03185, 0.03239, 0.02928, 0.02851, 0.04526, 0.05471, 0.13046)  # diffusion branch
_V_FULL = 4.2  # charger's constant-voltage level per cell (NMC; TP4056 4.2 V +/-1 %)
_V_TRICKLE = 2.9  # below this the charger only trickles charge_a / 10 (TP4056)
_V_FLOOR = 2.0  # beyond the table the cell collapses; clamp so the model stays finite

# Packs of the family: name -> (capacity share, kinetics share, contact ohm), as the reference traces.
PACKS = {
    "fresh": (1.0, 1.0, 0.020),
    "aged90": (0.90, 0.70, 0.040),
    "aged85": (0.85, 0.60, 0.050),
    "worn70": (0.70, 0.40, 0.080),
}


def pack_knobs(spec):
    """(cap_share, kinetics, contact_ohm) for a preset name, or for "CAP,KIN,CONTACT_MOHM" (e.g. "0.8,0.5,60")."""
    if spec in PACKS:
        return PACKS[spec]
    parts = str(spec).split(",")
    if len(parts) != 3:
        raise ValueError("unknown pack %r: use one of %s, or CAP,KIN,CONTACT_MOHM such as 0.8,0.5,60"
                         % (spec, ", ".join(sorted(PACKS))))
    try:
        cap, kin, mohm = float(parts[0]), float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError("pack %r: CAP,KIN,CONTACT_MOHM must be numbers" % (spec,))
    if not 0.5 <= cap <= 1.0:
        raise ValueError("pack capacity share %g outside 0.5-1.0" % cap)
    if not 0.2 <= kin <= 1.0:
        raise ValueError("pack kinetics share %g outside 0.2-1.0" % kin)
    if not 0.0 <= mohm <= 200.0:
        raise ValueError("pack contact resistance %g mOhm outside 0-200" % mohm)
    return (cap, kin, mohm / 1000.0)


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


def _arrhenius(e_k, temp_c):
    return math.exp(e_k * (1.0 / (temp_c + 273.15) - 1.0 / 298.15))


class Battery:
    def __init__(self, cells=1, soc=1.0, temp_c=25.0, fade=0.0, r_growth=1.0, capacity_ah=Q_AH,
                 cap_share=1.0, kinetics=1.0, contact_ohm=CONTACT_OHM, self_heating=True):
        if cells < 1:
            raise ValueError("cells must be >= 1")
        if not 0.1 <= cap_share <= 1.0 or not 0.05 <= kinetics <= 1.0 or contact_ohm < 0.0:
            raise ValueError("cap_share 0.1-1, kinetics 0.05-1, contact_ohm >= 0")
        self.cells = cells
        self.fade = fade
        self.r_growth = r_growth
        self.capacity_ah = capacity_ah
        self.cap_share = cap_share
        self.kinetics = kinetics
        self.contact_ohm = contact_ohm
        self.self_heating = self_heating
        self._ambient_c = temp_c
        self.cell_c = temp_c  # the cell's own temperature (what a thermistor on the pack reads)
        self.charge_a = 0.0  # charger current offered (A); 0: no charger
        self.v_rc = 0.0
        self.drawn_ah = 0.0
        self._tv_key = None  # terminal_v's last inputs and answer
        self._tv = 0.0
        self.set_soc(soc)

    @classmethod
    def of_pack(cls, pack="fresh", cells=1, soc=1.0, temp_c=25.0):
        cap, kin, contact = pack_knobs(pack)
        return cls(cells=cells, soc=soc, temp_c=temp_c, cap_share=cap, kinetics=kin, contact_ohm=contact)

    def copy(self):
        """An independent pack in the same state (the simulator's look-ahead; the firmware never sees it)."""
        b = Battery(self.cells, 1.0, self._ambient_c, self.fade, self.r_growth, self.capacity_ah, self.cap_share,
                    self.kinetics, self.contact_ohm, self.self_heating)
        b.drawn_ah = self.drawn_ah
        b.v_rc = self.v_rc
        b.cell_c = self.cell_c
        b.charge_a = self.charge_a
        return b

    # The ambient; setting it also sets the cell (a pack moved somewhere else and left to settle).
    @property
    def temp_c(self):
        return self._ambient_c

    @temp_c.setter
    def temp_c(self, c):
        self._ambient_c = c
        self.cell_c = c

    # -- state --------------------------------------------------------------------------------
    def usable_ah(self):
        return self.capacity_ah * self.cap_share * (1.0 - self.fade)

    def set_soc(self, soc):
        self.drawn_ah = (1.0 - soc) * self.usable_ah()
        self.v_rc = 0.0

    def soc(self):
        return 1.0 - self.drawn_ah / self.usable_ah()

    def _dod(self):
        d = self.drawn_ah / self.usable_ah()
        return 0.0 if d < 0.0 else d

    def ocv_cell(self):
        v = _interp(self._dod(), _OCV_DOD, _OCV_V) + K_T * (self.cell_c - 25.0)
        return _V_FLOOR if v < _V_FLOOR else v

    def r0_cell(self):
        t = self.cell_c
        d = min(self._dod(), 1.0)
        rk = _interp(d, _R_DOD, _RK) * _arrhenius(E_KIN_K, t) / (self.kinetics * self.cap_share)
        return (self.contact_ohm + R_ELEC * _arrhenius(E_ELEC_K, t) + rk) * self.r_growth

    def _branch(self):
        """(resistance, time constant) of the relaxation branch now."""
        a = _arrhenius(E_DIFF_K, self.cell_c)
        r = _interp(min(self._dod(), 1.0), _R_DOD, _RD) * a / (self.cap_share * self.kinetics ** KIN_RELAX)
        return r * self.r_growth, TAU_S * a

    def _charger_a(self, amps):
        """Current the charger pushes in: CC up to charge_a, CV at 4.2 V per cell, trickle below 2.9 V."""
        if self.charge_a <= 0.0:
            return 0.0
        rest = self.ocv_cell() - self.v_rc
        if rest < _V_TRICKLE:
            return self.charge_a / 10.0
        headroom = _V_FULL - rest
        if headroom <= 0.0:
            return 0.0
        cv = headroom / self.r0_cell() + amps  # what keeps the terminal at 4.2 V with this load
        return self.charge_a if cv > self.charge_a else (cv if cv > 0.0 else 0.0)

    def charging_a(self, amps):
        """The charger's current now with `amps` of load (0 without a charger): for the simulator's report."""
        return self._charger_a(amps)

    # -- PowerDomain source interface -----------------------------------------------------------
    def terminal_v(self, amps):
        # A pure function of the load and the pack's state: the firmware reads the pack 64 times in a
        # burst at one instant (battery.py _trimmed_uv), so the last answer is kept with everything it
        # depends on and given again only while all of that is unchanged (exact, not an approximation).
        key = (amps, self.drawn_ah, self.v_rc, self.cell_c, self.charge_a, self.r_growth, self.fade,
               self.kinetics, self.cap_share, self.contact_ohm, self.capacity_ah, self.cells)
        if key == self._tv_key:
            return self._tv
        net = amps - self._charger_a(amps)
        v = self.ocv_cell() - net * self.r0_cell() - self.v_rc
        v = self.cells * (v if v > 0.0 else 0.0)
        self._tv_key = key
        self._tv = v
        return v

    def step(self, dt_s, amps):
        if dt_s <= 0.0:
            return
        net = amps - self._charger_a(amps)
        r0 = self.r0_cell()
        r, tau = self._branch()
        if self.self_heating:
            # Heat I x (OCV - V); the cell settles towards ambient + heat x R_th (exact over dt).
            heat = net * (net * r0 + self.v_rc)
            t_inf = self._ambient_c + heat * R_THERMAL_K_W
            self.cell_c = t_inf + (self.cell_c - t_inf) * math.exp(-dt_s / (R_THERMAL_K_W * HEAT_CAP_J_K))
        a = math.exp(-dt_s / tau)
        self.v_rc = self.v_rc * a + net * r * (1.0 - a)
        self.drawn_ah += net * dt_s / 3600.0
        if self.drawn_ah < 0.0:
            self.drawn_ah = 0.0


_LOOKAHEAD_MAX = 2000  # receipts: bounded


def physical_limit(battery, idle_a, mean_a, peak_a, receipt_s, brownout_v, every_s=90):
    """On a copy of the pack (no charger): receipts of `receipt_s` seconds every `every_s` at `idle_a`,
    each second first drawing `peak_a(rail_v)` on top of the idle (the printer's strobe peak, which behind a
    boost converter grows as the rail sags) and then `mean_a` on average, until one would take the rail under
    `brownout_v`. Returns (receipts still possible, share of the full pack's charge drawn before the last
    possible one started): the simulator's own limit a refusal is judged against."""
    b = battery.copy()
    b.charge_a = 0.0
    start = b.drawn_ah
    last_ok = start
    n = 0
    for _ in range(_LOOKAHEAD_MAX):
        at = b.drawn_ah
        ok = True
        for _s in range(receipt_s):
            v = b.terminal_v(idle_a)
            for _i in range(3):  # the boost's current depends on the rail it pulls down
                v = b.terminal_v(idle_a + peak_a(v))
            if v < brownout_v:
                ok = False
                break
            b.step(1.0, idle_a + mean_a)
        if not ok:
            break
        n += 1
        last_ok = at
        b.step(every_s - receipt_s, idle_a)
    return n, (last_ok - start) / b.usable_ah()


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
        return ntc_volts(self.battery.cell_c)

    def set_charger(self, amps, working=True):
        """Plug (amps > 0) or unplug (0) a charger. working=False: present but delivering nothing."""
        self.battery.charge_a = amps if working else 0.0
        if self.charger_pin is not None:
            self.board.drive_pin(self.charger_pin, 1 if amps > 0 else 0)
