# Telemetry on the MicroPython unix port against a real broker (host_tests/test_telemetry_unix.py and
# `posguard bench --only telemetry` start the broker): the firmware's Telemetry with the real
# mqtt_link session over umqtt.simple and the port's own sockets. A stand-in status and sale book; every
# step timed (ticks_us) and the heap measured after a collect, so the figures are the publish cost per
# interval and any allocation growth. Prints one JSON line: RESULT {...}.
#   micropython telemetry_probe.py PORT STEPS
import gc
import json
import sys
import time

from posguard import netconfig, telemetry


class Book:
    def __init__(self):
        self.pending = [7, 8]
        self.acked = []

    def reversals(self):
        return list(self.pending)

    def reversal_acked(self, sid):
        self.pending.remove(sid)
        self.acked.append(sid)


def status():
    return {"battery": {"soc_pct": 61.5, "state": "OK", "soh_pct": 92.0, "replace": False, "receipts_left": 210},
            "printer": {"problem": None, "queued": 0, "owed": 0}, "journal": {"fill_pct": 12},
            "reversals": book.reversals(), "accepting": None, "uptime_s": 100, "crashes": 0}


class Clock:
    t = 0

    def __call__(self):
        return self.t


port = int(sys.argv[1])
steps = int(sys.argv[2])
book = Book()
clock = Clock()
cfg = netconfig.check({"wifi_ssid": None, "wifi_password": None, "broker": "mqtt://127.0.0.1:%d" % port,
                       "terminal": "unix1", "interval_s": 10, "tls": False, "user": None, "password": None,
                       "queue_max": 16})
from posguard import mqtt_link  # noqa: E402

try:
    import os

    os.remove("probe.q")
except OSError:
    pass
t = telemetry.Telemetry(cfg, status, book, None, "probe.q", None, None, clock)
t.session = mqtt_link.Session(cfg, "posguard-unix1", t.on_message)
t.event("paper_out")
t.event("battery_low", soc_pct=19.5)
worst_us = 0
# Preallocated: the probe's own bookkeeping must not show up as the firmware's heap growth.
publish_us = [0] * steps
n_pub = 0
heap = [0] * steps
for k in range(steps):
    before = t.published
    t0 = time.ticks_us()
    t.step()
    dt = time.ticks_diff(time.ticks_us(), t0)
    if t.published > before and k > 0:
        publish_us[n_pub] = dt
        n_pub += 1
    worst_us = max(worst_us, dt)
    clock.t += 1000  # one simulated second a step: a health message every 10 steps
    gc.collect()
    heap[k] = gc.mem_alloc()
    time.sleep_ms(2)  # the back office's ack has a moment to arrive
publish_us = sorted(publish_us[:n_pub])
print("RESULT " + json.dumps({
    "connected": t.session.connected, "published": t.published, "failures": t.failures, "acked": book.acked,
    "queued": len(t.queue), "publish_us_median": publish_us[len(publish_us) // 2] if publish_us else None,
    "publish_us_max": publish_us[-1] if publish_us else None, "worst_step_us": worst_us,
    "heap_after_warmup": heap[min(20, len(heap) - 1)], "heap_end": heap[-1], "heap_max": max(heap)}))
