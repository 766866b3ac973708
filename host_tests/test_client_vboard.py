"""posguard_client on the virtual board (the firmware from source on the unix port, the host link on a
real pty through pyserial): the example of docs/integration.md, and a retry across a power cut."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from test_vboard import Vboard, start_vboard, stop_vboard

from posguard_client import LinkTimeout, Terminal, errors
from posguard_tools import paths

_START_TIMEOUT_S = 20


def start_firmware_vboard(tmp_path: Path) -> Vboard:
    """`posguard vboard --from-source` with board.json, boot.py and main.py on its filesystem."""
    return start_vboard(tmp_path, with_board=True, from_source=True)


@pytest.fixture
def vboard(tmp_path: Path) -> Iterator[Vboard]:
    vb = start_firmware_vboard(tmp_path)
    yield vb
    stop_vboard(vb)


T = TypeVar("T")


def until(call: Callable[[], T], ok: Callable[[T], bool], timeout_s: float) -> T:
    """call() again until ok(answer); a LinkTimeout (a board still booting, or off) counts as not yet."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            got = call()
        except LinkTimeout as e:
            last = e
        else:
            if ok(got):
                return got
            last = got
        time.sleep(0.2)
    pytest.fail(f"no good answer within {timeout_s} s; last: {last!r}")


def wait_ready(pos: Terminal, timeout_s: float = 30) -> dict[str, object]:
    """The firmware answers once it has booted and opened its UART (bytes before that are lost)."""
    return until(pos.status, lambda _st: True, timeout_s)


def test_integration_example_runs_against_the_vboard(vboard: Vboard) -> None:
    example = (paths.ROOT / "docs" / "integration.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
    script = vboard.run.parent / "cashier.py"
    script.write_text(example)
    r = subprocess.run([sys.executable, str(script), vboard.host], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "sale 1042: PAID (receipt queued)" in out, out
    assert "refused: CARD_NUMBER" in out and "4111" not in out, out
    assert "sale 1043: REVERSAL_PENDING" in out and "reversal 1043 acknowledged" in out, out


def test_retry_across_a_power_cut_is_answered_from_the_journal(vboard: Vboard) -> None:
    with Terminal(vboard.host, timeout_s=1.5, attempts=2) as pos:
        wait_ready(pos)
        pos.open_sale(7, [("coffee", 350), ("cake", 420, 2)], "2026-11-24 09:00")
        pos.pay(7, "card")
        assert vboard.ctl("power off") == ["ok power off"]
        with pytest.raises(LinkTimeout):
            pos.approve(7, "A1B2C3", "4242")  # no power: the app does not know whether it arrived
        assert vboard.ctl("power on") == ["ok power on"]
        wait_ready(pos)
        # After the reboot the journal's recovery made the unpaid sale a pending reversal: the same
        # approve is refused with the state to continue from, and the reversal is listed.
        with pytest.raises(errors.IllegalTransition) as e:
            pos.approve(7, "A1B2C3", "4242")
        assert e.value.state == "REVERSAL_PENDING"
        assert 7 in pos.status()["reversals"]
        assert pos.ack_reversal(7).state == "REVERSAL_ACKED"
