"""`posguard sim`: a trading day on a virtual board, in virtual time, through the firmware's real host
link and simulated hardware; prints the day's table and writes out/report.json, out/battery.png and
sample receipt PNGs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posguard_tools import paths, report, simday

HELP = "simulate a trading day on a virtual board (sales, payments, paper out, power cuts, battery) and report"
# The default day tells the battery story: it opens on a part-charged pack that runs out before closing.
DEFAULT_SOC_PCT = 40.0
PACKS = ("fresh", "aged90", "aged85", "worn70")  # host_tests/simhw/sim_battery.py PACKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", default=paths.DEFAULT_BOARD,
                        help="board profile (boards/NAME.json; default: %(default)s)")
    parser.add_argument("--hours", type=float, default=12.0, help="length of the trading day (default 12)")
    parser.add_argument("--seed", type=int, default=1, help="seed for customers, payments and cuts")
    parser.add_argument("--cuts", type=int, default=3, help="random power cuts (pack pulled, bounce)")
    parser.add_argument("--pack", default=None, metavar="PACK",
                        help=f"the pack, a preset of the reference cell family ({'|'.join(PACKS)}; default fresh) "
                             "or CAP,KIN,CONTACT_MOHM such as 0.8,0.5,60")
    parser.add_argument("--aged", action="store_true", help="same as --pack aged85")
    parser.add_argument("--temp", type=float, default=25.0, help="ambient temperature in C, -20..50 (default 25)")
    parser.add_argument("--soc", type=float, default=DEFAULT_SOC_PCT,
                        help=f"charge at opening in %% of the full pack (default {DEFAULT_SOC_PCT:g}: runs out "
                             "before closing)")
    parser.add_argument("--no-charger", action="store_true",
                        help="the merchant never plugs the charger (default: plugged after the first refusal)")
    parser.add_argument("--policy", choices=simday.POLICIES, default="posguard",
                        help="naive: also run the same day with the naive power policy, side by side")
    parser.add_argument("--runtime", choices=simday.RUNTIMES, default="cpython",
                        help="micropython: run the firmware (and the world) inside the unix port")
    parser.add_argument("--out", default=str(paths.OUT), help="output folder (default out/)")
    parser.add_argument("--fleet", type=int, default=0, metavar="N",
                        help="N terminals (fresh, aged, worn, cold packs) against one MQTT broker (docs/fleet.md)")


def run(args: argparse.Namespace) -> int:
    if args.hours <= 0 or args.hours > 48:
        print("--hours must be between 0 and 48", file=sys.stderr)
        return 2
    if args.cuts < 0 or args.cuts > 100:
        print("--cuts must be between 0 and 100", file=sys.stderr)
        return 2
    if args.fleet:
        from posguard_tools import cmd_fleetsim

        return cmd_fleetsim.run_from_sim(args)
    if not -20.0 <= args.temp <= 50.0:
        print("--temp must be between -20 and 50 C (the cell family is fitted on -10..37 C)", file=sys.stderr)
        return 2
    if not 1.0 <= args.soc <= 100.0:
        print("--soc must be between 1 and 100 (% of the full pack)", file=sys.stderr)
        return 2
    if args.aged and args.pack not in (None, "aged85"):
        print("--aged is --pack aged85: give one or the other", file=sys.stderr)
        return 2
    pack = "aged85" if args.aged else (args.pack or "fresh")
    try:
        simday.check_pack(pack)
    except ValueError as e:
        print(f"--pack: {e}", file=sys.stderr)
        return 2
    try:
        profile = simday.load_profile(args.board)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    policies = ["posguard", "naive"] if args.policy == "naive" else ["posguard"]
    reports = []
    for pol in policies:
        with simday.ProgressBar(f"{pol:8s} {args.runtime}") as bar:
            rep = simday.run_day(args.board, args.hours, args.seed, args.cuts, False, args.temp, pol,
                                 args.runtime, bar, soc=args.soc / 100.0, pack=pack, charger=not args.no_charger)
        reports.append(rep)
    print(report.table(reports))
    for p in report.write_outputs(reports, Path(args.out), profile):
        print(f"wrote {p}")
    bad = report.verdict(reports[0])
    for b in bad:
        print(f"FAILED: {b}")
    if reports[0].get("crash_log"):
        print("crash log: " + "; ".join(reports[0]["crash_log"][-3:]))
    return 1 if bad else 0
