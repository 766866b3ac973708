"""`posguard journal`: read a journal partition image offline.

    posguard journal dump --image journal.bin [--json]   sectors, records and sales in the image
    posguard journal verify journal.bin                  exit 0 if healthy, 1 with the problems listed
    posguard journal demo OUT.bin                        write an image from a simulated session

Get an image from a board with `esptool.py read_flash <offset> <size> journal.bin` (the journal
partition's offset and size from the partition table), or from the simulator (`NorFlash.image()`).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from posguard_tools import journal_format as jf
from posguard_tools import paths

HELP = "dump or verify a journal partition image (sales, records, sectors)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    d = sub.add_parser("dump", help="print sectors, records and sales of an image")
    d.add_argument("--image", required=True, help="raw journal partition image")
    d.add_argument("--json", action="store_true", help="sales as JSON instead of text")
    v = sub.add_parser("verify", help="check an image; exit status 1 if anything is wrong")
    v.add_argument("image", help="raw journal partition image")
    m = sub.add_parser("demo", help="write the image of a simulated session (some sales cut by power loss)")
    m.add_argument("out", help="file to write")
    m.add_argument("--sectors", type=int, default=16)


def _load(path: str) -> tuple[jf.Image, bytes] | None:
    try:
        data = Path(path).read_bytes()
        return jf.parse(data), data
    except OSError as e:
        print(f"cannot read {path}: {e.strerror}")
    except jf.ImageError as e:
        print(f"{path}: {e}")
    return None


def demo_image(sectors: int) -> bytes:
    """A session on the simulated flash: finished sales, then one cut in each unfinished state."""
    paths.use_simulated_hardware()
    sim_flash = importlib.import_module("sim_flash")
    sales = importlib.import_module("posguard.sales")
    journal = importlib.import_module("posguard.journal")
    flash = sim_flash.NorFlash(sectors * 4096)
    book = sales.SaleBook(journal.Journal(sim_flash.BlockDevice(flash)), keep_last=50)
    book.recover()
    for sid in range(1, 6):
        book.open_sale(sid, {"items": [["coffee", 1, 250], ["cake", sid, 300]], "total": 250 + 300 * sid})
        book.request_payment(sid)
        if sid == 3:
            book.payment_declined(sid)
            continue
        book.payment_approved(sid, f"AUTH{sid:02d}")
        book.start_print(sid)
        book.print_done(sid)
        book.close(sid)
    book.open_sale(10, {"items": [["tea", 1, 120]], "total": 120})
    book.open_sale(11, {"items": [["juice", 2, 180]], "total": 360})
    book.request_payment(11)
    book.open_sale(12, {"items": [["bun", 3, 90]], "total": 270})
    book.request_payment(12)
    book.payment_approved(12, "AUTH12")
    book.start_print(12)
    return bytes(flash.image())


def run(args: argparse.Namespace) -> int:
    if args.action == "demo":
        Path(args.out).write_bytes(demo_image(args.sectors))
        print(
            f"wrote {args.out} ({args.sectors * 4} KiB): sales 1-5 finished, 10 OPEN, 11 PAYMENT_PENDING, 12 PRINTING"
        )
        return 0
    path = args.image
    loaded = _load(path)
    if loaded is None:
        return 2
    img, data = loaded
    if args.action == "dump":
        if args.json:
            print(json.dumps(jf.sales(img, data), indent=2, ensure_ascii=False))
        else:
            print(jf.dump(img, data))
        return 0
    problems = jf.verify(img)
    n_sales = len(jf.sales(img, data))
    if problems:
        for p in problems:
            print("problem: " + p)
        return 1
    used = sum(1 for s in img.sectors if s.kind == "used")
    print(f"ok: generation {img.generation}, {used} used sectors, {len(img.records)} records, {n_sales} sales")
    return 0
