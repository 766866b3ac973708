"""`posguard vboard`: a virtual board on the MicroPython unix port that mpremote connects to."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from posguard_tools import deploy_heapcheck, paths, port_diag, vboard_state
from posguard_tools.vboard import CONTROL_HELP, ControlAddressError, VirtualBoard, send_control, write_info
from posguard_tools.vboard_state import display

HELP = "run a virtual board (unix port + simulated hardware) whose REPL mpremote can connect to"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="the board's folder, kept across stops like a board's flash across power-offs: its filesystem "
        "(fs/) and journal flash (flash-*.bin); default out/vboard/BOARD (out/vboard/blank without --board)",
    )
    parser.add_argument("--fresh", action="store_true", help="wipe the board's folder (--dir) first: a blank flash")
    parser.add_argument(
        "--fs",
        type=Path,
        default=None,
        metavar="DIR",
        help="use DIR as the board's filesystem instead of --dir (its flash images then stay in the run folder)",
    )
    parser.add_argument("--board", default=None, help="write boards/BOARD.json as board.json before start")
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="FIFOs, world state, paper (default: temporary, removed at stop)"
    )
    parser.add_argument("--keep-run", action="store_true", help="keep the temporary run folder at stop")
    parser.add_argument(
        "--state",
        type=Path,
        default=vboard_state.STATE_FILE,
        help="where the running board's ports are written and found (default out/vboard.json)",
    )
    parser.add_argument(
        "--control-port", type=int, default=0, help="loopback TCP port of the control channel (0: any free)"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second")
    parser.add_argument(
        "--from-source",
        "--frozen",
        dest="from_source",
        action="store_true",
        help="a build with the firmware frozen in: posguard comes from firmware/, its code in flash (not the heap); "
        "deploy to it with --frozen",
    )
    parser.add_argument(
        "--chip",
        choices=("esp32", "esp32s3", "esp32s3+psram"),
        default=None,
        help="the chip, hence the port's heap (default: the --board profile's mcu and psram_kb, else esp32)",
    )
    parser.add_argument("--no-boot", action="store_true", help="do not run boot.py/main.py at the first start")
    parser.add_argument("--info", type=Path, default=None, help="also write the paths as JSON to this file")
    parser.add_argument("--save", type=Path, default=None, help="at exit, save filesystem and flash under DIR")
    parser.add_argument(
        "--out",
        type=Path,
        default=vboard_state.PAPER_PNG,
        help="with 'paper': the PNG to write (default out/vboard-paper.png)",
    )
    parser.add_argument(
        "--ctl",
        metavar="HOST:PORT",
        default=None,
        help="send COMMANDs to the control channel at HOST:PORT (default: the running board of --state)",
    )
    parser.add_argument(
        "commands",
        nargs="*",
        metavar="COMMAND",
        help="to the running board instead of starting one: 'status', 'stop', 'paper' (its printout as PNG), "
        "or control lines, e.g. 'power off' 'paper out'",
    )


def _control(addr: str, commands: list[str]) -> int:
    if not commands:
        print(CONTROL_HELP)
        return 2
    try:
        replies = send_control(addr, commands)
    except ControlAddressError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ConnectionRefusedError:
        print(
            f"error: no virtual board control channel at {addr}: nothing listens there (connection refused). "
            "Is the virtual board running? Use the CONTROL address it printed at start (make vboard).",
            file=sys.stderr,
        )
        return 1
    except socket.gaierror as e:
        print(
            f"error: --ctl {addr}: unknown host ({e.strerror}); the control channel listens on 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    except TimeoutError:
        print(f"error: no virtual board control channel at {addr}: no reply (timed out)", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: no virtual board control channel at {addr}: {e}", file=sys.stderr)
        return 1
    bad = 0
    for cmd, reply in zip(commands, replies, strict=True):
        print(f"{cmd}: {reply}")
        bad += not reply.startswith("ok")
    return 1 if bad else 0


def _print_paths(board: VirtualBoard, state_file: Path) -> None:
    info = board.info()
    port = info["repl"]
    print(f"REPL     {port}        mpremote connect {port} repl", flush=True)
    print(f"HOST     {info['host']}        the POS host link: raw bytes to and from the board's host UART")
    ctl = "posguard vboard status | 'power off' | paper | stop"
    print(f"CONTROL  {info['control']}    {ctl}  (the port is in {display(state_file)})")
    print(f"FS       {display(Path(str(info['fs'])))}")
    print(f"RUN      {info['run']}")
    print("stop with Ctrl-C, SIGTERM or `posguard vboard stop`", flush=True)


def _to_running(args: argparse.Namespace) -> int:
    """`posguard vboard status|stop|paper|COMMAND...`: act on the board the state file names."""
    words = args.commands
    if words[0] in ("stop", "paper") and len(words) > 1:
        print(f"error: '{words[0]}' takes no other COMMAND", file=sys.stderr)
        return 2
    try:
        state = vboard_state.running_state(args.state)
    except vboard_state.NotRunning as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if words == ["stop"]:
        return _stop(args.state, state)
    if words == ["paper"]:
        return _paper(state, args.out)
    if words == ["status"]:
        what = state.get("board") or "no profile"
        print(f"virtual board pid {state['pid']} ({what}), up since {state['started_at']}")
        for key in ("repl", "host", "control", "fs", "run"):
            print(f"{key.upper():8} {state[key]}")
    return _control(str(state["control"]), words)


def _stop(state_file: Path, state: dict[str, Any]) -> int:
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    stopped = vboard_state.wait_stopped(state_file, pid, timeout=30.0)
    if stopped is None:
        print(f"error: the virtual board (pid {pid}) did not stop within 30 s; kill it: kill {pid}", file=sys.stderr)
        return 1
    print("\n".join(stopped.get("summary") or [f"virtual board pid {pid} stopped"]))
    return 0


def _paper(state: dict[str, Any], out: Path) -> int:
    """What the board's printer printed this run, drawn as the paper looks (render.py)."""
    run_dir = Path(state["run"])
    reply = _ask(str(state["control"]), "printed")
    note = ""
    if not reply.startswith("ok"):
        # At the REPL (deploy, service mode) no world reads commands: the paper up to its last reset is on file.
        note = f" (the board did not flush its printer: {reply}; this is the paper up to its last reset)"
    records = vboard_state.read_paper(run_dir)
    if not records:
        print(f"error: the virtual printer has printed nothing yet{note}", file=sys.stderr)
        return 1
    from posguard_tools import render

    dots, encoding = vboard_state.paper_dots(Path(state["fs"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    font_msg = render.render(records, dots, encoding, out)
    print(f"wrote {display(out)}: {vboard_state.receipts_line(records)}{note}")
    if "boxes" in font_msg:
        print(f"note: {font_msg}")
    return 0


def _ask(addr: str, command: str) -> str:
    try:
        return send_control(addr, [command], timeout=10.0)[0]
    except (OSError, ControlAddressError) as e:
        return f"error no answer from the control channel at {addr}: {e}"


def _board_folder(args: argparse.Namespace) -> tuple[Path | None, Path] | str:
    """(the board's folder or None with --fs, its filesystem), or an error message."""
    if args.fs is not None:
        if args.fresh or args.dir is not None:
            return "--fs names the filesystem yourself: it goes without --dir and --fresh (empty it yourself)"
        return None, args.fs
    folder: Path = args.dir or vboard_state.BOARDS_DIR / (args.board or "blank")
    if args.fresh and folder.exists():
        shutil.rmtree(folder)
        print(f"--fresh: wiped {display(folder)} (filesystem and journal flash): the board starts blank", flush=True)
    (folder / "fs").mkdir(parents=True, exist_ok=True)
    return folder, folder / "fs"


def run(args: argparse.Namespace) -> int:
    if args.ctl is not None:
        return _control(args.ctl, args.commands)
    if args.commands:
        return _to_running(args)
    try:
        other = vboard_state.running_state(args.state)
        print(
            f"error: a virtual board already runs for {display(args.state)} (pid {other['pid']}, REPL "
            f"{other['repl']}): stop it with `posguard vboard stop`, or give this one its own --state FILE",
            file=sys.stderr,
        )
        return 1
    except vboard_state.NotRunning:
        pass
    if args.speed <= 0:
        print("error: --speed must be positive", file=sys.stderr)
        return 2
    if args.board is not None:
        try:
            profile = paths.board_profile(args.board)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    where = _board_folder(args)
    if isinstance(where, str):
        print(f"error: {where}", file=sys.stderr)
        return 2
    folder, fs_dir = where
    fs_dir.mkdir(parents=True, exist_ok=True)
    if args.board is not None:
        shutil.copyfile(profile, fs_dir / "board.json")
    chip = args.chip
    if chip is None and args.board is not None:
        chip = deploy_heapcheck.chip_of_profile(json.loads((fs_dir / "board.json").read_text()))
    if args.board is not None and not args.from_source and args.chip is None:
        # The board as shipped (docs/device.md, 'Shipped profiles'): a profile whose chip cannot hold the
        # package as .mpy runs a build with it frozen in.
        try:
            if deploy_heapcheck.plan_for(args.board).frozen:
                args.from_source = True
                print(
                    f"{args.board} runs a build with posguard frozen in (its heap cannot hold the .mpy): "
                    f"the virtual board does too; deploy to it with --frozen",
                    flush=True,
                )
        except (RuntimeError, OSError) as e:
            print(f"note: could not size the firmware for {args.board}: {e}", file=sys.stderr)
    keep_run = args.run_dir is not None or args.keep_run
    run_dir: Path = args.run_dir or Path(tempfile.mkdtemp(prefix="posguard-vboard-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    if folder is not None:
        for img in folder.glob("flash-*.bin"):  # the journal flash of the last run of this board
            shutil.copy2(img, run_dir / img.name)
    board = VirtualBoard(
        fs_dir,
        run_dir,
        chip=chip,
        control_port=args.control_port,
        firmware_from_source=args.from_source,
        boot_firmware=not args.no_boot,
        speed=args.speed,
    )
    try:
        board.start()
    except OSError as e:
        print(f"error: cannot start the virtual board: {e}", file=sys.stderr)
        board.close()
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    state: dict[str, Any] = {
        **board.info(),
        "running": True,
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "board": args.board,
        "chip": chip or "esp32",
        "frozen": bool(args.from_source),
        "folder": None if folder is None else str(folder),
    }
    vboard_state.write_state(args.state, state)
    _print_paths(board, args.state)
    registered = port_diag.register(board.info())  # so a tool pointed at the HOST pty can name the REPL
    if args.info is not None:
        write_info(board, args.info)
    try:
        board.serve()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends a stop that hangs
        board.ask_world("printed")  # the printer's last lines onto RUN/paper.txt before the VM goes
        port_diag.unregister(registered)
        board.close()
        summary = _stop_summary(args, board, state, folder, run_dir, keep_run, time.monotonic() - started)
        vboard_state.write_state(
            args.state,
            {**state, "running": False, "stopped_at": time.strftime("%Y-%m-%d %H:%M:%S"), "summary": summary},
        )
    print("\n".join(summary), flush=True)
    return 0


def _stop_summary(
    args: argparse.Namespace,
    board: VirtualBoard,
    state: dict[str, Any],
    folder: Path | None,
    run_dir: Path,
    keep_run: bool,
    seconds: float,
) -> list[str]:
    """Persist what a board keeps over a power-off, clean up the run folder, and say what happened."""
    what = state["board"] or "no profile"
    build = "posguard frozen in" if state["frozen"] else "firmware from its filesystem"
    lines = [f"virtual board stopped after {vboard_state.duration(seconds)} ({what}, {state['chip']}, {build})"]
    world = vboard_state.read_state(run_dir / "world.json") or {}
    boots = f"firmware boots {world['boots']}, " if "boots" in world else ""
    lines.append(f"  {boots}VM starts {board.vm_starts} ({board.soft_resets} soft resets)")
    lines.append("  " + vboard_state.receipts_line(vboard_state.read_paper(run_dir)))
    if args.save is not None:
        board.save(args.save)
        lines.append(f"  saved the filesystem and flash under {args.save}")
    images = sorted(run_dir.glob("flash-*.bin"))
    if folder is not None:
        for img in images:
            shutil.copy2(img, folder / img.name)
        flash = f" and journal flash ({', '.join(i.name for i in images)})" if images else ""
        default = args.dir is None and args.board is not None
        again = f"make vboard BOARD={args.board}" if default else f"posguard vboard --dir {display(folder)}"
        lines.append(f"  filesystem{flash} kept in {display(folder)}: `{again}` starts from it, --fresh wipes it")
    else:
        lines.append(f"  filesystem kept in {args.fs} (--fs)")
    if keep_run:
        lines.append(f"  run folder kept: {run_dir} (world.json, paper.txt, flash images)")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        lost = " with the journal flash (it lives there with --fs)" if folder is None and images else ""
        lines.append(f"  run folder removed: {run_dir}{lost}")
    return lines
