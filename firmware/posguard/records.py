# On-flash record format of the sale journal: one record per 256-byte page, self-validating.
#
#   offset size  field
#   0      1     magic 0xA5
#   1      1     type (T_*)
#   2      1     state (sale state for T_STATE / T_CARRY; page count for T_DATA)
#   3      1     flags (data page index for T_DATA; body kind for T_OPEN)
#   4      4     seq: journal-wide sequence number, strictly increasing
#   8      4     sale id (erase count for T_ERASED / T_RETIRED)
#   12     2     payload length
#   14     2     format generation (records of an older format are never trusted)
#   16     n     payload
#   16+n   4     CRC-32 (binascii.crc32) of bytes 0 .. 16+n
# The page is programmed once; bytes after the CRC stay 0xFF. docs/journal.md has a table per type.
import binascii
import struct

from micropython import const

PAGE = const(256)  # one page program (docs/reference/storage.md)
HDR = const(16)
CRC = const(4)
MAX_PAYLOAD = const(236)  # PAGE - HDR - CRC
MAGIC = const(0xA5)

T_ERASED = const(0x01)  # page 0 of a verified, erased sector: erase count
T_RETIRED = const(0x02)  # page 0 of a sector that failed its post-erase verify
T_CHECKPOINT = const(0x10)  # page 1 of the active sector: the unfinished sales when it was started
T_DATA = const(0x20)  # part of a sale body too big for one record
T_OPEN = const(0x21)  # a new sale: its body (inline or page references)
T_STATE = const(0x22)  # a state transition (+ approval code or void reason)
T_CARRY = const(0x23)  # compaction: a full copy of a sale moved out of a sector being reclaimed
T_FORMAT = const(0x30)  # a format started: the journal must not be mounted until it is finished

TYPE_NAMES = {
    T_ERASED: "ERASED",
    T_RETIRED: "RETIRED",
    T_CHECKPOINT: "CHECKPOINT",
    T_DATA: "DATA",
    T_OPEN: "OPEN",
    T_STATE: "STATE",
    T_CARRY: "CARRY",
    T_FORMAT: "FORMAT",
}

_FMT = "<BBBBIIHH"


class JournalError(Exception):
    """Every journal/sale error; `code` is a short word the host link reports as is."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def encode(buf, rtype, state, flags, seq, sale_id, gen, payload):
    """Write a record into buf (a 256-byte bytearray); returns its length (bytes to program)."""
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise JournalError("too_large", "record payload %d bytes > %d" % (n, MAX_PAYLOAD))
    struct.pack_into(_FMT, buf, 0, MAGIC, rtype, state, flags, seq, sale_id, n, gen & 0xFFFF)
    mv = memoryview(buf)
    mv[HDR : HDR + n] = payload
    struct.pack_into("<I", buf, HDR + n, binascii.crc32(mv[: HDR + n]) & 0xFFFFFFFF)
    return HDR + n + CRC  # only these bytes are programmed: the rest of the page stays erased


def decode(buf):
    """(type, state, flags, seq, sale_id, length, gen) of a valid record in buf, else None."""
    if buf[0] != MAGIC:
        return None
    h = struct.unpack_from(_FMT, buf, 0)
    n = h[6]
    if n > MAX_PAYLOAD or h[1] not in TYPE_NAMES:
        return None
    mv = memoryview(buf)
    want = struct.unpack_from("<I", buf, HDR + n)[0]
    if binascii.crc32(mv[: HDR + n]) & 0xFFFFFFFF != want:
        return None
    return (h[1], h[2], h[3], h[4], h[5], n, h[7])


_BLANK = b"\xff" * PAGE


def is_blank(buf, n=PAGE):
    """True when the first n bytes of buf (a bytearray) are all 0xFF (erased)."""
    if n == PAGE and len(buf) == PAGE:
        return buf == _BLANK
    for i in range(n):
        if buf[i] != 0xFF:
            return False
    return True
