"""`posguard vboard`: a virtual board on the MicroPython unix port that mpremote connects to."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from types import FrameType

from posguard_tools import deploy_heapcheck, paths, port_diag
from posguard_tools.vboard import CONTROL_HELP, ControlAddressError, VirtualBoard, send_control, write_info

HELP = "run a virtual board (unix port + simulated hardware) whose REPL mpremote can connect to"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fs",
        type=Path,
        default=None,
        help="the board's filesystem directory (default: a fresh temporary one, removed at exit)",
    )
    parser.add_argument("--board", default=None, help="write boards/BOARD.json as board.json before start")
    parser.add_argument("--run-dir", type=Path, default=None, help="FIFOs and flash images (default: temporary)")
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
        "--ctl",
        metavar="HOST:PORT",
        default=None,
        help="do not start a board: send COMMANDs to the control channel of a running one",
    )
    parser.add_argument("commands", nargs="*", metavar="COMMAND", help="with --ctl: control lines, e.g. 'power off'")


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


def _print_paths(board: VirtualBoard) -> None:
    info = board.info()
    port = info["repl"]
    print(f"REPL     {port}        mpremote connect {port} repl", flush=True)
    print(f"HOST     {info['host']}        the POS host link: raw bytes to and from the board's host UART")
    print(f"CONTROL  {info['control']}    posguard vboard --ctl {info['control']} status 'power off' 'power on'")
    print(f"FS       {info['fs']}")
    print(f"RUN      {info['run']}")
    print("stop with Ctrl-C (or SIGTERM)", flush=True)


def run(args: argparse.Namespace) -> int:
    if args.ctl is not None:
        return _control(args.ctl, args.commands)
    if args.commands:
        print("error: COMMANDs go with --ctl HOST:PORT", file=sys.stderr)
        return 2
    temp_fs = args.fs is None
    fs_dir: Path = Path(tempfile.mkdtemp(prefix="posguard-vboard-fs-")) if temp_fs else args.fs
    if args.board is not None:
        try:
            profile = paths.board_profile(args.board)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        fs_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(profile, fs_dir / "board.json")
    if args.speed <= 0:
        print("error: --speed must be positive", file=sys.stderr)
        return 2
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
    board = VirtualBoard(
        fs_dir,
        args.run_dir,
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
    _print_paths(board)
    registered = port_diag.register(board.info())  # so a tool pointed at the HOST pty can name the REPL
    if args.info is not None:
        write_info(board, args.info)
    try:
        board.serve()
    except KeyboardInterrupt:
        pass
    finally:
        port_diag.unregister(registered)
        board.close()
        if args.save is not None:
            board.save(args.save)
            print(f"saved filesystem and flash under {args.save}")
        if temp_fs:
            shutil.rmtree(fs_dir, ignore_errors=True)
    print(json.dumps({"vm_starts": board.vm_starts, "soft_resets": board.soft_resets}))
    return 0
