# Compaction: reclaim the oldest used sector (the tail). What must survive it is copied forward first
# as CARRY records (every unfinished sale, and finished sales among the last `keep_last`), then a
# checkpoint raises the seq floor past the tail, and only then is the tail erased. A cut anywhere
# leaves either the old copy or both: both is harmless (the newer record wins), and the next
# maintenance step looks at the tail again; an erase that was cut and left old pages readable
# brings nothing back (those records are below the floor). Runs only from SaleBook.maintenance(),
# i.e. when the power policy allows a 400 ms erase.
import struct

from posguard import records as R
from posguard.journal import FIRST_REC, NONE_PG, PAGES, REC_PAGES
from posguard.saleio import BODY_INLINE, BODY_REFS, CARRY_APPROVAL_LEN, CARRY_FIXED, CARRY_KIND, carry_payload
from posguard.states import FINAL

# Pages a compaction leaves free after its copies: a cut costs a torn page plus the page the next boot
# skips, and the checkpoint that raises the floor must still find a page after a few of those.
_MARGIN = 6


def compact_tail(book):
    """Reclaim the tail sector. Returns True if it was erased, False if that would gain nothing.

    keep_last is what the journal keeps when it can: if carrying the kept finished sales would not
    free a page, they are dropped from the tail instead (a terminal must always be able to sell)."""
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
    for p in range(FIRST_REC, PAGES):  # bounded: 15 pages
        hh = j.read_header(lo + p)
        if hh is None:
            continue
        h = j.read_record(lo + p, True)  # read whole: a corrected bit, or damage, is counted
        if h is None:
            continue
        sid = h[R.H_SID]
        if sid and h[R.H_TYPE] != R.T_CHECKPOINT and sid not in cands:
            cands.append(sid)
    closed = {}
    infos = book.io.scan(cands, closed)
    floor = j.sseq[order[1]]
    need_floor = j.floor < floor  # else a checkpoint of an earlier try (its erase was cut) raised it
    room = j.free_pages() - (1 if need_floor else 0) - _MARGIN
    for keep in (book.keep_last, 0):
        plan = []
        pages = 0
        for sid in cands:
            f = infos.get(sid)
            e = book.live.get(sid)
            if e is not None:
                state, visited, body_pg, auth_pg, close_seq = e[0], e[1], e[2], e[3], 0
            elif f is not None and f["state"] in FINAL:
                state, visited, body_pg, auth_pg = f["state"], f["visited"], f["body_pg"], f["auth_pg"]
                close_seq = f["close_seq"]
                newer = 0
                for other, cs in closed.items():
                    if cs > close_seq and other != sid:
                        newer += 1
                if newer >= keep:
                    continue  # not among the last keep finished sales: its space may go
            else:
                continue  # orphan data pages or a sale whose opening record never landed
            if not (in_tail(body_pg) or in_tail(auth_pg) or _refs_in(j, body_pg, lo, hi)):
                continue  # already carried, or only old state records in the tail
            raw = book.io.body_bytes(body_pg)
            approval = book.io.approval(auth_pg)
            reason = f["reason"] if f is not None else None
            plan.append((sid, state, visited, close_seq, raw, approval, reason))
            pages += 1 + _data_pages(raw, approval, reason)
        if pages < REC_PAGES - 1 and pages <= room:
            break
    else:
        if plan:
            return False  # unfinished sales to move and no room for them
        # Nothing to move, little room left: raise the floor with the last page if there is one. With
        # none at all (a storm of cuts ate maintenance's spare), erase anyway: a terminal that can never
        # reclaim a sector is worse than a cut of this very erase leaving dead pages readable.
        if need_floor and j.free_pages() > 0:
            j.write_checkpoint(floor)
        elif need_floor:
            j.floor = floor  # written into the erase header below
        j.erase(tail)
        return True
    for sid, state, visited, close_seq, raw, approval, reason in plan:
        pg = _carry(j, sid, state, visited, close_seq, raw, approval, reason)
        e = book.live.get(sid)
        if e is not None:
            e[2] = pg
            e[3] = pg if approval else NONE_PG
    if need_floor or plan:
        j.write_checkpoint(floor)  # everything in the tail is below the floor from here on
    j.erase(tail)
    return True


def _refs_in(j, body_pg, lo, hi):
    """True if the sale's body lives on DATA pages inside [lo, hi) (a body may span two sectors)."""
    if body_pg == NONE_PG:
        return False
    h = j.read_record(body_pg)
    if h is None:
        return False
    p = j.payload(h)
    t = h[R.H_TYPE]
    if t == R.T_OPEN:
        kind, start = h[R.H_FLAGS], 0
    elif t == R.T_CARRY:
        kind = p[CARRY_KIND]
        start = CARRY_APPROVAL_LEN + 1 + p[CARRY_APPROVAL_LEN]  # past the approval: the reason
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
