"""Terminals of `posguard sim --fleet`: seeded sim_day.Days against the fleet's broker, in a worker process.

Run as a script by fleet_sim (`python fleet_worker.py`: jobs in, results out, one JSON line each, see
main()) under PyPy when there is one, else CPython. So this module imports nothing from posguard_tools
and nothing outside the standard library, and keeps to Python 3.9 (Debian bookworm's pypy3 7.3.11): the
simulated board (host_tests/simhw), the firmware, micropython-lib's umqtt and the cashier's protocol
(tools/posguard_client) come from the directories the job names."""

from __future__ import annotations

import importlib
import json
import platform
import sys
import tempfile
import time
import types
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "fresh": {"aged": False, "temp_c": 25.0, "soc": 1.0},
    "aged": {"aged": True, "temp_c": 25.0, "soc": 1.0},
    "worn": {"aged": True, "temp_c": 25.0, "soc": 0.55},
    "cold": {"aged": False, "temp_c": 0.0, "soc": 1.0},
}


def interpreter() -> str:
    """What runs this process, for the reports: "PyPy 7.3.11 (Python 3.9.16)" or "CPython 3.12.1"."""
    impl = platform.python_implementation()
    if impl == "PyPy":
        v = sys.implementation.version
        return f"PyPy {v.major}.{v.minor}.{v.micro} (Python {platform.python_version()})"
    return f"{impl} {platform.python_version()}"


def build_day(job: dict[str, Any], fs: str) -> Any:
    """The terminal's seeded day (sim_day.Day, not run yet) with a `network` section naming the broker."""
    for p in (job["tools_dir"], job["lib_dir"], job["simhw_dir"], job["firmware_dir"]):
        if p not in sys.path:
            sys.path.insert(0, p)
    import sim_clock

    sim_clock.install()
    import sim_day

    profile = dict(job["profile"])
    profile["network"] = {"wifi_ssid": None, "wifi_password": None, "broker": job["broker"], "terminal": job["name"],
                          "interval_s": job["interval_s"], "tls": False, "user": None, "password": None,
                          "queue_max": 32}
    p = PRESETS[job["preset"]]
    return sim_day.Day(profile, fs, job["firmware_dir"], job["hours"], job["seed"], 0, p["aged"], p["temp_c"],
                       "posguard", p["soc"])


def keep_sockets_of_past_boots() -> list[Any]:
    """Every socket the simulated board opens stays referenced until the day ends (the list returned; the
    caller closes them). A reset drops the firmware's objects, and PyPy closes an unreachable socket
    whenever its collector runs: when the broker saw a rebooted terminal's old connection end would depend
    on PyPy's collector. Kept open, the broker meets the old connection still there when the terminal
    connects again, as with a real ESP32, whose TCP connection stays half-open after a reset until the
    broker drops it (docs/fleet.md: what of a day still depends on the live broker's timing)."""
    usocket: Any = importlib.import_module("usocket")  # the simulated board's, on the path since build_day
    known: list[Any] | None = getattr(usocket.socket, "_fleet_open", None)
    if known is not None:  # a day before this one in the same worker set it up
        return known
    opened: list[Any] = []
    usocket.socket._fleet_open = opened
    init = usocket.socket.__init__

    def socket_init(self: Any, *args: Any) -> None:
        init(self, *args)
        opened.append(self)

    usocket.socket.__init__ = socket_init
    return opened


def run_terminal(job: dict[str, Any]) -> dict[str, Any]:
    """One terminal's day: what the fleet report needs from it, and the CPU it took."""
    t0 = time.monotonic()
    c0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="posguard-fleet-") as fs:
        day = build_day(job, fs)
        opened = keep_sockets_of_past_boots()
        try:
            rep = day.run(0)
        finally:
            while opened:
                opened.pop().close()
    # Ran out: its first sale refused BATTERY_CRITICAL, or a customer found it dark (deep sleep for battery,
    # no refusal at all), whichever came first: the day's own first_battery_refusal.
    first = rep.get("first_battery_refusal")
    ran_out = first[0] if first else None
    refused = sum(1 for _t, kind, _d in rep["events"] if kind == "refused")
    return {"terminal": job["name"], "preset": job["preset"], "ran_out_h": ran_out,
            "completed": rep["counts"]["completed"], "refused": refused, "soc_end_pct": rep["soc_end_pct"],
            "lost": len(rep["lost"]), "brownouts_printing": rep["brownouts_printing"],
            "wall_s": round(time.monotonic() - t0, 1),
            "cpu_s": round(time.process_time() - c0, 1), "interpreter": interpreter()}


RESULT = "posguard-fleet-result "  # the line that carries a day's result (the day itself may print)


def main() -> int:
    """Days one after the other in this process, one job per line on stdin, one result line each on
    stdout: a process that stays up keeps its imported modules and PyPy its compiled traces (a fresh
    PyPy process spends about 2 s of CPU warming up; docs/fleet.md)."""
    # The simulated cashier needs only posguard_client's MicroPython-subset core (protocol, codes), as on
    # the unix port; the package's __init__ would import the serial-port Terminal and its dependencies,
    # which this interpreter (PyPy, without the project's environment) does not have.
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        if "posguard_client" not in sys.modules:
            pkg = types.ModuleType("posguard_client")
            pkg.__path__ = [job["tools_dir"] + "/posguard_client"]
            sys.modules["posguard_client"] = pkg
        res = run_terminal(job)
        print("\n" + RESULT + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
