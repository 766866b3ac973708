"""`posguard sim --fleet N`: N simulated terminals with different packs trade one day against one real
broker (amqtt on a loopback port); the fleet view (posguard_tools.fleet) listens the whole day, and the
report says which terminals it flagged and when, against when each really ran out (its first sale refused
BATTERY_CRITICAL, from the simulator's own log).

Each terminal is a sim_day.Day in a worker process (fleet_worker.py; as many processes as the machine has
cores, each running days one after the other) under PyPy when there is one, else CPython, its firmware
booted with a `network` section naming the broker and the terminal id. Packs cycle through presets
(fleet_worker.PRESETS): fresh, aged (80 % capacity, twice the resistance), worn (aged and started at 55 %),
cold (0 C)."""

from __future__ import annotations

import json
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from posguard_tools import fleet_worker, mpylib, paths
from posguard_tools.broker import Broker
from posguard_tools.fleet import Fleet
from posguard_tools.mqtt_wire import Client

ORDER = ("fresh", "aged", "worn", "cold")
WORKER = Path(fleet_worker.__file__)


def terminal_python() -> str:
    """The interpreter for the terminals' days: $POSGUARD_FLEET_PYTHON if set, else PyPy (`pypy3` on PATH;
    `make setup` installs Debian's where it can; a 12 h day takes about half of CPython's CPU in a fresh
    process, less in a worker that stays up: docs/fleet.md), else this CPython."""
    return os.environ.get("POSGUARD_FLEET_PYTHON") or shutil.which("pypy3") or sys.executable


def worker_job(job: dict[str, Any]) -> dict[str, Any]:
    """A fleet job as fleet_worker takes it: the board profile itself and the directories to import from
    (absolute: the day runs in its own temporary directory)."""
    return {**job, "profile": json.loads(paths.board_profile(job["board"]).read_text()),
            "tools_dir": str(paths.ROOT / "tools"), "lib_dir": str(mpylib.LIB_DIR), "simhw_dir": str(paths.SIMHW),
            "firmware_dir": str(paths.FIRMWARE)}


def build_day(job: dict[str, Any], fs: str) -> Any:
    """One terminal's seeded day (sim_day.Day, not run yet) in this process (outage_latency.py)."""
    paths.use_simulated_hardware()
    return fleet_worker.build_day(worker_job(job), fs)


class Worker:
    """A fleet_worker.py process under `python` that runs the days it is given one after the other (JSON
    lines in and out); its stderr goes to a file, read back only to explain a failure."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(worker_job(job)) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(fleet_worker.RESULT):
                res: dict[str, Any] = json.loads(line[len(fleet_worker.RESULT):])
                return res
        self.err.seek(0)
        raise RuntimeError(f"terminal {job['name']} failed under {self.python} (exit {self.proc.wait()}):\n"
                           f"{self.err.read()[-3000:].decode(errors='replace')}")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()
        self.err.close()


def run_terminals(jobs: list[dict[str, Any]], python: str, workers: int) -> list[dict[str, Any]]:
    """Every job's day, `workers` processes at a time, each taking the next job when it is free; results
    in the order of `jobs`."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for k in range(len(jobs)):
        todo.put(k)
    results: list[dict[str, Any] | None] = [None] * len(jobs)

    def serve() -> None:
        w = Worker(python)
        try:
            while True:
                try:
                    k = todo.get_nowait()
                except queue.Empty:
                    return
                results[k] = w.run(jobs[k])
        finally:
            w.close()

    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(serve) for _ in range(min(workers, len(jobs)))]:
            f.result()
    return [r for r in results if r is not None]


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
              workers: int | None = None, html: Path | None = None, python: str | None = None) -> dict[str, Any]:
    """The fleet's day; `python`: the interpreter for the terminals (default: terminal_python())."""
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
        interp = python or terminal_python()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        results = run_terminals(jobs, interp, workers or os.cpu_count() or 1)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers only: the broker still runs
        processes_cpu_s = (children.ru_utime + children.ru_stime) - (children0.ru_utime + children0.ru_stime)
        time.sleep(0.5)
        view.stop.set()
        view.join(timeout=5)
    rows = {r.name: r for r in fleet.rows()}
    for res in results:
        t = fleet.terminals.get(res["terminal"])
        flags = dict(t.flagged_at) if t is not None else {}
        res["flagged"] = {k: round(v / 3600, 2) for k, v in flags.items()}  # first flagged at (h)
        res["flagged_now"] = sorted(t.flagged_now) if t is not None else []  # still shown at the end
        res["flag_spans"] = {k: [[round(a / 3600, 2), None if b is None else round(b / 3600, 2)] for a, b in v]  # shown
                             for k, v in (t.flag_spans if t is not None else {}).items() if v}
        row = rows.get(res["terminal"])
        res["status_at_close"] = row.status if row is not None else "never reported"
    if html is not None:
        from posguard_tools.fleet import to_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(to_html(fleet.rows(), f"posguard fleet: {n} simulated terminals, {hours:g} h"))
    return {"terminals": results, "messages": view.messages, "wall_s": round(time.monotonic() - t0, 1),
            "hours": hours, "cpu_s": round(sum(r["cpu_s"] for r in results), 1),
            "processes_cpu_s": round(processes_cpu_s, 1),
            "interpreter": ", ".join(sorted({r["interpreter"] for r in results}))}


def print_report(rep: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"posguard sim --fleet: {len(rep['terminals'])} terminals, {rep['hours']:g} h, "
                    f"{rep['wall_s']} s wall, terminals on {rep['interpreter']}")
    for c in ("terminal", "pack", "sales", "SoC at close", "ran out at (h)", "dies before close: first flagged (h)",
              "... flagged (h)", "flagged now", "replace: first flagged (h)", "lost"):
        t.add_column(c)
    for r in rep["terminals"]:
        f = r["flagged"]
        spans = r.get("flag_spans", {}).get("dies before close", [])
        t.add_row(r["terminal"], r["preset"], str(r["completed"]), f"{r['soc_end_pct']:.1f}",
                  "-" if r["ran_out_h"] is None else f"{r['ran_out_h']:.2f}",
                  str(f.get("dies before close", "-")),
                  ", ".join(f"{a:g}-{'' if b is None else f'{b:g}'}" for a, b in spans) or "-",
                  ", ".join(r.get("flagged_now", [])) or "-", str(f.get("replace battery", "-")), str(r["lost"]))
    Console().print(t)
