"""`posguard deploy`: compile the firmware to .mpy and copy what changed to a board through mpremote."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posguard_tools import deploy, paths, vboard_state

HELP = "compile the firmware (.mpy), copy what changed to a board with mpremote, soft-reset it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", required=True, help="the board's serial port (e.g. /dev/ttyUSB0; `vboard`: the running virtual board)"
    )
    parser.add_argument("--board", default=paths.DEFAULT_BOARD, help="board profile in boards/ (default: %(default)s)")
    parser.add_argument(
        "--march",
        default=deploy.DEFAULT_MARCH,
        choices=sorted(deploy.MPY_ARCHES),
        help="mpy-cross target (default xtensawin: ESP32/S2/S3). Bytecode-only files load on any arch",
    )
    parser.add_argument(
        "--firmware",
        type=Path,
        default=paths.FIRMWARE,
        help="the firmware tree to deploy (default: this checkout's firmware/)",
    )
    parser.add_argument("--force", action="store_true", help="copy every file, whatever the manifest says")
    parser.add_argument("--dry-run", action="store_true", help="build, check and compare, copy nothing")
    parser.add_argument(
        "--frozen",
        action="store_true",
        help="the board runs a build with posguard frozen in (firmware/manifest.py): copy no .mpy, remove old ones",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=deploy.PROBE_TIMEOUT_S,
        help="seconds the device gets to answer the first contact (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        args.port = vboard_state.resolve_port(args.port)
    except vboard_state.NotRunning as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 1
    try:
        report = deploy.deploy(
            args.port,
            args.board,
            args.march,
            force=args.force,
            dry_run=args.dry_run,
            probe_timeout=args.timeout,
            frozen=args.frozen,
        )
    except FileNotFoundError as e:  # unknown board profile, or a missing tool
        print(f"deploy: {e}", file=sys.stderr)
        return 2
    except deploy.DeployError as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 1
    except deploy.DeployInterrupted as e:  # Ctrl-C: one line saying what the device holds now
        print(f"deploy: interrupted {e}", file=sys.stderr)
        return 130
    for line in report.lines():
        print(line)
    if args.dry_run:
        print("  dry run: nothing was copied")
    return 0
