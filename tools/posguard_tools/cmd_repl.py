"""`posguard repl`: the board's REPL through mpremote (`make repl`), `--port vboard` included.

`mpremote connect PORT repl` itself, with the port resolved first: `vboard` is the pty of the virtual
board running for out/vboard.json (vboard_state.resolve_port, as deploy and journal do), which changes at
every start. The mpremote process replaces this one (exec), so the terminal, Ctrl-] and the exit code
are mpremote's own."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from posguard_tools import paths, vboard_state

HELP = "open a board's REPL (mpremote connect PORT repl); --port vboard: the running virtual board"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", required=True, help="the board's serial port (e.g. /dev/ttyUSB0; `vboard`: the running virtual board)"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=vboard_state.STATE_FILE,
        help="with --port vboard: the virtual board's state file (default out/vboard.json, as vboard --state)",
    )


def command(port: str, state: Path = vboard_state.STATE_FILE) -> list[str]:
    """The mpremote command line for `port` (NotRunning when it is `vboard` and none runs)."""
    return [paths.venv_bin("mpremote"), "connect", vboard_state.resolve_port(port, state), "repl"]


def run(args: argparse.Namespace) -> int:
    try:
        argv = command(args.port, args.state)
    except vboard_state.NotRunning as e:
        print(f"repl: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError as e:  # no mpremote: .venv not built
        print(f"repl: {e}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        print(f"repl: cannot run {argv[0]}: {e}", file=sys.stderr)
    return 2
