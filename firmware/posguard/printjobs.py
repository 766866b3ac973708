# The printer worker: a bounded queue of receipt jobs (originals, copies, void slips) printed one at
# a time, each only when the power policy says it can finish, with the sale's journal transitions
# around it (PAID -> PRINTING before the first byte, PRINTED -> CLOSED after the last).
import asyncio

from micropython import const

from posguard import printer_status, receipt
from posguard.escpos import is_wide
from posguard.printer_link import sleep_ms
from posguard.records import JournalError

ORIGINAL = "original"
DUPLICATE = "duplicate"  # a marked copy of a sale found PAID/PRINTING after a power loss
RETRY = "retry"  # a marked copy after a failed job (the paper may carry part of the original)
REPRINT = "reprint"  # a marked copy the host or a technician asked for
VOID = "void"  # the VOID slip of a sale voided after the payment request
_FINISH = "finish"  # printed, but PRINTED/CLOSED could not be journaled yet: retry only that

# The queue is a view over what the journal owes: every PAID/PRINTING sale has its job (at most
# sales.MAX_LIVE of them, so originals never meet a cap). Only what the journal does not track is
# capped, and refused *before* any state change: void slips (a void of a PAYMENT_PENDING sale is
# refused with BUSY when this many slips wait) and reprints on request.
VOIDS_MAX = const(8)
REPRINTS_MAX = const(4)
_CAP = const(28)  # 16 unfinished sales (sales.MAX_LIVE) + void slips + reprints
RETRY_AFTER_S = const(10)  # a BUSY refusal's hint: about one receipt's print time
_PARK_S = 5.0  # re-ask the power policy this often while a receipt is parked
_RETRY_S = 5.0  # re-poll a printer fault this often
_SAG_EVERY_MS = const(50)  # battery sag samples while a receipt prints (a text line's rows take ~50-100 ms)
_JOURNALED = ("PAID", "PRINTING")
_OWED_KINDS = (ORIGINAL, DUPLICATE, RETRY, _FINISH)  # jobs that stand for a PAID/PRINTING sale
_HELD_MAX = const(8)  # held receipts reported in status (the journal keeps every one of them)
UNPRINTABLE = "unprintable"  # printer.Printer's reason prefix when a data file (GB table) fails


def parse_approval(text):
    """The approval field as the host link stores it: 'method:last4:auth' -> (method, last4, auth)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode()
    if not text:
        return "", "", ""
    parts = text.split(":")
    while len(parts) < 3:
        parts.append("")
    return parts[0], parts[1], parts[2]


def _has_cjk(s):
    # A name with an East Asian wide character gets the Chinese labels: the same ranges the encoder
    # draws double width (escpos.is_wide), not a second list.
    for ch in s:
        if is_wide(ord(ch)):
            return True
    return False


def sale_for_print(s, currency, header):
    """A journal sale (book.sale()) -> the printer's sale dict (docs/printer.md)."""
    body = s.get("body") or {}
    items = []
    total = 0
    lang = "en"
    for it in body.get("i", ()):
        name, qty, price = it[0], it[1], it[2]
        items.append({"name": name, "qty": qty, "unit": price, "amount": qty * price})
        total += qty * price
        if _has_cjk(name):
            lang = "zh"
    method, last4, _auth = parse_approval(s.get("approval"))
    d = {
        "id": "%d" % s["id"],
        "time": body.get("t") or "-",
        "lang": lang,
        "currency": currency,
        "header": header,
        "items": items,
        "total": total,
        "payment": method or "-",
    }
    if last4:
        d["card_last4"] = last4
    reason = s.get("reason")
    if reason:
        d["void_reason"] = reason.decode() if isinstance(reason, (bytes, bytearray)) else reason
    return d


class PrintJobs:
    def __init__(self, book, drv, mon, prof, cap=_CAP):
        self.book = book
        self.drv = drv
        self.mon = mon
        self.columns = prof["printer"]["columns"]
        self.currency = prof["host"]["currency"]
        self.header = ["POSGUARD", prof["name"]]
        self.cap = cap
        self._q = []  # [kind, sale id], at most cap
        self._wake = asyncio.Event()
        self._check_status = False
        self.before_job = None  # fn() the app runs between two jobs (journal maintenance, printer idle)
        self.problem = ""  # printer fault that stops printing ("paper out"...), "" when fine
        self.parked = ""  # why the head job waits for the power policy, "" when it does not
        self.active = None  # sale id on the printer now
        self.last_sid = None  # the last sale printed as an original (reprint without an id)
        self.counts = {ORIGINAL: 0, DUPLICATE: 0, RETRY: 0, REPRINT: 0, VOID: 0, "failed": 0, "dropped": 0,
                       "held": 0}
        # Sale ids whose receipt cannot be printed by this firmware (a missing or broken data file):
        # taken off the queue, never retried in a loop, reported in status; the sale stays journaled.
        self.held = []
        self.last_hold = ""

    # -- queue --------------------------------------------------------------------------------------
    def add(self, kind, sid):
        """Queue a job; False (nothing queued) only for a void slip or a reprint over its cap. A job
        already queued is not queued twice."""
        for j in self._q:
            if j[1] == sid and (j[0] == kind or (kind != VOID and kind != REPRINT and j[0] in _OWED_KINDS)):
                return True
        if not self.room(kind):
            return False
        self._q.append([kind, sid])
        self._wake.set()
        return True

    def room(self, kind):
        """Whether a job of this kind can be queued now (originals and power-loss copies always can)."""
        if kind == VOID:
            return self._count(VOID) < VOIDS_MAX
        if kind == REPRINT:
            return self._count(REPRINT) < REPRINTS_MAX
        return True

    def _count(self, kind):
        n = 0
        for j in self._q:
            if j[0] == kind:
                n += 1
        return n

    def sync(self):
        """Queue the receipt of every sale the journal says is PAID or PRINTING and has no job (the
        journal is the truth; the queue only remembers the order). Bounded: sales.MAX_LIVE sales."""
        book = self.book
        if book is None:
            return 0
        added = 0
        for sid in book.open_sales():
            try:
                st = book.state(sid)
            except JournalError:
                continue
            if sid in self.held:
                continue  # this firmware cannot print it (a data file): reported, never retried in a loop
            if st in _JOURNALED or st == "PRINTED":
                owed = False
                for j in self._q:
                    if j[1] == sid and j[0] in _OWED_KINDS:
                        owed = True
                        break
                if not owed:
                    self._q.append([ORIGINAL if st != "PRINTED" else _FINISH, sid])
                    added += 1
        if added:
            self._wake.set()
        return added

    def owed(self):
        """Receipts the terminal still owes, from the journal: sales PAID, PRINTING or PRINTED (not
        yet closed), and the void slips waiting in the queue."""
        n = self._count(VOID)
        book = self.book
        if book is None:
            return n
        for sid in book.open_sales():
            try:
                if book.state(sid) in ("PAID", "PRINTING"):
                    n += 1
            except JournalError:
                pass
        return n

    def pending(self):
        return len(self._q)

    def queued(self, sid):
        for j in self._q:
            if j[1] == sid:
                return True
        return False

    def poke(self):
        self._wake.set()

    def check_printer(self):
        """Ask the worker for a status poll when it is idle (the app calls this about once a minute;
        asyncio.wait_for on the wake event would do it too, but crashes the unix port's VM)."""
        self._check_status = True
        self._wake.set()

    def on_printer_event(self, kind, detail):
        """printer.Printer's on_event: a paused job names the fault at once, so new sales are refused
        while the paper is out, not only after the job gave up."""
        if kind == "paused":
            at = detail.find(" at line")
            self.problem = detail[:at] if at >= 0 else detail
        elif kind == "resumed":
            self.problem = ""
        if kind in ("paused", "resumed") and hasattr(self.mon, "pause_load"):
            self.mon.pause_load(kind == "paused")  # a stopped printer draws idle current only

    # -- worker -------------------------------------------------------------------------------------
    async def run(self):
        while True:
            if not self._q:
                self.sync()  # a paid sale never waits on a job that got lost
            if not self._q:
                self._wake.clear()
                await self._wake.wait()
                if self._check_status and not self._q:
                    # Idle: look at the printer now and then, so paper out shows before the next sale.
                    self._check_status = False
                    if self.drv.cfg["answers_status"]:
                        self.problem = printer_status.fault_of(await self.drv.status())
                continue
            job = self._q[0]
            if self.before_job is not None:
                self.before_job()
            if await self._one(job):
                self._q.pop(0)

    def layout_error(self, body, approval=None):
        """Why the receipt of a sale with this body could not be laid out on this printer, or None.
        The host link asks at open, so a receipt is refused before payment, never dropped after."""
        s = {"id": 0x7FFFFFFF, "state": "PAID", "body": body, "approval": approval or "card:0000:AUTHCODE1234"}
        cols_of = self.drv.enc.char_cols if self.drv is not None else _cols_of
        try:
            for copy in (ORIGINAL, DUPLICATE):
                receipt.layout(sale_for_print(s, self.currency, self.header), self.columns, cols_of, copy)
        except ValueError as e:
            return str(e)
        except OSError:
            # A data file (the GB table) is missing or broken: the layout cannot be checked here, and the
            # printer task holds such a receipt (reported in status) instead of looping on it.
            return None
        return None

    async def _printer_ok(self):
        if self.problem.startswith("receipt layout"):
            self.problem = ""
        if not self.problem:
            return True
        if not self.drv.cfg["answers_status"]:
            # No status to ask: the retry itself is the test (a failed job waited _RETRY_S already).
            self.problem = ""
            return True
        st = await self.drv.status()
        f = printer_status.fault_of(st)
        if f:
            self.problem = f
            await asyncio.sleep(_RETRY_S)
            return False
        self.problem = ""
        return True

    async def _one(self, job):
        """One attempt at the head job. True when it is finished (or can never be)."""
        kind, sid = job
        book = self.book
        if kind == _FINISH:
            return await self._finish_or_wait(sid)
        try:
            s = book.receipt(sid)
        except JournalError:
            self.counts["dropped"] += 1
            return True
        state = s["state"]
        journaled = kind != VOID and state in _JOURNALED
        if kind == ORIGINAL and not journaled:
            return True  # already printed (a repeated approve) or never paid
        if s.get("body_lost"):
            self.counts["dropped"] += 1
            return True
        copy = kind
        if journaled and s.get("copy"):
            copy = DUPLICATE  # found paid after a power loss: only a marked copy from here on
        elif journaled and state == "PRINTING":
            copy = RETRY  # a job failed part-way: something may already be on paper
        if not await self._printer_ok():
            return False
        try:
            ops = receipt.layout(sale_for_print(s, self.currency, self.header), self.columns,
                                 self.drv.enc.char_cols, copy)
        except ValueError as e:
            # Cannot happen for a sale admitted by layout_error() at open; if it does, say so (new
            # sales are refused) and leave the sale PAID in the journal: still owed, sync() retries it.
            self.counts["dropped"] += 1
            self.problem = "receipt layout: %s" % e
            await asyncio.sleep(_RETRY_S)
            return True
        except OSError as e:  # the GB table missing or unreadable (gb.TableError is an OSError)
            return self._hold(sid, e)
        mon = self.mon
        if mon is not None:
            if getattr(mon, "resting", False):
                # After any reset nothing prints before a rested reading (the reset may have been a
                # brownout under this very receipt): the recovered copy waits here, not 15 ms after boot.
                ok, why = False, "resting after boot"
            else:
                ok, why = mon.can_print(len(ops))
            if not ok:
                self.parked = why
                await asyncio.sleep(_PARK_S)
                return False
        self.parked = ""
        if journaled:
            book.start_print(sid)  # journaled before the first byte goes to the printer
        res = await self._print(ops, sid)
        if res["result"] != "printed":
            self.counts["failed"] += 1
            reason = res["reason"]
            if reason.startswith("bad input"):
                self.counts["dropped"] += 1
                return True
            if reason.startswith(UNPRINTABLE):
                return self._hold(sid, reason)
            self.problem = reason
            await asyncio.sleep(_RETRY_S)
            return False
        self.counts[copy if copy in self.counts else kind] += 1
        if journaled:
            if copy == ORIGINAL:
                self.last_sid = sid
            job[0] = _FINISH
            return await self._finish_or_wait(sid)
        return True

    def _hold(self, sid, why):
        """A receipt this firmware cannot print: retrying would fail the same way (and a crashing
        printer task would reset the board, and recovery queue it again: a reset loop)."""
        self.counts["held"] += 1
        if sid not in self.held:
            if len(self.held) >= _HELD_MAX:
                self.held.pop(0)
            self.held.append(sid)
        self.last_hold = "sale %s: %s" % (sid, why)
        return True

    async def _finish_or_wait(self, sid):
        if self._finish(sid):
            return True
        await asyncio.sleep(_RETRY_S)
        return False

    async def _print(self, ops, sid):
        mon = self.mon
        drv = self.drv
        heat = None
        if mon is not None:
            heat = mon.heat_setting()
            drv.set_heat(heat[3], heat[4], heat[5])
        self.active = sid
        if mon is not None:
            mon.update()  # a fresh idle reading just before the step the monitor measures R from
            mon.set_load(True, heat)
            if hasattr(mon, "sample_sag"):
                asyncio.create_task(self._watch_sag(mon, sid))
        try:
            return await drv.print_job(ops)
        finally:
            self.active = None
            if mon is not None:
                mon.set_load(False)

    async def _watch_sag(self, mon, sid):
        # The 1 s battery updates fall between the strobes of the densest rows; these samples catch the sag
        # the receipt prediction has to cover (powermon.sample_sag). Ends with the job.
        for _ in range(30000):  # bounded: 10 minutes of printing
            if self.active != sid:
                return
            mon.sample_sag()
            await sleep_ms(_SAG_EVERY_MS)

    def _finish(self, sid):
        try:
            self.book.print_done(sid)
            self.book.close(sid)
        except JournalError as e:
            if e.code in ("unknown_sale", "illegal_transition"):
                return True
            self.problem = "journal: " + e.code
            return False
        return True


def _cols_of(cp):
    # Without a driver (tests): wide glyphs take two columns, as escpos.Encoder draws them in UTF-8.
    return 2 if cp >= 0x80 and is_wide(cp) else 1
