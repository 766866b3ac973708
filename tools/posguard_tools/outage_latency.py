""""A broker outage changes no sale's latency" (docs/fleet.md): the same seeded terminal day (sim_day.Day
with a `network` section, as `posguard sim --fleet` runs it) three times: the broker up all day, the broker
killed (SIGKILL) for the middle third and started again, and the network gone (the broker's host never
answers: every connect times out, host_tests/simhw/usocket.py UNREACHABLE). The simulated sockets charge
every wait to the virtual clock as the chip's blocking calls would hold its event loop, so a connect or a
publish that overlaps a sale shows in that sale's latency: request sent by the cashier app to reply
received, in virtual microseconds, per (sale id, op)."""

from __future__ import annotations

import importlib
import json
import tempfile
from pathlib import Path
from typing import Any

from posguard_client import protocol
from posguard_tools import fleet_sim, mpylib
from posguard_tools.broker import Broker

SCENARIOS = ("broker up", "broker down mid-day", "network gone")


def _decode(line: bytes) -> dict[str, Any] | None:
    """A request or reply line (CRC suffix or not) as a dict, or None (a damaged or deliberately bad line)."""
    try:
        obj = json.loads(protocol.split_crc(line)[0])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class Probe:
    """The simulated cashier's side of the link and the board's network waits, in virtual microseconds:
    each sale request's latency (first send to its answer, per (sale id, op)) and the requests that were
    in flight while a socket call held the firmware's event loop."""

    def __init__(self, day: Any, usocket: Any) -> None:
        self.clock = day.clock
        self.latency: dict[tuple[int, str], int] = {}
        self.sent_at: dict[tuple[int, str], int] = {}
        self.waits: list[tuple[int, int]] = []
        self._sent: dict[int, tuple[int, str, int]] = {}
        self._flights: list[tuple[int, str, int, int]] = []
        # Watched on the wire, beneath the cashier's protocol core (sim_host.HostClient on
        # posguard_client.protocol.Session): every line the client hands the wire (a retry is the same
        # line, same seq: its first send counts) and every reply line the wire delivers to it.
        peer = day.peer
        send_raw = peer.send_raw
        on_line = peer.on_line

        def send_and_note(data: bytes) -> None:
            req = _decode(data.rstrip(b"\n"))
            if req is not None and "id" in req and "seq" in req and req["seq"] not in self._sent:
                self._sent[req["seq"]] = (req["id"], req["op"], self.clock.now_us())
            send_raw(data)

        def line_and_note(raw: bytes) -> None:
            rep = _decode(raw)
            seq = rep.get("seq") if rep is not None and "ok" in rep else None
            s = self._sent.pop(seq, None) if isinstance(seq, int) else None
            if s is not None and (s[0], s[1]) not in self.latency:
                now = self.clock.now_us()
                self.latency[(s[0], s[1])] = now - s[2]
                self.sent_at[(s[0], s[1])] = s[2]
                self._flights.append((s[0], s[1], s[2], now))
            on_line(raw)

        peer.send_raw = send_and_note
        peer.on_line = line_and_note
        usocket.ON_WAIT = lambda t0, t1: self.waits.append((t0, t1))

    def held(self) -> list[list[Any]]:
        """[sale id, op, ms of network wait inside its flight] for each request a socket call held up."""
        out = []
        for sid, op, ts, tr in self._flights:
            us = sum(min(b, tr) - max(a, ts) for a, b in self.waits if a < tr and b > ts)
            if us > 0:
                out.append([sid, op, us / 1000])
        return out


def run_day(scenario: str, hours: float, seed: int = 1, preset: str = "fresh", interval_s: int = 60) -> Probe:
    """One seeded day in one of SCENARIOS, watched by a Probe."""
    if scenario not in SCENARIOS:
        raise ValueError(scenario)
    mpylib.install()
    with tempfile.TemporaryDirectory(prefix="posguard-outage-") as tmp:
        broker = Broker(Path(tmp) / "broker")
        job = {"name": "t01", "preset": preset, "hours": hours, "seed": seed, "board": "devkit-1s",
               "broker": broker.url, "interval_s": interval_s}
        day = fleet_sim.build_day(job, tmp)
        usocket: Any = importlib.import_module("usocket")  # the simulated board's, on the path since build_day
        probe = Probe(day, usocket)
        end_us = int(hours * 3600e6)
        try:
            if scenario == "network gone":
                usocket.UNREACHABLE = True
            else:
                broker.start()
            if scenario == "broker down mid-day":
                day.clock.call_at_us(end_us // 3, lambda: broker.stop(kill=True))
                day.clock.call_at_us(2 * end_us // 3, broker.start)
            rep = day.run(0)
        finally:
            usocket.UNREACHABLE = False
            usocket.ON_WAIT = None
            broker.stop()
        if rep["lost"]:
            raise RuntimeError(f"{scenario}: sales lost {rep['lost']}")
    return probe


def percentile(values: list[int], q: float) -> int:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0


def compare(hours: float, seed: int = 1) -> dict[str, Any]:
    """All three days: per scenario p50/p99/max (ms), the requests a network wait held up, and how many
    requests' latencies differ from the broker-up day's."""
    days = {sc: run_day(sc, hours, seed) for sc in SCENARIOS}
    base = days[SCENARIOS[0]].latency
    out: dict[str, Any] = {"hours": hours, "seed": seed, "scenarios": {}}
    for sc, probe in days.items():
        lat = probe.latency
        v = list(lat.values())
        diff = [k for k in set(base) | set(lat) if base.get(k) != lat.get(k)]
        held = probe.held()
        out["scenarios"][sc] = {"requests": len(v), "p50_ms": percentile(v, 0.5) / 1000,
                                "p99_ms": percentile(v, 0.99) / 1000, "max_ms": max(v) / 1000 if v else 0.0,
                                "differ": len(diff), "held": held, "waits": len(probe.waits),
                                "wait_ms": sum(b - a for a, b in probe.waits) / 1000}
    return out
