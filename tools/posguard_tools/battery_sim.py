"""Simulated worlds for the battery work: a board with the equivalent-circuit pack, the simulated ADC
and a printer load, driven either by the firmware's PowerMonitor or by a naive policy. Used by
host_tests/test_policy*.py and bench_battery.py.

The world's printer draws, on average, the profile's print current scaled by the dots heated at once,
times a `load_error` the firmware does not know (a load known only from a dot count is uncertain by about
+/-10 %, battery-and-printer.md), so the firmware's load model is never exactly right. Every second of a
receipt it first draws its strobe peak as host_tests/simhw/sim_printer.py does (dots x V_head / R_dot with
R_dot = 176 Ohm; behind the boost converter constant power from the pack), which is when a brownout happens.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from typing import Any

from posguard_tools import paths

paths.use_simulated_hardware()

import sim_battery  # noqa: E402
import sim_clock  # noqa: E402
import sim_world  # noqa: E402

RECEIPT_EVERY_S = 90  # the reference duty cycle: a receipt every 90 s (tools/posguard_tools/traces/README.md)
MONITOR_PERIOD_S = 1


@dataclass
class Outcome:
    receipts: int = 0
    refused: int = 0
    brownouts: int = 0
    interrupted: int = 0
    first_refusal_soc: float | None = None
    last_ok_soc: float | None = None
    end_soc: float = 0.0
    sim_hours: float = 0.0
    states: dict[str, int] = field(default_factory=dict)


class SimWorld(sim_world.World):
    """sim_world.World with the pack (behind its connector, on its sense wiring), power on and the board's
    idle load, on a fresh filesystem."""

    def __init__(self, profile_name: str = "devkit-1s", seed: int = 1, soc: float = 1.0, temp_c: float = 25.0,
                 fade: float = 0.0, r_growth: float = 1.0, capacity_ah: float | None = None,
                 profile: dict[str, Any] | None = None, pack: str | None = None) -> None:
        """`pack`: a preset of the cell family (sim_battery.PACKS: fresh, aged90, aged85, worn70) or
        "CAP,KIN,CONTACT_MOHM"; fade / r_growth / capacity_ah then scale it further."""
        sim_clock.install()
        if profile is None:
            profile = json.loads(paths.board_profile(profile_name).read_text())
        self._tmp = tempfile.TemporaryDirectory(prefix="posguard-batt-")
        super().__init__(profile, self._tmp.name, str(paths.FIRMWARE), seed=seed)
        cap = capacity_ah if capacity_ah is not None else sim_battery.Q_AH
        knobs = sim_battery.pack_knobs(pack or "fresh")
        self.add_pack(sim_battery.Battery(cells=profile["battery"]["cells_series"], soc=soc, temp_c=temp_c,
                                          fade=fade, r_growth=r_growth, capacity_ah=cap, cap_share=knobs[0],
                                          kinetics=knobs[1], contact_ohm=knobs[2]))
        self.power.on = True
        self.power.set_load("board", profile["power"]["idle_a"])

    def close(self) -> None:
        super().close()
        self._tmp.cleanup()

    def monitor(self, **kw: Any) -> Any:
        from posguard import hw, powermon

        pins = self.profile["pins"]
        return powermon.PowerMonitor(
            self.profile, hw.adc(pins["vbat_adc"]), charger_pin=hw.pin_in(pins["charger_present"]),
            therm_adc=hw.adc(pins["thermistor_adc"]), store_dir=self.fs_dir, auto_shutdown=False, **kw,
        )

    def printer_peak_a(self, dots: int) -> float:
        """Pack-side strobe current of `dots` heated at once, as sim_printer._set_load computes it."""
        import sim_printer

        p = self.profile["power"]
        rail = max(0.5, self.power.rail_v())
        if p["boost_converter"]:
            head = dots * sim_printer.BOOST_V / sim_printer.R_DOT_OHM
            return float(sim_printer.BOOST_V * head / (rail * sim_printer.BOOST_EFF))
        return float(dots * rail / sim_printer.R_DOT_OHM)

    def printer_a(self, dots: int, load_error: float) -> float:
        p = self.profile
        a: float = p["power"]["print_a"] * dots / p["policy"]["heat_dots"] * load_error
        if not p["power"]["boost_converter"]:
            a *= self.power.rail_v() / (p["battery"]["cells_series"] * 3.7)
        return a


def trace_printer_profile(prof: dict[str, Any]) -> dict[str, Any]:
    """A copy of a board profile whose printer is the reference trace's: a fixed-current load (i_a 2.0 A
    while printing, 0.3 A idle: battery_fresh_25c.csv), so its peak is the profile's measured print_a."""
    out: dict[str, Any] = json.loads(json.dumps(prof))
    out["power"]["print_peak_a"] = out["power"]["print_a"]
    return out


def run_discharge(world: SimWorld, policy: str = "posguard", naive_v_cell: float = 3.3, load_error: float = 1.1,
                  max_hours: float = 30.0, heat_scaling: bool = True) -> Outcome:
    """Receipts every 90 s from the world's current charge until the policy stops for good (SHUTDOWN,
    or 30 refusals in a row) or the pack is dead. A brownout reboots the board: the monitor's RAM
    state is gone and it starts afresh once the rail is back."""
    import sim_power

    from posguard import power_policy

    out = Outcome()
    prof = world.profile
    cells = prof["battery"]["cells_series"]
    brown = prof["power"]["brownout_v"]
    mon = world.monitor()
    std = mon.load.heat(mon.load.dots, 0.0)
    clock = world.clock
    refusals_in_row = 0
    end_us = int(max_hours * 3600e6)
    next_rx = clock.now_us() + 5_000_000
    while clock.now_us() < end_us:
        try:
            mon.update()
            name = mon.state_name
            out.states[name] = out.states.get(name, 0) + 1
            if clock.now_us() >= next_rx:
                next_rx += RECEIPT_EVERY_S * 1_000_000
                if policy == "posguard":
                    heat = mon.heat_setting() if heat_scaling else std
                    ok, _ = mon.can_print(power_policy.STANDARD_LINES, heat)
                else:  # naive: the raw reading against a fixed threshold, default heat, no compensation
                    heat = std
                    ok = mon.pack_v >= naive_v_cell * cells and mon.fault is None
                if not ok:
                    out.refused += 1
                    refusals_in_row += 1
                    if out.first_refusal_soc is None:
                        out.first_refusal_soc = world.battery.soc()
                    if (policy == "posguard" and mon.state == power_policy.SHUTDOWN) or refusals_in_row >= 30:
                        break
                else:
                    refusals_in_row = 0
                    t_s = mon.load.receipt_time_s(power_policy.STANDARD_LINES, heat.dots)
                    soc_before = world.battery.soc()
                    mon.set_load(True, heat)
                    world.power.set_load("printer", 0.0)
                    world.power.set_load("printer", world.printer_peak_a(heat.dots))  # the first strobe
                    world.power.set_load("printer", world.printer_a(heat.dots, load_error))
                    try:
                        steps = int(t_s)
                        for _ in range(steps):
                            clock.advance_us(1_000_000)
                            mon.update()
                            mean = world.printer_a(heat.dots, load_error)
                            world.power.set_load("printer", world.printer_peak_a(heat.dots))  # the strobes go on
                            world.power.set_load("printer", mean)
                        clock.advance_us(int((t_s - steps) * 1e6))
                    finally:
                        world.power.loads["printer"] = 0.0
                        mon.set_load(False)
                    out.receipts += 1
                    out.last_ok_soc = soc_before
            clock.advance_us(MONITOR_PERIOD_S * 1_000_000)
        except sim_power.PowerLoss:
            out.brownouts += 1
            out.interrupted += 1
            world.power.loads["printer"] = 0.0
            # The board is off until the rail recovers above the restart level (it relaxes).
            for _ in range(3600):
                if world.power.can_start():
                    break
                clock.advance_us(1_000_000)
            else:
                break
            if world.power.rail_v() < brown:
                break
            world.power.on = True
            mon = world.monitor()
    out.end_soc = world.battery.soc()
    out.sim_hours = clock.now_us() / 3600e6
    return out
