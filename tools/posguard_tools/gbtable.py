"""Generate firmware/data/gb18030.bin: the Unicode -> GB18030 two-byte table the firmware reads.

MicroPython has no GB18030 codec (docs/reference/escpos.md), so the board looks characters up in this
file with seek/readinto and never loads it whole. It is generated from CPython's own codec, committed,
and `make test` regenerates it and compares byte for byte (host_tests/test_escpos_gbtable.py).

Layout (all integers little-endian unless said otherwise):
    header   12 bytes: b"GB2T", version u8 = 1, reserved u8, n_ranges u16, n_gbk_missing u16, reserved u16
    ranges   n_ranges x (first code point u16, count u16, first entry u16), sorted by code point
    missing  n_gbk_missing x u16: code points GB18030 has as two bytes but GBK printers lack, sorted
    entries  2 bytes each, the GB18030 bytes in print order (lead, trail); 00 00 = no two-byte code

Only two-byte codes are stored: printers print nothing else (escpos.md). Private-use code points
(U+E000-U+F8FF) are left out: what a printer shows for them is vendor-specific.
Run `python -m posguard_tools.gbtable` to rewrite the file.
"""

from __future__ import annotations

import struct
import sys

from posguard_tools import paths

MAGIC = b"GB2T"
VERSION = 1
# Code points closer than this share one range (holes cost 2 bytes each, a range 6): 4 gives the
# smallest file for CPython's GB18030 codec (126 ranges, 44.7 KB).
MAX_GAP = 4
TABLE_PATH = paths.FIRMWARE / "data" / "gb18030.bin"


def _two_byte_code(cp: int, codec: str) -> bytes | None:
    if 0xD800 <= cp < 0xF900:  # surrogates and the private-use area
        return None
    try:
        b = chr(cp).encode(codec)
    except UnicodeEncodeError:
        return None
    return b if len(b) == 2 else None


def build() -> bytes:
    codes: dict[int, bytes] = {}
    for cp in range(0x80, 0x10000):
        b = _two_byte_code(cp, "gb18030")
        if b is not None:
            codes[cp] = b
    cps = sorted(codes)
    ranges: list[tuple[int, int]] = []
    start = prev = cps[0]
    for cp in cps[1:]:
        if cp - prev > MAX_GAP:
            ranges.append((start, prev))
            start = cp
        prev = cp
    ranges.append((start, prev))
    missing = sorted(cp for cp in cps if _two_byte_code(cp, "gbk") != codes[cp])
    index = bytearray()
    entries = bytearray()
    for first, last in ranges:
        index += struct.pack("<HHH", first, last - first + 1, len(entries) // 2)
        for cp in range(first, last + 1):
            entries += codes.get(cp, b"\x00\x00")
    if len(entries) // 2 > 0xFFFF:
        raise ValueError("table too large for 16-bit entry numbers")
    header = MAGIC + struct.pack("<BBHHH", VERSION, 0, len(ranges), len(missing), 0)
    return header + bytes(index) + struct.pack(f"<{len(missing)}H", *missing) + bytes(entries)


def main() -> int:
    data = build()
    TABLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    TABLE_PATH.write_bytes(data)
    print(f"wrote {TABLE_PATH} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
