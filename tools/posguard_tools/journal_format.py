"""Offline decoder of a posguard journal partition image (host side, independent of the firmware code).

An image is the raw partition: from the simulator (`NorFlash.image()`) or from a board with
`esptool.py read_flash <journal offset> <journal size> journal.bin`. The format is documented in
docs/journal.md; this module reads it from scratch so that it also cross-checks the firmware.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

PAGE = 256
SECTOR = 4096
PAGES = SECTOR // PAGE
FIRST_REC = 1
HDR = 16
PAYLOAD_AT = 20  # after the header's own CRC-32 (bytes 16..19)
BODY_END = PAGE - 4  # the CRC-32 of bytes 0..251 sits at 252..255
MAGIC = 0xA5
_FMT = "<BBBBIIHH"

TYPES = {
    0x01: "ERASED",
    0x02: "RETIRED",
    0x10: "CHECKPOINT",
    0x20: "DATA",
    0x21: "OPEN",
    0x22: "STATE",
    0x23: "CARRY",
    0x30: "FORMAT",
}
# The sale state machine, as docs/journal.md states it. A declared oracle: written here from the
# documentation and deliberately not loaded from firmware/posguard/states.py, so that
# host_tests/test_states.py, which checks that the two agree (names, numbers, final states, steps,
# and the state of every sale decoded from a journal the firmware wrote), can catch either one wrong.
STATE_BYTE = {  # name -> the state byte of STATE and CARRY records and checkpoint entries
    "OPEN": 1,
    "PAYMENT_PENDING": 2,
    "PAID": 3,
    "PRINTING": 4,
    "PRINTED": 5,
    "CLOSED": 6,
    "DECLINED": 7,
    "VOIDED": 8,
    "REVERSAL_PENDING": 9,
    "REVERSAL_ACKED": 10,
}
STATES = {byte: name for name, byte in STATE_BYTE.items()}
FINAL = {"CLOSED", "DECLINED", "VOIDED", "REVERSAL_ACKED"}
# Legal moves of the sale state machine (a record may only take a sale one of these steps).
# OPEN -> REVERSAL_PENDING: recovery of an OPEN sale whose next record was damaged (the payment may
# have been requested, so a reversal is owed rather than a plain void).
NEXT = {
    "": {"OPEN"},
    "OPEN": {"PAYMENT_PENDING", "VOIDED", "REVERSAL_PENDING"},
    "PAYMENT_PENDING": {"PAID", "DECLINED", "REVERSAL_PENDING"},
    "PAID": {"PRINTING"},
    "PRINTING": {"PRINTED"},
    "PRINTED": {"CLOSED"},
    "REVERSAL_PENDING": {"REVERSAL_ACKED"},
}


def state_name(byte: int) -> str:
    """The name of a state byte ("" for none, "?<n>" for a byte no state has)."""
    return STATES.get(byte, "" if byte == 0 else f"?{byte}")


class ImageError(ValueError):
    """The file cannot be a journal image (wrong size)."""


@dataclass
class Record:
    page: int
    type: str
    state: int
    flags: int
    seq: int
    sale_id: int
    gen: int
    payload: bytes
    corrected: bool = False


@dataclass
class Sector:
    index: int
    kind: str  # spare | used | stale (reclaimed, or another generation) | dirty | retired | blank
    erase_count: int | None
    seq: int | None = None  # sequence number of its first valid record
    gen: int | None = None
    live: list[tuple[int, str]] = field(default_factory=list)  # entries of its newest checkpoint (id, state)


@dataclass
class Image:
    sectors: list[Sector]
    records: list[Record]  # valid records of the current generation above the floor, in journal order
    corrupt_pages: list[int]  # non-blank pages that do not decode (torn, or 2+ flipped bits)
    generation: int | None
    active: int | None
    corrected_pages: list[int] = field(default_factory=list)  # pages read with one flipped bit
    floor: int = 0


def _crc_ok(buf: bytes) -> bool:
    (crc,) = struct.unpack_from("<I", buf, BODY_END)
    return zlib.crc32(buf[:BODY_END]) & 0xFFFFFFFF == crc


def decode_page(buf: bytes, page: int) -> Record | None:
    """A valid record in a 256-byte page, or None (blank, torn or foreign). One flipped bit anywhere
    in the page is corrected (found here by trying every bit: independent of the firmware's syndrome
    walk); the record then has corrected=True."""
    if len(buf) != PAGE or _blank(buf):
        return None
    fixed = False
    if not _crc_ok(buf):
        work = bytearray(buf)
        for bit in range(PAGE * 8):
            work[bit // 8] ^= 1 << (bit % 8)
            if _crc_ok(bytes(work)):
                fixed = True
                break
            work[bit // 8] ^= 1 << (bit % 8)
        if not fixed:
            return None
        buf = bytes(work)
    if buf[0] != MAGIC:
        return None
    _magic, t, state, flags, seq, sid, n, gen = struct.unpack_from(_FMT, buf, 0)
    (hcrc,) = struct.unpack_from("<I", buf, HDR)
    if t not in TYPES or n > BODY_END - PAYLOAD_AT or zlib.crc32(buf[:HDR]) & 0xFFFFFFFF != hcrc:
        return None
    return Record(page, TYPES[t], state, flags, seq, sid, gen, bytes(buf[PAYLOAD_AT : PAYLOAD_AT + n]), fixed)


def _blank(b: bytes) -> bool:
    return b == b"\xff" * len(b)


def parse(data: bytes) -> Image:
    if len(data) == 0 or len(data) % SECTOR:
        raise ImageError(f"image is {len(data)} bytes: a journal partition is a multiple of 4096 bytes")
    nsec = len(data) // SECTOR
    sectors: list[Sector] = []
    recs: dict[int, list[Record]] = {}
    corrupt: dict[int, list[int]] = {}
    corrected: list[int] = []
    floor = 0
    for s in range(nsec):
        base = s * SECTOR
        h0 = decode_page(data[base : base + PAGE], s * PAGES)
        if h0 is not None and h0.corrected:
            corrected.append(s * PAGES)
        hdr = h0 is not None and h0.type in ("ERASED", "RETIRED")
        count = h0.sale_id if h0 is not None and hdr else None
        if h0 is not None and hdr and len(h0.payload) >= 8:
            floor = max(floor, struct.unpack_from("<II", h0.payload, 0)[1])
        if h0 is not None and h0.type == "RETIRED":
            sectors.append(Sector(s, "retired", count, gen=h0.gen))
            continue
        recs[s] = []
        corrupt[s] = []
        for p in range(FIRST_REC, PAGES):
            pg = s * PAGES + p
            buf = data[pg * PAGE : (pg + 1) * PAGE]
            r = decode_page(buf, pg)
            if r is None or r.type in ("ERASED", "RETIRED"):
                if not _blank(buf):
                    corrupt[s].append(pg)
                continue
            if r.corrected:
                corrected.append(pg)
            recs[s].append(r)
            if r.type == "CHECKPOINT" and len(r.payload) >= 4:
                floor = max(floor, struct.unpack_from("<I", r.payload, 0)[0])
        if recs[s]:
            sectors.append(Sector(s, "used", count, seq=recs[s][0].seq, gen=recs[s][0].gen))
        elif h0 is not None and h0.type == "ERASED":
            sectors.append(Sector(s, "spare", count, gen=h0.gen))
        elif _blank(data[base : base + SECTOR]):
            sectors.append(Sector(s, "blank", None))
        else:
            sectors.append(Sector(s, "dirty", count))
    live = [x for x in sectors if x.kind == "used" and (x.seq or 0) >= floor]
    for x in sectors:
        if x.kind == "used" and (x.seq or 0) < floor:
            x.kind = "stale"  # reclaimed: an erase that was cut left its records readable
    gens = [x.gen for x in live if x.gen is not None]
    generation = max(gens) if gens else None
    for x in live:
        if x.gen != generation:
            x.kind = "stale"
    used = sorted((x for x in live if x.gen == generation), key=lambda x: x.seq or 0)
    records: list[Record] = []
    bad: list[int] = []
    for sec in used:
        records += recs[sec.index]
        bad += corrupt[sec.index]
        cks = [r for r in recs[sec.index] if r.type == "CHECKPOINT"]
        if cks:
            ck = cks[-1].payload
            for i in range((len(ck) - 8) // 12):  # floor u32, highest erase count u32, then the entries
                sid, st = struct.unpack_from("<IB", ck, 8 + i * 12)
                sec.live.append((sid, state_name(st)))
    for x in sectors:
        if x.kind in ("spare", "dirty"):
            bad += corrupt.get(x.index, [])
    active = used[-1].index if used else None
    return Image(sectors, records, sorted(bad), generation, active, sorted(corrected), floor)


def _parse_carry(p: bytes) -> tuple[int, int, bytes, bytes, bytes, int]:
    state, kind, _visited, close_seq = struct.unpack_from("<BBHI", p, 0)
    i = 8
    a = p[i + 1 : i + 1 + p[i]]
    i += 1 + p[i]
    r = p[i + 1 : i + 1 + p[i]]
    i += 1 + p[i]
    return state, kind, a, r, p[i:], close_seq


def sales(img: Image, data: bytes) -> dict[int, dict[str, Any]]:
    """Every sale the journal still knows, with its latest state, body, approval and void reason."""
    by_page = {r.page: r for r in img.records}
    out: dict[int, dict[str, Any]] = {}
    for r in img.records:
        if r.type not in ("OPEN", "STATE", "CARRY"):
            continue
        s = out.setdefault(r.sale_id, {"id": r.sale_id, "state": "", "body": None, "approval": None, "reason": None})
        if r.type == "STATE" and s["state"] in FINAL:
            continue  # nothing follows a final state
        if r.type == "OPEN":
            s["state"] = "OPEN"
            s["body"] = _body(r.flags, r.payload, by_page)
        elif r.type == "STATE":
            s["state"] = state_name(r.state)
            if s["state"] == "PAID":
                s["approval"] = r.payload.decode(errors="replace")
            if s["state"] in ("VOIDED", "REVERSAL_PENDING"):
                s["reason"] = r.payload.decode(errors="replace")
            if s["state"] in FINAL:
                s["close_seq"] = r.seq
        else:
            st, kind, a, rs, body, close_seq = _parse_carry(r.payload)
            s["state"] = state_name(st)
            s["approval"] = a.decode(errors="replace") or s["approval"]
            s["reason"] = rs.decode(errors="replace") or s["reason"]
            s["body"] = _body(kind, body, by_page)
            if close_seq:
                s["close_seq"] = close_seq
    return out


def _body(kind: int, payload: bytes, by_page: dict[int, Record]) -> Any:
    raw = payload
    if kind == 1:
        raw = b""
        for i in range(len(payload) // 2):
            (pg,) = struct.unpack_from("<H", payload, 2 * i)
            d = by_page.get(pg)
            if d is None or d.type != "DATA":
                return None
            raw += d.payload
    try:
        return json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None


def verify(img: Image) -> list[str]:
    """Problems found (empty when the image is a healthy journal)."""
    problems: list[str] = []
    if img.active is None:
        problems.append("no valid record: the partition is blank, foreign or unformatted")
        return problems
    last = -1
    for r in img.records:
        if r.seq <= last:
            problems.append(f"page {r.page}: sequence {r.seq} does not increase (after {last})")
        last = r.seq
    state: dict[int, str] = {}
    first_seen: dict[int, bool] = {}
    for r in img.records:
        if r.type == "OPEN":
            state[r.sale_id] = "OPEN"
            first_seen[r.sale_id] = True
        elif r.type == "CARRY":
            st, *_ = _parse_carry(r.payload)
            state[r.sale_id] = state_name(st)
        elif r.type == "STATE":
            to = state_name(r.state)
            cur = state.get(r.sale_id)
            if cur is not None and to != cur and to not in NEXT.get(cur, set()):
                problems.append(f"page {r.page}: sale {r.sale_id} {cur} -> {to} is not a legal transition")
            state[r.sale_id] = to
    for r in img.records:
        if r.type == "FORMAT":
            problems.append(f"page {r.page}: a format was started and not finished")
    if not any(r.type == "CHECKPOINT" for r in img.records):
        problems.append("no readable checkpoint: the sales were rebuilt from every record")
    if img.corrupt_pages:
        problems.append(f"{len(img.corrupt_pages)} torn or corrupt page(s) skipped: {img.corrupt_pages[:10]}")
    return problems


def dump(img: Image, data: bytes) -> str:
    lines = [f"generation {img.generation}, active sector {img.active}, seq floor {img.floor}"]
    if img.corrected_pages:
        lines.append(f"corrected (one flipped bit): pages {img.corrected_pages[:20]}")
    if img.corrupt_pages:
        lines.append(f"torn or corrupt: pages {img.corrupt_pages[:20]}")
    for s in img.sectors:
        extra = f" seq {s.seq}" if s.seq is not None else ""
        live = f" live {s.live}" if s.live else ""
        lines.append(f"sector {s.index:3d}: {s.kind:7s} erases {s.erase_count}{extra}{live}")
    for r in img.records:
        st = state_name(r.state) if r.type in ("STATE", "CARRY") else ""
        lines.append(f"  page {r.page:5d} seq {r.seq:8d} {r.type:10s} sale {r.sale_id:10d} {st} {len(r.payload)} B")
    for sid, sale in sorted(sales(img, data).items()):
        lines.append(
            f"sale {sid}: {sale['state']} approval={sale['approval']} reason={sale['reason']} body={sale['body']}"
        )
    return "\n".join(lines)
