# PowerMonitor: the one object the app talks to about the battery. Each update() reads the pack,
# updates state of charge and health, and steps the power policy; it answers can_print() and offers
# the printer a heat setting. Wiring: docs/battery.md.
import asyncio
import math
import time

from micropython import const

from posguard import battery, health, power_policy, soc
from posguard.power_policy import CRITICAL, FAULT, LOW, NAMES, OK, SHUTDOWN  # noqa: F401  (re-exported)

_EDGE_MIN_A = 0.05  # a reading-to-reading current change above this is an edge (open or still moving)
_IDLE_TAU_S = 10.0  # smoothing of the idle voltage that a step is measured against
_OCV_TAU_S = 10.0  # smoothing of the open-circuit estimate used by the receipt prediction
_JUMP_V_CELL = 0.4  # a reading this far from the last one, with no load change, is a glitch...
_JUMP_CONFIRM = const(5)  # ...unless this many readings in a row agree (a pack was swapped)
_RESTED_S = 30.0  # idle this long after a load change: a capacity-learning point (the RC is corrected)
_INIT_MAX_A = 0.8  # the first SoC is taken only at a current this low (idle), never under a receipt
_VRC_TAU_S = 300.0  # the relaxation state a future receipt typically starts from (for the empty point)
_BIAS_ALPHA = 0.3  # learning of the receipt prediction's error from each receipt seen
_BIAS_MAX_V = 0.05  # a conservative model may be corrected upward by at most this
_RX_ALPHA = 0.3  # the standard receipt's current and length, learned from measured receipts
_LOW_RECEIPTS = const(20)  # warn when fewer standard receipts than this are left
_SWAP_R_RATIO = 1.6  # edges this far off the known resistance, after a voltage jump: another pack
_SWAP_EDGES = const(3)
_TEMP_EVERY = const(10)  # temperature changes slowly: read it every 10th update
_MAX_HOOKS = const(8)
# Without a current sensor the printer's current at the instant of a reading is unknown: a thermal printer
# draws its strobe current in bursts (dense rows), and idles while the next line arrives over the UART, so
# a reading one second into a receipt often sees a fraction of the modelled current. dV / dI(model) is then
# a lower bound on R (issue 11 follow-up: a worn pack's 140 mOhm read as 25 mOhm). The receipt prediction
# therefore never uses less than the resistance of the most worn pack the product still accepts
# (health.EOL_RESISTANCE x nominal: "replace battery" above it); edges can raise it, never lower it.
_R_UNSENSED = 2.0  # health._EOL_RESISTANCE: R25 at 2x nominal raises "replace battery"
# After any reset (a brownout reads as a power-on reset on the ESP32, docs/reference/storage.md) the pack may
# have just been pulled under cutoff: nothing is printed before it has rested this long at idle current
# [EST]: the ohmic and charge-transfer recovery takes seconds; the slow relaxation still left then reads as
# less charge (a lower OCV), which only makes the prediction more careful.
_BOOT_REST_S = 20.0
_SAG_DOWN = 0.2  # a receipt whose deepest sample sagged less (sparser rows) lowers the sag R only this much
# The sag R outlives a reset (a brownout would otherwise bring back the boot bound, and with it the loop):
# sag.json keeps its high-water mark, rewritten only when it rose by 15 %: a handful of writes per pack.
SAG_FILE = "sag.json"
# A receipt cut by the last reset (the journal says so; a brownout and a pulled pack look the same) raises
# the sag R by this much: a prediction that let a receipt brown out cannot let the same one try again and
# again (the rise is unlearned by the next receipts' sag if it was only a pulled pack).
_CUT_RAISE = 1.25
_SAG_SAVE_UP = 1.15
# A receipt that lasted longer than this many standard receipts at the lowest heat (48 s on devkit-1s)
# stalled (XOFF or BUSY held, a pause the driver did not report): the model's print current did not flow
# throughout, so its minimum says nothing about the prediction and is not checked against it. Without this,
# a receipt held 3 minutes by paper out widened the margin from 0.10 to 0.26 V, and the terminal stayed
# CRITICAL for an hour on the charger (the margin narrows only from receipts, and none are allowed there).
_RX_STALL = 4.0


class PowerMonitor:
    def __init__(self, prof, adc, charger_pin=None, therm_adc=None, current_adc=None, store_dir="",
                 mcu_temp=None, cutoff_v=None, auto_shutdown=True, heat_scaling=True, current_fn=None):
        b = prof["battery"]
        self.prof = prof
        self.cells = b["cells_series"]
        self.chemistry = b["chemistry"]
        soc.table(self.chemistry)  # unknown chemistry: a clear ValueError at construction
        if mcu_temp is None and therm_adc is None:
            mcu_temp = battery.mcu_temp_reader(prof.get("mcu"))
        self.sense = battery.BatterySense(adc, b["divider_ratio"], self.cells, store_dir, therm_adc, mcu_temp)
        # A measured pack current (A, + discharge): a callable, e.g. a current-sense amplifier's reading
        # or a replayed trace's i_a. None: the load model (no board has a current sensor yet).
        self.current_fn = current_fn
        self.current_adc = current_adc
        self.charger_pin = charger_pin
        self.load = power_policy.LoadModel(prof)
        if not heat_scaling:
            self.load.min_dots = self.load.dots  # e.g. a replayed trace: its printer never scaled
        self.policy = power_policy.PowerPolicy(prof)
        self.health = health.Health(b["r_nominal_mohm"] / 1000.0, b["capacity_mah"] / 1000.0, store_dir)
        self.est = soc.SocEstimator(self.chemistry, self.health.cap_fit_ah())
        self.cutoff_v = prof["power"]["brownout_v"] if cutoff_v is None else cutoff_v
        # The margin under a receipt's predicted minimum: a floor for the ADC's calibrated residual plus
        # three times the prediction's own error spread, which starts at the profile's margin (nothing
        # learned yet: after boot or a pack change) and narrows as receipts confirm the prediction.
        self.margin_floor_v = prof["policy"]["margin_mv"] / 1000.0 / 2.0
        # CRITICAL is left once a receipt at the lowest heat would end this far above cutoff plus margin (and
        # the 3-reading dwell): the hysteresis only keeps the state from flapping on reading noise; the margin
        # under the headroom is what keeps a receipt from browning out. It used to be the whole margin, which
        # a margin widened by one surprising receipt made 0.17 V (and none is learned in CRITICAL).
        self.exit_hyst_v = self.margin_floor_v
        self._err_var = self._err_var0()
        self.bias_v = 0.0  # measured minus predicted receipt minimum, per cell (learned; as used)
        self._bias_raw = 0.0
        self.rx_checked = 0
        self.margin_v = self.margin_floor_v + 3.0 * self.cells * math.sqrt(self._err_var)
        self.load.floor_v = self.cutoff_v + prof["policy"]["margin_mv"] / 1000.0  # boost peak predicted there
        self.auto_shutdown = auto_shutdown
        self.printing = False
        self.paused = False  # the printer stopped mid-receipt (paper out, cover open): idle current meanwhile
        self.heat = None
        self.fault = None
        self.soc_pct = 0.0
        self.soc_known = False
        self.receipts_left = None
        self.low_warning = None
        self.pack_v = 0.0
        self.temp_c = None
        self.rx_headroom_v = 0.0
        self._hooks = []
        self._last_ms = None
        self._amps = self.load.base_a()
        self._v_cell = 0.0
        self._v_idle = 0.0
        self._ocv_f = 0.0
        self._vrc_f = 0.0
        self._edge_v = 0.0  # voltage and current before an open edge (None: no edge open)
        self._edge_i = None
        self._jump_n = 0
        self._swap_suspect = False
        self._swap_n = 0
        self._idle_s = 0.0
        self._n = 0
        self._stopping = False
        # the receipt being printed: its start state (for the prediction check) and what it drew
        self._rx = None
        # A charger was on during the receipt: without a current sensor what the pack gave is unknown (the
        # charger feeds the printer first, and tapers), so neither its sag nor its minimum is the pack's.
        # Checked against the pack-only prediction, one such receipt widened the margin to 0.36 V, and the
        # idle check then sent the terminal to its SHUTDOWN deep sleep on the charger.
        self._rx_chg = False
        self._rx_vmin = 0.0
        self._rx_asum = 0.0
        self._rx_apeak = 0.0
        self._rx_s = 0.0
        self._rx_n = 0
        self.rx_len_s = 0.0  # learned from measured receipts (0: not yet, the load model's)
        self.rx_extra_a = 0.0
        self.rx_peak_extra_a = 0.0
        self.boot_rest_s = 0.0  # idle time since this boot (or pack change): printing waits for _BOOT_REST_S
        # Without a current sensor: R from the deepest sag sampled during receipts (sample_sag), divided by
        # the strobe peak the load model predicts at that voltage (>= the real current: R is not overstated
        # by the current, and the prediction multiplies it by the same peak). 0: none measured this boot.
        self.r_sag = 0.0
        self._sag_v0 = 0.0
        self._sag_min = 99.0
        self._sag_path = battery._join(store_dir, SAG_FILE)
        self._sag_saved = 0.0
        self.cut = False  # app: the journal found a receipt cut by the last reset (see _after_cut)
        d = battery.read_json(self._sag_path)
        r = d.get("r_sag_mohm", 0) if isinstance(d, dict) and current_fn is None else 0
        r = r / 1000.0 if isinstance(r, (int, float)) else 0.0
        if 0.2 * self.health.r_nominal <= r <= 10.0 * self.health.r_nominal:
            self.r_sag = r
            self._sag_saved = r

    def _err_var0(self):
        """The prediction's error variance before any receipt confirmed it (per cell): a spread of 2/3 of
        the profile's margin, so the boot margin is half the margin plus three times that."""
        sd = self.prof["policy"]["margin_mv"] / 1000.0 / self.cells / 1.5
        return sd * sd

    @property
    def temp_source(self):
        return self.sense.temp_source

    # -- what the app tells us ------------------------------------------------------------------
    def set_load(self, printing, heat=None):
        if printing and not self.printing:
            self._rx_begin()
        elif not printing and self.printing:
            self._rx_end()
        self.printing = bool(printing)
        self.paused = False
        self.heat = heat

    def pause_load(self, paused):
        """The printer stopped in the middle of a receipt (paper out, cover open: printer.Printer's
        "paused" event) or took up again ("resumed"). While paused it draws the idle current only: the
        charge count and the I*R correction must not go on counting the print current (paper out held a
        receipt 3 minutes on the story day), and the receipt is no longer one the prediction can be checked
        against (the pack relaxed in the middle of it)."""
        paused = bool(paused) and self.printing
        if paused:
            self._rx = None
        self.paused = paused

    def set_radio(self, on):
        self.load.radio = bool(on)

    def add_shutdown_hook(self, fn):
        if len(self._hooks) >= _MAX_HOOKS:
            raise ValueError("too many shutdown hooks")
        self._hooks.append(fn)

    def calibrate(self, actual_mv, save=True):
        """(gain, offset) for a meter reading of actual_mv at the pack; save=False changes nothing."""
        g, o = self.sense.calibrate(actual_mv, save=save)
        if save:
            self._rescaled()
        return g, o

    def calibrate_undo(self):
        """The calibration the last saved one replaced, back on flash: (gain, offset), or None."""
        r = self.sense.undo()
        if r is not None:
            self._rescaled()
        return r

    def _rescaled(self):
        self.est.reset()  # the old estimate was made on the old scale
        self._last_ms = None

    # -- the current --------------------------------------------------------------------------------
    def _dots(self):
        return self.heat.dots if self.heat is not None else self.load.dots

    def current_a(self):
        """The pack current now: measured when the board can, else the load model's."""
        if self.current_fn is not None:
            try:
                a = self.current_fn()
            except (OSError, ValueError):
                a = None
            if a is not None:
                return a
        a = self.load.base_a()
        if self.printing and not self.paused:
            a += self.load.print_extra_a(self._dots(), self.pack_v)
        if self.charger_on() and not self.health.charger_fault:
            # CC until the cell nears 4.2 V, tapering over the last 0.1 V (CV phase) [EST]
            taper = (4.2 - self.est.ocv) / 0.1 if self.est.ocv > 0 else 1.0
            taper = 0.0 if taper < 0.0 else (1.0 if taper > 1.0 else taper)
            a -= self.load.charge_a * taper
        return a

    def measured(self):
        return self.current_fn is not None

    def charger_on(self):
        p = self.charger_pin
        return p is not None and bool(p.value())

    # -- the standard receipt (what the prediction and "receipts left" are about) ------------------
    def receipt(self, lines=power_policy.STANDARD_LINES, dots=None):
        """(mean_a, peak_a, seconds) of a receipt of `lines` at `dots` heated at once: learned from the
        receipts measured on this terminal when it has a current sensor, else the load model's."""
        ld = self.load
        if dots is None:
            dots = ld.dots
        if self.rx_len_s > 0.0:
            k = dots / ld.dots
            slow = ld.dots / dots if dots < ld.dots else 1.0
            base = ld.base_a()
            return (base + self.rx_extra_a * k, base + self.rx_peak_extra_a * k,
                    self.rx_len_s * lines / power_policy.STANDARD_LINES * slow)
        t = ld.receipt_time_s(lines, dots)
        return ld.mean_a(dots, self.pack_v), ld.peak_a(dots, self.pack_v), t

    def _rx_begin(self):
        self._sag_v0 = self._v_cell  # the idle reading printjobs takes just before the receipt starts
        self._sag_min = 99.0
        self._rx = None
        if self.est.soc >= 0.0 and self._last_ms is not None and self.health.r_now_events >= 2:
            # checked only once the resistance comes from this pack's own edges, not the prior
            self._rx = (self._ocv_f, self.est.v_rc, self._r_pred(), self.est.soc)
        self._rx_chg = self.charger_on()
        self._rx_vmin = 99.0
        self._rx_asum = 0.0
        self._rx_apeak = 0.0
        self._rx_s = 0.0
        self._rx_n = 0

    def _rx_track(self, v_cell, amps, dt):
        if self.charger_on():
            self._rx_chg = True
        if v_cell < self._rx_vmin:
            self._rx_vmin = v_cell
        self._rx_asum += amps
        self._rx_n += 1
        if amps > self._rx_apeak:
            self._rx_apeak = amps
        self._rx_s += dt

    def sample_sag(self):
        """One quick reading while a receipt prints (printjobs calls it every few tens of ms): the deepest
        one is the sag under the densest rows' strobes, which the 1 s updates fall between."""
        if not self.printing:
            return
        try:
            v = self.sense.read_mv() / 1000.0 / self.cells
        except battery.SenseFault:
            return
        if v < self._sag_min:
            self._sag_min = v

    def _after_cut(self):
        """The journal found a receipt cut by the last reset (a brownout, or a pulled pack: the same to the
        firmware): the sag R (or the boot bound, if none is known) rises by _CUT_RAISE and is saved, so each
        further cut at the same point raises it again until the prediction refuses: a few resets, not a loop."""
        self.cut = False
        self.r_sag = (self.r_sag if self.r_sag > 0.0 else self._r_pred()) * _CUT_RAISE
        self._save_sag(True)

    def _learn_sag(self):
        v0 = self._sag_v0
        vmin = self._sag_min
        if v0 <= 0.0 or vmin > 90.0 or vmin >= v0:
            return
        extra = self.load.print_extra_a(self._dots(), vmin * self.cells)
        if extra <= 0.0:
            return
        r = (v0 - vmin) / extra
        if r > self.r_sag:
            self.r_sag = r
        else:
            self.r_sag += _SAG_DOWN * (r - self.r_sag)
        self._save_sag(False)

    def _save_sag(self, force):
        # not at CRITICAL and below unless forced (an erase at the limit could brown out)
        if force or (self.r_sag > self._sag_saved * _SAG_SAVE_UP and self.policy.state <= LOW):
            try:
                battery.write_json_atomic(self._sag_path, {"r_sag_mohm": self.r_sag * 1000.0})
                self._sag_saved = self.r_sag
            except OSError:
                pass

    def _rx_end(self):
        """A receipt finished: learn its current and length (when measured) and how far its minimum
        was from what the model predicts from its start state; that error sizes the margin."""
        unsensed_chg = self._rx_chg and not self.measured()
        if not self.measured() and not self._rx_chg:
            self._learn_sag()
        if self._rx_n == 0:
            return
        mean_a = self._rx_asum / self._rx_n
        length = self._rx_s if self._rx_s > 0.0 else 1.0  # from its first reading to the first idle one
        base = self.load.base_a()
        if self.measured() and mean_a > base + 0.3:
            if self.rx_len_s <= 0.0:
                self.rx_len_s = length
                self.rx_extra_a = mean_a - base
                self.rx_peak_extra_a = self._rx_apeak - base
            else:
                self.rx_len_s += _RX_ALPHA * (length - self.rx_len_s)
                self.rx_extra_a += _RX_ALPHA * (mean_a - base - self.rx_extra_a)
                self.rx_peak_extra_a += _RX_ALPHA * (self._rx_apeak - base - self.rx_peak_extra_a)
        st = self._rx
        if st is None or self._rx_vmin > 90.0 or unsensed_chg:
            return
        if not self.measured() and length > _RX_STALL * self.load.receipt_time_s(power_policy.STANDARD_LINES,
                                                                                  self.load.min_dots):
            return  # a stalled receipt: the model's current did not flow throughout (_RX_STALL)
        peak = self._rx_apeak if self.measured() else self.receipt(power_policy.STANDARD_LINES, self._dots())[1]
        pred = power_policy.predict_min_cell_v(st[0], st[1], st[2], st[3], self.est.capacity_ah, mean_a, length,
                                               self.chemistry, peak)
        err = self._rx_vmin - pred
        if self.rx_checked == 0:
            self._bias_raw = err
        else:
            d = err - self._bias_raw
            self._bias_raw += _BIAS_ALPHA * d
            self._err_var += _BIAS_ALPHA * (d * d - self._err_var)
        # A model that is too pessimistic is corrected only so far; one too optimistic, fully.
        self.bias_v = _BIAS_MAX_V if self._bias_raw > _BIAS_MAX_V else self._bias_raw
        self.rx_checked += 1
        self.margin_v = self.margin_floor_v + 3.0 * self.cells * math.sqrt(self._err_var)

    # -- one step ---------------------------------------------------------------------------------
    def update(self):
        now = time.ticks_ms()
        dt_ms = 0 if self._last_ms is None else time.ticks_diff(now, self._last_ms)
        if dt_ms < 0:
            dt_ms = 0
        dt = dt_ms / 1000.0
        first = self._last_ms is None
        self._last_ms = now
        if self._n % _TEMP_EVERY == 0:
            self.temp_c = self.sense.temp_c()
        self._n += 1
        try:
            mv = self.sense.read_mv()
        except battery.SenseFault as e:
            return self._faulted(str(e), dt)
        v_cell = mv / 1000.0 / self.cells
        prev_v = self.pack_v / self.cells if self.pack_v > 0 else v_cell
        amps = self.current_a()
        prev_a = self._amps
        # What the current change explains (its I*R, generously) is not a jump; the rest is.
        # A current step moves the voltage by up to 5x the nominal resistance (an old, cold pack): only what
        # is beyond that is a jump.
        di = amps - prev_a
        r0 = self._r0()
        slack = 5.0 * self.health.r_nominal - r0
        jump = abs(v_cell - prev_v + di * r0) - abs(di) * (slack if slack > 0.0 else 0.0)
        if jump > _JUMP_V_CELL and not first:
            self._jump_n += 1
            if self._jump_n < _JUMP_CONFIRM:
                return self._faulted("reading jumped by %.2f V" % ((v_cell - prev_v) * self.cells), dt)
            self.est.reset()  # a new level held for several readings is real: start over
            self._swap_suspect = True  # ... and perhaps another pack: the next edges tell
            self._edge_i = None  # an edge open across the jump measures nothing
            first = True
        self._jump_n = 0
        self.fault = None
        self.pack_v = mv / 1000.0
        self._amps = amps
        self._track_edge(v_cell, amps, prev_a)
        self._v_cell = v_cell
        r0 = self._r0()
        may_init = amps < _INIT_MAX_A and self._edge_i is None
        self.est.capacity_ah = self.health.cap_fit_ah()
        s_ref = self.est.update(v_cell, amps, prev_a, r0, dt, may_init, True)
        self._track_voltages(v_cell, dt, first)
        if self.printing:
            if not self.paused:
                self._rx_track(v_cell, amps, dt)
        elif self.boot_rest_s < _BOOT_REST_S:
            # after boot: idle time in a row (a load restarts it), once; a receipt is allowed only after it
            self.boot_rest_s = self.boot_rest_s + dt if amps < _INIT_MAX_A and self._edge_i is None else 0.0
        self.health.count(prev_a, dt_ms)
        self._track_rest(dt, amps, prev_a)
        self.health.watch_charger(self.charger_on(), self._v_idle, self.soc_pct, dt)
        if s_ref < 0.0:
            # Not started yet (the first readings were under load): no SoC to act on, no receipts.
            # The state is left as it is (can_print says "no rested reading yet").
            self.soc_known = False
            self.rx_headroom_v = -1.0
            self._warn()
            return self.policy.state
        self.soc_known = True
        if self.cut and not self.resting and not self.measured():
            self._after_cut()
        r0 = self._r_pred()
        mean_a, peak_a, t_rx = self.receipt(power_policy.STANDARD_LINES, self.load.min_dots)
        floor = (self.cutoff_v + self.margin_v) / self.cells
        empty = power_policy.empty_soc_ref(floor, self._vrc_f, r0, s_ref, self.est.capacity_ah, mean_a, t_rx,
                                           self.chemistry, peak_a, self.bias_v)
        pct = 0.0 if empty >= 100.0 else (s_ref - empty) / (100.0 - empty) * 100.0
        self.soc_pct = 0.0 if pct < 0.0 else (100.0 if pct > 100.0 else pct)
        per_ah = mean_a * t_rx / 3600.0
        left_ah = (s_ref - empty) / 100.0 * self.est.capacity_ah
        self.receipts_left = int(left_ah / per_ah) if left_ah > 0 and per_ah > 0 else 0
        # The state's receipt check is at the lowest heat the policy offers (heat_setting falls back to it,
        # so CRITICAL means not even that receipt would finish). At the offered heat the headroom stays near
        # 0 by construction (the offer takes the most dots that pass): a hysteresis measured there cleared
        # only once a full-heat receipt had the whole margin to spare, an hour on the charger on the story day.
        self.rx_headroom_v = self._headroom(self.load.min_dots, power_policy.STANDARD_LINES, r0)
        idle_v = self.cells * (self._ocv_f - self.load.base_a() * self._r0() - self.est.v_rc)
        idle_ok = idle_v - self.margin_v >= self.cutoff_v
        state = self.policy.step(self.soc_pct, self.rx_headroom_v, self.exit_hyst_v, idle_ok, False, dt)
        self._warn()
        self.health.maybe_save(dt, state <= LOW and not self.printing)
        if state == SHUTDOWN and self.auto_shutdown and not self.printing:
            self.shutdown("battery empty")
        return state

    def _warn(self):
        st = self.policy.state
        if st == FAULT:
            self.low_warning = "battery sense fault: no sales"
        elif not self.soc_known:
            self.low_warning = None
        elif st >= CRITICAL:
            self.low_warning = "battery empty: no receipts left, connect the charger"
        elif st == LOW or (self.receipts_left is not None and self.receipts_left <= _LOW_RECEIPTS):
            self.low_warning = "battery low: about %d receipts left" % self.receipts_left
        else:
            self.low_warning = None

    def _faulted(self, why, dt):
        self.fault = why
        self.policy.step(self.soc_pct, -1.0, self.exit_hyst_v, True, True, dt)
        self._warn()
        return self.policy.state

    def _track_voltages(self, v_cell, dt, first):
        ocv = self.est.ocv
        if first or self._ocv_f == 0.0:
            self._ocv_f = ocv
            self._vrc_f = self.est.v_rc
        else:
            self._ocv_f += (ocv - self._ocv_f) * (dt / (_OCV_TAU_S + dt))
            self._vrc_f += (self.est.v_rc - self._vrc_f) * (dt / (_VRC_TAU_S + dt))
        if not self.printing and self._edge_i is None:
            if self._v_idle == 0.0 or first:
                self._v_idle = v_cell
            else:
                self._v_idle += (v_cell - self._v_idle) * (dt / (_IDLE_TAU_S + dt))

    def _track_edge(self, v_cell, amps, prev_a):
        """R = dV/dI across a current edge: from the last steady reading before the current moved to the
        first reading where it is steady again (a ramp over several readings is one edge)."""
        moving = abs(amps - prev_a) >= _EDGE_MIN_A
        if self._edge_i is None:
            if moving and self._v_cell > 0.0:
                self._edge_v = self._v_cell
                self._edge_i = prev_a
            return
        if moving:
            return
        dv = self._edge_v - v_cell
        di = amps - self._edge_i
        self._edge_i = None
        r = self.health.on_edge(dv, di, self.temp_c, self.sense.temp_trusted)
        if r is not None and self._swap_suspect:
            known = self.health.r_now if self.health.r_now_events > 1 else self.health.r25
            if r > known * _SWAP_R_RATIO or r < known / _SWAP_R_RATIO:
                self._swap_n += 1
                if self._swap_n >= _SWAP_EDGES:
                    self.new_pack()
            else:
                self._swap_suspect = False
                self._swap_n = 0

    def new_pack(self):
        """Another pack: what was learned belongs to the old one. Restart learning from the priors."""
        self.health.restart()
        self.health.restarts += 1
        self.est.reset()
        self.est.capacity_ah = self.health.cap_fit_ah()
        self._swap_suspect = False
        self._swap_n = 0
        self.rx_checked = 0
        self.bias_v = 0.0
        self._bias_raw = 0.0
        self._err_var = self._err_var0()
        self.margin_v = self.margin_floor_v + 3.0 * self.cells * math.sqrt(self._err_var)
        self.boot_rest_s = 0.0
        self.r_sag = 0.0  # measured again on this pack (saved once it is)
        self._sag_saved = 0.0

    def _track_rest(self, dt, amps, prev_a):
        if self.printing or self.charger_on() or abs(amps - prev_a) >= _EDGE_MIN_A or amps > _INIT_MAX_A:
            self._idle_s = 0.0
            return
        self._idle_s += dt
        if self._idle_s >= _RESTED_S and self.est.soc >= 0.0:
            self.health.rested_point(soc.ocv_to_soc(self._ocv_f, self.chemistry), self.est.weight())
            self._idle_s = 0.0

    def _headroom(self, dots, lines, r0):
        """Volts above cutoff plus margin at the end of a receipt of `lines` heating `dots` at once:
        OCV minus the charge it draws, the relaxation it builds, and its peak through R0; corrected by
        the learned prediction error."""
        if self.est.soc < 0.0:
            return -1.0
        mean_a, peak_a, t_s = self.receipt(lines, dots)
        if self.charger_on() and not self.health.charger_fault and not self.measured():
            # A working charger on the battery node feeds the printer too: the pack gives that much less
            # (with a current sensor the measured receipts already show it).
            mean_a -= self.load.charge_a
            peak_a -= self.load.charge_a
        v_min = self.cells * (power_policy.predict_min_cell_v(
            self._ocv_f, self.est.v_rc, r0, self.est.soc, self.est.capacity_ah, mean_a, t_s, self.chemistry,
            peak_a) + self.bias_v)
        return v_min - self.margin_v - self.cutoff_v

    # -- answers ----------------------------------------------------------------------------------
    @property
    def state(self):
        return self.policy.state

    @property
    def state_name(self):
        return NAMES[self.policy.state]

    @property
    def resting(self):
        """True until the pack has rested _BOOT_REST_S at idle since this boot (or a pack change): the
        printer task prints nothing before (any reset may have been a brownout under a receipt)."""
        return self.boot_rest_s < _BOOT_REST_S

    @property
    def maintenance_allowed(self):
        return self.policy.state <= LOW and not self.printing

    @property
    def replace_battery(self):
        return self.health.replace_battery()

    @property
    def charger_fault(self):
        return self.health.charger_fault

    @property
    def r_int_mohm(self):
        """The ohmic resistance now (at the present temperature), mOhm."""
        return self._r0() * 1000.0

    @property
    def r25_mohm(self):
        return self.health.r25 * 1000.0

    @property
    def r_growth(self):
        return self.health.r_growth()

    @property
    def soh_pct(self):
        return self.health.soh_pct()

    @property
    def cycles(self):
        return self.health.cycles()

    def _r0(self):
        return self.health.r_at(self.temp_c if self.sense.temp_trusted else None)

    def _r_pred(self):
        """The ohmic resistance a receipt's prediction uses: the edges' with a current sensor. Without one,
        the receipts' sag (sample_sag; saved in sag.json) once one is known, else the most worn pack's the
        product accepts (_R_UNSENSED x nominal)."""
        r = self._r0()
        if self.measured():
            return r
        if self.r_sag > 0.0:
            return self.r_sag if self.r_sag > r else r
        hi = _R_UNSENSED * self.health.r_nominal * self.health.r_factor(self.temp_c if self.sense.temp_trusted
                                                                        else None)
        return r if r > hi else hi

    def heat_setting(self):
        """The most heating dots (up to the profile's) whose receipt stays above cutoff plus margin."""
        dots = self.load.dots
        r0 = self._r_pred()
        for _ in range(32):  # bounded: at most 256 / 8 settings
            if dots <= self.load.min_dots:
                break
            h = self.load.heat(dots, self.pack_v)
            if self._headroom(h.dots, power_policy.STANDARD_LINES, r0) >= 0:
                return h
            dots -= 8
        return self.load.heat(self.load.min_dots, self.pack_v)

    def can_print(self, lines=power_policy.STANDARD_LINES, heat=None):
        """(ok, reason): can a receipt of `lines` lines at this heat setting finish on this pack now?"""
        if self.fault is not None or self.policy.state == FAULT:
            return False, "sense fault: %s" % self.fault
        if self._last_ms is None:
            return False, "no reading yet"
        if not self.soc_known:
            return False, "no rested reading yet"
        st = self.policy.state
        if st >= CRITICAL:
            return False, "state %s" % NAMES[st]
        if heat is None:
            heat = self.heat_setting()
        r0 = self._r_pred()
        # The peak is predicted from the dots for the pack now: a HeatSetting offered earlier (or built by
        # hand, as the naive policy's) may carry a stale or unknown peak_a.
        head = self._headroom(heat.dots, lines, r0)
        if head < 0:
            floor = self.cutoff_v + self.margin_v
            return False, "predicted %.2f V < %.2f V" % (head + floor, floor)
        mean_a, _peak, t = self.receipt(lines, heat.dots)
        need_ah = mean_a * t / 3600.0  # the charge it draws
        if self.receipts_left is not None and self.soc_pct / 100.0 * self.est.capacity_ah < need_ah:
            return False, "energy"
        return True, "ok"

    # -- the safe stop ------------------------------------------------------------------------------
    def shutdown(self, reason):
        if self._stopping:
            return
        self._stopping = True
        for fn in self._hooks:
            try:
                fn(reason)
            except Exception as e:  # one failing hook must not keep the others from running
                print("shutdown hook failed:", e)
        try:
            self.health.save()
        except OSError:
            pass
        from posguard import bootcheck

        bootcheck.sleep_low(self.prof, reason)

    async def run(self, period_s=1.0):
        """The monitor as an asyncio task. A failing update shows as a fault and is retried; resets and
        the SHUTDOWN deep sleep (BaseException) go through."""
        while True:
            try:
                self.update()
            except Exception as e:  # noqa: BLE001  (a sensor or filesystem error must not kill the task)
                self.fault = "update failed: %s" % e
                self.policy.step(self.soc_pct, -1.0, self.exit_hyst_v, True, True, 0.0)
            await asyncio.sleep(period_s)
