# On-flash record format of the sale journal: one record per 256-byte page, self-validating and
# self-correcting.
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
#   16     4     CRC-32 of bytes 0 .. 15 (the header on its own)
#   20     n     payload
#   20+n   ..    0xFF up to byte 251
#   252    4     CRC-32 (binascii.crc32) of bytes 0 .. 251, at a fixed place
# Why the CRC sits at a fixed place over the whole page: CRC-32 is linear, so the difference between
# the stored and the computed CRC (the syndrome) of a page with one flipped bit names that bit; it is
# found by stepping the CRC register once per bit position (no table). Over 2048 bits CRC-32 has a
# Hamming distance of 5 (docs/reference/storage.md): one flipped bit is corrected, two or three are
# always detected (never "corrected" into another record). The header has its own CRC so that a page
# damaged beyond correction still tells which sale went to which state (its payload is lost): the
# damage then costs the approval code or the body, not the sale's state. Programmed once, whole.
import binascii
import struct

from micropython import const

PAGE = const(256)  # one page program (docs/reference/storage.md)
HDR = const(16)
CRC = const(4)
PAYLOAD_AT = const(20)  # HDR + the header's own CRC
BODY_END = const(252)  # PAGE - CRC: the CRC covers bytes 0 .. BODY_END - 1
MAX_PAYLOAD = const(232)  # BODY_END - PAYLOAD_AT
MAGIC = const(0xA5)

T_ERASED = const(0x01)  # page 0 of a verified, erased sector: erase count, highest count known, floor
T_RETIRED = const(0x02)  # page 0 of a sector that failed its post-erase verify
T_CHECKPOINT = const(0x10)  # the unfinished sales and the floor (written by idle / maintenance only)
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
# Fields of the header tuple decode() and decode_header() return. Readers index it by these names: a
# constant index costs nothing per record, where a header object would be one allocation per page read.
H_TYPE = const(0)
H_STATE = const(1)
H_FLAGS = const(2)
H_SEQ = const(3)
H_SID = const(4)
H_LEN = const(5)
H_GEN = const(6)
H_FIXED = const(7)  # 0: intact, 1: one flipped bit corrected, PAYLOAD_LOST: only the header checks
PAYLOAD_LOST = const(2)
# The reflected CRC-32 polynomial of binascii.crc32, in two 16-bit halves so that stepping the
# register never makes a long integer on the ESP32 (small ints there are 31 bits).
_POLY_HI = const(0xEDB8)
_POLY_LO = const(0x8320)
_BITS = const(2016)  # BODY_END * 8: message bits a syndrome can point at


class JournalError(Exception):
    """Every journal/sale error; `code` is a short word the host link reports as is."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def encode(buf, rtype, state, flags, seq, sale_id, gen, payload):
    """Write a record into buf (a 256-byte bytearray); returns PAGE (the whole page is programmed)."""
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise JournalError("too_large", "record payload %d bytes > %d" % (n, MAX_PAYLOAD))
    struct.pack_into(_FMT, buf, 0, MAGIC, rtype, state, flags, seq, sale_id, n, gen & 0xFFFF)
    mv = memoryview(buf)
    struct.pack_into("<I", buf, HDR, binascii.crc32(mv[:HDR]) & 0xFFFFFFFF)
    mv[PAYLOAD_AT : PAYLOAD_AT + n] = payload
    for i in range(PAYLOAD_AT + n, BODY_END):  # bounded: at most 232 bytes of padding
        buf[i] = 0xFF
    struct.pack_into("<I", buf, BODY_END, binascii.crc32(mv[:BODY_END]) & 0xFFFFFFFF)
    return PAGE


def syndrome(buf):
    """Stored CRC xor computed CRC of a page: 0 when it is intact."""
    want = struct.unpack_from("<I", buf, BODY_END)[0]
    return (binascii.crc32(memoryview(buf)[:BODY_END]) & 0xFFFFFFFF) ^ want


def correct(buf, syn):
    """Flip back the one bit whose error gives syndrome syn; returns its bit index or -1.

    The error pattern "bit b of byte j" changes the CRC by the register state reached from 1 after
    8 * (BODY_END - j) - b zero-bit steps, so one walk over k = 1 .. 2016 finds it.
    """
    if syn & (syn - 1) == 0:  # one bit of the stored CRC itself
        k = 0
        while (1 << k) != syn:
            k += 1
        buf[BODY_END + k // 8] ^= 1 << (k % 8)
        return BODY_END * 8 + k
    want_hi = syn >> 16
    want_lo = syn & 0xFFFF
    hi = 0
    lo = 1
    for k in range(1, _BITS + 1):  # bounded: 2016 steps of a 32-bit register kept as two halves
        low = lo & 1
        lo = (lo >> 1) | ((hi & 1) << 15)
        hi >>= 1
        if low:
            hi ^= _POLY_HI
            lo ^= _POLY_LO
        if hi == want_hi and lo == want_lo:
            m = (k + 7) // 8
            b = 8 * m - k
            j = BODY_END - m
            buf[j] ^= 1 << b
            return j * 8 + b
    return -1


def decode(buf):
    """(type, state, flags, seq, sale_id, length, gen, fixed) of the record in buf, else None.

    buf is a 256-byte bytearray holding a whole page; a single flipped bit is corrected in place
    (fixed = 1). Blank pages, torn pages and damage of 2-3 bits give None.
    """
    syn = syndrome(buf)
    fixed = 0
    if syn:
        if buf[0] == 0xFF and buf[1] == 0xFF and is_blank(buf):
            return None
        if correct(buf, syn) < 0:
            return None
        fixed = 1
    return _header(buf, fixed)


def decode_header(buf):
    """The header of a page that did not decode, when the header's own CRC holds: the same tuple
    with fixed = 2 (payload lost). None when the header is damaged too."""
    want = struct.unpack_from("<I", buf, HDR)[0]
    if binascii.crc32(memoryview(buf)[:HDR]) & 0xFFFFFFFF != want:
        return None
    return _header(buf, PAYLOAD_LOST)


def _header(buf, fixed):
    """The header tuple (fields H_TYPE .. H_FIXED) of the record in buf, or None if it is not one."""
    if buf[0] != MAGIC:
        return None
    _, t, st, flags, seq, sid, n, gen = struct.unpack_from(_FMT, buf, 0)
    if n > MAX_PAYLOAD or t not in TYPE_NAMES:
        return None
    return (t, st, flags, seq, sid, n, gen, fixed)


def raw_sale_id(buf):
    """The sale-id field of a page that did not decode (what a damaged record probably named)."""
    return struct.unpack_from("<I", buf, 8)[0]


_BLANK = b"\xff" * PAGE


def is_blank(buf, n=PAGE):
    """True when the first n bytes of buf (a bytearray) are all 0xFF (erased)."""
    if n == PAGE and len(buf) == PAGE:
        return buf == _BLANK
    for i in range(n):
        if buf[i] != 0xFF:
            return False
    return True
