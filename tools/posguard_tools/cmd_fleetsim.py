"""The `posguard sim --fleet N` path (cmd_sim hands over here): run the fleet, print and write the report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from posguard_tools import fleet_sim, paths

HELP = "N simulated terminals against one MQTT broker, watched by the fleet view (same as: sim --fleet N)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", type=int, default=20, metavar="N", help="number of terminals (1-64)")
    parser.add_argument("--board", default=paths.DEFAULT_BOARD, help="board profile (default: %(default)s)")
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="out")


def run_from_sim(args: argparse.Namespace) -> int:
    if not 1 <= args.fleet <= 64:
        print("--fleet must be 1-64", file=sys.stderr)
        return 2
    out = Path(args.out)
    rep = fleet_sim.run_fleet(args.fleet, args.hours, args.board, args.seed, html=out / "fleet.html")
    fleet_sim.print_report(rep)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(json.dumps(rep, indent=1))
    print(f"wrote {out / 'fleet.json'} and {out / 'fleet.html'}")
    bad = [r["terminal"] for r in rep["terminals"] if r["lost"] or r["brownouts_printing"]]
    for t in bad:
        print(f"FAILED: {t} lost a sale or browned out while printing")
    return 1 if bad else 0


def run(args: argparse.Namespace) -> int:
    return run_from_sim(args)
