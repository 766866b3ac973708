# The fast battery check boot.py runs before anything heavy, the low-battery deep sleep (wake on the
# charger pin or a timer: never a brownout reboot loop), and the power-fail input's safe stop, deferred
# from its interrupt through micropython.schedule.
import micropython
from micropython import const

from posguard import battery, hw, power_policy, soc

_LOW_MARK = b"PGLOW"  # in RTC memory: the last sleep was for a low battery
_SLEEP_NO_CHARGER_MS = const(1800000)  # 30 min: re-check even without a charger (the pack relaxes)
_SLEEP_CHARGING_MS = const(600000)  # 10 min while a charger is on: wake when it has put charge in


def boot_soc_pct(prof, pack_mv, r25_ohm=None):
    """Usable SoC from one idle reading at boot (no history): the idle I*R and the idle polarisation are
    added back with the stored (or nominal) resistance."""
    b = prof["battery"]
    p = prof["power"]
    cells = b["cells_series"]
    r0 = r25_ohm if r25_ohm is not None else b["r_nominal_mohm"] / 1000.0
    idle = p["idle_a"]
    ocv = pack_mv / 1000.0 / cells + idle * r0 * (1.0 + soc.RC_SHARE)
    ref = soc.ocv_to_soc(ocv, b["chemistry"])
    load = power_policy.LoadModel(prof)
    rx_a = idle + p["print_a"]
    # The strobe peak as PowerMonitor predicts it (dots x V_head / R_dot; a boost converter at the floor)
    peak_a = load.peak_a(load.dots, pack_mv / 1000.0)
    floor = (p["brownout_v"] + prof["policy"]["margin_mv"] / 1000.0) / cells
    empty = power_policy.empty_soc_ref(
        floor, idle * r0 * soc.RC_SHARE, r0, ref, b["capacity_mah"] / 1000.0, rx_a,
        load.receipt_time_s(power_policy.STANDARD_LINES, load.dots), b["chemistry"], peak_a,
    )
    if empty >= 100.0:
        return 0.0
    pct = (ref - empty) / (100.0 - empty) * 100.0
    return 0.0 if pct < 0.0 else (100.0 if pct > 100.0 else pct)


def _stored_r25(store_dir):
    d = battery.read_json(battery._join(store_dir, "health.json"))
    try:
        return float(d["r25_mohm"]) / 1000.0
    except (KeyError, TypeError, ValueError):
        return None


def check(prof, store_dir=""):
    """Return the boot SoC (%), or deep-sleep now when the pack is below the SHUTDOWN level plus the
    hysteresis. A broken sense line returns None: the app shows FAULT instead of sleeping forever."""
    b = prof["battery"]
    sense = battery.BatterySense(hw.adc(prof["pins"]["vbat_adc"]), b["divider_ratio"], b["cells_series"], store_dir)
    try:
        mv = sense.read_mv()
    except battery.SenseFault:
        return None
    r25 = _stored_r25(store_dir)
    pct = boot_soc_pct(prof, mv, r25)
    pol = prof["policy"]
    need = pol["shutdown_pct"] + pol["hysteresis_pct"]
    idle_floor_mv = (prof["power"]["brownout_v"] * 1000 + pol["margin_mv"])
    if pct <= need or mv < idle_floor_mv:
        sleep_low(prof, "boot: %d mV, %.1f %%" % (mv, pct))
    _clear_mark()
    return pct


def _clear_mark():
    import machine

    try:
        if machine.RTC().memory() == _LOW_MARK:
            machine.RTC().memory(b"")
    except (OSError, AttributeError):
        pass


def woke_from_low_battery():
    import machine

    try:
        return machine.RTC().memory() == _LOW_MARK
    except (OSError, AttributeError):
        return False


def sleep_low(prof, reason=""):
    """Deep sleep for a low battery: wake when the charger appears, or on a timer to look again."""
    import esp32
    import machine

    print("posguard: battery low, deep sleep (%s)" % reason)
    try:
        machine.RTC().memory(_LOW_MARK)
    except (OSError, AttributeError):
        pass
    ms = _SLEEP_NO_CHARGER_MS
    pin = hw.pin_in(prof["pins"]["charger_present"])
    if pin is not None:
        if pin.value():
            ms = _SLEEP_CHARGING_MS  # already charging: a level wake would fire at once, use the timer
            esp32.wake_on_ext0(None, esp32.WAKEUP_ANY_HIGH)
        else:
            esp32.wake_on_ext0(pin, esp32.WAKEUP_ANY_HIGH)
    machine.deepsleep(ms)


# -- power-fail input (supervisor comparator, active low) ------------------------------------------
_stop = None
_fired = False


def _run_stop(_arg):
    f = _stop
    if f is not None:
        f("power-fail input")


def _on_power_fail(_pin):
    # Interrupt context: no allocation. Bound functions and module globals only.
    global _fired
    if not _fired:
        _fired = True
        micropython.schedule(_run_stop, None)


def arm_power_fail(pin, stop):
    """pin: the power-fail input (a Pin, pulled up; the comparator pulls it low on failure).
    stop(reason): the safe stop (PowerMonitor.shutdown). Runs later, outside the interrupt."""
    global _stop, _fired
    if pin is None:
        return False
    _stop = stop
    _fired = False
    pin.irq(handler=_on_power_fail, trigger=pin.IRQ_FALLING)
    if not pin.value():
        _on_power_fail(pin)  # already failing when armed
    return True
