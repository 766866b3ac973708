# PowerMonitor: the one object the app talks to about the battery. Each update() reads the pack,
# updates state of charge and health, and steps the power policy; it answers can_print() and offers
# the printer a heat setting. Wiring: docs/battery.md.
import asyncio
import time

from micropython import const

from posguard import battery, health, power_policy, soc
from posguard.power_policy import CRITICAL, FAULT, LOW, NAMES, OK, SHUTDOWN  # noqa: F401  (re-exported)

_STEP_WINDOW_MS = const(1000)  # the sag after a printer start is read within this window
_IDLE_TAU_S = 10.0  # smoothing of the idle voltage that a step is measured against
_OCV_TAU_S = 10.0  # smoothing of the open-circuit estimate used by the receipt prediction
_JUMP_V_CELL = 0.4  # a reading this far from the last one, with no load change, is a glitch...
_JUMP_CONFIRM = const(5)  # ...unless this many readings in a row agree (a pack was swapped)
_RESTED_S = 60.0  # idle this long: the voltage is a usable capacity-learning point
_TEMP_EVERY = const(10)  # temperature changes slowly: read it every 10th update
_MAX_HOOKS = const(8)


class PowerMonitor:
    def __init__(self, prof, adc, charger_pin=None, therm_adc=None, current_adc=None, store_dir="",
                 mcu_temp=None, cutoff_v=None, auto_shutdown=True, heat_scaling=True):
        b = prof["battery"]
        self.prof = prof
        self.cells = b["cells_series"]
        self.chemistry = b["chemistry"]
        soc.table(self.chemistry)  # unknown chemistry: a clear ValueError at construction
        if mcu_temp is None and therm_adc is None:
            try:
                mcu_temp = battery.mcu_temp_reader()
            except ImportError:
                mcu_temp = None
        self.sense = battery.BatterySense(adc, b["divider_ratio"], self.cells, store_dir, therm_adc, mcu_temp)
        self.current_adc = current_adc  # a current sensor is not modelled on any board yet: load model
        self.charger_pin = charger_pin
        self.load = power_policy.LoadModel(prof)
        if not heat_scaling:
            self.load.min_dots = self.load.dots  # e.g. a replayed trace: its printer never scaled
        self.policy = power_policy.PowerPolicy(prof)
        self.health = health.Health(b["r_nominal_mohm"] / 1000.0, b["capacity_mah"] / 1000.0, store_dir)
        self.est = soc.SocEstimator(self.chemistry, self.health.cap_ah)
        self.cutoff_v = prof["power"]["brownout_v"] if cutoff_v is None else cutoff_v
        self.margin_v = prof["policy"]["margin_mv"] / 1000.0
        self.load.floor_v = self.cutoff_v + self.margin_v  # a boost converter's peak is predicted there
        self.auto_shutdown = auto_shutdown
        self.printing = False
        self.heat = None
        self.fault = None
        self.soc_pct = 0.0
        self.pack_v = 0.0
        self.temp_c = 25.0
        self.rx_headroom_v = 0.0
        self._hooks = []
        self._last_ms = None
        self._amps = self.load.base_a()
        self._v_idle = 0.0
        self._ocv_f = 0.0
        self._step_t0 = None
        self._step_v0 = 0.0
        self._step_i0 = 0.0
        self._step_vmin = 0.0
        self._jump_n = 0
        self._idle_s = 0.0
        self._n = 0
        self._stopping = False

    # -- what the app tells us ------------------------------------------------------------------
    def set_load(self, printing, heat=None):
        if printing and not self.printing and self._v_idle > 0:
            self._step_t0 = time.ticks_ms()
            self._step_v0 = self._v_idle
            self._step_i0 = self._amps
            self._step_vmin = 99.0
        self.printing = bool(printing)
        self.heat = heat

    def set_radio(self, on):
        self.load.radio = bool(on)

    def add_shutdown_hook(self, fn):
        if len(self._hooks) >= _MAX_HOOKS:
            raise ValueError("too many shutdown hooks")
        self._hooks.append(fn)

    def calibrate(self, actual_mv):
        g, o = self.sense.calibrate(actual_mv)
        self.est.reset()  # the old estimate was made on the old scale
        self._last_ms = None
        return g, o

    # -- the model's current -----------------------------------------------------------------------
    def _dots(self):
        return self.heat.dots if self.heat is not None else self.load.dots

    def current_a(self):
        a = self.load.base_a()
        if self.printing:
            a += self.load.print_extra_a(self._dots(), self.pack_v)
        if self.charger_on() and not self.health.charger_fault:
            # CC until the cell nears 4.2 V, tapering over the last 0.1 V (CV phase) [EST]
            taper = (4.2 - self.est.ocv) / 0.1 if self.est.ocv > 0 else 1.0
            taper = 0.0 if taper < 0.0 else (1.0 if taper > 1.0 else taper)
            a -= self.load.charge_a * taper
        return a

    def charger_on(self):
        p = self.charger_pin
        return p is not None and bool(p.value())

    # -- one step ---------------------------------------------------------------------------------
    def update(self):
        now = time.ticks_ms()
        dt = 0.0 if self._last_ms is None else time.ticks_diff(now, self._last_ms) / 1000.0
        if dt < 0:
            dt = 0.0
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
        if abs(v_cell - prev_v) > _JUMP_V_CELL and self._step_t0 is None and not first:
            self._jump_n += 1
            if self._jump_n < _JUMP_CONFIRM:
                return self._faulted("reading jumped by %.2f V" % ((v_cell - prev_v) * self.cells), dt)
            self.est.reset()  # a new level held for several readings is real: start over
            first = True
        self._jump_n = 0
        self.fault = None
        self.pack_v = mv / 1000.0
        prev_a = self._amps
        amps = self.current_a()
        self._amps = amps
        r0 = self.health.r25 * soc.r_temp_factor(self.temp_c)
        cap_f = soc.capacity_temp_factor(self.temp_c)
        self.est.capacity_ah = self.health.cap_ah
        s_ref = self.est.update(v_cell, amps, prev_a, r0, dt, cap_f)
        self._track_voltages(v_cell, dt, first)
        self._track_step(v_cell, now, amps)
        self.health.count(prev_a, dt)
        self._track_rest(dt)
        self.health.watch_charger(self.charger_on(), self._v_idle, self.soc_pct, dt)
        # The usable scale: 0 % where a standard receipt at the lowest offered heat would end at the
        # cutoff plus margin.
        low = self.load.min_dots
        t_low = self.load.receipt_time_s(power_policy.STANDARD_LINES, low)
        empty = power_policy.empty_soc_ref(
            self.cutoff_v / self.cells, self.margin_v / self.cells, self.load.base_a(),
            self.load.mean_a(low, self.pack_v), r0, t_low, self.chemistry, self.load.peak_a(low, self.pack_v),
        )
        pct = 0.0 if empty >= 100.0 else (s_ref - empty) / (100.0 - empty) * 100.0
        self.soc_pct = 0.0 if pct < 0.0 else (100.0 if pct > 100.0 else pct)
        h = self.heat_setting()
        self.rx_headroom_v = self._headroom(h.dots, self.load.receipt_time_s(power_policy.STANDARD_LINES, h.dots), r0)
        idle_v = self.cells * (self._ocv_f - self.load.base_a() * r0 - self.est.v_rc)
        idle_ok = idle_v - self.margin_v >= self.cutoff_v
        state = self.policy.step(self.soc_pct, self.rx_headroom_v, self.margin_v, idle_ok, False, dt)
        self.health.maybe_save(dt, state <= LOW and not self.printing)
        if state == SHUTDOWN and self.auto_shutdown and not self.printing:
            self.shutdown("battery empty")
        return state

    def _faulted(self, why, dt):
        self.fault = why
        self.policy.step(self.soc_pct, -1.0, self.margin_v, True, True, dt)
        return self.policy.state

    def _track_voltages(self, v_cell, dt, first):
        ocv = self.est.ocv
        if first or self._ocv_f == 0.0:
            self._ocv_f = ocv
        else:
            self._ocv_f += (ocv - self._ocv_f) * (dt / (_OCV_TAU_S + dt))
        if not self.printing and self._step_t0 is None:
            if self._v_idle == 0.0 or first:
                self._v_idle = v_cell
            else:
                self._v_idle += (v_cell - self._v_idle) * (dt / (_IDLE_TAU_S + dt))

    def _track_step(self, v_cell, now, amps):
        if self._step_t0 is None:
            return
        if v_cell < self._step_vmin:
            self._step_vmin = v_cell
        if time.ticks_diff(now, self._step_t0) >= _STEP_WINDOW_MS or not self.printing:
            if self.printing:
                self.health.on_step(self._step_v0 - self._step_vmin, amps - self._step_i0, self.temp_c)
            self._step_t0 = None

    def _track_rest(self, dt):
        if self.printing or self.charger_on():
            self._idle_s = 0.0
            return
        self._idle_s += dt
        if self._idle_s >= _RESTED_S:
            self.health.rested_point(soc.ocv_to_soc(self._ocv_f, self.chemistry))
            self._idle_s = 0.0

    def _headroom(self, dots, t_s, r0):
        """Volts above cutoff plus margin at the end of a t_s receipt heating `dots` at once: the mean
        current draws the charge and the RC branch, the strobe peak sags through R0."""
        ld = self.load
        v_min = self.cells * power_policy.predict_min_cell_v(
            self._ocv_f, self.est.v_rc, r0, self.est.soc, self.est.capacity_ah, ld.mean_a(dots, self.pack_v), t_s,
            self.chemistry, ld.peak_a(dots, self.pack_v),
        )
        return v_min - self.margin_v - self.cutoff_v

    # -- answers ----------------------------------------------------------------------------------
    @property
    def state(self):
        return self.policy.state

    @property
    def state_name(self):
        return NAMES[self.policy.state]

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
        return self.health.r25 * 1000.0

    @property
    def soh_pct(self):
        return self.health.soh_pct()

    @property
    def cycles(self):
        return self.health.cycles()

    def _r0(self):
        return self.health.r25 * soc.r_temp_factor(self.temp_c)

    def heat_setting(self):
        """The most heating dots (up to the profile's) whose receipt stays above cutoff plus margin."""
        dots = self.load.dots
        r0 = self._r0()
        for _ in range(32):  # bounded: at most 256 / 8 settings
            if dots <= self.load.min_dots:
                break
            h = self.load.heat(dots, self.pack_v)
            t = self.load.receipt_time_s(power_policy.STANDARD_LINES, h.dots)
            if self._headroom(h.dots, t, r0) >= 0:
                return h
            dots -= 8
        return self.load.heat(self.load.min_dots, self.pack_v)

    def can_print(self, lines=power_policy.STANDARD_LINES, heat=None):
        """(ok, reason): can a receipt of `lines` lines at this heat setting finish on this pack now?"""
        if self.fault is not None or self.policy.state == FAULT:
            return False, "sense fault: %s" % self.fault
        if self._last_ms is None:
            return False, "no reading yet"
        st = self.policy.state
        if st >= CRITICAL:
            return False, "state %s" % NAMES[st]
        if heat is None:
            heat = self.heat_setting()
        t = self.load.receipt_time_s(lines, heat.dots)
        r0 = self._r0()
        # The peak is predicted from the dots for the pack now: a HeatSetting offered earlier (or built by
        # hand, as the naive policy's) may carry a stale or unknown peak_a.
        head = self._headroom(heat.dots, t, r0)
        if head < 0:
            floor = self.cutoff_v + self.margin_v
            return False, "predicted %.2f V < %.2f V" % (head + floor, floor)
        need_ah = self.load.mean_a(heat.dots, self.pack_v) * t / 3600.0  # the charge it draws
        if self.soc_pct / 100.0 * self.health.cap_ah < need_ah:
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
                self.policy.step(self.soc_pct, -1.0, self.margin_v, True, True, 0.0)
            await asyncio.sleep(period_s)
