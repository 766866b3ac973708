# The sale state machine on top of the journal, and boot recovery driven only by the journal. The
# states and their legal steps are posguard.states (re-exported here: sales.PAID, sales.NAMES...).
# Every transition is one journal record, written *before* its side effect. Sale ids come from the
# host; a command whose target state was already reached writes nothing and returns the current state.
import json
import struct

from micropython import const

from posguard import records as R
from posguard.journal import NONE_PG
from posguard.journal_limits import MAX_BODY, MAX_DATA_PAGES, SLACK_PAGES, keep_last_max  # noqa: F401
from posguard.saleio import BODY_INLINE, BODY_REFS, CARRY_APPROVAL_LEN, SaleReader
from posguard.states import (  # the state names are part of this module's interface too (sales.PAID)
    CLOSED,
    DECLINED,
    FINAL,
    NAMES,
    OPEN,
    PAID,
    PAYMENT_PENDING,
    PRINTED,
    PRINTING,
    RECOVERY,
    REMAINING,
    REVERSAL_ACKED,
    REVERSAL_PENDING,
    TRANSITIONS,
    VISITED,
    VOIDED,
)

# MAX_BODY (9 DATA pages, 2088 bytes), SLACK_PAGES and keep_last_max come from journal_limits: one
# source, which the board profile is checked against too.

MAX_LIVE = const(16)  # unfinished sales a checkpoint can list (16 x 12 bytes fits one record)
MAX_TEXT = const(32)  # approval code / void reason
MAX_EXPORT = const(16)  # finished sales per closed_sales() page
MAX_ID = const(0x7FFFFFFF)
# Space new sales never take: the last spare sector, which only maintenance uses (compaction copies
# at most a sector's records before it erases one, so it can always move the tail; posguard.journal),
# and SLACK_PAGES for what power cuts spoil (one page per boot, one per cut).
COPY_NOTE = "reprinted after power loss"
POWER_LOSS = b"power loss"

_ENTRY = "<IBBHHH"  # checkpoint entry: sale id, state, flags, visited mask, body page, auth page
_ENTRY_LEN = const(12)


def _bit(state):
    return 1 << state


def _text(s, what):
    if isinstance(s, str):
        s = s.encode()
    if not isinstance(s, (bytes, bytearray)) or len(s) > MAX_TEXT:
        raise R.JournalError("bad_input", "%s must be text of at most %d bytes" % (what, MAX_TEXT))
    return bytes(s)


def _dumps(body):
    # Compact, and UTF-8 as on the board (MicroPython's json has no ensure_ascii: it never escapes).
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    except TypeError:
        return json.dumps(body, separators=(",", ":"))


def _check_id(sid):
    if not isinstance(sid, int) or isinstance(sid, bool) or not 0 < sid <= MAX_ID:
        raise R.JournalError("bad_input", "sale id must be an integer 1..%d, got %r" % (MAX_ID, sid))


class SaleBook:
    def __init__(self, journal, keep_last=50):
        self.j = journal
        self.keep_last = keep_last
        self.io = SaleReader(journal)
        journal.checkpoint_fn = self._checkpoint
        self.live = {}  # sale id -> [state, visited mask, body page, auth page]
        self.copies = []  # sale ids recovered in PAID/PRINTING: their receipt is printed as a copy
        self.maintenance_allowed = False  # set by the power policy: erases and compaction only then
        self._full = False  # maintenance found nothing to reclaim: say journal_full, not needs_maintenance
        self.doubt = []  # unfinished sales a damaged record named at mount: their state may be one step on
        self.pending = []  # sales recovery could not record yet: maintenance() retries them (no reboot)

    # -- mount and recovery -----------------------------------------------------------------------
    def mount(self, auto_format=True):
        self.live = {}
        self.doubt = []
        st = self.j.mount(self._replay)
        if (st == "blank" or st == "not_formatted") and auto_format:
            self.live = {}  # whatever was replayed before the journal proved unformatted is void
            self.j.format()
            st = self.j.state
        if st != "ok":
            self.live = {}
            code = "corrupt" if st == "corrupt" else "not_formatted"
            raise R.JournalError(code, "journal partition is %s: format it (refuses while sales are open)" % st)
        return self.j.stats()

    def recover(self, auto_format=True):
        """Mount, then apply the recovery rules to every unfinished sale. Returns the report."""
        info = self.mount(auto_format)
        rep = {"mount": info, "voided": [], "reversal_pending": [], "reprint": [], "closed": [], "pending": []}
        self.copies = []
        self.pending = []
        self._recover_sales(sorted(self.live.keys()), rep)
        return rep

    def _recover_sales(self, sids, rep):
        for sid in sids:  # bounded: at most MAX_LIVE
            e = self.live.get(sid)
            if e is None:
                continue
            st = e[0]
            try:
                if st == OPEN and sid in self.doubt:
                    # A damaged record followed its OPEN: the payment may have been requested. A
                    # reversal of a payment that never happened is harmless; a missing one is not.
                    self._force(sid, REVERSAL_PENDING, POWER_LOSS)
                    rep["voided"].append(sid)
                    rep["reversal_pending"].append(sid)
                elif st == OPEN:
                    self._move(sid, VOIDED, POWER_LOSS)
                    rep["voided"].append(sid)
                elif st == PAYMENT_PENDING:
                    self._move(sid, REVERSAL_PENDING, POWER_LOSS)
                    rep["voided"].append(sid)
                    rep["reversal_pending"].append(sid)
                elif st == PAID or st == PRINTING:
                    if sid not in self.copies:
                        self.copies.append(sid)
                    rep["reprint"].append(sid)
                elif st == PRINTED:
                    self._move(sid, CLOSED)
                    rep["closed"].append(sid)
                elif st == REVERSAL_PENDING:
                    rep["reversal_pending"].append(sid)
            except R.JournalError:
                rep["pending"].append(sid)  # no space to record it now: maintenance() retries it
                if sid not in self.pending:
                    self.pending.append(sid)
                continue
            if sid in self.pending:
                self.pending.remove(sid)

    def _replay(self, pg, h, payload):
        if h is None:  # a damaged page: if it named an unfinished sale, that sale may have moved on
            if payload in self.live and payload not in self.doubt and len(self.doubt) < MAX_LIVE:
                self.doubt.append(payload)
            return
        t, st, sid = h[R.H_TYPE], h[R.H_STATE], h[R.H_SID]
        if t == R.T_CHECKPOINT:
            self.live = {}
            for i in range(len(payload) // _ENTRY_LEN):  # the journal passes the entries only
                e = struct.unpack_from(_ENTRY, payload, i * _ENTRY_LEN)
                if 0 < e[1] < len(VISITED):
                    self.live[e[0]] = [e[1], VISITED[e[1]], e[4], e[5]]
        elif t == R.T_OPEN:
            if sid not in self.live:
                self.live[sid] = [OPEN, _bit(OPEN), pg, NONE_PG]
        elif t == R.T_STATE and 0 < st < len(VISITED):
            e = self.live.get(sid)
            if e is None and st not in FINAL and len(self.live) < MAX_LIVE:
                # Its OPEN (or the checkpoint listing it) is damaged: keep the sale, body lost.
                e = [st, VISITED[st], NONE_PG, NONE_PG]
                self.live[sid] = e
            if e is not None:
                self._apply(sid, e, st, pg)
        elif t == R.T_CARRY:
            # The carried state is in the header too (a damaged payload leaves it).
            if st in FINAL or not 0 < st < len(VISITED):
                self.live.pop(sid, None)
            else:
                auth = pg if payload is not None and payload[CARRY_APPROVAL_LEN] else NONE_PG
                self.live[sid] = [st, VISITED[st], pg, auth]

    def _apply(self, sid, e, target, pg):
        e[0] = target
        e[1] = VISITED[target]  # REVERSAL_PENDING includes VOIDED: voided locally, reversal owed
        if target == PAID:
            e[3] = pg
        if target in FINAL:
            del self.live[sid]
            self._full = False  # a finished sale may make old records reclaimable

    def _checkpoint(self):
        out = bytearray(len(self.live) * _ENTRY_LEN)
        i = 0
        for sid, e in self.live.items():
            struct.pack_into(_ENTRY, out, i, sid, e[0], 0, e[1], e[2], e[3])
            i += _ENTRY_LEN
        return out

    # -- transitions ------------------------------------------------------------------------------
    def open_sale(self, sid, body):
        _check_id(sid)
        cur = self._current(sid)
        if cur is not None:
            return NAMES[cur[0]]  # repeated command: the sale exists already
        try:
            data = _dumps(body).encode()
        except (TypeError, ValueError):
            raise R.JournalError("bad_input", "sale body must be JSON-serialisable")
        if len(data) > MAX_BODY:
            raise R.JournalError("too_large", "sale body is %d bytes, at most %d" % (len(data), MAX_BODY))
        if len(self.live) >= MAX_LIVE:
            raise R.JournalError("too_many_open", "%d unfinished sales: finish or void some first" % MAX_LIVE)
        ndata = 0 if len(data) <= R.MAX_PAYLOAD else (len(data) + R.MAX_PAYLOAD - 1) // R.MAX_PAYLOAD
        self._admit(ndata + 1 + REMAINING[OPEN])
        j = self.j
        if ndata == 0:
            pg = j.append(R.T_OPEN, OPEN, BODY_INLINE, sid, data)
        else:
            refs = bytearray(2 * ndata)
            for i in range(ndata):
                chunk = data[i * R.MAX_PAYLOAD : (i + 1) * R.MAX_PAYLOAD]
                struct.pack_into("<H", refs, 2 * i, j.append(R.T_DATA, ndata, i, sid, chunk))
            pg = j.append(R.T_OPEN, OPEN, BODY_REFS, sid, refs)
        self.live[sid] = [OPEN, _bit(OPEN), pg, NONE_PG]
        return "OPEN"

    def request_payment(self, sid):
        return self._move(sid, PAYMENT_PENDING)

    def payment_approved(self, sid, approval):
        return self._move(sid, PAID, _text(approval, "approval code"))

    def payment_declined(self, sid):
        return self._move(sid, DECLINED)

    def start_print(self, sid):
        return self._move(sid, PRINTING)

    def print_done(self, sid):
        st = self._move(sid, PRINTED)
        if sid in self.copies:
            self.copies.remove(sid)
        return st

    def close(self, sid):
        return self._move(sid, CLOSED)

    def void(self, sid, reason):
        reason = _text(reason, "void reason")
        _check_id(sid)
        cur = self._current(sid)
        if cur is None:
            raise R.JournalError("unknown_sale", "no sale %d" % sid)
        if cur[0] == PAYMENT_PENDING:
            return self._move(sid, REVERSAL_PENDING, reason)
        return self._move(sid, VOIDED, reason)

    def reversal_acked(self, sid):
        return self._move(sid, REVERSAL_ACKED)

    def _move(self, sid, target, payload=b""):
        _check_id(sid)
        e = self.live.get(sid)
        if e is None:
            found = self.io.find(sid)
            if found is None:
                raise R.JournalError("unknown_sale", "no sale %d" % sid)
            if found["visited"] & _bit(target):
                return NAMES[found["state"]]
            if found["state"] not in FINAL and len(self.live) < MAX_LIVE:
                # Unfinished but not live: its later record was damaged beyond repair. Take it back.
                e = [found["state"], found["visited"], found["body_pg"], found["auth_pg"]]
                self.live[sid] = e
        if e is None:
            raise R.JournalError(
                "illegal_transition", "sale %d is %s: cannot go to %s" % (sid, NAMES[found["state"]], NAMES[target])
            )
        if e[1] & _bit(target):
            return NAMES[e[0]]  # repeated command
        return self._step(sid, e, target, payload, TRANSITIONS)

    def _force(self, sid, target, payload):
        # Recovery of a doubtful sale: the step the state machine would take from the state it may be in.
        self._step(sid, self.live[sid], target, payload, RECOVERY)

    def _step(self, sid, e, target, payload, allowed):
        # The one place a sale changes state: only along a step posguard.states allows.
        if target not in allowed.get(e[0], ()):
            raise R.JournalError(
                "illegal_transition", "sale %d is %s: cannot go to %s" % (sid, NAMES[e[0]], NAMES[target])
            )
        pg = self.j.append(R.T_STATE, target, 0, sid, payload)
        self._apply(sid, e, target, pg)
        return NAMES[target]

    def _current(self, sid):
        e = self.live.get(sid)
        if e is not None:
            return e
        f = self.io.find(sid)
        return None if f is None else [f["state"], f["visited"]]

    def _admit(self, pages):
        need = pages
        for e in self.live.values():
            need += REMAINING[e[0]]
        if need > self.j.free_pages(False) - SLACK_PAGES:
            code = "journal_full" if self._full and not self.j.dirty_count() else "needs_maintenance"
            raise R.JournalError(code, "journal space is low: a new sale needs maintenance first")

    # -- reading ------------------------------------------------------------------------------------
    def state(self, sid):
        _check_id(sid)
        cur = self._current(sid)
        if cur is None:
            raise R.JournalError("unknown_sale", "no sale %d" % sid)
        return NAMES[cur[0]]

    def sale(self, sid):
        _check_id(sid)
        e = self.live.get(sid)
        if e is not None:
            d = self.io.find(sid) if e[1] & _bit(VOIDED) else None
            out = self.io.details(sid, e[0], e[1], e[2], e[3], None if d is None else d["reason"], 0)
        else:
            d = self.io.find(sid)
            if d is None:
                raise R.JournalError("unknown_sale", "no sale %d" % sid)
            out = self.io.details(
                sid, d["state"], d["visited"], d["body_pg"], d["auth_pg"], d["reason"], d["close_seq"]
            )
        out["state"] = NAMES[out["state"]]
        out["copy"] = sid in self.copies
        return out

    def receipt(self, sid):
        r = self.sale(sid)
        r["copy_note"] = COPY_NOTE if r["copy"] else None
        return r

    def print_queue(self):
        return list(self.copies)

    def reversals(self):
        return sorted(sid for sid, e in self.live.items() if e[0] == REVERSAL_PENDING)

    def open_sales(self):
        return sorted(self.live.keys())

    def closed_sales(self, after=0, limit=8):
        """A page of finished sales still readable (body kept), oldest first, and the next cursor."""
        limit = max(1, min(int(limit), MAX_EXPORT))  # each sale dict costs RAM: pages stay small
        ids, nxt = self.io.closed_page(after, limit)
        out = []
        for sid in ids:
            s = self.sale(sid)
            if not s["body_lost"]:
                out.append(s)
        return out, nxt

    # -- space ------------------------------------------------------------------------------------
    def idle(self):
        """Write the active sector's checkpoint if it has none yet (one page program, never an erase):
        mount then reads one sector. Call it when the terminal is idle so that commits never pay."""
        j = self.j
        if j.mounted and not j.ck_active and j.free_pages(False) > SLACK_PAGES:  # never compaction's reserve
            j.write_checkpoint()
            return True
        return False

    def maintenance(self):
        """One bounded step (at most one sector erase). Returns what was done, or None."""
        if not self.maintenance_allowed or not self.j.mounted:
            return None
        j = self.j
        j.maint = True  # the last spare is maintenance's: compaction may fill it, an erase gives one back
        try:
            if j.erase_one_dirty() >= 0:
                return "erase"
            if self._wants_space() and j.used_count() > 1:
                try:
                    from posguard.compaction import compact_tail  # on demand: maintenance only

                    done = compact_tail(self)
                except R.JournalError as e:
                    # A spare failed its blank check while copying (weak bits after cut erases): what
                    # was copied stays copied; that sector is dirty now, erase it and go on next step.
                    if e.code not in ("needs_maintenance", "journal_full"):
                        raise
                    return "erase" if j.erase_one_dirty() >= 0 else None
                if done:
                    self._full = False
                    return "compact"
                self._full = True
        finally:
            j.maint = False
        if self.pending:
            rep = {"voided": [], "reversal_pending": [], "reprint": [], "closed": [], "pending": []}
            n = len(self.pending)
            self._recover_sales(list(self.pending), rep)
            if len(self.pending) < n:
                return "recover"
        if self.idle():
            return "checkpoint"
        return None

    def _wants_space(self):
        # Keep room for every unfinished sale plus two of the largest new ones, the reserve aside.
        need = 2 * (MAX_DATA_PAGES + 1 + REMAINING[OPEN])
        for e in self.live.values():
            need += REMAINING[e[0]]
        return self.j.free_pages(False) - SLACK_PAGES < need

    def format(self, force=False):
        if self.live and not force:
            raise R.JournalError(
                "sales_open", "%d unfinished sales: format refused (force to override)" % len(self.live)
            )
        self.live = {}
        self.copies = []
        self.doubt = []
        self.pending = []
        self._full = False
        self.j.format()

    def stats(self):
        s = self.j.stats()
        s["live"] = len(self.live)
        s["reprint_queue"] = len(self.copies)
        s["reversals"] = len(self.reversals())
        s["keep_last"] = self.keep_last
        s["recovery_pending"] = len(self.pending)
        return s
