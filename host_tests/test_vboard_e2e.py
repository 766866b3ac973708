"""Issue 7, item 5, end to end with the real clients: a blank virtual board, `posguard deploy` through
mpremote, a card sale over the host link, the pack pulled while the receipt prints, the board rebooting
by itself, then `mpremote exec` (what the printer printed) and `posguard journal dump` (what the
journal holds) showing the sale reprinted as a marked copy and closed.

The cashier's side is posguard_client.Terminal on the virtual board's host-link pty (issue 15): the
library an app uses, not a second implementation of the protocol."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_client_vboard import until, wait_ready
from test_vboard import Vboard, start_vboard, stop_vboard

from posguard_client import LinkTimeout, Terminal
from posguard_tools import deploy_heapcheck, paths

_ITEMS = [("coffee", 350, 1), ("cake", 420, 2)]


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
    # A slow board under load (x0.3 below) answers late: a generous reply timeout, retries as the library does.
    with Terminal(vb.host, timeout_s=5.0) as pos:
        wait_ready(pos)
        opened = pos.open_sale(7, _ITEMS)
        assert (opened.id, opened.state, opened.reply["ok"]) == (7, "OPEN", True)
        assert pos.pay(7, "card").state == "PAYMENT_PENDING"
        # Slow virtual time down so the cut surely lands while the receipt is on the head.
        assert vb.ctl("speed 0.3") == ["ok speed x0.3"]
        assert pos.approve(7, "A1B2C3", "4242").state == "PAID"
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
        pos.timeout_s, pos.attempts = 1.0, 1
        with pytest.raises(LinkTimeout):
            pos.sale(7)  # a board without power answers nothing
        pos.timeout_s, pos.attempts = 2.0, 3
        assert vb.ctl("power on", "speed 10") == ["ok power on", "ok speed x10"]
        closed = until(lambda: pos.sale(7), lambda s: s.state == "CLOSED", timeout_s=60)
        assert closed.id == 7
        assert _status_field(vb, "boots") == boots + 1
        # Real time again before the tools interrupt the terminal: at x10 its 8 s watchdog gives them under
        # 1 s between mpremote's Ctrl-C and the switch to service mode (on a board they have the full 8 s).
        assert vb.ctl("speed 1") == ["ok speed x1"]

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
