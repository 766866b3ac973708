# Reading sales back out of the journal (lookups by id, receipt details, closed-sale export) and the
# CARRY record layout used by compaction. Reads only: every scan walks the used sectors oldest first,
# reads 16-byte headers and opens a full page only when it belongs to the sale asked for.
import json
import struct

from micropython import const

from posguard import records as R
from posguard.journal import FIRST_REC, NONE_PG, PAGES
from posguard.states import FINAL, OPEN, PAID, REVERSAL_PENDING, VISITED, VOIDED

BODY_INLINE = const(0)  # T_OPEN flags: the payload is the body
BODY_REFS = const(1)  # T_OPEN flags: the payload is a list of u16 data page numbers

# CARRY payload: state u8, body kind u8, visited u16, close_seq u32, then approval and reason as
# (u8 length, bytes), then the body inline or as u16 data page numbers.
_CARRY_HEAD = "<BBHI"
CARRY_KIND = const(1)  # offset of the body kind byte
CARRY_APPROVAL_LEN = const(8)  # offset of the approval's length byte (0: no approval)
CARRY_FIXED = const(10)  # head (8) + the two length bytes


def carry_payload(state, kind, visited, close_seq, approval, reason, body):
    a = approval or b""
    r = reason or b""
    out = bytearray(CARRY_FIXED + len(a) + len(r) + len(body))
    struct.pack_into(_CARRY_HEAD, out, 0, state, kind, visited, close_seq)
    i = CARRY_APPROVAL_LEN
    out[i] = len(a)
    out[i + 1 : i + 1 + len(a)] = a
    i += 1 + len(a)
    out[i] = len(r)
    out[i + 1 : i + 1 + len(r)] = r
    i += 1 + len(r)
    out[i:] = body
    return out


def parse_carry(p):
    """(state, kind, visited, close_seq, approval, reason, body_bytes) from a CARRY payload."""
    state, kind, visited, close_seq = struct.unpack_from(_CARRY_HEAD, p, 0)
    i = CARRY_APPROVAL_LEN
    n = p[i]
    approval = bytes(p[i + 1 : i + 1 + n])
    i += 1 + n
    n = p[i]
    reason = bytes(p[i + 1 : i + 1 + n])
    i += 1 + n
    return state, kind, visited, close_seq, approval, reason, bytes(p[i:])


def _near(sid, wanted):
    """sid equals a wanted id or differs from one in a single bit (a flip the page read corrects)."""
    for w in wanted:
        x = sid ^ w
        if x & (x - 1) == 0:
            return True
    return False


class SaleReader:
    def __init__(self, journal):
        self.j = journal

    def _pages(self):
        """Every record page of every used sector, oldest first (bounded by the partition size)."""
        for s in self.j.used_in_order():
            for p in range(FIRST_REC, PAGES):
                yield s * PAGES + p

    def scan(self, wanted, closed=None):
        """Follow the sales in `wanted` through the whole journal: {sid: info}. If `closed` is a dict,
        it also gets {sid: close_seq} of every finished sale seen (for keep-last decisions)."""
        out = {}
        j = self.j
        for pg in self._pages():
            hh = j.read_header(pg)
            if hh is None:
                continue
            t, sid = hh  # read_header gives (type, sale id)
            near = t == 0 or _near(sid, wanted)  # a header bit may be flipped: read the page whole
            if not near and t != R.T_OPEN and t != R.T_STATE and t != R.T_CARRY:
                continue
            if not near and (closed is None or t == R.T_OPEN):
                continue
            h = j.read_record(pg, True)  # a page damaged beyond correction still gives its header
            if h is None:
                continue
            t, sid = h[R.H_TYPE], h[R.H_SID]
            if t != R.T_OPEN and t != R.T_STATE and t != R.T_CARRY:
                continue
            want = sid in wanted
            if not want and (closed is None or t == R.T_OPEN):
                continue
            if not want:
                if h[R.H_STATE] in FINAL:  # a STATE or CARRY record of a finished sale
                    if t == R.T_CARRY and h[R.H_FIXED] != R.PAYLOAD_LOST:
                        closed[sid] = parse_carry(j.payload(h))[3]  # the close seq it carries
                    else:
                        closed[sid] = h[R.H_SEQ]
                continue
            f = out.get(sid)
            if f is None:
                f = {"state": 0, "visited": 0, "body_pg": NONE_PG, "auth_pg": NONE_PG, "reason": None, "close_seq": 0}
                out[sid] = f
            self._follow(f, pg, h)
            if closed is not None and f["state"] in FINAL:
                closed[sid] = f["close_seq"]
        return out

    def _follow(self, f, pg, h):
        t, st, lost = h[R.H_TYPE], h[R.H_STATE], h[R.H_FIXED] == R.PAYLOAD_LOST
        p = self.j.payload(h)
        if t == R.T_OPEN:
            f["state"] = OPEN
            f["visited"] = VISITED[OPEN]
            f["body_pg"] = pg
        elif t == R.T_STATE:
            if st >= len(VISITED):
                return
            f["state"] = st
            f["visited"] = VISITED[st]
            if st == PAID:
                f["auth_pg"] = pg
            if (st == VOIDED or st == REVERSAL_PENDING) and not lost:
                f["reason"] = bytes(p).decode()
            if st in FINAL:
                f["close_seq"] = h[R.H_SEQ]
        elif lost:  # a CARRY whose payload is lost: its state is in the header
            if st >= len(VISITED):
                return
            f["state"] = st
            f["visited"] = VISITED[st]
            f["body_pg"] = pg
            f["auth_pg"] = NONE_PG
            f["close_seq"] = h[R.H_SEQ]
        else:
            st, kind, visited, close_seq, approval, reason, body = parse_carry(p)
            if st >= len(VISITED):
                return
            f["state"] = st
            f["visited"] = VISITED[st]
            f["body_pg"] = pg
            f["auth_pg"] = pg if approval else NONE_PG
            f["reason"] = reason.decode() if reason else f["reason"]
            f["close_seq"] = close_seq

    def find(self, sid):
        return self.scan((sid,)).get(sid)

    def body_bytes(self, body_pg):
        """The raw body of a sale from its OPEN or CARRY record (None if unreadable)."""
        j = self.j
        if body_pg == NONE_PG:
            return None
        h = j.read_record(body_pg)
        if h is None:
            return None
        if h[R.H_TYPE] == R.T_CARRY:
            c = parse_carry(j.payload(h))
            kind, raw = c[1], c[6]
        elif h[R.H_TYPE] == R.T_OPEN:
            kind, raw = h[R.H_FLAGS], bytes(j.payload(h))
        else:
            return None
        if kind == BODY_INLINE:
            return raw
        # One buffer of the body's size (every data page is full but the last, read first for its
        # length): never the growing copies of b"" + page + page...
        npg = min(len(raw) // 2, 16)  # bounded: at most MAX_DATA_PAGES references
        if npg == 0:
            return b""
        d = j.read_record(raw[2 * npg - 2] | (raw[2 * npg - 1] << 8))
        if d is None:
            return None
        out = bytearray((npg - 1) * R.MAX_PAYLOAD + len(j.payload(d)))
        n = 0
        for i in range(npg):
            dpg = raw[2 * i] | (raw[2 * i + 1] << 8)
            d = j.read_record(dpg)
            if d is None or d[R.H_TYPE] != R.T_DATA or d[R.H_FLAGS] != i:  # a DATA page's flags: its index
                return None
            p = j.payload(d)
            if n + len(p) > len(out):
                return None  # not the layout open_sale and compaction write: treated as unreadable
            out[n : n + len(p)] = p
            n += len(p)
        return out if n == len(out) else out[:n]

    def approval(self, auth_pg):
        j = self.j
        if auth_pg == NONE_PG:
            return None
        h = j.read_record(auth_pg)
        if h is None:
            return None
        if h[R.H_TYPE] == R.T_CARRY:
            a = parse_carry(j.payload(h))[4]
        elif h[R.H_TYPE] == R.T_STATE:
            a = bytes(j.payload(h))
        else:
            return None
        return a.decode() if a else None

    def details(self, sid, state, visited, body_pg, auth_pg, reason, close_seq):
        raw = self.body_bytes(body_pg)
        body = None
        if raw is not None:
            try:
                body = json.loads(raw)  # bytes: no decoded copy (bad UTF-8 is a ValueError as well)
            except ValueError:
                body = None
        return {
            "id": sid,
            "state": state,
            "body": body,
            "approval": self.approval(auth_pg),
            "reason": reason,
            "close_seq": close_seq,
            "body_lost": raw is None,
        }

    def closed_page(self, after, limit):
        """Ids of finished sales with close sequence > after, oldest first, at most limit of them,
        and the cursor for the next page (None at the end). RAM stays O(limit): a bounded sorted
        list of the smallest close sequences seen, whatever the journal holds."""
        j = self.j
        best = []  # (close_seq, sid), sorted, at most limit + 1 entries
        for pg in self._pages():
            hh = j.read_header(pg)  # (type, sale id): 0 when the page must be read whole
            if hh is None or (hh[0] != R.T_STATE and hh[0] != R.T_CARRY and hh[0] != 0):
                continue
            h = j.read_record(pg)
            if h is None:
                continue
            t = h[R.H_TYPE]
            if t == R.T_STATE:
                if h[R.H_STATE] not in FINAL:
                    continue
                cs = h[R.H_SEQ]
            elif t == R.T_CARRY:
                c = parse_carry(j.payload(h))
                if c[0] not in FINAL:
                    continue
                cs = c[3]
            else:
                continue
            if cs <= after or (len(best) > limit and cs >= best[-1][0]):
                continue
            sid = h[R.H_SID]
            dup = False
            for e in best:
                if e[1] == sid:
                    dup = True  # a compaction copy of a sale already listed
                    break
            if dup:
                continue
            i = len(best)
            while i > 0 and best[i - 1][0] > cs:
                i -= 1
            best.insert(i, (cs, sid))
            if len(best) > limit + 1:
                best.pop()
        page = best[:limit]
        nxt = page[-1][0] if len(best) > limit else None
        return [e[1] for e in page], nxt
