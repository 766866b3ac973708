# Host-link operations -> journal, printer queue and power policy. Every reply says ok, or gives an
# error code, a message and what to do. Order inside each operation: refuse (validation, power,
# printer, journal space) before anything is written; journal the transition; then the side effect
# (queue the receipt). A failing journal call changes nothing (docs/journal.md).
import binascii
import hashlib

from micropython import const

from posguard import printer_status, printjobs
from posguard.hostlink import dumped_len
from posguard.records import JournalError
from posguard.validate import HostError

_EXPORT_BYTES = const(3072)  # an export reply stays a few KB: the host pages for more
_ENVELOPE = const(96)  # {"ok": true, "seq": N, "records": [...], "next": N} around the records
_VOIDED = ("VOIDED", "REVERSAL_PENDING", "REVERSAL_ACKED")
_PAID_ON = ("PAID", "PRINTING", "PRINTED", "CLOSED")
_EXPORT_DEFAULT = const(4)

# Journal error code -> (host code, what the cashier should do)
_JOURNAL = {
    "unknown_sale": ("UNKNOWN_SALE", "open the sale first, or check the id"),
    "illegal_transition": ("ILLEGAL_TRANSITION", "ask {\"op\":\"sale\"} for its state and continue from there"),
    "too_large": ("TOO_LARGE", "split the sale or shorten item names"),
    "bad_input": ("BAD_FIELD", "see docs/terminal.md for the request format"),
    "journal_full": ("JOURNAL_FULL", "export and clear the journal on the charger; call service if it persists"),
    "needs_maintenance": ("JOURNAL_MAINTENANCE",
                          "put the terminal on the charger for a minute: flash maintenance runs when power allows"),
    "too_many_open": ("TOO_MANY_OPEN", "finish or void the open sales first"),
    "not_formatted": ("JOURNAL_FAULT", "service: the journal partition must be formatted"),
    "corrupt": ("JOURNAL_FAULT", "service: the journal partition is unreadable"),
}


def _journal_error(e):
    code, todo = _JOURNAL.get(e.code, ("JOURNAL_ERROR", "retry; call service if it persists"))
    return HostError(code, str(e), todo)


def open_digest(items, t):
    """Digest of an open request's body (items and the app's time), kept in the journaled sale body:
    the same open again is a retry, different contents under the same id are DUPLICATE_ID. A byte
    form of our own, so CPython and MicroPython agree (their json.dumps differ)."""
    h = hashlib.sha256()
    for it in items:
        h.update(("%s\x00%d\x00%d\x01" % (it[0], it[1], it[2])).encode())
    h.update(("t\x00%s" % (t or "")).encode())
    return binascii.hexlify(h.digest()[:8]).decode()


def _duplicate(sid, what):
    return HostError("DUPLICATE_ID", "sale %d exists with different %s: nothing changed" % (sid, what),
                     "a new sale needs a new id; a retry must repeat the request unchanged")


def error_reply(seq, e):
    r = {"ok": False, "seq": seq, "err": e.code, "msg": e.msg}
    if e.todo:
        r["do"] = e.todo
    ra = getattr(e, "retry_after_s", None)
    if ra is not None:
        r["retry_after_s"] = ra
    state = getattr(e, "state", None)
    if state is not None:
        r["state"] = state
    return r


class Commands:
    def __init__(self, book, jobs, mon, time_fn=None, extra_status=None):
        self.book = book  # sales.SaleBook, or None when the journal could not be mounted
        self.jobs = jobs  # printjobs.PrintJobs
        self.mon = mon  # powermon.PowerMonitor, or None
        self.time_fn = time_fn  # -> "YYYY-MM-DD HH:MM" from the RTC when the app sends no time
        self.extra_status = extra_status  # -> dict merged into the status reply (boots, crashes)
        self._methods = {}  # sale id -> payment method between pay and approve (RAM, <= MAX_LIVE)
        self.handled = 0
        self.refused = 0
        self.maintenance_wanted = False  # the journal asked for an erase: the app runs maintenance sooner

    def handle(self, req):
        """A validated request -> reply dict. Never raises for anything the host sent."""
        seq = req.get("seq")
        try:
            r = self._dispatch(req)
        except HostError as e:
            self.refused += 1
            return error_reply(seq, e)
        except JournalError as e:
            self.refused += 1
            if e.code == "needs_maintenance":
                self.maintenance_wanted = True
            he = _journal_error(e)
            sid = req.get("id")
            if e.code == "illegal_transition" and sid is not None:
                try:
                    he.state = self.book.state(sid)
                except JournalError:
                    pass
            return error_reply(seq, he)
        self.handled += 1
        r["ok"] = True
        r["seq"] = seq
        return r

    # -- gates ------------------------------------------------------------------------------------
    def _need_book(self):
        if self.book is None:
            raise HostError("JOURNAL_FAULT", "the journal could not be mounted: no sales possible",
                            "service: see pos.journal() on the REPL")
        return self.book

    def _gate_new_sale(self):
        """Refuse before anything is written: a sale must be able to reach its printed receipt."""
        mon = self.mon
        if mon is not None:
            name = mon.state_name
            if name == "FAULT":
                raise HostError("BATTERY_FAULT", "battery sense fault (%s): no sales" % mon.fault,
                                "service the terminal: pos.battery() on the REPL")
            if name == "CRITICAL" or name == "SHUTDOWN":
                raise HostError("BATTERY_CRITICAL",
                                "battery critical (%d %%): no new sales, paid receipts still print" % int(mon.soc_pct),
                                "connect the charger and wait until the battery is above the low level")
            ok, why = mon.can_print()
            if not ok:
                # The receipt of a new sale could not finish now (the policy's own answer, e.g. the
                # predicted sag under the printer's peak current): refuse before anything is written.
                raise HostError("BATTERY_CRITICAL", "battery cannot print a receipt now (%s): no new sales" % why,
                                "connect the charger; paid receipts print as soon as the battery allows")
        p = self.jobs.problem
        if p:
            code, todo = printer_status.refusal(p)
            raise HostError(code, "printer out of paper: no new sales" if code == "PAPER_OUT" else
                            "printer problem (%s): no new sales" % p, todo)

    # -- operations -------------------------------------------------------------------------------
    def _dispatch(self, req):
        op = req["op"]
        if op == "status":
            return self.status()
        if op == "export":
            return self._export(req)
        book = self._need_book()
        sid = req.get("id")
        if op == "sale":
            return self._sale_reply(sid)
        if op == "open":
            digest = open_digest(req["items"], req.get("time"))
            if self._exists(sid):
                self._same_open(sid, req["items"], digest)
                return self._sale_reply(sid)  # idempotent: the same sale is there already
            self._gate_new_sale()
            body = {"t": req.get("time") or self._now(), "i": [list(it) for it in req["items"]], "h": digest}
            why = self.jobs.layout_error(body)
            if why is not None:
                # Refused before payment: a paid sale whose receipt cannot be printed must never happen.
                raise HostError("RECEIPT_LAYOUT", "this sale's receipt cannot be laid out on this printer (%s): "
                                "refused, nothing stored" % why, "shorten the item names or split the sale")
            return {"id": sid, "state": book.open_sale(sid, body)}
        if op == "pay":
            cur = book.state(sid)
            if cur in _VOIDED:
                e = HostError("ILLEGAL_TRANSITION", "sale %d was voided: it takes no payment" % sid,
                              "ring the sale up again under a new id")
                e.state = cur
                raise e
            if cur == "OPEN":
                self._gate_new_sale()
                if len(self._methods) < 32:
                    self._methods[sid] = req["method"]
            else:
                known = self._methods.get(sid)
                if known is None and cur in _PAID_ON:
                    known = printjobs.parse_approval(book.sale(sid).get("approval"))[0] or None
                if known is not None and known != req["method"]:
                    raise _duplicate(sid, "payment method")
            return {"id": sid, "state": book.request_payment(sid)}
        if op == "approve":
            # Never refused for power or paper: the customer has paid, the journal must know it.
            method = self._methods.get(sid)
            last4 = req.get("last4") or ""
            cur = book.state(sid)
            if cur in _PAID_ON:
                m0, l0, a0 = printjobs.parse_approval(book.sale(sid).get("approval"))
                if a0 and (a0 != req["auth"] or l0 != last4 or (method is not None and m0 != method)):
                    raise _duplicate(sid, "approval")
            approval = ("%s:%s:%s" % (method or "card", last4, req["auth"])).encode()
            st = book.payment_approved(sid, approval)
            self._methods.pop(sid, None)
            if st in ("PAID", "PRINTING"):
                # The journal says a receipt is owed: its job (never refused; a recovered sale's copy
                # already stands for it).
                self.jobs.add(printjobs.ORIGINAL, sid)
            return self._sale_reply(sid)
        if op == "decline":
            self._methods.pop(sid, None)
            return {"id": sid, "state": book.payment_declined(sid)}
        if op == "void":
            cur = book.state(sid)
            if cur == "PAYMENT_PENDING" and not self.jobs.room(printjobs.VOID):
                raise self._busy("void slips")
            st = book.void(sid, (req.get("reason") or "cancelled").encode())
            self._methods.pop(sid, None)
            if cur == "PAYMENT_PENDING" and st == "REVERSAL_PENDING":
                # The acquirer may have approved: the customer gets a VOID slip to show.
                self.jobs.add(printjobs.VOID, sid)
            return {"id": sid, "state": st}
        if op == "ack_reversal":
            return {"id": sid, "state": book.reversal_acked(sid)}
        if op == "reprint":
            return self._reprint(sid)
        raise HostError("UNKNOWN_OP", "unknown operation", "see docs/terminal.md")

    def _exists(self, sid):
        try:
            self.book.state(sid)
            return True
        except JournalError:
            return False

    def _same_open(self, sid, items, digest):
        body = self.book.sale(sid).get("body")
        if body is None:
            return  # compacted away: nothing left to compare, the id is taken either way
        stored = body.get("h")
        if stored is not None:
            same = stored == digest
        else:  # journaled before digests: compare the items
            same = body.get("i") == [list(it) for it in items]
        if not same:
            raise _duplicate(sid, "items")

    def _busy(self, what):
        return HostError("BUSY", "print queue holds the most %s it takes: refused, nothing changed" % what,
                         "ask again in %d s, when a receipt has printed" % printjobs.RETRY_AFTER_S,
                         printjobs.RETRY_AFTER_S)

    def _sale_reply(self, sid):
        st = self.book.state(sid)
        r = {"id": sid, "state": st}
        if self.jobs.queued(sid):
            r["printing"] = "parked: " + self.jobs.parked if self.jobs.parked else "queued"
        return r

    def _reprint(self, sid):
        if sid is None:
            sid = self.jobs.last_sid
            if sid is None:
                raise HostError("UNKNOWN_SALE", "no receipt printed since this boot", "reprint by sale id")
        st = self.book.state(sid)
        if st in ("PAID", "PRINTING"):
            return self._sale_reply(sid)  # its receipt is on the way (or will be, as a marked copy)
        if st not in ("PRINTED", "CLOSED"):
            e = HostError("ILLEGAL_TRANSITION", "sale %d has no receipt to reprint" % sid,
                          "only paid and printed sales have receipts")
            e.state = st
            raise e
        if self.jobs.problem == printer_status.PAPER_OUT:
            raise HostError("PAPER_OUT", "printer out of paper", "load a new paper roll, then ask again")
        if not self.jobs.add(printjobs.REPRINT, sid):
            raise self._busy("reprints")
        return {"id": sid, "state": st, "printing": "queued", "copy": True}

    def _export(self, req):
        book = self._need_book()
        recs, nxt = book.closed_sales(req.get("after") or 0, req.get("limit") or _EXPORT_DEFAULT)
        out = []
        size = 0
        for s in recs:
            method, last4, auth = printjobs.parse_approval(s.get("approval"))
            reason = s.get("reason")
            rec = {"id": s["id"], "state": s["state"], "body": s.get("body"), "method": method,
                   "last4": last4, "auth": auth, "cursor": s.get("close_seq")}
            if reason:
                rec["reason"] = reason.decode() if isinstance(reason, (bytes, bytearray)) else reason
            # Measured as it goes out: hostlink.send writes the bytes of json.dumps(reply) (CPython escapes
            # non-ASCII as \uXXXX, six bytes a character), without building them here either.
            size += dumped_len(rec) + 2
            if out and size > _EXPORT_BYTES - _ENVELOPE:
                nxt = out[-1]["cursor"]  # the rest on the next page
                break
            out.append(rec)
        return {"records": out, "next": nxt}

    def status(self):
        r = {}
        mon = self.mon
        if mon is not None:
            r["battery"] = {
                "soc_pct": round(mon.soc_pct, 1),
                "state": mon.state_name,
                "soh_pct": round(mon.soh_pct, 1) if mon.soh_pct is not None else None,
                "replace": bool(mon.replace_battery),
                "charger_fault": bool(mon.charger_fault),
                "fault": mon.fault,
                # standard receipts left before a receipt's pulse would reach the cutoff (None: unknown yet)
                "receipts_left": getattr(mon, "receipts_left", None),
                "warning": getattr(mon, "low_warning", None),  # None or "battery low: about N receipts left"
                "temp_source": getattr(mon, "temp_source", None),  # "thermistor", "mcu" or "none"
            }
        jobs = self.jobs
        r["printer"] = {"problem": jobs.problem or None, "queued": jobs.pending(), "parked": jobs.parked or None,
                        "owed": jobs.owed()}
        book = self.book
        if book is not None:
            st = book.stats()
            r["journal"] = {"fill_pct": st.get("fill_pct"), "spare": st.get("spare"), "live": st.get("live"),
                            "corrected": st.get("corrected"), "corrupt": st.get("corrupt_skipped"),
                            "recovery_pending": st.get("recovery_pending")}
            r["reversals"] = book.reversals()
        else:
            r["journal"] = None
        r["accepting"] = self.accepting()
        if self.extra_status is not None:
            r.update(self.extra_status())
        return r

    def accepting(self):
        """None when a new sale would be accepted now, else the refusal code."""
        try:
            self._need_book()
            self._gate_new_sale()
        except HostError as e:
            return e.code
        return None

    def _now(self):
        return self.time_fn() if self.time_fn is not None else "-"
