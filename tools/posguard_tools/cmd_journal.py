"""`posguard journal`: read a journal partition image offline.

    posguard journal dump --image journal.bin [--json]   sectors, records and sales in the image
    posguard journal dump --port /dev/ttyUSB0 [--save F]  the same, read off a board through mpremote
    posguard journal verify journal.bin                  exit 0 if healthy, 1 with the problems listed
    posguard journal demo OUT.bin                        write an image from a simulated session

`--port` reads the partition on the board itself (esp32.Partition, a sector per mpremote call, erased
pages skipped, base64 over the REPL: nothing is written to the board) and decodes it here. Without a
running board, esptool works too: `esptool.py read_flash <offset> <size> journal.bin` (offset and size
from the partition table).
"""

from __future__ import annotations

import argparse
import binascii
import importlib
import json
import subprocess
from pathlib import Path

from posguard_tools import journal_format as jf
from posguard_tools import maintenance, paths, port_diag, vboard_state

HELP = "dump or verify a journal partition image (sales, records, sectors)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    d = sub.add_parser("dump", help="print sectors, records and sales of an image")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="raw journal partition image")
    src.add_argument(
        "--port", help="read the partition off a board through mpremote (`vboard`: the running virtual board)"
    )
    d.add_argument("--label", default="journal", help="partition label on the board (default: journal)")
    d.add_argument("--save", help="with --port: also keep the image read from the board in this file")
    d.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the board")
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


# Run on the board, beside a live terminal: first the partition's geometry, then one call per sector
# (the answer of one call stays a few KB: serial links and the virtual board's pty both prefer that).
# Erased pages (all 0xFF) are not sent; the rest go 256 bytes at a time as base64 lines.
# Block-device ioctl ops 4 (block count) and 5 (block size): docs/reference/storage.md.
_INFO_SCRIPT = """
import esp32
BLOCK_COUNT, BLOCK_SIZE = 4, 5
p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=%r)
if p:
    print("POSGUARD-INFO %%d %%d" %% (p[0].ioctl(BLOCK_COUNT, 0), p[0].ioctl(BLOCK_SIZE, 0)))
else:
    print("POSGUARD-NO-PARTITION")
"""
_SECTOR_SCRIPT = """
import esp32, binascii, sys
p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=%r)[0]
buf = bytearray(256)
ff = b"\\xff" * 256
for off in range(0, %d, 256):
    p.readblocks(%d, buf, off)
    if buf != ff:
        sys.stdout.write("P %%d " %% off)
        sys.stdout.write(binascii.b2a_base64(buf))
print("POSGUARD-END")
"""


def _exec(port: str, script: str, timeout: float) -> str:
    cmd = [paths.venv_bin("mpremote"), "connect", port, "resume", "exec", script]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise OSError(port_diag.explain_silence(port, timeout)) from e
    if r.returncode != 0:
        text = (r.stderr or r.stdout).strip()
        raise OSError(port_diag.explain_failure(port, text) or f"mpremote could not read {port}: {text[-300:]}")
    return r.stdout


def read_from_board(port: str, label: str, timeout: float) -> bytes:
    """The journal partition's bytes, read on the board through mpremote (nothing is written there).
    A trading terminal is restarted into service mode for the read and back into trading after it:
    mpremote's Ctrl-C leaves its watchdog counting (issue 13, item 5; posguard_tools.maintenance).
    Raises OSError with a message a person can act on."""
    problem = port_diag.open_problem(port)
    if problem:
        raise OSError(problem)
    st = maintenance.state(port, timeout)
    try:
        serviced = st is not None and maintenance.enter(port, st)
    except maintenance.MaintenanceError as e:
        raise OSError(str(e)) from e
    try:
        return _read_partition(port, label, timeout)
    finally:
        if serviced:
            maintenance.leave(port)


def _read_partition(port: str, label: str, timeout: float) -> bytes:
    info = _exec(port, _INFO_SCRIPT % label, timeout)
    if "POSGUARD-NO-PARTITION" in info:
        raise OSError(f"the board on {port} has no data partition labelled '{label}' (make provision)")
    found = [ln.split() for ln in info.splitlines() if ln.startswith("POSGUARD-INFO ")]
    if not found:
        raise OSError(f"unexpected answer from {port}: {info.strip()[-200:]}")
    blocks, size = int(found[0][1]), int(found[0][2])
    image = bytearray(b"\xff" * (blocks * size))
    for b in range(blocks):
        out = _exec(port, _SECTOR_SCRIPT % (label, size, b), timeout)
        if "POSGUARD-END" not in out:
            raise OSError(f"the read of sector {b} from {port} was cut short")
        for ln in out.splitlines():
            if ln.startswith("P "):
                _, off, b64 = ln.split(" ", 2)
                try:
                    page = binascii.a2b_base64(b64)
                except binascii.Error as e:
                    raise OSError(f"garbled data from {port}: {e}") from e
                at = b * size + int(off)
                image[at : at + len(page)] = page
    return bytes(image)


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
        book.idle()  # what the app does between sales: a sector's checkpoint, written outside a commit
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
    loaded: tuple[jf.Image, bytes] | None
    if getattr(args, "port", None):
        try:
            args.port = vboard_state.resolve_port(args.port)
        except vboard_state.NotRunning as e:
            print(f"posguard journal: {e}")
            return 1
        try:
            data = read_from_board(args.port, args.label, args.timeout)
        except OSError as e:
            print(f"posguard journal: {e}")
            return 2
        if args.save:
            Path(args.save).write_bytes(data)
        try:
            loaded = jf.parse(data), data
        except jf.ImageError as e:
            print(f"journal on {args.port}: {e}")
            return 2
    else:
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
    if img.corrected_pages:
        print(f"corrected: {len(img.corrected_pages)} page(s) with one flipped bit: {img.corrected_pages[:10]}")
    if problems:
        for p in problems:
            print("problem: " + p)
        return 1
    used = sum(1 for s in img.sectors if s.kind == "used")
    print(f"ok: generation {img.generation}, {used} used sectors, {len(img.records)} records, {n_sales} sales")
    return 0
