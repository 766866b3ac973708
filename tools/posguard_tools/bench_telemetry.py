"""Bench section "telemetry": what one telemetry step costs on the MicroPython unix port against a real
broker on the loopback address (amqtt, posguard_tools.broker): the firmware's Telemetry and mqtt_link over
umqtt.simple (host_tests/mpy/telemetry_probe.py), timed inside the VM with the real clock (ticks_us), and
the live heap after every step. The publish cost per interval is the step that published a health
message; "heap growth" compares the live heap after the first 20 steps with the end.

"A broker outage changes no sale's latency" (posguard_tools.outage_latency): the same seeded terminal day
on the simulated board (3 h; quick: 0.75 h) with the broker up, killed for the middle hour and restarted,
and with the network gone; per-sale latency (request to reply at the host link, virtual ms: every socket
wait is charged to the virtual clock as it would hold the chip's event loop)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from posguard_tools import mpylib, outage_latency, paths
from posguard_tools.backoffice import Office
from posguard_tools.broker import Broker


def run_probe(port: int, steps: int, cwd: Path) -> dict[str, Any]:
    lib = mpylib.install()
    env = paths.micropython_env()
    # The real time module (not the simulator's clock): only the firmware and the library on the path.
    env["MICROPYPATH"] = ":".join([str(lib), str(paths.FIRMWARE), ".frozen"])
    r = subprocess.run(
        [paths.venv_bin("micropython"), "-X", f"heapsize={paths.HEAPSIZE}",
         str(paths.MPY_TESTS / "telemetry_probe.py"), str(port), str(steps)],
        capture_output=True, text=True, env=env, cwd=str(cwd), timeout=300,
    )
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        raise RuntimeError("telemetry probe failed: " + r.stdout[-2000:] + r.stderr[-2000:])
    result: dict[str, Any] = json.loads(line[0][7:])
    return result


def run(quick: bool) -> dict[str, Any]:
    steps = 40 if quick else 400
    with tempfile.TemporaryDirectory(prefix="posguard-bench-telemetry-") as tmp:
        with Broker(Path(tmp) / "broker") as broker:
            office = Office(broker.port, "unix1")
            office.start()
            try:
                res = run_probe(broker.port, steps, Path(tmp))
            finally:
                office.stop.set()
                office.join(timeout=5)
    growth = res["heap_end"] - res["heap_after_warmup"]
    rows = [
        ["steps (one simulated second each, health every 10)", steps, ""],
        ["publish step, median (unix port, loopback broker)", f"{res['publish_us_median']} us", ""],
        ["publish step, max", f"{res['publish_us_max']} us", ""],
        ["worst step (connect included)", f"{res['worst_step_us']} us", "< connect timeout 1500 ms"],
        ["live heap after a collect", f"{res['heap_max'] / 1024:.1f} KB", ""],
        ["heap growth after warm-up", f"{growth} B", "< 1024 B"],
        ["reversals acked by the back office", len(res["acked"]), "2"],
        ["events delivered", len(office.events()), "2"],
    ]
    out = outage_latency.compare(0.75 if quick else 3.0)
    res["outage_latency"] = out
    for sc, r in out["scenarios"].items():
        rows.append([f"sale latency, {sc} ({out['hours']:g} h day): p50 / p99 / max",
                     f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f} / {r['max_ms']:.0f} ms",
                     f"{r['requests']} requests, {r['differ']} differ from the broker-up day"])
        rows.append([f"... requests in flight during a network wait ({r['waits']} waits, {r['wait_ms']:.0f} ms)",
                     len(r["held"]), "0"])
    return {"title": "Telemetry: one step on the unix port against a real broker", "rows": rows, "data": res}
