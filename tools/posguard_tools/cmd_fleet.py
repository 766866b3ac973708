"""`posguard fleet`: the terminals reporting to a broker, most urgent first (docs/fleet.md)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from posguard_tools.fleet import COLUMNS, Fleet, Row, cells, to_html
from posguard_tools.mqtt_wire import Client

HELP = "live table of the terminals on an MQTT broker, sorted by urgency; --html writes a static page"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", required=True, help="mqtt://host[:port]")
    parser.add_argument("--html", type=Path, default=None, help="also write the table as a static page")
    parser.add_argument("--close-in", type=float, default=None, metavar="H",
                        help="hours until closing: flags the terminals that die before then")
    parser.add_argument("--interval", type=float, default=60.0, help="the terminals' health interval (s)")
    parser.add_argument("--for", dest="duration", type=float, default=None, metavar="S",
                        help="listen this long, print the table once and exit (default: live until Ctrl-C)")


def table(rows: list[Row]) -> Table:
    t = Table(title="posguard fleet (most urgent first)")
    for c in COLUMNS:
        t.add_column(c)
    for r in rows:
        style = "bold red" if (r.offline or r.dies_before_close or r.replace) else ("yellow" if r.reversals or r.owed
                                                                                    else "")
        t.add_row(*cells(r), style=style)
    return t


def run(args: argparse.Namespace) -> int:
    fleet = Fleet(close_in_h=args.close_in, interval_s=args.interval)
    client = Client.from_url(args.broker, "posguard-fleet-view")
    client.subscribe("posguard/+/#")
    console = Console()
    console.print(f"listening on {args.broker}", highlight=False)
    end = None if args.duration is None else time.monotonic() + args.duration

    def write_html() -> None:
        if args.html is not None:
            args.html.parent.mkdir(parents=True, exist_ok=True)
            args.html.write_text(to_html(fleet.rows(time.monotonic())))

    try:
        if end is not None:
            while time.monotonic() < end:
                m = client.receive(min(0.5, max(0.01, end - time.monotonic())))
                if m is not None:
                    fleet.feed(m)
            console.print(table(fleet.rows(time.monotonic())))
            write_html()
            return 0
        with Live(table(fleet.rows()), console=console, refresh_per_second=2) as live:
            last = 0.0
            while True:
                m = client.receive(0.5)
                if m is not None:
                    fleet.feed(m)
                if time.monotonic() - last > 1.0:
                    live.update(table(fleet.rows(time.monotonic())))
                    write_html()
                    last = time.monotonic()
    finally:
        client.close()
