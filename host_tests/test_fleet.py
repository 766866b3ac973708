"""The fleet view: urgency order from terminals' telemetry, and `posguard fleet --html` against a real
broker, the page opened in a real headless browser (Debian's chromium) and its table read back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from posguard_tools.broker import Broker
from posguard_tools.fleet import Fleet
from posguard_tools.mqtt_wire import Client, Message


def health(soc: float, up_s: int, replace: bool = False, reversals: int = 0, owed: int = 0,
           charger: bool | None = None) -> bytes:
    bat: dict[str, Any] = {"soc_pct": soc, "state": "OK", "replace": replace, "receipts_left": int(soc * 4)}
    if charger is not None:
        bat["charger"] = charger
    return json.dumps({"v": "0.1.0", "up_s": up_s, "owed": owed, "reversals": reversals, "printer": None,
                       "battery": bat}).encode()


def msg(topic: str, payload: bytes, at: float = 0.0) -> Message:
    return Message(topic, payload, 0, True, at)


# (terminal, SoC now, SoC an hour and a half ago, replace, reversals, owed, online); the view predicts from
# an hour and a half of readings (fleet.py _MIN_SPAN_S)
SPAN_S = 5400
TERMINALS = [
    ("t-ok", 80.0, 82.0, False, 0, 0, True),
    ("t-owed", 70.0, 72.0, False, 0, 2, True),
    ("t-reversal", 75.0, 77.0, False, 1, 0, True),
    ("t-worn", 60.0, 62.0, True, 0, 0, True),
    ("t-dying", 30.0, 52.5, False, 0, 0, True),  # 15 %/h: two hours left, closing in four
    ("t-off", 90.0, 91.0, False, 0, 0, False),
]
ORDER = ["t-off", "t-dying", "t-worn", "t-reversal", "t-owed", "t-ok"]


def feed_all(fleet: Fleet) -> None:
    for name, now, before, replace, rev, owed, online in TERMINALS:
        fleet.feed(msg(f"posguard/{name}/health", health(before, 1000, replace, rev, owed)))
        fleet.feed(msg(f"posguard/{name}/health", health(now, 1000 + SPAN_S, replace, rev, owed)))
        fleet.feed(msg(f"posguard/{name}/online", b"1" if online else b"0"))


def test_rows_sorted_by_urgency() -> None:
    fleet = Fleet(close_in_h=4.0)
    feed_all(fleet)
    rows = fleet.rows()
    assert [r.name for r in rows] == ORDER
    dying = rows[1]
    assert dying.dies_before_close and dying.hours_left is not None and abs(dying.hours_left - 2.0) < 0.01
    assert "dies in 2.0 h" in dying.status
    assert fleet.terminals["t-dying"].flagged_at == {"dies before close": 1000 + SPAN_S}
    # Closing in one hour: nobody dies before it.
    early = Fleet(close_in_h=1.0)
    feed_all(early)
    assert not any(r.dies_before_close for r in early.rows())
    # No health for three intervals counts as offline.
    stale = Fleet(close_in_h=1.0, interval_s=60)
    stale.feed(msg("posguard/t-quiet/health", health(50, 10), at=100.0))
    assert stale.rows(now=100.0 + 170)[0].offline is False
    assert stale.rows(now=100.0 + 190)[0].offline is True


# -- "dies before close" on synthetic days: one health every 5 minutes (the fleet day's interval), closing
# at 12 h on the terminal's own clock, SoC rounded to 0.1 as the firmware publishes it.
STEP_S = 300
CLOSE_S = 12 * 3600


def trade(fleet: Fleet, soc_at: Any, until_s: int = CLOSE_S, start_s: int = 0, up0: int = 0,
          charger: Any = None) -> list[tuple[int, bool]]:
    """Feed t1's health from start_s to until_s (day time; up_s = day time - up0, as after a reboot at up0);
    soc_at(s) and charger(s) give each reading. Returns (day s, dies before close) after each message."""
    fleet.close_at_up_s["t1"] = CLOSE_S
    out = []
    for s in range(start_s, until_s + 1, STEP_S):
        on = None if charger is None else charger(s)
        fleet.feed(msg("posguard/t1/health", health(round(max(0.0, soc_at(s)), 1), s - up0, charger=on)))
        out.append((s, fleet.rows()[0].dies_before_close))
    return out


def rush_then_calm(rush_s: int) -> Any:
    return lambda s: 100 - 30 * min(s, rush_s) / 3600 - 1.5 * max(0, s - rush_s) / 3600  # 30 %/h, then 1.5


def test_a_morning_rush_then_a_calm_day_is_not_flagged() -> None:
    # Half an hour at 30 %/h (the old 5-minute slope said: dies in 3 h), then 1.5 %/h all day: never flagged.
    fleet = Fleet()
    trade(fleet, rush_then_calm(1800))
    t = fleet.terminals["t1"]
    assert t.flagged_at == {} and t.flagged_now == set(), t.flagged_at
    # Two hours at 30 %/h are a rate while they last: flagged then, cleared within the hour after, not at close.
    fleet = Fleet()
    dies = trade(fleet, rush_then_calm(7200))
    t = fleet.terminals["t1"]
    on = [s for s, d in dies if d]
    assert on and min(on) == 5400 and max(on) < 7200 + 3600 and not dies[-1][1], on
    assert on == list(range(min(on), max(on) + STEP_S, STEP_S))  # one span: shown while it held
    assert t.flagged_at == {"dies before close": 5400} and t.flagged_now == set()
    assert t.flag_spans["dies before close"] == [(5400, max(on) + STEP_S)]


def test_a_steady_heavy_drain_is_flagged_hours_before_it_runs_out() -> None:
    # 9 %/h from full: empty at 11.1 h, closing at 12 h. Flagged from the first prediction (an hour and a half
    # of readings) and at every message after it, through a reboot at 4 h (up_s from 60 again): the series'
    # clock keeps running, the rate stays.
    fleet = Fleet()
    steady = trade(fleet, lambda s: 100 - 9 * s / 3600, until_s=4 * 3600)
    boot = 4 * 3600 + STEP_S
    steady += trade(fleet, lambda s: 100 - 9 * s / 3600, until_s=11 * 3600, start_s=boot, up0=boot - 60)
    t = fleet.terminals["t1"]
    assert t.flagged_at == {"dies before close": 5400} and t.flagged_now == {"dies before close"}
    assert [s for s, d in steady if d] == [s for s, _ in steady if s >= 5400]
    assert t.flag_spans["dies before close"] == [(5400, None)]
    hl = fleet.rows()[0].hours_left
    assert hl is not None and abs(hl - 1.0 / 9) < 0.05, hl  # 1 % left at 9 %/h
    assert [p[0] for p in t.soc] == sorted({p[0] for p in t.soc})


def drain_then_charge(s: int) -> float:
    return 60 - 15 * s / 3600 if s < 7200 else min(100.0, 30 + 20 * (s - 7200) / 3600)  # plugged at 2 h


def test_on_the_charger_the_flag_clears() -> None:
    # 15 %/h from 60 %: dies at 4 h, flagged; plugged at 2 h (SoC rises 20 %/h, 1.7 % a reading): cleared at
    # the third reading in a row that rose (fewer: the firmware's estimate steps up by itself after a busy
    # spell), no prediction on the charger, nor for half an hour after it is unplugged.
    fleet = Fleet()
    dies = trade(fleet, drain_then_charge, until_s=4 * 3600)
    t = fleet.terminals["t1"]
    assert t.flagged_at == {"dies before close": 5400}
    assert [s for s, d in dies if d] == list(range(5400, 8100, STEP_S))  # 7200: plugged, SoC not up yet
    assert t.flagged_now == set() and t.charging and fleet.rows()[0].hours_left is None
    assert t.flag_spans["dies before close"] == [(5400, 8100)]
    # Unplugged after the 4 h reading (70 %), 15 %/h again: predicted from half an hour after it.
    dies = trade(fleet, lambda s: 70 - 15 * (s - 4 * 3600) / 3600, until_s=6 * 3600, start_s=4 * 3600 + STEP_S)
    assert not t.charging and [s for s, d in dies if d][0] == 4 * 3600 + 1800
    # The firmware's `charger` in health: cleared at once, before SoC has risen.
    fleet = Fleet()
    dies = trade(fleet, lambda s: 60 - 15 * s / 3600, until_s=3 * 3600, charger=lambda s: s >= 7200)
    assert [s for s, d in dies if d] == list(range(5400, 7200, STEP_S))
    assert fleet.terminals["t1"].flag_spans["dies before close"] == [(5400, 7200)]


class _Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_td = False
        self._in_fleet = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", "fleet") in attrs:
            self._in_fleet = True
        elif self._in_fleet and tag == "tr":
            self.rows.append([])
        elif self._in_fleet and tag == "td":
            self._in_td = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_td = False
        elif tag == "table":
            self._in_fleet = False

    def handle_data(self, data: str) -> None:
        if self._in_td:
            self.rows[-1][-1] += data


def browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_fleet_page_in_a_headless_browser(tmp_path: Path) -> None:
    exe = browser()
    if exe is None:
        pytest.skip("no headless browser: `apt-get install chromium` (make setup does it as root with apt-get)")
    page = tmp_path / "fleet.html"
    with Broker(tmp_path / "broker") as broker:
        pub = Client("127.0.0.1", broker.port, "terminals")
        for name, _now, before, replace, rev, owed, _online in TERMINALS:
            pub.publish(f"posguard/{name}/health", health(before, 1000, replace, rev, owed), retain=True)
        time.sleep(0.2)
        view = subprocess.Popen(
            [sys.executable, "-m", "posguard_tools.cli", "fleet", "--broker", broker.url, "--close-in", "4",
             "--for", "3", "--html", str(page)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert view.stdout is not None
        first = view.stdout.readline()
        assert first.startswith("listening on"), first
        time.sleep(0.5)  # the view has the retained health; the readings of 1.5 h later arrive live
        for name, now, _before, replace, rev, owed, online in TERMINALS:
            pub.publish(f"posguard/{name}/health", health(now, 1000 + SPAN_S, replace, rev, owed), retain=True)
            if not online:
                pub.publish(f"posguard/{name}/online", b"0", retain=True)
        time.sleep(0.5)  # a broker may drop what a client sent just before it disconnects
        pub.close()
        out = first + view.communicate(timeout=30)[0]
    assert view.returncode == 0, out
    assert "t-dying" in out and "posguard fleet" in out
    dom = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60,
    )
    assert dom.returncode == 0 and "<table" in dom.stdout, dom.stderr[-2000:]
    t = _Table()
    t.feed(dom.stdout)
    rows = [r for r in t.rows if r]
    assert [r[0] for r in rows] == ORDER, rows
    by_name = {r[0]: r for r in rows}
    assert by_name["t-dying"][4] == "2.0" and "before closing" in by_name["t-dying"][1]
    assert by_name["t-worn"][5] == "yes" and by_name["t-off"][1].startswith("offline")
    assert dom.stdout.count('aria-label="battery chart"') == len(TERMINALS)


def test_sim_fleet_quick() -> None:
    """`posguard sim --fleet` end to end, small, with whichever interpreter runs the terminals here (PyPy
    when `make setup` installed it): every terminal trades, reports through the broker and gets a row;
    nothing lost. (The full 20 x 12 h run is `posguard bench --only fleet`.)"""
    from posguard_tools import fleet_sim

    rep = fleet_sim.run_fleet(2, 0.25, workers=2)
    assert rep["interpreter"].startswith("PyPy" if shutil.which("pypy3") else "CPython"), rep["interpreter"]
    ts = {t["terminal"]: t for t in rep["terminals"]}
    assert set(ts) == {"t01", "t02"} and [ts["t01"]["preset"], ts["t02"]["preset"]] == ["fresh", "aged"]
    assert all(t["completed"] > 0 and t["lost"] == 0 and t["brownouts_printing"] == 0 for t in ts.values())
    assert all(t["status_at_close"] != "never reported" for t in ts.values())
    assert rep["messages"] >= 2 * (0.25 * 3600 // 300)  # at least every terminal's periodic health


def test_sim_fleet_same_days_on_any_interpreter_and_worker() -> None:
    """A terminal's seeded day does not depend on where it ran: on PyPy (Python 3.9: the worker imports only
    the simulated board, the firmware, umqtt and the cashier's protocol core), two days one after the other
    in one worker process, against CPython, each day in a fresh process. Same sales, refusals, losses and
    flags (SoC may differ in the last digits of a float; it is rounded). Without pypy3 on PATH both runs are
    CPython and the test checks the reused worker only."""
    from posguard_tools import fleet_sim

    def outcome(python: str, workers: int) -> tuple[str, list[tuple[Any, ...]]]:
        rep = fleet_sim.run_fleet(2, 0.25, workers=workers, python=python)
        return rep["interpreter"], [(t["terminal"], t["preset"], t["completed"], t["refused"], t["ran_out_h"],
                                     t["lost"], sorted(t["flagged"]), round(t["soc_end_pct"], 1))
                                    for t in rep["terminals"]]

    on_one, one_worker = outcome(shutil.which("pypy3") or sys.executable, 1)
    on_cpython, fresh_workers = outcome(sys.executable, 2)
    assert on_one.startswith("PyPy" if shutil.which("pypy3") else "CPython") and on_cpython.startswith("CPython")
    assert one_worker == fresh_workers and all(t[2] > 0 for t in one_worker), (one_worker, fresh_workers)
