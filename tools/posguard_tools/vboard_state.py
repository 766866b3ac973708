"""Where a running virtual board can be found, what its printer printed, and what a stop says.

`posguard vboard` writes its ports to a state file (default out/vboard.json) at start, and the same file
says "stopped" with the stop summary at exit, so `posguard vboard status|stop|paper|COMMAND` find the
board without the user copying a control port that changes at every start. A file whose board is gone
(killed, machine rebooted) is reported as such, never waited on.

The paper: the VM appends every printed line to RUN/paper.txt (host_tests/simhw/sim_vboard_boot.py,
save_paper: at every reset, at the `printed` control command, at exit), one MicroPython repr() per line;
the paper is outside the chip, so it covers every VM of the run.
"""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path
from typing import Any

from posguard_tools import paths

STATE_FILE = paths.OUT / "vboard.json"
BOARDS_DIR = paths.OUT / "vboard"  # default board folders: out/vboard/BOARD/{fs/, flash-*.bin}
PAPER_FILE = "paper.txt"
PAPER_PNG = paths.OUT / "vboard-paper.png"


class NotRunning(RuntimeError):
    """No virtual board answers for this state file; the message says why and what to do."""


def display(path: Path) -> str:
    """A path as the user should read it: relative to the checkout when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_vboard_process(pid: int) -> bool:
    """pid is alive and (where /proc tells) a `posguard vboard`, not an unrelated process that reused it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # not ours: a board this user started is always signalable
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the live pid
    return b"vboard" in cmdline


def running_state(path: Path) -> dict[str, Any]:
    """The state of the board running for this file, or NotRunning naming what is wrong."""
    state = read_state(path)
    start_hint = "start one with `make vboard` (or `posguard vboard --board NAME`)"
    if state is None:
        raise NotRunning(f"no virtual board is running: {display(path)} does not exist or is unreadable; {start_hint}")
    pid = int(state.get("pid") or 0)
    if not state.get("running"):
        when = state.get("stopped_at", "?")
        raise NotRunning(f"no virtual board is running: the last one (pid {pid}) stopped at {when}; {start_hint}")
    if not _is_vboard_process(pid):
        raise NotRunning(
            f"no virtual board is running: {display(path)} names pid {pid} (started {state.get('started_at', '?')}), "
            f"which is gone (killed, or the machine restarted): the file is stale; {start_hint}"
        )
    return state


def wait_stopped(path: Path, pid: int, timeout: float) -> dict[str, Any] | None:
    """After a SIGTERM: the state the board wrote as it stopped, or None if it did not stop in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(path)
        if state is not None and not state.get("running") and state.get("pid") == pid:
            return state
        if not _is_vboard_process(pid):
            return read_state(path)
        time.sleep(0.05)
    return None


def read_paper(run_dir: Path) -> list[tuple[Any, ...]]:
    """The printer records in RUN/paper.txt (MicroPython reprs of tuples of str, int, bool and bytes)."""
    try:
        lines = (run_dir / PAPER_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            rec = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            continue  # a line cut by a killed VM
        if isinstance(rec, tuple) and rec:
            out.append(rec)
    return out


def count_receipts(records: list[tuple[Any, ...]]) -> dict[str, int] | None:
    """Complete receipts on the paper by kind (original, duplicate, void), as `make sim` counts them."""
    if not records:
        return {}
    try:
        paths.use_simulated_hardware()
        import sim_day
    except Exception:  # the simulator's counter is optional for a summary line
        return None
    counts: dict[str, int] = {}
    for _sid, kind, complete in sim_day.parse_receipts(records):
        if complete:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def receipts_line(records: list[tuple[Any, ...]]) -> str:
    counts = count_receipts(records)
    if counts is None:
        return f"printer lines printed: {len(records)}"
    names = (("original", "original"), ("duplicate", "reprinted copy"), ("void", "void slip"))
    parts = [f"{counts[k]} {name}{'s' if counts[k] > 1 else ''}" for k, name in names if counts.get(k)]
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"receipts printed: {sum(counts.values())}{detail}, {len(records)} printer lines"


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def paper_dots(fs_dir: Path) -> tuple[int, str]:
    """(dots per line, encoding) of the printer in the board's board.json (58 mm: 384 dots, else 576)."""
    from posguard_tools import render  # Pillow: only when the paper is drawn

    try:
        printer = json.loads((fs_dir / "board.json").read_text())["printer"]
        return render.dots_for(printer["paper_mm"]), str(printer["encoding"])
    except (OSError, ValueError, KeyError, TypeError):
        return render.dots_for(58), "gb18030"


VBOARD_PORT = "vboard"  # `--port vboard`: the REPL of the virtual board running for out/vboard.json


def resolve_port(port: str, state_file: Path = STATE_FILE) -> str:
    """A tool's --port: `vboard` is the running virtual board's REPL pty (it changes at every start);
    anything else is returned as given. NotRunning when no virtual board runs."""
    if port != VBOARD_PORT:
        return port
    return str(running_state(state_file)["repl"])
