"""Issue 7, item 5, end to end with the real clients: a blank virtual board, `posguard deploy` through
mpremote, a card sale over the host link, the pack pulled while the receipt prints, the board rebooting
by itself, then `mpremote exec` (what the printer printed) and `posguard journal dump` (what the
journal holds) showing the sale reprinted as a marked copy and closed.

Draft for the lead: it drives the app's JSON-lines host protocol (firmware/posguard/commands.py) as it
is now; `posguard deploy` stands in for `make deploy` until the Makefile target exists."""

from __future__ import annotations

import functools
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_vboard import Vboard, start_vboard, stop_vboard

from posguard_tools import deploy_heapcheck, paths

_SALE = {
    "op": "open",
    "id": 7,
    "items": [{"name": "coffee", "qty": 1, "price": 350}, {"name": "cake", "qty": 2, "price": 420}],
}


class HostLink:
    """The cashier app's end of the host link: one JSON request per line, one reply line."""

    def __init__(self, port: str) -> None:
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        self.buf = b""
        self.seq = 100000  # our own request numbers, far from any a test gives

    def close(self) -> None:
        os.close(self.fd)

    def ask(self, req: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
        """Send req and return its reply. A reply to an earlier request that timed out here (a slow board
        under load) is skipped: requests that carry no `seq` of their own get one, and replies are matched
        on it (the reply then shows the seq the caller gave, None if none)."""
        if "seq" in req:
            given = req["seq"]
        else:
            self.seq += 1
            given = self.seq
        os.write(self.fd, json.dumps({**req, "seq": given}).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n" not in self.buf and time.monotonic() < deadline:
                if select.select([self.fd], [], [], 0.02)[0]:
                    self.buf += os.read(self.fd, 4096)
            if b"\n" not in self.buf:
                return None
            line, _, self.buf = self.buf.partition(b"\n")
            reply: dict[str, Any] = json.loads(line)
            if reply.get("seq") != given:
                continue  # a late reply to an earlier request
            if "seq" not in req:
                reply["seq"] = None
            return reply
        return None

    def until(self, req: dict[str, Any], ok: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.ask(req, timeout=2.0)
            if last is not None and ok(last):
                return last
            time.sleep(0.2)
        pytest.fail(f"no good reply to {req} within {timeout} s; last: {last}")


def _status_field(vb: Vboard, name: str) -> int:
    status = vb.ctl("status")[0]
    return int(float(status.split(name + "=")[1].split()[0]))


# Every shipped profile runs the whole story (issue 13, item 13): a profile the virtual board cannot run
# is a profile nobody has tested end to end.
PROFILES = sorted(p.stem for p in paths.BOARDS.glob("*.json"))


@functools.cache
def _plans() -> dict[str, deploy_heapcheck.Plan]:
    code = deploy_heapcheck.code_heap_bytes(deploy_heapcheck.compile_package())
    return {board: deploy_heapcheck.plan_for(board, code) for board in PROFILES}


@pytest.fixture(params=PROFILES)
def deployed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Vboard]:
    # The deployment each profile needs (issue 13, item 12): a board whose heap cannot hold the package as
    # .mpy runs a build with it frozen in (vboard --frozen) and gets only the rest (deploy --frozen).
    board = request.param
    plan = _plans()[board]
    vb = start_vboard(tmp_path, with_board=False, chip=plan.chip, frozen=plan.frozen)
    try:
        # Exactly what a developer types (the Makefile's deploy target runs `posguard deploy`).
        cmd = ["make", "--no-print-directory", "deploy", f"PORT={vb.port}", f"BOARD={board}"]
        if plan.frozen:
            cmd = [
                sys.executable,
                "-m",
                "posguard_tools.cli",
                "deploy",
                "--port",
                vb.port,
                "--board",
                board,
                "--frozen",
            ]
        r = subprocess.run(
            cmd,
            cwd=str(paths.ROOT),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        yield vb
    finally:
        print(stop_vboard(vb))


def test_sale_cut_mid_print_is_reprinted_as_a_copy(deployed: Vboard) -> None:
    vb = deployed
    link = HostLink(vb.host)
    try:
        link.until({"op": "status"}, lambda r: r.get("ok") is True, timeout=30)
        assert link.ask(_SALE) == {"id": 7, "ok": True, "state": "OPEN", "seq": None}
        assert link.ask({"op": "pay", "id": 7, "method": "card"})["state"] == "PAYMENT_PENDING"  # type: ignore[index]
        # Slow virtual time down so the cut surely lands while the receipt is on the head.
        assert vb.ctl("speed 0.3") == ["ok speed x0.3"]
        paid = link.ask({"op": "approve", "id": 7, "auth": "A1B2C3", "last4": "4242"})
        assert paid is not None and paid["state"] == "PAID", paid
        boots = _status_field(vb, "boots")
        # The receipt waits for the 20 s rest every boot takes (powermon.resting; then the parked job's 5 s
        # re-check): skip most of it fast, in virtual time, then slow down again for the cut.
        assert vb.ctl("speed 10") == ["ok speed x10"]
        deadline = time.monotonic() + 30
        while _status_field(vb, "clock_ms") < 21000:
            assert time.monotonic() < deadline, "virtual time does not advance"
            time.sleep(0.02)
        assert vb.ctl("speed 0.3") == ["ok speed x0.3"]
        deadline = time.monotonic() + 40
        while _status_field(vb, "rows") == 0:
            assert time.monotonic() < deadline, "the receipt never started printing"
            time.sleep(0.05)
        assert vb.ctl("power off") == ["ok power off"]
        state = link.ask({"op": "sale", "id": 7}, timeout=1.0)
        assert state is None  # a board without power answers nothing
        assert vb.ctl("power on", "speed 10") == ["ok power on", "ok speed x10"]
        closed = link.until({"op": "sale", "id": 7}, lambda r: r.get("state") == "CLOSED", timeout=60)
        assert closed["id"] == 7
        assert _status_field(vb, "boots") == boots + 1
        # Real time again before the tools interrupt the terminal: at x10 its 8 s watchdog gives them under
        # 1 s between mpremote's Ctrl-C and the switch to service mode (on a board they have the full 8 s).
        assert vb.ctl("speed 1") == ["ok speed x1"]
    finally:
        link.close()

    # What the printer printed since the reboot, read on the board itself (resume: no soft reset).
    printed = vb.mpremote(
        "resume",
        "exec",
        "import sim_vboard_boot as v\nfor r in v.world.printer.printed:\n    print(repr(r))",
    ).stdout
    assert "DUPLICATE" in printed, printed[:2000]
    # And the journal, read off the board through mpremote and decoded here.
    dump = subprocess.run(
        [sys.executable, "-m", "posguard_tools.cli", "journal", "dump", "--json", "--port", vb.port],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dump.returncode == 0, dump.stdout + dump.stderr
    sale = json.loads(dump.stdout)["7"]
    assert sale["state"] == "CLOSED" and sale["approval"] == "card:4242:A1B2C3"
