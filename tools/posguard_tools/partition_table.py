"""ESP32 partition table: build the binary ESP-IDF's bootloader reads at flash offset 0x8000, and the
provisioning change posguard needs (a raw data partition for the journal, carved from the end of `vfs`).

Format (ESP-IDF "Partition Tables" documentation, components/partition_table):
- up to 0xC00 bytes at 0x8000, a sequence of 32-byte entries, the rest 0xFF;
- entry: magic AA 50, type (u8), subtype (u8), offset (u32 LE), size (u32 LE), label (16 bytes,
  NUL padded), flags (u32 LE: bit 0 encrypted, bit 1 readonly);
- after the last entry an MD5 entry: EB EB, 14 bytes 0xFF, then the MD5 of all entry bytes before it;
- data partitions are aligned to 4 KiB (the flash erase unit), app partitions to 64 KiB.
`decode` here serves provisioning (reading a device's table); the test checks `encode` with its own parser.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, replace

TABLE_OFFSET = 0x8000
TABLE_MAX = 0xC00
ENTRY_SIZE = 32
MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
MAX_ENTRIES = TABLE_MAX // ENTRY_SIZE - 1  # one slot for the MD5 entry
_ENTRY = struct.Struct("<2sBBII16sI")

TYPE_APP = 0x00
TYPE_DATA = 0x01
SUBTYPE_FACTORY = 0x00
SUBTYPE_PHY = 0x01
SUBTYPE_NVS = 0x02
SUBTYPE_FAT = 0x81
# ESP-IDF leaves data subtypes 0x40-0xFE to applications; the simulated esp32.Partition of the journal
# uses 0x40 too (host_tests/simhw/sim_flash.py), so the board and the simulator agree.
SUBTYPE_JOURNAL = 0x40
ALIGN_DATA = 0x1000  # 4 KiB erase sector (docs/reference/storage.md)
ALIGN_APP = 0x10000
MIN_VFS = 0x40000  # littlefs needs room for the deployed firmware (~100 KB) plus wear levelling

FLASH_SIZES = {"4MB": 0x400000, "8MB": 0x800000, "16MB": 0x1000000}


class PartitionError(ValueError):
    pass


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.size


def stock_micropython(flash_size: int = FLASH_SIZES["4MB"]) -> list[Partition]:
    """MicroPython's ESP32 layout (ports/esp32/partitions-4MiB.csv; larger flashes give vfs the rest):
    nvs 0x9000+0x6000, phy_init 0xf000+0x1000, factory app 0x10000+0x1F0000, vfs from 0x200000 to the end."""
    return [
        Partition("nvs", TYPE_DATA, SUBTYPE_NVS, 0x9000, 0x6000),
        Partition("phy_init", TYPE_DATA, SUBTYPE_PHY, 0xF000, 0x1000),
        Partition("factory", TYPE_APP, SUBTYPE_FACTORY, 0x10000, 0x1F0000),
        Partition("vfs", TYPE_DATA, SUBTYPE_FAT, 0x200000, flash_size - 0x200000),
    ]


def validate(parts: list[Partition], flash_size: int | None = None) -> None:
    if not parts:
        raise PartitionError("a partition table needs at least one partition")
    if len(parts) > MAX_ENTRIES:
        raise PartitionError(f"{len(parts)} partitions: the table holds at most {MAX_ENTRIES}")
    labels = set()
    prev_end = TABLE_OFFSET + 0x1000  # nothing may overlap the table's own sector
    for p in sorted(parts, key=lambda q: q.offset):
        raw = p.label.encode()
        if not raw or len(raw) > 16:
            raise PartitionError(f"label {p.label!r} must be 1-16 bytes")
        if p.label in labels:
            raise PartitionError(f"label {p.label!r} used twice")
        labels.add(p.label)
        align = ALIGN_APP if p.type == TYPE_APP else ALIGN_DATA
        if p.offset % align or p.size % ALIGN_DATA or p.size <= 0:
            raise PartitionError(f"{p.label}: offset 0x{p.offset:x} / size 0x{p.size:x} not aligned (0x{align:x})")
        if p.offset < prev_end:
            raise PartitionError(f"{p.label} at 0x{p.offset:x} overlaps what ends at 0x{prev_end:x}")
        if flash_size is not None and p.end > flash_size:
            raise PartitionError(f"{p.label} ends at 0x{p.end:x}, beyond the 0x{flash_size:x}-byte flash")
        if not (0 <= p.type <= 0xFE and 0 <= p.subtype <= 0xFF):
            raise PartitionError(f"{p.label}: type/subtype out of range")
        prev_end = p.end


def encode(parts: list[Partition], flash_size: int | None = None) -> bytes:
    """The 0xC00-byte binary to write at 0x8000."""
    validate(parts, flash_size)
    body = b"".join(
        _ENTRY.pack(MAGIC, p.type, p.subtype, p.offset, p.size, p.label.encode().ljust(16, b"\0"), p.flags)
        for p in sorted(parts, key=lambda q: q.offset)
    )
    md5 = MD5_MAGIC + b"\xff" * 14 + hashlib.md5(body).digest()
    return (body + md5).ljust(TABLE_MAX, b"\xff")


def decode(blob: bytes) -> list[Partition]:
    """Read a table (e.g. from a device); raises PartitionError on a bad checksum or a damaged entry."""
    parts: list[Partition] = []
    for i in range(0, min(len(blob), TABLE_MAX), ENTRY_SIZE):
        entry = blob[i : i + ENTRY_SIZE]
        if entry[:2] == MD5_MAGIC:
            if hashlib.md5(blob[:i]).digest() != entry[16:32]:
                raise PartitionError("partition table MD5 does not match its entries")
            return parts
        if entry == b"\xff" * ENTRY_SIZE:
            return parts  # a table written without an MD5 entry
        if entry[:2] != MAGIC:
            raise PartitionError(f"entry {i // ENTRY_SIZE}: bad magic {entry[:2].hex()}")
        _, ptype, subtype, offset, size, label, flags = _ENTRY.unpack(entry)
        parts.append(Partition(label.rstrip(b"\0").decode("ascii", "replace"), ptype, subtype, offset, size, flags))
    raise PartitionError("partition table has no end marker")


def with_journal(parts: list[Partition], label: str, size_kb: int) -> list[Partition]:
    """Shrink `vfs` from its end and put the journal there; the vfs offset stays where it is."""
    size = size_kb * 1024
    if size <= 0 or size % ALIGN_DATA:
        raise PartitionError(f"journal size {size_kb} KB must be a positive multiple of 4 KB (the erase sector)")
    existing = [p for p in parts if p.label == label]
    if existing:
        if existing[0].size == size:
            return list(parts)
        raise PartitionError(
            f"the table already has '{label}' of {existing[0].size // 1024} KB (the profile says {size_kb} KB); "
            "resizing it would lose the journal: settle the journal first, then provision with --resize"
        )
    vfs = [p for p in parts if p.label == "vfs"]
    if not vfs:
        raise PartitionError("no 'vfs' partition to take the journal from")
    v = vfs[0]
    if v.size - size < MIN_VFS:
        raise PartitionError(f"vfs of {v.size // 1024} KB cannot give {size_kb} KB and keep {MIN_VFS // 1024} KB")
    shrunk = replace(v, size=v.size - size)
    journal = Partition(label, TYPE_DATA, SUBTYPE_JOURNAL, shrunk.end, size)
    return [shrunk if p.label == "vfs" else p for p in parts] + [journal]


def resize_journal(parts: list[Partition], label: str, size_kb: int) -> list[Partition]:
    """Give the journal a new size (its content is lost): merge it back into vfs and carve it again."""
    j = [p for p in parts if p.label == label]
    if not j:
        return with_journal(parts, label, size_kb)
    rest = [p for p in parts if p.label != label]
    vfs = [p for p in rest if p.label == "vfs"]
    if not vfs or vfs[0].end != j[0].offset:
        raise PartitionError(f"'{label}' does not follow 'vfs': resize it by hand")
    grown = replace(vfs[0], size=vfs[0].size + j[0].size)
    return with_journal([grown if p.label == "vfs" else p for p in rest], label, size_kb)


def describe(parts: list[Partition]) -> list[str]:
    rows = []
    for p in sorted(parts, key=lambda q: q.offset):
        kind = "app " if p.type == TYPE_APP else "data"
        rows.append(f"  {p.label:<10} {kind} 0x{p.subtype:02x}  0x{p.offset:06x}  {p.size // 1024:>6} KB")
    return rows
