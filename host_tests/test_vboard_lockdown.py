"""Issue 12, item 12 on the virtual board: a locked terminal keeps trading through Ctrl-C on its USB
console (no REPL, no reset), and the documented service path (the service button held for 3 s while
trading, then released) gives the technician the REPL API."""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path

from test_client_vboard import wait_ready
from test_vboard import Vboard, start_vboard, stop_vboard

from posguard_client import Terminal


def _start(tmp_path: Path) -> Vboard:
    # what pos.lock() writes in service mode: a locked terminal
    return start_vboard(tmp_path, with_board=True, from_source=True, extra_files={"production": "locked\n"})


def _boots(vb: Vboard) -> int:
    return int(vb.ctl("status")[0].split("boots=")[1].split()[0])


def _read_console(fd: int, seconds: float) -> bytes:
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out


def test_locked_board_ignores_ctrl_c_and_service_mode_opens_the_repl(tmp_path: Path) -> None:
    vb = _start(tmp_path)
    pos = Terminal(vb.host, timeout_s=5.0)
    try:
        wait_ready(pos, timeout_s=40)
        assert pos.open_sale(78, [("Tea", 300)]).state == "OPEN"
        boots = _boots(vb)
        console = os.open(vb.port, os.O_RDWR | os.O_NOCTTY)
        try:
            # What mpremote does to get a raw REPL, and what a curious person types.
            for _ in range(3):
                os.write(console, b"\r\x03\x03\x01")
                time.sleep(0.2)
            seen = _read_console(console, 2.0)
        finally:
            os.close(console)
        assert b">>>" not in seen and b"raw REPL" not in seen, seen
        assert _boots(vb) == boots, "Ctrl-C reset the board"
        assert pos.sale(78).state == "OPEN"  # still trading, the sale untouched

        # The documented path: hold the service button 3 s while it trades, then release it.
        assert vb.ctl("service hold")[0].startswith("ok")
        time.sleep(4.0)
        assert vb.ctl("service release")[0].startswith("ok")
        deadline = time.monotonic() + 40
        while True:  # the long press restarts the board into service mode: at the REPL, no world running
            st = vb.ctl("status")[0]
            if "at-repl" in st or ("boots=" in st and _boots(vb) != boots):
                break
            assert time.monotonic() < deadline, "no restart into service mode: " + st
            time.sleep(0.2)
        out = ""
        for _ in range(3):  # the boot (and the 3 s hold) may still be running when mpremote first asks
            r2 = vb.mpremote("resume", "exec", "from posguard import app, repl as pos\nprint(app.mode)\npos.journal()",
                             check=False)
            out = r2.stdout
            if "service" in out:
                break
            time.sleep(2)
        assert out.splitlines()[0].strip() == "service", out
        assert "journal :" in out and "78" in out, out  # the technician sees the sale (voided at boot)
    finally:
        pos.close()
        vb.ctl("service release")
        if vb.proc.poll() is None:
            vb.proc.send_signal(signal.SIGTERM)
        stop_vboard(vb)
