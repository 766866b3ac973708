"""The back office's end of telemetry (host side): a thread subscribed to terminals' topics that keeps
every message and acks each reversal it sees once (`posguard/<terminal>/ack`), reconnecting when the
broker comes back. Used by the tests, the telemetry bench and `posguard sim --fleet`."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from posguard_tools.mqtt_wire import Client, Message


class Office(threading.Thread):
    """The back office: subscribes to one terminal's topics, acks each reversal it sees (once), and
    reconnects when the broker comes back."""

    def __init__(self, port: int, terminal: str = "+", ack: bool = True) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.terminal = terminal
        self.ack = ack
        self.messages: list[Message] = []
        self.acked: set[int] = set()  # sale ids acked (one terminal)
        self.acked_by: dict[str, set[int]] = {}  # terminal -> sale ids acked, each exactly once
        self.reversal_deliveries: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                c = Client("127.0.0.1", self.port, "office", timeout_s=1.0)
            except OSError:
                time.sleep(0.05)
                continue
            try:
                c.subscribe(f"posguard/{self.terminal}/#")
                while not self.stop.is_set():
                    m = c.receive(0.05)
                    if m is None:
                        continue
                    self.messages.append(m)
                    if m.topic.endswith("/reversals"):
                        sid = json.loads(m.payload)["id"]
                        self.reversal_deliveries[sid] = self.reversal_deliveries.get(sid, 0) + 1
                        base = m.topic.rsplit("/", 1)[0]
                        done = self.acked_by.setdefault(base.split("/")[1], set())
                        if self.ack and sid not in done:
                            c.publish(f"{base}/ack", json.dumps({"reversal": sid}).encode(), qos=1)
                            done.add(sid)
                            self.acked.add(sid)
            except OSError:
                time.sleep(0.05)
            finally:
                try:
                    c.close()
                except OSError:
                    pass

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.messages if m.topic.endswith("/events")]
