"""`posguard vboard` as a technician uses it (issue 14, section 4): the control port found through the state
file (status, control lines, stop), a stop that says in words what ran and where the board's flash went,
the board's folder kept across stops (--fresh wipes it), the run folder removed, a stale state file
reported at once, and `posguard vboard paper`: what the virtual printer printed, as a PNG.

Every client call has a timeout, so a hang fails the test instead of blocking CI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from test_client_vboard import wait_ready
from test_vboard import _FOREVER_MAIN, Vboard, start_vboard, stop_vboard

from posguard_client import Terminal
from posguard_tools import vboard_state

_TIMEOUT_S = 60

# What a technician's exec writes to the journal partition, and saves to the flash image at once.
_WRITE_MARK = (
    "import esp32\n"
    "p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label='journal')[0]\n"
    "p.writeblocks(1, b'posguard' + bytes(248), 0)\n"
    "import sim_vboard_boot as v; v.save_flash()\n"
)


def vboard_cli(state: Path, *words: str) -> subprocess.CompletedProcess[str]:
    """`posguard vboard --state STATE WORDS...`: a command to the board running for that state file."""
    return subprocess.run(
        [sys.executable, "-m", "posguard_tools.cli", "vboard", "--state", str(state), *words],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
    )


def stop_by_command(vb: Vboard) -> tuple[str, str]:
    """`posguard vboard stop`: (what the stop command printed, what the board's own terminal showed)."""
    r = vboard_cli(vb.state, "stop")
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout, vb.proc.communicate(timeout=_TIMEOUT_S)[0]


def test_state_file_finds_the_running_board(tmp_path: Path) -> None:
    vb = start_vboard(tmp_path, with_board=True, main_py=_FOREVER_MAIN, board_dir=tmp_path / "board")
    try:
        state = json.loads(vb.state.read_text())
        assert state["running"] is True and state["control"] == vb.control and state["repl"] == vb.port
        assert state["pid"] == vb.proc.pid
        status = vboard_cli(vb.state, "status")
        assert status.returncode == 0, status.stderr
        assert f"CONTROL  {vb.control}" in status.stdout and "status: ok power=on" in status.stdout, status.stdout
        assert vboard_cli(vb.state, "paper out").stdout.strip() == "paper out: ok paper out"
        # A second board for the same state file would hide the first one's port: refused, with the way out.
        again = subprocess.run(
            [sys.executable, "-m", "posguard_tools.cli", "vboard", "--state", str(vb.state), "--fs", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
        )
        assert again.returncode == 1 and "already runs" in again.stderr and "posguard vboard stop" in again.stderr
        said, shown = stop_by_command(vb)
    finally:
        stop_vboard(vb)
    # The port was printed at start, and the stop is told in words on both terminals.
    assert f"CONTROL  {vb.control}" in shown and str(vb.state) in shown, shown
    for out in (said, shown):
        assert "virtual board stopped after" in out and "receipts printed: 0" in out, out
        assert "{" not in out and "vm_starts" not in out, out  # no raw dict
    stopped = vboard_cli(vb.state, "status")
    assert stopped.returncode == 1 and "no virtual board is running" in stopped.stderr
    assert "stopped at" in stopped.stderr, stopped.stderr


def test_stop_keeps_the_flash_removes_the_run_folder_and_fresh_wipes(tmp_path: Path) -> None:
    folder = tmp_path / "board"
    vb = start_vboard(tmp_path, with_board=True, main_py=_FOREVER_MAIN, board_dir=folder)
    vb.exec(_WRITE_MARK)
    out = stop_vboard(vb)  # SIGTERM, as Ctrl-C in `make vboard`
    assert not vb.run.exists(), "the temporary run folder outlived the stop"
    assert f"run folder removed: {vb.run}" in out, out
    assert f"filesystem and journal flash (flash-journal.bin) kept in {folder}" in out, out
    assert (folder / "flash-journal.bin").read_bytes()[4096:4104] == b"posguard"
    assert (folder / "fs" / "main.py").exists()

    # The next start finds the flash as the last run left it, like a board after a power-off.
    vb = start_vboard(tmp_path, with_board=False, board_dir=folder)
    try:
        assert (vb.run / "flash-journal.bin").read_bytes()[4096:4104] == b"posguard"
        assert (vb.fs / "main.py").exists()
    finally:
        stop_vboard(vb)

    vb = start_vboard(tmp_path, with_board=False, board_dir=folder, more_args=("--fresh",))
    try:
        assert not (vb.run / "flash-journal.bin").exists()
        assert not (vb.fs / "main.py").exists()
    finally:
        out = stop_vboard(vb)
    assert f"--fresh: wiped {folder}" in out, out


def test_a_stale_state_file_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "vboard.json"
    missing = vboard_cli(state, "status")
    assert missing.returncode == 1 and "does not exist" in missing.stderr, missing.stderr
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a pid nobody uses any more
    dead.wait(timeout=_TIMEOUT_S)
    vboard_state.write_state(
        state,
        {"running": True, "pid": dead.pid, "started_at": "2026-01-01 09:00:00", "control": "127.0.0.1:1"},
    )
    for words in (["status"], ["stop"], ["paper"], ["power off"]):
        r = vboard_cli(state, *words)
        assert r.returncode == 1, (words, r.stdout, r.stderr)
        assert f"names pid {dead.pid}" in r.stderr and "stale" in r.stderr, r.stderr
    with pytest.raises(vboard_state.NotRunning, match="stale"):
        vboard_state.resolve_port("vboard", state)  # what deploy and journal --port vboard ask
    assert vboard_state.resolve_port("/dev/ttyUSB0", state) == "/dev/ttyUSB0"


def test_paper_is_what_the_printer_printed(tmp_path: Path) -> None:
    vb = start_vboard(tmp_path, with_board=True, from_source=True, board_dir=tmp_path / "board")
    png = tmp_path / "paper.png"
    try:
        empty = vboard_cli(vb.state, "paper", "--out", str(png))
        assert empty.returncode == 1 and "printed nothing yet" in empty.stderr, empty.stderr
        with Terminal(vb.host, timeout_s=1.5, attempts=2) as pos:
            wait_ready(pos)
            assert vb.ctl("speed 20") == ["ok speed x20"]  # past the boot's 20 s rest, in virtual time
            pos.open_sale(7, [("coffee", 350), ("cake", 420, 2)], "2026-11-24 09:00")
            pos.pay(7, "card")
            pos.approve(7, "A1B2C3", "4242")
            deadline = time.monotonic() + _TIMEOUT_S
            while pos.sale(7).state != "CLOSED":
                assert time.monotonic() < deadline, "the receipt was never printed"
                time.sleep(0.1)
        r = vboard_cli(vb.state, "paper", "--out", str(png))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "receipts printed: 1 (1 original)" in r.stdout, r.stdout
        with Image.open(png) as img:
            img.load()
            assert img.width == 384 + 32  # 58 mm paper: 384 dots, and the margins
            first = img.height
            assert first > 300 and img.convert("L").getextrema()[0] == 0  # a receipt's height, with ink on it
        # The paper is outside the chip: a power cycle (a new VM) keeps what was printed.
        assert vb.ctl("power off", "power on") == ["ok power off", "ok power on"]
        deadline = time.monotonic() + _TIMEOUT_S
        while "boots=2" not in vb.ctl("status")[0]:
            assert time.monotonic() < deadline, "the board did not boot again"
            time.sleep(0.1)
        r = vboard_cli(vb.state, "paper", "--out", str(png))
        assert r.returncode == 0 and "receipts printed: 1 (1 original)" in r.stdout, r.stdout + r.stderr
        with Image.open(png) as img:
            assert img.height >= first
        said, _ = stop_by_command(vb)
    finally:
        stop_vboard(vb)
    assert "receipts printed: 1 (1 original)" in said, said
