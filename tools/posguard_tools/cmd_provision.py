"""`posguard provision`: give a board the journal partition its profile names (a new partition table
written with esptool; `vfs` shrinks, so the filesystem is reformatted)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from posguard_tools import deploy, paths, port_diag
from posguard_tools import partition_table as pt

HELP = "write a partition table with the journal partition (vfs shrinks: the filesystem is reformatted)"

_ESPTOOL_TIMEOUT_S = 180


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", default=None, help="the board's serial port (esptool talks to the ROM bootloader)")
    parser.add_argument("--board", default=paths.DEFAULT_BOARD,
                        help="board profile in boards/: journal label and size (default: %(default)s)")
    parser.add_argument("--flash-size", default="4MB", choices=sorted(pt.FLASH_SIZES), help="module flash size")
    parser.add_argument(
        "--current",
        type=Path,
        default=None,
        help="the board's present table as a file (default: read it from the board at 0x8000 with esptool)",
    )
    parser.add_argument("--stock", action="store_true", help="start from MicroPython's stock layout, not the board's")
    parser.add_argument("--output", type=Path, default=None, help="also write the new table binary to this file")
    parser.add_argument("--resize", action="store_true", help="the journal exists with another size: resize it")
    parser.add_argument("--dry-run", action="store_true", help="show the change, write nothing to the board")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def esptool(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [paths.venv_bin("esptool"), "--port", port, *args],
        capture_output=True,
        text=True,
        timeout=_ESPTOOL_TIMEOUT_S,
    )


# esptool read bytes that are not the ROM bootloader's SLIP framing (esptool 5.6.0 loader.py:2322): a
# MicroPython REPL answered, so the chip is not in download mode, or there is no chip (a virtual board).
_NOT_THE_ROM = "Invalid head of packet"
_VBOARD = (
    "the virtual board has no ROM bootloader for esptool, and it is provisioned already: its simulated flash "
    "has the journal partition its board.json names (docs/device.md, 'The virtual board'). Nothing to do."
)


def _esptool_error(r: subprocess.CompletedProcess[str]) -> str:
    text = r.stderr + r.stdout
    if _NOT_THE_ROM in text:
        return (
            f"esptool reached no ROM bootloader ('{_NOT_THE_ROM}': something else answered, such as "
            "MicroPython's REPL). A board: hold BOOT, tap EN, release BOOT, and run it again. A virtual board: "
            + _VBOARD
        )
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["no output"])[-1].strip()


def read_table(port: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "table.bin"
        r = esptool(port, "read-flash", hex(pt.TABLE_OFFSET), hex(pt.TABLE_MAX), str(out))
        if r.returncode != 0 or not out.exists():
            raise OSError(f"cannot read the partition table from {port}: {_esptool_error(r)}")
        return out.read_bytes()


def warning(before: list[pt.Partition], after: list[pt.Partition], label: str) -> str:
    old = next(p for p in before if p.label == "vfs")
    new = next(p for p in after if p.label == "vfs")
    j = next(p for p in after if p.label == label)
    return (
        "WARNING: this reformats the board's filesystem.\n"
        f"  'vfs' shrinks from {old.size // 1024} KB to {new.size // 1024} KB; MicroPython cannot mount the old\n"
        "  filesystem in the new size and formats it at the next boot. EVERYTHING on it is lost: the deployed\n"
        "  firmware (posguard/*.mpy, boot.py, main.py), board.json and any file you copied there.\n"
        f"  The journal partition '{label}' ({j.size // 1024} KB at 0x{j.offset:06x}) starts erased: "
        "no sales history.\n"
        "  Save what you need first (mpremote connect PORT cp -r : backup/), deploy again afterwards."
    )


def _confirm() -> bool:
    if not sys.stdin.isatty():
        print("not confirmed: stdin is not a terminal (use --yes to provision unattended)", file=sys.stderr)
        return False
    answer = input("Type 'yes' to write the new partition table: ")
    return answer.strip().lower() == "yes"


def run(args: argparse.Namespace) -> int:
    try:
        profile = json.loads(deploy.load_profile(args.board))
    except (FileNotFoundError, deploy.DeployError) as e:
        print(f"provision: {e}", file=sys.stderr)
        return 2
    label, size_kb = profile["journal"]["label"], profile["journal"]["size_kb"]
    flash_size = pt.FLASH_SIZES[args.flash_size]
    writes_board = not args.dry_run
    talks_to_board = writes_board or not (args.current or args.stock)
    if args.port is None and talks_to_board:
        print("provision: --port is required (or --dry-run with --current FILE / --stock)", file=sys.stderr)
        return 2
    if talks_to_board and port_diag.virtual_board_of(args.port) is not None:
        print(f"{args.port}: a virtual board (posguard vboard): {_VBOARD}")
        return 0
    try:
        if args.stock:
            before = pt.stock_micropython(flash_size)
        elif args.current is not None:
            before = pt.decode(args.current.read_bytes())
        else:
            before = pt.decode(read_table(args.port))
        after = (pt.resize_journal if args.resize else pt.with_journal)(before, label, size_kb)
        blob = pt.encode(after, flash_size)
    except (OSError, pt.PartitionError) as e:
        print(f"provision: {e}", file=sys.stderr)
        return 1
    if args.output is not None:
        args.output.write_bytes(blob)
        print(f"new partition table written to {args.output} ({len(blob)} bytes)")
    if after == before:
        print(f"already provisioned: '{label}' of {size_kb} KB is in the table; nothing to do")
        return 0
    print("partition table now:")
    print("\n".join(pt.describe(before)))
    print("after provisioning:")
    print("\n".join(pt.describe(after)))
    print(warning(before, after, label))
    if not writes_board:
        print("dry run: nothing written to the board")
        return 0
    if not args.yes and not _confirm():
        print("provision: cancelled, nothing written", file=sys.stderr)
        return 1
    return _write(args.port, blob, before, after, label)


def _write(port: str, blob: bytes, before: list[pt.Partition], after: list[pt.Partition], label: str) -> int:
    j = next(p for p in after if p.label == label)
    vfs = next(p for p in after if p.label == "vfs")
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "partitions.bin"
        table.write_bytes(blob)
        # Erase first, table last: the board never boots with a journal partition over old filesystem
        # blocks. Erasing the head of vfs makes the reformat certain instead of a failed mount.
        steps = [
            (
                f"erase the journal area 0x{j.offset:06x}+{j.size // 1024} KB",
                ["erase-region", hex(j.offset), hex(j.size)],
            ),
            (f"erase the head of vfs 0x{vfs.offset:06x}", ["erase-region", hex(vfs.offset), hex(2 * pt.ALIGN_DATA)]),
            (f"write the partition table at 0x{pt.TABLE_OFFSET:x}", ["write-flash", hex(pt.TABLE_OFFSET), str(table)]),
        ]
        for what, cmd in steps:
            r = esptool(port, "--after", "no-reset" if cmd[0] != "write-flash" else "hard-reset", *cmd)
            if r.returncode != 0:
                print(f"provision: could not {what}: {_esptool_error(r)}", file=sys.stderr)
                if cmd[0] != "write-flash":
                    print("provision: the partition table was not changed", file=sys.stderr)
                return 1
            print(f"  {what}: done")
    print(f"provisioned: '{label}' at 0x{j.offset:06x}; the board reformats vfs at its next boot.")
    print(f"next: make deploy PORT={port}")
    return 0
