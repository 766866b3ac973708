# The simulated cashier (sim_host.HostClient, the client of `make sim`) on a recorded wire, on either
# runtime (MicroPython subset): host_tests/test_client_one_protocol.py records what posguard_client's
# Terminal wrote and what the wire handed back after each write (the firmware's replies, some lost,
# damaged or late), replays those bytes here to the same calls, and compares what both sides wrote and
# answered. Run on the unix port as:  micropython client_replay.py IN.json OUT.json
import binascii
import json
import sys

import sim_host  # puts posguard_client on the unix port's path

from posguard_client import protocol

DELAY_MS = 1  # the recorded bytes arrive this long after the write they answer


class Timers:
    """call_later_ms/cancel in virtual time; run() fires them in order."""

    def __init__(self):
        self.now_ms = 0
        self.n = 0
        self.pending = []

    def call_later_ms(self, ms, fn):
        self.n += 1
        ev = [self.now_ms + ms, self.n, fn]
        self.pending.append(ev)
        return ev

    def cancel(self, ev):
        if ev in self.pending:
            self.pending.remove(ev)

    def run(self):
        while self.pending:
            ev = min(self.pending)
            self.pending.remove(ev)
            self.now_ms = ev[0]
            ev[2]()


class ReplayWire:
    """What HostClient sees of HostPeer: every line it writes is kept; after the k-th write the k-th
    recorded chunk comes back, split into lines."""

    def __init__(self, chunks, timers):
        self.chunks = chunks
        self.timers = timers
        self.on_line = None
        self.bad_replies = 0
        self.lines = []
        self._rx = b""

    def send_raw(self, data):
        k = len(self.lines)
        self.lines.append(bytes(data))
        chunk = self.chunks[k] if k < len(self.chunks) else b""
        self.timers.call_later_ms(DELAY_MS, lambda: self._deliver(chunk))

    def _deliver(self, chunk):
        self._rx += chunk
        while b"\n" in self._rx:
            i = self._rx.index(b"\n")
            line = self._rx[:i]
            self._rx = self._rx[i + 1 :]
            self.on_line(line)


def outcome(rep):
    """What a step came to, in the form both sides are compared in."""
    if rep is None:
        return ["timeout"]
    if rep.get("ok") is True:
        return ["ok", rep.get("state")]
    return ["refused", rep.get("err"), bool(rep.get("local"))]


def run(steps, chunks, crc, last_seq, attempts):
    """steps: [[op name, args...]] as Terminal's methods take them; returns what the client wrote, what
    each step came to, and the session's counters."""
    timers = Timers()
    wire = ReplayWire(chunks, timers)
    client = sim_host.HostClient(wire, timers, max_tries=attempts, crc=crc, last_seq=last_seq)
    client.session.remember = protocol.REMEMBER  # as Terminal (the day turns it off: it never reuses an id)
    got = []
    for step in steps:
        op, args = step[0], list(step[1:])
        if op == "open_sale":
            args += [None] * (3 - len(args))
        elif op in ("approve", "decline", "void"):
            args += [None] * ((3 if op == "approve" else 2) - len(args))
        elif op == "reprint" and not args:
            args = [None]
        getattr(client, op)(*(args + [lambda rep: got.append(outcome(rep))]))
        timers.run()
    return {"lines": wire.lines, "outcomes": got, "retries": client.session.retries,
            "stale": client.session.stale_replies}


def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    chunks = [binascii.unhexlify(c) for c in a["chunks"]]
    r = run(a["steps"], chunks, a["crc"], a["last_seq"], a["attempts"])
    r["lines"] = [binascii.hexlify(x).decode() for x in r["lines"]]
    with open(sys.argv[2], "w") as f:
        f.write(json.dumps(r))


if __name__ == "__main__":
    main()
