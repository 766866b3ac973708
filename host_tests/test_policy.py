"""Power policy: hysteresis under noise, receipt prediction, heat setting, faults, charger, power-fail."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from posguard import bootcheck, hw, power_policy, powermon
from posguard.power_policy import CRITICAL, FAULT, LOW, OK, SHUTDOWN


def _transitions(states: list[int]) -> int:
    return sum(1 for a, b in zip(states, states[1:], strict=False) if a != b)


def _policy(world: Any, hyst: float) -> power_policy.PowerPolicy:
    prof = json.loads(json.dumps(world.profile))
    prof["policy"]["hysteresis_pct"] = hyst
    return power_policy.PowerPolicy(prof)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_soc_at_a_threshold_does_not_flap(world: Any, seed: int) -> None:
    rng = random.Random(seed)
    low = world.profile["policy"]["low_pct"]
    pol = _policy(world, world.profile["policy"]["hysteresis_pct"])
    states = [pol.step(low + rng.uniform(-1.5, 1.5), 1.0, 0.04, True, False, 1.0) for _ in range(3000)]
    assert _transitions(states) <= 1
    # Control: the same noise without hysteresis and dwell flaps, so the check above can fail.
    bare = _policy(world, 0)
    bare_states = []
    for _ in range(3000):
        bare._count = 99  # defeat the dwell too
        bare_states.append(bare.step(low + rng.uniform(-1.5, 1.5), 1.0, 0.04, True, False, 1.0))
    assert _transitions(bare_states) > 50


def test_noisy_voltage_at_the_low_threshold_does_not_flap_the_monitor(world: Any) -> None:
    """The whole chain: simulated ADC noise plus a +/-15 mV wobble on a pack parked at the LOW level."""
    import sim_battery

    pack = sim_battery.PackWiring(world.board, sim_battery.Battery(soc=0.5))
    world.power.set_load("board", 0.3)
    mon = powermon.PowerMonitor(world.profile, hw.adc(34), store_dir=str(world.fs_dir), auto_shutdown=False)
    # Find the pack SoC where the monitor reads the LOW threshold, then freeze the pack there.
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        pack.battery.set_soc(mid)
        m = powermon.PowerMonitor(world.profile, hw.adc(34), store_dir=str(world.fs_dir), auto_shutdown=False)
        m.update()
        lo, hi = (mid, hi) if m.soc_pct < world.profile["policy"]["low_pct"] else (lo, mid)
    pack.battery.set_soc(lo)
    pack.battery.step = lambda dt_s, amps: None  # frozen: only the noise moves
    base = pack.sense_volts
    k = [0]

    def wobbling() -> float:
        k[0] += 1
        return float(base() + 0.015 / pack.ratio * math.sin(k[0] / 7.0))

    world.board.analog_sources[34] = wobbling
    states = []
    for _ in range(1500):
        mon.update()
        states.append(mon.state)
        world.clock.advance_us(1_000_000)
    assert set(states) <= {OK, LOW}
    assert _transitions(states) <= 1


def _wired_monitor(make_world: Any, soc: float, profile: str = "devkit-1s", **batt: Any) -> tuple[Any, Any, Any]:
    """(world, pack wiring, monitor) on a pack at `soc`, the monitor watching the charger pin, 30 s in."""
    import sim_battery

    w = make_world(profile)
    bat = sim_battery.Battery(cells=w.profile["battery"]["cells_series"], soc=soc, **batt)
    pack = sim_battery.PackWiring(w.board, bat)
    w.power.set_load("board", w.profile["power"]["idle_a"])
    pins = w.profile["pins"]
    mon = powermon.PowerMonitor(w.profile, hw.adc(pins["vbat_adc"]), charger_pin=hw.pin_in(pins["charger_present"]),
                                store_dir=str(w.fs_dir), auto_shutdown=False)
    _run(w, mon, 30)
    return w, pack, mon


def _run(w: Any, mon: Any, seconds: int) -> None:
    for _ in range(seconds):
        mon.update()
        w.clock.advance_us(1_000_000)


def _monitor_at(make_world: Any, soc: float, profile: str = "devkit-1s", **batt: Any) -> tuple[Any, Any]:
    w, _pack, mon = _wired_monitor(make_world, soc, profile, **batt)
    return w, mon


def test_full_pack_prints_at_full_heat(make_world: Any) -> None:
    _, mon = _monitor_at(make_world, 0.9)
    assert mon.state == OK
    h = mon.heat_setting()
    assert h.dots == 64 and (h.n1, h.n2, h.n3) == (7, 80, 2)  # ESC 7 defaults 64 dots / 800 us / 20 us
    # Pack-side strobe peak behind the 5 V / 90 % boost at the 3.03 V floor, 162 Ohm dots, plus idle
    assert h.peak_a == pytest.approx(0.3 + 5.0 * (64 * 5.0 / 162.0) / (0.9 * 3.03), abs=0.01)
    assert mon.can_print(30) == (True, "ok")
    assert mon.maintenance_allowed


def _receipts(w: Any, mon: Any, n: int, amps: float = 1.7) -> None:
    for _ in range(n):
        _run(w, mon, 80)
        _one_receipt(w, mon, amps)


def _one_receipt(w: Any, mon: Any, amps: float = 1.7, seconds: int = 6, sag: bool = False) -> None:
    """A receipt the printer draws `amps` for `seconds`, the monitor told as printjobs tells it (a fresh idle
    reading just before it starts)."""
    mon.update()
    mon.set_load(True)
    w.power.set_load("printer", amps)
    for _ in range(seconds):
        w.clock.advance_us(1_000_000)
        if sag:
            mon.sample_sag()
        mon.update()
    w.power.set_load("printer", 0.0)
    mon.set_load(False)


def test_weak_pack_gets_fewer_heating_dots(make_world: Any) -> None:
    w, mon = _monitor_at(make_world, 0.12, r_growth=2.0)
    _receipts(w, mon, 6)  # the monitor learns the aged pack's resistance from the printer starts
    for _ in range(600):
        if mon.heat_setting().dots < 64:
            break
        w.clock.advance_us(10_000_000)
        mon.update()
    h = mon.heat_setting()
    assert h.dots < 64 and h.peak_a < mon.load.heat(64, mon.pack_v).peak_a
    ok, why = mon.can_print(30, mon.load.heat(64, mon.pack_v))
    assert not ok and ("predicted" in why or "CRITICAL" in why), why


def _board_profile(name: str) -> dict[str, Any]:
    from posguard_tools import paths

    data: dict[str, Any] = json.loads(paths.board_profile(name).read_text())
    return data


def _sim_printer_peak(board: str, pack_v: float, dots: int = 64) -> float:
    """Pack-side peak the simulated printer (sim_printer: 176 Ohm dots, its boost model) draws printing a
    standard receipt at `dots` heated at once from a pack held at pack_v."""
    import sim_power

    from posguard import receipt
    from posguard_tools.printer_world import PrinterWorld, standard_sale

    w = PrinterWorld(board)
    w.power.set_source(sim_power.IdealSupply(pack_v))
    w.power.brownout_v = 2.0  # let the printer see a low rail without the ESP32 resetting first
    try:
        drv = w.driver()
        drv.set_heat(dots, 800, 20)
        res = w.run(drv.print_job(receipt.layout(standard_sale(), 32, drv.enc.char_cols)))
        assert res["result"] == "printed"
        return float(w.printer.peak_a)
    finally:
        w.close()


@pytest.mark.parametrize(("board", "pack_v"),
                         [("devkit-1s", 3.0), ("devkit-1s", 3.6), ("pos-2s", 6.2), ("pos-2s", 8.0)])
def test_predicted_peak_is_the_printers_physics(board: str, pack_v: float) -> None:
    """The firmware's strobe peak (dots x V_head / R_dot at the datasheet's 162 Ohm lower bound; a boost
    converter draws constant power) covers what the simulated printer (176 Ohm) draws, within 10 %. The
    old constant-current model said 1.7 A on devkit-1s at any pack voltage: 50 % under at 3.0 V."""
    prof = _board_profile(board)
    load = power_policy.LoadModel(prof)
    sim = _sim_printer_peak(board, pack_v)
    predicted = load.peak_extra_a(64, pack_v)
    assert sim <= predicted <= 1.10 * sim, (predicted, sim)
    # The prediction the policy uses (at the floor for a boost, idle included) is never under it either.
    assert load.peak_a(64, pack_v) - load.base_a() >= sim


def test_receipt_refused_when_its_pulse_would_brown_out(make_world: Any) -> None:
    w, mon = _monitor_at(make_world, 0.05)
    ok, why = mon.can_print(30)
    assert not ok
    # ...and the refusal was right: that receipt really would have browned the board out.
    pulse = w.power.source.terminal_v(0.3 + 1.7)
    assert pulse < w.profile["power"]["brownout_v"] + 0.1


def test_long_receipt_needs_more_than_a_short_one(make_world: Any) -> None:
    # 15 %: above where the boot prediction (no receipt sampled yet: R at the 2x-nominal bound) refuses
    _, mon = _monitor_at(make_world, 0.15)
    heat = mon.load.heat(64, mon.pack_v)
    short = mon.can_print(5, heat)
    long = mon.can_print(2000, heat)  # ten minutes at 2 A: 0.33 Ah, more than what is left
    assert short[0] and not long[0]


def test_states_walk_down_and_maintenance_stops(make_world: Any) -> None:
    _, mon = _monitor_at(make_world, 0.15)
    assert mon.state == LOW and mon.maintenance_allowed
    _, mon = _monitor_at(make_world, 0.04)
    assert mon.state >= CRITICAL and not mon.maintenance_allowed
    assert mon.can_print(30)[0] is False


def test_sense_faults_give_fault_state_never_a_soc(make_world: Any) -> None:
    w, mon = _monitor_at(make_world, 0.6)
    soc_before = mon.soc_pct
    import sim_battery

    pack = sim_battery.PackWiring(w.board, w.power.source)
    for fault in ("open", "short"):
        pack.sense_fault = fault
        mon.update()
        assert mon.state == FAULT and mon.fault
        assert mon.can_print(30)[0] is False
        assert mon.soc_pct == soc_before  # held, not recomputed from a broken line
        assert not mon.maintenance_allowed
    pack.sense_fault = None
    for _ in range(5):
        w.clock.advance_us(1_000_000)
        mon.update()
    assert mon.state == OK and mon.fault is None
    assert abs(mon.soc_pct - soc_before) < 2


def test_a_reading_that_jumps_by_volts_is_held_as_a_fault(make_world: Any) -> None:
    w, mon = _monitor_at(make_world, 0.6)
    soc_before = mon.soc_pct
    base = w.board.analog_sources[34]
    w.board.analog_sources[34] = lambda: base() - 0.45  # 0.9 V lower at the pack, for two readings
    for _ in range(2):
        w.clock.advance_us(1_000_000)
        mon.update()
        assert mon.fault and "jumped" in mon.fault and mon.state == FAULT
    w.board.analog_sources[34] = base
    for _ in range(4):
        w.clock.advance_us(1_000_000)
        mon.update()
    assert mon.fault is None and abs(mon.soc_pct - soc_before) < 1


def test_charger_fault_when_voltage_does_not_rise(make_world: Any) -> None:
    import sim_battery

    for working, expect in ((True, False), (False, True)):
        w = make_world("devkit-1s")
        bat = sim_battery.Battery(soc=0.4)
        pack = sim_battery.PackWiring(w.board, bat)
        w.power.set_load("board", 0.3)
        mon = powermon.PowerMonitor(w.profile, hw.adc(34), charger_pin=hw.pin_in(35), store_dir=str(w.fs_dir),
                                    auto_shutdown=False)
        pack.set_charger(1.0, working=working)
        for _ in range(900):
            mon.update()
            w.clock.advance_us(1_000_000)
        assert mon.charger_fault is expect


def test_replace_battery_on_doubled_resistance(make_world: Any) -> None:
    import sim_battery

    w = make_world("devkit-1s")
    bat = sim_battery.Battery(soc=0.7, r_growth=2.4)
    sim_battery.PackWiring(w.board, bat)
    w.power.set_load("board", 0.3)
    # A calibrated temperature (an S3's mcu_temperature): resistance aging is learned only against one.
    mon = powermon.PowerMonitor(w.profile, hw.adc(34), store_dir=str(w.fs_dir), auto_shutdown=False,
                                mcu_temp=lambda: 25.0)
    _receipts(w, mon, 12)  # twelve receipts: 24 edges (start and end) the resistance is measured on
    true_r = (bat.terminal_v(0.3) - bat.terminal_v(2.0)) / 1.7 * 1000
    assert mon.r_int_mohm == pytest.approx(true_r, rel=0.15)
    assert mon.r_growth is not None and mon.r_growth >= 2.0
    assert mon.replace_battery and mon.soh_pct == 100.0  # SoH is the capacity share: resistance is apart
    # Control: without a trustworthy temperature the same pack teaches nothing about aging.
    blind = powermon.PowerMonitor(w.profile, hw.adc(34), store_dir=str(w.fs_dir) + "/blind", auto_shutdown=False)
    assert blind.temp_source == "none"
    _receipts(w, blind, 12)
    assert blind.r_growth is None and not blind.replace_battery


def test_power_fail_input_schedules_the_safe_stop(world: Any) -> None:
    import micropython
    import sim_clock

    world.board.drive_pin(39, 1)
    pin = hw.pin_in(39)
    calls: list[str] = []
    assert bootcheck.arm_power_fail(pin, calls.append)
    world.board.drive_pin(39, 0)  # the supervisor pulls the line low
    assert calls == []  # nothing runs inside the interrupt
    sim_clock.sleep_ms(1)  # a safe point (time.sleep_ms): scheduled callbacks run
    micropython._run_pending()
    world.board.drive_pin(39, 1)
    world.board.drive_pin(39, 0)  # a bouncing comparator does not stop twice
    micropython._run_pending()
    assert calls == ["power-fail input"]


def test_policy_rejects_inverted_thresholds(world: Any) -> None:
    prof = json.loads(json.dumps(world.profile))
    prof["policy"]["critical_pct"] = 50
    with pytest.raises(ValueError):
        power_policy.PowerPolicy(prof)


def test_state_names() -> None:
    assert [power_policy.NAMES[s] for s in (OK, LOW, CRITICAL, SHUTDOWN, FAULT)] == [
        "OK", "LOW", "CRITICAL", "SHUTDOWN", "FAULT"]


def test_monitor_runs_as_an_asyncio_task(make_world: Any) -> None:
    import asyncio

    w, mon = _monitor_at(make_world, 0.6)
    n0 = mon._n
    t_start = w.clock.now_ms()

    async def main() -> None:
        task = asyncio.create_task(mon.run(1.0))
        await asyncio.sleep(30)
        task.cancel()

    asyncio.run(main())
    assert w.clock.now_ms() - t_start >= 30_000  # virtual time
    assert mon._n - n0 >= 29 and mon.state == OK


def test_margin_is_wide_after_boot_and_narrows_as_receipts_confirm_it(make_world: Any) -> None:
    w, mon = _monitor_at(make_world, 0.6)
    boot = mon.margin_v
    assert boot == pytest.approx(0.015 + 3 * 0.020)  # margin_mv / 2 + 3 x (2/3 margin_mv): 75 mV
    _receipts(w, mon, 8)
    assert mon.rx_checked >= 5
    assert mon.margin_v < 0.6 * boot
    mon.new_pack()  # a pack change: nothing confirmed yet
    assert mon.margin_v == pytest.approx(boot)


def test_receipts_left_and_the_low_warning(make_world: Any) -> None:
    import esp32
    import sim_flash

    from posguard import commands, printjobs, sales
    from posguard.journal import Journal

    _, full = _monitor_at(make_world, 0.9)
    assert full.low_warning is None and full.receipts_left is not None and full.receipts_left > 300
    _, low = _monitor_at(make_world, 0.15)
    assert low.state == LOW and 0 < low.receipts_left < full.receipts_left
    assert low.low_warning == f"battery low: about {low.receipts_left} receipts left"
    w = make_world("devkit-1s")
    w.board.partitions["journal"] = sim_flash.NorFlash(16 * 4096, label="journal")
    (part,) = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")
    book = sales.SaleBook(Journal(part), keep_last=5)
    book.recover()
    jobs = printjobs.PrintJobs(book, None, low, {"printer": {"columns": 32}, "host": {"currency": "CNY"}, "name": "t"})
    st = commands.Commands(book, jobs, low).status()  # the host link's status reply
    assert st["battery"]["receipts_left"] == low.receipts_left and st["battery"]["warning"] == low.low_warning
    assert st["battery"]["temp_source"] == "none"  # devkit-1s: an original ESP32 and no thermistor
    _, empty = _monitor_at(make_world, 0.05)
    assert empty.state >= CRITICAL and empty.low_warning == "battery empty: no receipts left, connect the charger"


@pytest.mark.parametrize("reported", [True, False], ids=["paper-out-reported", "stall-unreported"])
def test_a_receipt_held_three_minutes_does_not_widen_the_margin(make_world: Any, reported: bool) -> None:
    """The story day, seed 5: the paper ran out in the middle of a receipt and the roll was reloaded 3 minutes
    later. The monitor counted the print current all along and then checked a 3-minute "receipt" against the
    prediction: the margin went from 0.10 to 0.26 V, and the terminal stayed CRITICAL for an hour on the
    charger. The printer's "paused" event (printjobs -> pause_load) stops the count; a stall nobody reports
    (XOFF, BUSY) is too long to be checked (powermon._RX_STALL)."""
    w, _pack, mon = _wired_monitor(make_world, 0.6)
    _receipts(w, mon, 8)
    margin, soc_before, r_before = mon.margin_v, mon.est.soc, mon.health.r_now
    mon.update()
    mon.set_load(True)
    w.power.set_load("printer", 1.7)
    _run(w, mon, 3)
    w.power.set_load("printer", 0.0)  # paper out: the printer stops
    if reported:
        mon.pause_load(True)
    _run(w, mon, 180)
    if reported:
        assert mon.current_a() == pytest.approx(mon.load.base_a())
        mon.pause_load(False)
    w.power.set_load("printer", 1.7)
    _run(w, mon, 3)
    w.power.set_load("printer", 0.0)
    mon.set_load(False)
    _run(w, mon, 30)
    assert mon.margin_v <= margin + 1e-6
    if reported:
        # 6 s of printing and 3 minutes idle were counted (0.8 %), not 3 minutes at 2 A (4 %)
        assert soc_before - mon.est.soc < 1.5
        assert mon.health.r_now == pytest.approx(r_before, rel=0.3)


def test_a_receipt_on_the_charger_teaches_the_pack_nothing(make_world: Any) -> None:
    """Without a current sensor the pack's share of a receipt printed on the charger is unknown (the charger
    feeds the printer first): its smaller sag would lower the resistance the prediction uses, and its minimum
    checked against the pack-only prediction widened the margin to 0.36 V on the story day (seed 5), which
    sent the terminal on the charger to its SHUTDOWN deep sleep."""
    w, pack, mon = _wired_monitor(make_world, 0.3)
    for _ in range(8):
        _run(w, mon, 80)
        _one_receipt(w, mon, sag=True)
    r_sag, margin = mon.r_sag, mon.margin_v
    assert r_sag > 0.0
    pack.set_charger(1.0)
    for _ in range(3):
        _run(w, mon, 80)
        _one_receipt(w, mon, sag=True)
    assert mon.r_sag == r_sag and mon.margin_v == margin


def test_critical_on_the_charger_sells_again_within_minutes_and_the_receipt_finishes(make_world: Any) -> None:
    """A pack run to its limit with the margin widened by a receipt deeper than predicted (the story day's
    seed 2), then the charger. CRITICAL is left on the receipt check at the lowest heat plus a
    small hysteresis and the profile's 2 % SoC hysteresis; it used to wait until a full-heat receipt had the
    whole (widened) margin to spare: 32 minutes here, over an hour on the story day. The receipt it then
    allows finishes even if the charger is pulled at that moment."""
    import sim_printer

    w, pack, mon = _wired_monitor(make_world, 0.10)
    for _ in range(200 * 80):  # a receipt every 80 s until CRITICAL
        _run(w, mon, 1)
        if mon.state == CRITICAL:
            break
        if mon._n % 80 == 0:
            _one_receipt(w, mon)
    # A margin widened as a receipt deeper than predicted leaves it (the story day's seeds 2 and 7: 0.15-0.17 V);
    # in CRITICAL no receipt prints, so nothing narrows it again.
    mon._err_var = ((0.12 - mon.margin_floor_v) / 3.0) ** 2
    mon.margin_v = 0.12
    _run(w, mon, 10)
    assert mon.state == CRITICAL and mon.soc_pct == 0.0
    pack.set_charger(1.0)
    waited = 0
    while mon.state >= CRITICAL and waited < 3600:
        _run(w, mon, 1)
        waited += 1
    assert waited <= 20 * 60, waited  # 16 min measured (margin 0.12 V, 1 A charger); 32.5 min before the fix
    ok, why = mon.can_print(30)
    assert mon.state == LOW and ok, why
    # The receipt it allows, at the offered heat, with the charger pulled as it starts: the simulated
    # printer's strobe peak (its boost at the rail) keeps the rail above brownout for the whole receipt.
    pack.set_charger(0.0)
    dots = mon.heat_setting().dots
    bat = w.power.source
    idle = w.profile["power"]["idle_a"]
    for _ in range(int(mon.load.receipt_time_s(30, dots)) + 1):
        v = bat.terminal_v(idle)
        for _ in range(3):
            v = bat.terminal_v(idle + sim_printer.BOOST_V ** 2 * dots / sim_printer.R_DOT_OHM
                               / (v * sim_printer.BOOST_EFF))
        assert v > w.profile["power"]["brownout_v"]
        bat.step(1.0, idle + mon.load.print_a * 1.1)
