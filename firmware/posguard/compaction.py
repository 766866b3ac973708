# Compaction: reclaim the oldest used sector (the tail). What must survive it is copied forward first
# as CARRY records (every unfinished sale, and finished sales among the last `keep_last`), and only then
# is the tail erased. A cut anywhere leaves either the old copy or both: both is harmless (the newer
# record wins), and the next maintenance step simply looks at the tail again. Runs only from
# SaleBook.maintenance(), i.e. when the power policy allows a 400 ms erase.
import struct

from posguard import records as R
from posguard.journal import FIRST_REC, NONE_PG, PAGES, REC_PAGES
from posguard.saleio import BODY_INLINE, BODY_REFS, CARRY_FIXED, carry_payload

_FINAL = (6, 7, 8, 10)


def compact_tail(book):
    """Reclaim the tail sector. Returns True if it was erased, False if that would gain nothing."""
    j = book.j
    order = j.used_in_order()
    if len(order) < 2:
        return False
    tail = order[0]
    lo = tail * PAGES
    hi = lo + PAGES

    def in_tail(pg):
        return pg != NONE_PG and lo <= pg < hi

    cands = []
    for p in range(FIRST_REC, PAGES):  # bounded: 14 pages
        hh = j.read_header(lo + p)
        if hh is not None and hh[1] and hh[1] not in cands and j.read_record(lo + p) is not None:
            cands.append(hh[1])
    closed = {}
    infos = book.io.scan(cands, closed)
    plan = []
    pages = 0
    for sid in cands:
        f = infos.get(sid)
        e = book.live.get(sid)
        if e is not None:
            state, visited, body_pg, auth_pg, close_seq = e[0], e[1], e[2], e[3], 0
        elif f is not None and f["state"] in _FINAL:
            state, visited, body_pg, auth_pg = f["state"], f["visited"], f["body_pg"], f["auth_pg"]
            close_seq = f["close_seq"]
            newer = 0
            for other, cs in closed.items():
                if cs > close_seq and other != sid:
                    newer += 1
            if newer >= book.keep_last:
                continue  # not among the last keep_last finished sales: its space may go
        else:
            continue  # orphan data pages or a sale whose opening record never landed
        if not (in_tail(body_pg) or in_tail(auth_pg) or _refs_in(j, body_pg, lo, hi)):
            continue  # already carried, or only old state records in the tail
        raw = book.io.body_bytes(body_pg)
        approval = book.io.approval(auth_pg)
        reason = f["reason"] if f is not None else None
        plan.append((sid, state, visited, close_seq, raw, approval, reason))
        pages += 1 + _data_pages(raw, approval, reason) * 2
    if pages >= REC_PAGES or pages > j.free_pages(0):
        return False  # the tail holds nothing reclaimable (or no room to move it)
    for sid, state, visited, close_seq, raw, approval, reason in plan:
        pg = _carry(j, sid, state, visited, close_seq, raw, approval, reason)
        e = book.live.get(sid)
        if e is not None:
            e[2] = pg
            e[3] = pg if approval else NONE_PG
    j.erase(tail)
    return True


def _refs_in(j, body_pg, lo, hi):
    """True if the sale's body lives on DATA pages inside [lo, hi) (normally they share the body
    record's sector; a page skipped after a failed read-back can push them apart)."""
    if body_pg == NONE_PG:
        return False
    h = j.read_record(body_pg)
    if h is None:
        return False
    p = j.payload(h)
    if h[0] == R.T_OPEN:
        kind, start = h[2], 0
    elif h[0] == R.T_CARRY:
        kind = p[1]
        start = 8 + 1 + p[8]
        start += 1 + p[start]
    else:
        return False
    if kind != BODY_REFS:
        return False
    for i in range(start, len(p) - 1, 2):  # bounded: at most MAX_DATA_PAGES references
        pg = p[i] | (p[i + 1] << 8)
        if lo <= pg < hi:
            return True
    return False


def _enc(s):
    return s.encode() if s else b""


def _data_pages(raw, approval, reason):
    if raw is None:
        return 0
    room = R.MAX_PAYLOAD - CARRY_FIXED - len(_enc(approval)) - len(_enc(reason))
    if len(raw) <= room:
        return 0
    return (len(raw) + R.MAX_PAYLOAD - 1) // R.MAX_PAYLOAD


def _carry(j, sid, state, visited, close_seq, raw, approval, reason):
    a = _enc(approval)
    r = _enc(reason)
    nd = _data_pages(raw, approval, reason)
    j.ensure_room(nd + 1)  # a body never spans two sectors
    if nd == 0:
        body = raw or b""
        kind = BODY_INLINE
    else:
        body = bytearray(2 * nd)
        for i in range(nd):
            chunk = raw[i * R.MAX_PAYLOAD : (i + 1) * R.MAX_PAYLOAD]
            struct.pack_into("<H", body, 2 * i, j.append(R.T_DATA, nd, i, sid, chunk))
        kind = BODY_REFS
    return j.append(R.T_CARRY, state, kind, sid, carry_payload(state, kind, visited, close_seq, a, r, body))
