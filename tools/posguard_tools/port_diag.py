"""Why a serial port does not answer as a MicroPython REPL, in words a person can act on (issue 13, item 16).

mpremote says "failed to access PORT (it may be in use by another program)" whether the port does not
exist, belongs to a group the user is not in, or is locked by another program; and it waits forever on
a port where something answers that is not a REPL (the terminal's host link: a posguard board answers
every line there with a JSON protocol error). `posguard deploy` and `journal dump --port` ask here.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import json
import os
import select
import tempfile
import time
from pathlib import Path

# Running virtual boards leave their ports here (vboard.register), so a tool pointed at a board's HOST
# pty can name the REPL pty instead.
REGISTRY = Path(tempfile.gettempdir()) / "posguard-vboards"


def _holders(port: str) -> list[str]:
    """'pid (command)' of the processes that have the device open (Linux /proc; empty elsewhere)."""
    try:
        target = os.stat(port).st_rdev
    except OSError:
        return []
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                try:
                    st = os.stat(fd)
                except OSError:
                    continue
                if st.st_rdev == target and (st.st_mode & 0o170000) == 0o020000:
                    cmd = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                    found.append(f"{entry.name} ({os.path.basename(cmd) or '?'})")
                    break
        except OSError:
            continue
    return found[:5]


def open_problem(port: str) -> str | None:
    """What stops a program from opening `port` as mpremote does (read-write, exclusive lock), or None."""
    if port.startswith(("rfc2217:", "socket:")) or "://" in port:
        return None
    if not os.path.exists(port):
        parent = os.path.dirname(port) or "."
        like = (
            sorted(p for p in os.listdir(parent) if p.startswith(("ttyUSB", "ttyACM", "cu.")))[:6]
            if (os.path.isdir(parent) and parent == "/dev")
            else []
        )
        seen = f" (serial ports here: {', '.join('/dev/' + p for p in like)})" if like else ""
        return (
            f"{port}: no such port{seen}. Check the cable and the name; `mpremote devs` lists the connected "
            "boards; a virtual board prints its REPL port at start"
        )
    vb = virtual_board_of(port)
    if vb is not None and vb["role"] == "host":
        return _host_pty_message(port, vb)
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.EACCES:
            st = os.stat(port)
            try:
                group = grp.getgrgid(st.st_gid).gr_name
            except KeyError:
                group = str(st.st_gid)
            return (
                f"{port}: permission denied (the port belongs to group '{group}'): add yourself to it "
                f"(sudo usermod -aG {group} $USER, then log in again)"
            )
        if e.errno == errno.EBUSY:
            return f"{port}: busy (the kernel holds it exclusively); {_in_use_hint(port)}"
        return f"{port}: cannot be opened: {e.strerror}"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return f"{port}: in use by another program, which holds it locked; {_in_use_hint(port)}"
    finally:
        os.close(fd)
    return None


def _in_use_hint(port: str) -> str:
    who = _holders(port)
    held = f"open in: {', '.join(who)}" if who else "close the other serial terminal"
    return f"{held} (another mpremote, screen, minicom, an IDE's serial monitor) and try again"


def register(info: dict[str, str | int | None]) -> Path | None:
    """A running virtual board records its ports (removed by unregister at exit)."""
    try:
        REGISTRY.mkdir(exist_ok=True)
        path = REGISTRY / f"{os.getpid()}.json"
        path.write_text(json.dumps(info))
        return path
    except OSError:
        return None


def unregister(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except OSError:
            pass


def virtual_board_of(port: str) -> dict[str, str] | None:
    """The registered running virtual board one of whose ports is `port`, with that port's role."""
    try:
        entries = list(REGISTRY.glob("*.json"))
    except OSError:
        return None
    real = os.path.realpath(port)
    for entry in entries:
        try:
            info = json.loads(entry.read_text())
            os.kill(int(info["pid"]), 0)  # a stale entry of a board that is gone does not count
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for role in ("repl", "host"):
            if info.get(role) and os.path.realpath(str(info[role])) == real:
                return {"role": role, "repl": str(info.get("repl")), "control": str(info.get("control"))}
    return None


def answers_host_link(port: str, wait_s: float = 1.5) -> bool:
    """Does a posguard host link answer on `port`? One status request; a JSON line back says yes."""
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        try:
            import termios
            import tty

            tty.setraw(fd)
            attrs = termios.tcgetattr(fd)
            attrs[4] = attrs[5] = termios.B115200
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except (OSError, ImportError):
            pass
        try:
            os.write(fd, b'\n{"op": "status"}\n')
        except OSError:
            return False
        seen = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
                for line in seen.split(b"\n"):
                    line = line.strip()
                    if line.startswith(b"{") and line.endswith(b"}"):
                        try:
                            json.loads(line)
                            return True
                        except ValueError:
                            continue
        return False
    finally:
        os.close(fd)


def _host_pty_message(port: str, vb: dict[str, str]) -> str:
    return (
        f"{port} is the virtual board's HOST link (the cashier app's end of its host UART), not its REPL: "
        f"use the REPL port, {vb['repl']}"
    )


def explain_silence(port: str, waited_s: float) -> str:
    """The message for a port where mpremote got no REPL within waited_s seconds."""
    vb = virtual_board_of(port)
    if vb is not None and vb["role"] == "host":
        return _host_pty_message(port, vb)
    if answers_host_link(port):
        return (
            f"{port} answers as a posguard terminal's host link (the cashier-app protocol), not as a REPL: "
            "deploy through the board's USB-serial REPL port instead (on the S3 profile, the USB port of the "
            "module; `mpremote devs` lists them)"
        )
    return (
        f"{port}: no answer from a MicroPython REPL within {waited_s:.0f} s. Is it the board's REPL port, and "
        "does the board run MicroPython (flash it: docs/device.md, 'First time on a new board')? A board "
        "stuck in the ROM bootloader (GPIO0 held at reset) answers nothing either: release it and reset"
    )


def explain_failure(port: str, mpremote_output: str) -> str | None:
    """A better message for mpremote's 'failed to access' (missing, permission, locked), or None."""
    if "failed to access" not in mpremote_output and "could not open port" not in mpremote_output:
        return None
    problem = open_problem(port)
    if problem is not None:
        return problem
    return None
