# Battery work on the real MicroPython VM (unix port, 110 KB firmware heap): the simulated ADC and pack,
# the monitor's estimate, policy and faults, calibration on the board filesystem, the boot check's
# deep sleep, and the power-fail input deferred through micropython.schedule.
import os

import mpy_runner


def _world(profile_name="devkit-1s", soc=0.6, **kw):
    import sim_battery

    w = mpy_runner.make_world(profile_name)
    cells = w.profile["battery"]["cells_series"]
    w.battery = sim_battery.Battery(cells=cells, soc=soc, **kw)
    w.pack = sim_battery.PackWiring(w.board, w.battery)
    w.power.set_load("board", w.profile["power"]["idle_a"])
    for name in ("calib.json", "health.json", "calib.json.tmp"):
        try:
            os.remove(w.board.fs_dir + "/" + name)
        except OSError:
            pass
    return w


def _monitor(w):
    from posguard import hw, powermon

    p = w.profile["pins"]
    return powermon.PowerMonitor(w.profile, hw.adc(p["vbat_adc"]), charger_pin=hw.pin_in(p["charger_present"]),
                                 therm_adc=hw.adc(p["thermistor_adc"]), store_dir=w.board.fs_dir, auto_shutdown=False)


def test_sim_adc_reads_within_band_and_clips():
    import machine

    w = _world()
    w.board.analog_sources[13] = lambda: 1.5
    a = machine.ADC(machine.Pin(13), atten=machine.ADC.ATTN_11DB)
    s = 0
    for _ in range(64):
        s += a.read_uv()
    assert abs(s / 64 - 1500000) < 60000, s / 64
    w.board.analog_sources[13] = lambda: 4.0
    assert a.read() == 4095 and a.read_u16() == 65535


def test_sim_battery_sags_more_when_cold_and_old():
    import sim_battery

    fresh = sim_battery.Battery(soc=0.5)
    cold = sim_battery.Battery(soc=0.5, temp_c=0.0)
    old = sim_battery.Battery(soc=0.5, r_growth=2.0)
    sag = fresh.terminal_v(0.0) - fresh.terminal_v(2.0)
    # the traces' family: x1.4 from 25 C to -10 C (contact resistance does not warm up), about x1.3 at 0 C
    assert cold.terminal_v(0.0) - cold.terminal_v(2.0) > 1.2 * sag
    assert abs((old.terminal_v(0.0) - old.terminal_v(2.0)) / sag - 2.0) < 0.01


def test_monitor_estimates_and_allows_a_receipt():
    w = _world(soc=0.6)
    mon = _monitor(w)
    for _ in range(20):
        mon.update()
        w.clock.advance_us(1000000)
    assert mon.state_name == "OK", mon.state_name
    assert 40 < mon.soc_pct < 80, mon.soc_pct
    ok, why = mon.can_print(30)
    assert ok, why
    h = mon.heat_setting()
    assert h.n1 == 7 and h.dots == 64


def test_update_does_not_grow_the_heap():
    import gc

    if not hasattr(gc, "mem_alloc"):
        return  # CPython (this file collected as a module there): no MicroPython heap to measure
    w = _world(soc=0.6)
    mon = _monitor(w)
    for _ in range(5):
        mon.update()
        w.clock.advance_us(1000000)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(200):
        mon.update()
        w.clock.advance_us(1000000)
    gc.collect()
    assert gc.mem_alloc() - before < 2048, gc.mem_alloc() - before


class _FixedAdc:
    # read_uv() from a preallocated list of small ints: the reading's own allocations are all there is
    def __init__(self, values):
        self.values = values
        self.i = 0

    def read_uv(self):
        self.i = (self.i + 1) % len(self.values)
        return self.values[self.i]


def test_pack_reading_sorts_in_place_and_allocates_nothing():
    # The trimmed mean (battery.py _trimmed_uv) runs 1-2 times a second while trading: 64 samples, sorted
    # in their preallocated buffer. Measured with the collector off, so garbage counts too.
    import gc

    from posguard import battery

    values = [1000000 + ((k * 37) % 64) * 1000 for k in range(64)]  # every value once, shuffled
    values[5] = 2900000  # outliers both ends: trimmed away
    values[9] = 100000
    sense = battery.BatterySense(_FixedAdc(values), 2.0, 1)
    want = sum(sorted(values)[16:48]) // 32
    assert sense._trimmed_uv(sense.adc) == want
    if not hasattr(gc, "mem_alloc"):
        return  # CPython: the value is checked, there is no MicroPython heap to measure
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for _ in range(20):
            sense._trimmed_uv(sense.adc)
        grown = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert grown == 0, grown


def test_empty_pack_refuses_and_goes_critical():
    w = _world(soc=0.045)
    mon = _monitor(w)
    for _ in range(10):
        mon.update()
        w.clock.advance_us(1000000)
    assert mon.state >= 2, mon.state_name
    assert not mon.can_print(30)[0]
    assert not mon.maintenance_allowed


def test_sense_line_fault():
    w = _world(soc=0.6)
    mon = _monitor(w)
    mon.update()
    w.pack.sense_fault = "open"
    mon.update()
    assert mon.state_name == "FAULT" and mon.fault
    assert not mon.can_print(30)[0]


def test_calibration_on_the_board_filesystem():
    w = _world(soc=0.6)
    mon = _monitor(w)
    true_mv = w.power.rail_v() * 1000
    mon.calibrate(int(true_mv))
    try:
        mon.calibrate(12)
        raise AssertionError("absurd calibration accepted")
    except ValueError:
        pass
    mon2 = _monitor(w)
    mon2.update()
    assert abs(mon2.pack_v * 1000 - true_mv) < 15, (mon2.pack_v, true_mv)


def test_pos2s_thermistor_and_two_cells():
    w = _world("pos-2s", soc=0.5, temp_c=5.0)
    mon = _monitor(w)
    mon.update()
    assert abs(mon.temp_c - 5.0) < 1.5, mon.temp_c
    assert 7.0 < mon.pack_v < 8.0, mon.pack_v


class _Slept(Exception):
    pass


def test_boot_check_deep_sleeps_on_an_empty_pack():
    import machine

    from posguard import bootcheck

    slept = []

    def deepsleep(ms=-1):
        slept.append(ms)
        raise _Slept()

    real = machine.deepsleep
    machine.deepsleep = deepsleep  # record the call; the board-level flow is in test_battery_boot.py
    try:
        w = _world(soc=0.045)
        try:
            bootcheck.check(w.profile, w.board.fs_dir)
            raise AssertionError("boot check let an empty pack boot")
        except _Slept:
            pass
    finally:
        machine.deepsleep = real
    assert slept == [1800000], slept
    assert w.board.wake_ext0 == (w.profile["pins"]["charger_present"], 1)
    w2 = _world(soc=0.8)
    assert bootcheck.check(w2.profile, w2.board.fs_dir) > 50


def test_power_fail_is_deferred_through_schedule():
    import time

    from posguard import bootcheck, hw

    w = _world()
    pid = w.profile["pins"]["power_fail"]
    w.board.drive_pin(pid, 1)
    calls = []
    bootcheck.arm_power_fail(hw.pin_in(pid), calls.append)
    w.board.drive_pin(pid, 0)
    for _ in range(3):
        time.sleep_ms(1)
    assert calls == ["power-fail input"], calls


if __name__ == "__main__":
    mpy_runner.main(globals())


def test_charge_counter_stays_exact_at_ten_years_on_the_vm():
    from posguard import coulomb

    c = coulomb.ChargeCounter()
    c.set(438000, 3599)  # ten years at 5 A, one second short of the next mAh
    c.mams = 999
    for _ in range(3600):
        c.add(coulomb.to_ma(0.3), 1000)  # 1 s at 300 mA: 300 mA.s each
    assert c.mah == 438300 and c.mas == 3599 and c.mams == 999, (c.mah, c.mas, c.mams)


def test_devkit_without_temperature_says_so_and_learns_no_aging():
    w = _world(soc=0.6)
    w.board.raw_temp_reg = 128  # the original ESP32's stuck register: never a temperature
    mon = _monitor(w)
    for k in range(40):
        mon.update()
        if k % 10 == 5:
            mon.set_load(True)
            w.power.set_load("printer", 1.7)
        elif k % 10 == 9:
            mon.set_load(False)
            w.power.set_load("printer", 0.0)
        w.clock.advance_us(1000000)
    assert mon.temp_c is None and mon.temp_source == "none"
    assert mon.health.r_now_events >= 4 and mon.health.r_events == 0 and mon.r_growth is None
