"""`posguard receipt`: encode a sale with the firmware's own code, print it on the simulated printer of a
board profile, write the bytes on the wire and (optionally) a PNG of the paper. Sale format: docs/printer.md."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from posguard_tools import paths

HELP = "encode a sale (JSON) as ESC/POS with the firmware's code and render what the printer prints"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", default=paths.DEFAULT_BOARD,
                        help="board profile name (boards/NAME.json; default: %(default)s)")
    parser.add_argument("--sale", required=True, type=Path, help="sale JSON (format: docs/printer.md)")
    parser.add_argument(
        "--copy", default="original", choices=["original", "duplicate", "void", "reversal"], help="which copy"
    )
    parser.add_argument("--out", required=True, type=Path, help="write the bytes sent to the printer here")
    parser.add_argument("--png", type=Path, help="also draw the printed paper as a PNG")


def _load_sale(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a sale must be a JSON object")
    return data


def run(args: argparse.Namespace) -> int:
    from posguard_tools import render
    from posguard_tools.printer_world import PrinterWorld

    try:
        sale = _load_sale(args.sale)
        world = PrinterWorld(args.board)
    except (ValueError, FileNotFoundError) as e:
        print(f"posguard receipt: {e}", file=sys.stderr)
        return 2
    from posguard import receipt

    try:
        wire = bytearray()
        drv = world.driver()
        try:
            ops = receipt.layout(sale, world.pcfg["columns"], drv.enc.char_cols, args.copy)
        except ValueError as e:
            print(f"posguard receipt: bad sale in {args.sale}: {e}", file=sys.stderr)
            return 2
        pr = world.printer
        original_receive = pr.receive

        def tap(data: bytes, t_us: int) -> None:
            wire.extend(data)
            original_receive(data, t_us)

        async def job() -> dict[str, Any]:
            await drv.start()
            pr.receive = tap
            res: dict[str, Any] = await drv.print_job(ops)
            return res

        t0 = world.clock.now_us()
        res = world.run(job())
        seconds = (world.clock.now_us() - t0) / 1e6
        world.clock.advance_ms(5000)
        if res["result"] != "printed":
            print(f"posguard receipt: job failed at line {res['line']}: {res['reason']}", file=sys.stderr)
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(bytes(wire))
        print(
            f"{args.board}: {res['lines']} lines, {len(wire)} bytes at {world.pcfg['baud']} baud "
            f"({world.pcfg['flow']}), printed in {seconds:.2f} s, dropped {pr.dropped} -> {args.out}"
        )
        if args.png:
            dots = render.dots_for(world.pcfg["paper_mm"])
            msg = render.render(list(pr.printed), dots, world.pcfg["encoding"], args.png)
            print(f"paper image -> {args.png} ({msg})")
        return 0
    finally:
        world.close()
