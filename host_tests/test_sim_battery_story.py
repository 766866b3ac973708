"""The battery story of `posguard sim`: a day that opens on a part-charged pack, the firmware's low-battery
warning, the sale it refuses for battery, the merchant's charger, trading again, and the figures the report
adds (charge unused at the first refusal against the simulator's own physical limit, time on charger);
the --pack presets and their bad input."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import pytest

from posguard_tools import cmd_sim, paths, report, simday

sim_day = importlib.import_module("sim_day")  # simulator code (MicroPython subset, untyped)
sim_battery = importlib.import_module("sim_battery")

# A short morning on a pack that runs out during the breakfast rush (40 customers/h from 07:30). The story is
# asserted on several seeds, never one lucky one: seed 3 runs out between customers (CRITICAL, then the
# SHUTDOWN deep sleep: the next customer finds the terminal dark), seed 5 has the paper run out in the middle
# of a receipt just before (the terminal used to stay CRITICAL an hour on the charger), seed 2 refuses a
# receipt deeper than predicted and widens its margin just before the pack runs out.
STORY = {"hours": 2.5, "cuts": 0, "soc": 0.16}
STORY_SEEDS = (2, 3, 5)
# After the charger goes in, no sale is refused for battery later than this (measured over seeds 1-8:
# 0.13 h at most, seed 2; it was 1.3 h on seed 5, every sale refused from the plug to the close).
RESUME_H = 0.25
# Charge unused at the first refusal against the simulator's own limit: <= 2 % is the target (docs/battery.md:
# met on 6 of seeds 1-8); what every seed must hold is this bound (seed 7: 4.7 %).
UNUSED_MAX_PCT = 5.0


@pytest.fixture(scope="module", params=STORY_SEEDS, ids=lambda s: f"seed{s}")
def story(request: pytest.FixtureRequest) -> dict[str, Any]:
    return simday.run_day("devkit-1s", runtime="cpython", seed=request.param, **STORY)  # type: ignore[arg-type]


def _battery_stops(rep: dict[str, Any]) -> list[float]:
    """Hours at which a sale met a terminal stopped for battery: refused BATTERY_CRITICAL, or found dark in
    its low-battery deep sleep."""
    return [e[0] for e in rep["events"]
            if e[1] == "terminal asleep" or (e[1] == "refused" and str(e[2]).startswith("BATTERY_CRITICAL"))]


def test_story_day_warns_stops_charges_and_trades_again(story: dict[str, Any]) -> None:
    rep = story
    assert rep["outcome"] == "time up"
    refusal = rep["first_battery_refusal"]
    assert refusal is not None, "the pack never ran out: the day proves nothing"
    stops = _battery_stops(rep)
    # a sale refused for battery, or the terminal asleep for battery: never a brownout first
    assert stops and stops[0] == refusal[0]
    assert rep["brownouts"] == 0 and rep["brownouts_printing"] == 0
    # stopped no more than UNUSED_MAX_PCT of the pack's charge before the simulator's own physical limit
    assert 0.0 <= refusal[3] <= UNUSED_MAX_PCT and rep["unused_at_first_refusal_pct"] == refusal[3]
    warn = rep["first_warning"]
    assert warn is not None, "no low-battery warning in the firmware's status before it ran out"
    assert warn[1].startswith("battery low: about ") and warn[1].endswith(" receipts left"), warn[1]
    assert warn[0] < refusal[0]
    plug = rep["charger_plugged_h"]
    assert plug is not None and plug > refusal[0]
    assert rep["charger_h"] == pytest.approx(rep["hours"] - plug, abs=0.01)
    # trading resumed on the charger, within RESUME_H of the plug
    assert rep["approved_after_charger"] >= 20
    assert max(stops) <= plug + RESUME_H, [round(h - plug, 3) for h in stops if h > plug]
    assert rep["lost"] == [] and report.verdict(rep) == []
    # the true charge climbs back once the charger is in
    after = [r for r in rep["series"] if r[0] > plug + 0.2]
    assert after and after[-1][2] > refusal[1] + 3.0
    assert all(r[5] == 1 for r in after)


def test_story_report_table_and_plot(story: dict[str, Any], tmp_path: Path) -> None:
    text = report.table([story])
    assert "pack fresh at 25 C, opening charge 16 %" in text
    for label in ("battery low warning (first)", "first refusal for battery", "charge unused then",
                  "charger plugged / time on charger", "sales completed on the charger", "brownouts (all)"):
        assert label in text
    assert "battery low: about" in text
    png = tmp_path / "battery.png"
    report.battery_plot(story, png)
    assert png.stat().st_size > 20_000


def _world_pack(soc: float, pack: str = "fresh", temp_c: float = 25.0) -> Any:
    return sim_battery.Battery.of_pack(pack, soc=soc, temp_c=temp_c)


def test_physical_limit_stops_at_the_receipt_that_would_brown_out() -> None:
    prof = simday.load_profile("devkit-1s")
    mean = prof["power"]["print_a"]
    full_n, full_share = sim_day.physical_limit(_world_pack(0.5), prof, mean)
    low_n, low_share = sim_day.physical_limit(_world_pack(0.12), prof, mean)
    assert full_n > low_n > 0 and full_share > low_share > 0.0
    # aged and cold packs reach their limit sooner from the same charge
    worn_n, _ = sim_day.physical_limit(_world_pack(0.12, "worn70"), prof, mean)
    cold_n, _ = sim_day.physical_limit(_world_pack(0.12, "fresh", -10.0), prof, mean)
    assert worn_n < low_n and cold_n < low_n
    # the pack after those receipts really cannot do one more: the strobe peak takes the rail under 3.0 V
    b = _world_pack(0.12)
    idle = prof["power"]["idle_a"]
    for _ in range(low_n):
        for _ in range(int(prof["power"]["receipt_s"])):
            b.step(1.0, idle + mean)
        b.step(sim_day.LOOKAHEAD_EVERY_S - prof["power"]["receipt_s"], idle)
    worst = 9.0
    for _ in range(int(prof["power"]["receipt_s"])):
        v = b.terminal_v(idle)
        for _ in range(3):
            v = b.terminal_v(idle + sim_day.printer_pack_a(prof, 64, v))
        worst = min(worst, v)
        b.step(1.0, idle + mean)
    assert worst < prof["power"]["brownout_v"]


def test_printer_pack_current_matches_the_printer_model() -> None:
    import sim_printer

    prof = simday.load_profile("devkit-1s")
    head = 64 * sim_printer.BOOST_V / sim_printer.R_DOT_OHM
    assert sim_day.printer_pack_a(prof, 64, 3.0) == pytest.approx(sim_printer.BOOST_V * head / (3.0 * 0.9))
    two = simday.load_profile("pos-2s")
    assert sim_day.printer_pack_a(two, 48, 7.4) == pytest.approx(48 * 7.4 / sim_printer.R_DOT_OHM)


def _args(**kw: Any) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cmd_sim.add_arguments(p)
    ns = p.parse_args([])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


@pytest.mark.parametrize(("kw", "msg"), [
    ({"pack": "brand-new"}, "unknown pack"),
    ({"pack": "0.3,0.5,60"}, "capacity share"),
    ({"pack": "0.8,0.5"}, "unknown pack"),
    ({"aged": True, "pack": "worn70"}, "--aged is --pack aged85"),
    ({"temp": 80.0}, "--temp"),
    ({"soc": 0.0}, "--soc"),
])
def test_bad_pack_options_exit_2_with_a_reason(kw: dict[str, Any], msg: str, capsys: Any,
                                                tmp_path: Path) -> None:
    assert cmd_sim.run(_args(out=str(tmp_path), **kw)) == 2
    assert msg in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_default_day_opens_part_charged_and_aged_is_the_aged85_preset(tmp_path: Path) -> None:
    ns = _args()
    assert ns.pack is None and ns.soc == cmd_sim.DEFAULT_SOC_PCT < 100 and not ns.no_charger
    assert set(cmd_sim.PACKS) == set(sim_battery.PACKS)
    assert simday.check_pack("aged85") == sim_battery.PACKS["aged85"]
    paths.use_simulated_hardware()
    import sim_clock

    sim_clock.install()
    day = sim_day.Day(simday.load_profile("devkit-1s"), str(tmp_path), str(paths.FIRMWARE), hours=0.1, aged=True,
                      temp_c=5.0, soc=0.5)
    b = day.battery
    assert (b.cap_share, b.kinetics, b.contact_ohm, b.temp_c) == (0.85, 0.60, 0.050, 5.0)
    assert b.soc() == pytest.approx(0.5)


def test_verdict_fails_a_day_that_did_not_reach_the_close() -> None:
    good = {"outcome": "time up", "lost": [], "brownouts": 0, "brownouts_printing": 0, "printed_twice": [],
            "interrupted_paid": 0, "interrupted_reprinted_once": 0, "printer_dropped_bytes": 0}
    assert report.verdict(good) == []
    loop = dict(good, outcome="boot limit reached", brownouts=500, brownouts_printing=500)
    bad = report.verdict(loop)
    assert any("did not run to the close" in b for b in bad) and any("500 brownouts" in b for b in bad)
    assert sim_day.MAX_BOOTS <= 1000  # a boot loop ends the day in seconds, not hours


def test_a_strobe_that_browns_out_leaves_no_load_behind(printer_worlds: Any) -> None:
    # The worn-pack day's boot loop began here: the strobe browned the board out inside the printer's
    # op start, and its peak load stayed on the rail, so every later boot browned out at once.
    import sim_power

    w = printer_worlds("devkit-1s", soc=0.1)
    w.battery.r_growth = 3.0  # idle holds, a 64-dot strobe behind the boost does not
    assert w.power.rail_v() > w.profile["power"]["brownout_v"] + 0.2
    with pytest.raises(sim_power.PowerLoss):
        w.printer._start(24, 0, 384, None)
    assert w.power.loads.get("printer", 0.0) == 0.0
    assert w.printer.resets == 1 and w.printer._op_end is None
    assert w.power.source.terminal_v(w.power.total_a()) > w.profile["power"]["brownout_v"]
