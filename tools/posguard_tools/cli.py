"""`posguard`: the host command. Subcommands are the modules `posguard_tools/cmd_<name>.py`, each with
HELP (one line), add_arguments(parser) and run(args) -> exit code, so a part adds a command by adding
a file."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

import posguard_tools


def commands() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(posguard_tools.__path__):
        if info.name.startswith("cmd_"):
            found[info.name[4:]] = importlib.import_module(f"posguard_tools.{info.name}")
    return dict(sorted(found.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posguard",
        description="posguard host tools: simulator, replay, receipts, journal, deploy, virtual board, bench",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in commands().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return int(run(args))
    except KeyboardInterrupt:
        print(f"posguard {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
