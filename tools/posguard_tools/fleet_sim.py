"""`posguard sim --fleet N`: N simulated terminals with different packs trade one day against one real
broker (amqtt on a loopback port); the fleet view (posguard_tools.fleet) listens the whole day, and the
report says which terminals it flagged and when, against when each really ran out (its first sale refused
BATTERY_CRITICAL, from the simulator's own log).

Each terminal is a sim_day.Day on CPython in a worker process (the machine's cores), its firmware booted
with a `network` section naming the broker and the terminal id. Packs cycle through presets: fresh, aged
(80 % capacity, twice the resistance), worn (aged and started at 55 %), cold (0 C)."""

from __future__ import annotations

import json
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from posguard_tools import mpylib, paths
from posguard_tools.broker import Broker
from posguard_tools.fleet import Fleet
from posguard_tools.mqtt_wire import Client

PRESETS: dict[str, dict[str, Any]] = {
    "fresh": {"aged": False, "temp_c": 25.0, "soc": 1.0},
    "aged": {"aged": True, "temp_c": 25.0, "soc": 1.0},
    "worn": {"aged": True, "temp_c": 25.0, "soc": 0.55},
    "cold": {"aged": False, "temp_c": 0.0, "soc": 1.0},
}
ORDER = ("fresh", "aged", "worn", "cold")


def simulated_world() -> Any:
    """This process imports the simulated board (virtual clock, umqtt on the path): the sim_day module."""
    paths.use_simulated_hardware()
    lib = str(mpylib.LIB_DIR)
    if lib not in sys.path:
        sys.path.insert(0, lib)
    import sim_clock

    sim_clock.install()
    import importlib

    return importlib.import_module("sim_day")


def build_day(job: dict[str, Any], fs: str) -> Any:
    """One terminal's seeded day (sim_day.Day, not run yet) with a `network` section naming the broker."""
    sim_day = simulated_world()
    profile = json.loads(paths.board_profile(job["board"]).read_text())
    profile["network"] = {"wifi_ssid": None, "wifi_password": None, "broker": job["broker"], "terminal": job["name"],
                          "interval_s": job["interval_s"], "tls": False, "user": None, "password": None,
                          "queue_max": 32}
    p = PRESETS[job["preset"]]
    return sim_day.Day(profile, fs, str(paths.FIRMWARE), job["hours"], job["seed"], 0, p["aged"], p["temp_c"],
                       "posguard", p["soc"])


def _terminal(job: dict[str, Any]) -> dict[str, Any]:
    """One terminal's day (in a worker process)."""
    t0 = time.monotonic()
    c0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="posguard-fleet-") as fs:
        rep = build_day(job, fs).run(0)
    ran_out = None
    for t_h, kind, detail in rep["events"]:
        if kind == "refused" and str(detail).startswith("BATTERY_CRITICAL"):
            ran_out = t_h
            break
    return {"terminal": job["name"], "preset": job["preset"], "ran_out_h": ran_out,
            "completed": rep["counts"]["completed"], "soc_end_pct": rep["soc_end_pct"], "lost": len(rep["lost"]),
            "brownouts_printing": rep["brownouts_printing"], "wall_s": round(time.monotonic() - t0, 1),
            "cpu_s": round(time.process_time() - c0, 1)}


class _View(threading.Thread):
    def __init__(self, port: int, fleet: Fleet) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.fleet = fleet
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.messages = 0

    def run(self) -> None:
        while not self.stop.is_set():  # a broker that drops the connection under load: connect again
            try:
                c = Client("127.0.0.1", self.port, "posguard-fleet-sim")
            except OSError:
                time.sleep(0.05)
                continue
            try:
                c.subscribe("posguard/+/#")
                self.ready.set()
                while not self.stop.is_set():
                    m = c.receive(0.1)
                    if m is not None:
                        self.fleet.feed(m)
                        self.messages += 1
            except OSError:
                time.sleep(0.05)
            finally:
                c.close()


def run_fleet(n: int, hours: float = 12.0, board: str = "devkit-1s", seed: int = 1, interval_s: int = 300,
              workers: int | None = None, html: Path | None = None) -> dict[str, Any]:
    mpylib.install()
    fleet = Fleet(interval_s=interval_s)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="posguard-fleet-broker-") as tmp, Broker(Path(tmp)) as broker:
        view = _View(broker.port, fleet)
        view.start()
        view.ready.wait(10)
        jobs = []
        for k in range(n):
            name = f"t{k + 1:02d}"
            fleet.close_at_up_s[name] = hours * 3600  # closing time on the terminal's own clock
            jobs.append({"name": name, "preset": ORDER[k % len(ORDER)], "hours": hours, "seed": seed + k,
                         "board": board, "broker": broker.url, "interval_s": interval_s})
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers or min(n, multiprocessing.cpu_count())) as pool:
            results = pool.map(_terminal, jobs)
        time.sleep(0.5)
        view.stop.set()
        view.join(timeout=5)
    rows = {r.name: r for r in fleet.rows()}
    for res in results:
        t = fleet.terminals.get(res["terminal"])
        flags = dict(t.flagged_at) if t is not None else {}
        res["flagged"] = {k: round(v / 3600, 2) for k, v in flags.items()}
        row = rows.get(res["terminal"])
        res["status_at_close"] = row.status if row is not None else "never reported"
    if html is not None:
        from posguard_tools.fleet import to_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(to_html(fleet.rows(), f"posguard fleet: {n} simulated terminals, {hours:g} h"))
    return {"terminals": results, "messages": view.messages, "wall_s": round(time.monotonic() - t0, 1),
            "hours": hours, "cpu_s": round(sum(r["cpu_s"] for r in results), 1)}


def print_report(rep: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"posguard sim --fleet: {len(rep['terminals'])} terminals, {rep['hours']:g} h, "
                    f"{rep['wall_s']} s wall")
    for c in ("terminal", "pack", "sales", "SoC at close", "ran out at (h)", "flagged: dies before close (h)",
              "flagged: replace (h)", "lost"):
        t.add_column(c)
    for r in rep["terminals"]:
        f = r["flagged"]
        t.add_row(r["terminal"], r["preset"], str(r["completed"]), f"{r['soc_end_pct']:.1f}",
                  "-" if r["ran_out_h"] is None else f"{r['ran_out_h']:.2f}",
                  str(f.get("dies before close", "-")), str(f.get("replace battery", "-")), str(r["lost"]))
    Console().print(t)
