"""Issue 13, item 16: a port that is missing, locked by another program, or not a REPL at all (the
terminal's host link) gets a message naming the real cause and the fix, not mpremote's guess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from test_vboard import start_vboard, stop_vboard

from posguard_tools import paths, port_diag


def test_missing_port_is_named_missing() -> None:
    r = subprocess.run(
        [paths.venv_bin("mpremote"), "connect", "/dev/ttyPOSGUARD9", "exec", "print(1)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "may be in use" in r.stdout + r.stderr  # mpremote's guess for a port that does not exist
    msg = port_diag.explain_failure("/dev/ttyPOSGUARD9", r.stdout + r.stderr)
    assert msg is not None and "no such port" in msg and "mpremote devs" in msg and "in use" not in msg


def test_locked_port_names_the_program_holding_it() -> None:
    master, slave = os.openpty()
    port = os.ttyname(slave)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({port!r}, os.O_RDWR | os.O_NOCTTY)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = subprocess.run(
            [paths.venv_bin("mpremote"), "connect", port, "exec", "print(1)"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        msg = port_diag.explain_failure(port, r.stdout + r.stderr)
        assert msg is not None and "in use by another program" in msg, (r.stdout + r.stderr, msg)
        assert f"{holder.pid} (python" in msg, msg
    finally:
        holder.kill()
        holder.wait(timeout=5)
        os.close(master)
        os.close(slave)
    assert port_diag.open_problem(port) is None or "no such port" in str(port_diag.open_problem(port))


def test_a_host_link_is_recognised_by_its_answer() -> None:
    # A stand-in for a posguard host link: every line in, one JSON error line out (hostlink.py's rule).
    master, slave = os.openpty()
    port = os.ttyname(slave)
    stop = threading.Event()

    def host_link() -> None:
        buf = b""
        while not stop.is_set():
            try:
                buf += os.read(master, 256)
            except OSError:
                return
            while b"\n" in buf:
                _, _, buf = buf.partition(b"\n")
                os.write(master, b'{"ok": false, "error": "BAD_REQUEST"}\n')

    t = threading.Thread(target=host_link, daemon=True)
    t.start()
    try:
        msg = port_diag.explain_silence(port, 20)
        assert "host link" in msg and "not as a REPL" in msg, msg
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
    quiet_master, quiet_slave = os.openpty()
    try:
        msg = port_diag.explain_silence(os.ttyname(quiet_slave), 20)
        assert "no answer from a MicroPython REPL within 20 s" in msg, msg
    finally:
        os.close(quiet_slave)
        os.close(quiet_master)


def _deploy(port: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posguard_tools.cli", "deploy", "--port", port, "--board", "pos-2s", "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_names_the_repl_when_pointed_at_the_host_link(tmp_path: Path) -> None:
    # The silent 20 s wait of issue 13, item 16: now a short wait and the port to use instead.
    vb = start_vboard(tmp_path, with_board=False)
    try:
        r = _deploy(vb.host)
        # A registered virtual board's HOST pty is known before mpremote is even started.
        assert port_diag.open_problem(vb.host) is not None
    finally:
        stop_vboard(vb)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "HOST link" in r.stderr and f"use the REPL port, {vb.port}" in r.stderr, r.stderr
    assert port_diag.virtual_board_of(vb.host) is None  # a board that is gone is not named


def test_deploy_to_a_missing_port_says_missing() -> None:
    r = _deploy("/dev/ttyPOSGUARD9")
    assert r.returncode == 1 and "no such port" in r.stderr and "may be in use" not in r.stderr, r.stderr
