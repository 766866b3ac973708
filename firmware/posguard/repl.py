# Technician REPL API over mpremote:
#   >>> from posguard import repl as pos
#   >>> pos.status()
# Short printed answers a person can read. Uses the running terminal's parts when the app runs (the
# simulator, or a REPL attached while main.py runs), else builds them once without a watchdog (service
# mode: hold the service button for 3 s from boot). A locked terminal (production mode, docs/device.md)
# answers only status(): sales, receipts, printing and calibration need service mode.
import asyncio

from posguard import app, printjobs, profile, receipt
from posguard.records import JournalError

_term = None
_PAGE = 8
_MAX_PAGES = 64  # the journal keeps at most a few hundred closed sales: bounded paging


def _allowed(what):
    if app.mode == "production":
        print("%s: locked (production mode). Service mode: hold the service button for 3 s from reset "
              "(docs/device.md)" % what)
        return False
    return True


def lock():
    """Service (or development) mode: lock this terminal (production mode from the next boot: Ctrl-C ignored while
    trading, REPL API read-only). Undo with pos.unlock() in service mode."""
    if not _allowed("lock"):
        return
    with open(app.LOCK_FILE, "w") as f:
        f.write("locked for production: see docs/device.md\n")
    print("locked: production mode from the next boot")


def unlock():
    """Service mode only: back to a development terminal (Ctrl-C works, full REPL API)."""
    if app.mode != "service":
        print("unlock: only in service mode")
        return
    import os

    try:
        os.remove(app.LOCK_FILE)
    except OSError:
        pass
    print("unlocked: development mode from the next boot")


def _t():
    global _term
    if app.current is not None:
        return app.current
    if _term is None:
        t = app.Terminal(profile.load("board.json"))
        t.build(watchdog=False)
        _term = t
    return _term


def _money(minor):
    return receipt.money(minor)


def status():
    """Battery, printer, journal and the last crash in a few lines."""
    t = _t()
    if t.mon is not None and not app.running:
        t.mon.update()  # nobody else is reading the battery in service mode
    s = t.cmds.status()
    b = s.get("battery")
    if b is None:
        print("battery : monitor not running (see pos.battery())")
    else:
        print("battery : %.0f %%  %s%s%s" % (b["soc_pct"], b["state"], "  REPLACE BATTERY" if b["replace"] else "",
                                             "  CHARGER FAULT" if b["charger_fault"] else ""))
        if b.get("receipts_left") is not None:
            print("          about %d receipts left%s" % (b["receipts_left"],
                                                         ("  (" + b["warning"] + ")") if b.get("warning") else ""))
    p = s["printer"]
    print("printer : %s, %d job(s) queued%s" % (p["problem"] or "ready", p["queued"],
                                                ", parked: " + p["parked"] if p["parked"] else ""))
    j = s.get("journal")
    if j is None:
        print("journal : NOT MOUNTED (see pos.journal())")
    else:
        print("journal : %s %% full, %s spare sector(s), %s unfinished sale(s)" % (
            j["fill_pct"], j["spare"], j["live"]))
        if j.get("corrected") or j.get("corrupt") or j.get("recovery_pending"):
            print("journal : %s page(s) corrected, %s damaged page(s) skipped, %s recovery step(s) waiting for space"
                  % (j.get("corrected"), j.get("corrupt"), j.get("recovery_pending")))
        if s.get("reversals"):
            print("reversals pending:", ", ".join(str(x) for x in s["reversals"]))
    print("sales   : %s" % ("accepted" if s["accepting"] is None else "REFUSED (" + s["accepting"] + ")"))
    last = t.crash.last()
    if last:
        print("last crash:", last)


def battery():
    """A fresh reading and what the monitor makes of it."""
    if not _allowed("battery"):
        return
    mon = _t().mon
    if mon is None:
        print("no battery monitor: see the crash log (pos.status())")
        return
    mon.update()
    if mon.temp_c is None:
        print("pack    : %.3f V  (no temperature sensor)" % mon.pack_v)
    else:
        print("pack    : %.3f V  (%.1f C, %s)" % (mon.pack_v, mon.temp_c, mon.temp_source))
    print("charge  : %.1f %%  state %s" % (mon.soc_pct, mon.state_name))
    print("health  : %s %%  R %s mOhm  %.2f cycles" % (_f(mon.soh_pct), _f(mon.r_int_mohm), mon.cycles))
    flags = []
    if mon.replace_battery:
        flags.append("REPLACE BATTERY")
    if mon.charger_fault:
        flags.append("CHARGER FAULT")
    if mon.fault:
        flags.append("SENSE FAULT: %s" % mon.fault)
    ok, why = mon.can_print()
    print("receipt : %s" % ("can print" if ok else "cannot print (%s)" % why))
    if flags:
        print("warning : " + ", ".join(flags))


def _f(v):
    return "-" if v is None else "%.0f" % v


def calibrate(actual_mv, confirm=False):
    """What a meter reads at the pack now (mV): shows the new gain and offset; confirm=True saves them on
    flash, keeping the old ones for pos.calibrate_undo()."""
    mon = _cal_mon("calibrate")
    if mon is None:
        return
    s = mon.sense
    try:
        g, o = mon.calibrate(actual_mv, save=confirm)
    except ValueError as e:
        print("refused:", e)
        return
    if not confirm:
        print("would set: gain %.4f offset %+.0f mV (now gain %.4f offset %+.0f mV; the pack reads %.3f V)" % (
            g, o, s.gain, s.offset_mv, (s.raw_mv * s.gain + s.offset_mv) / 1000))
        print("nothing saved: pos.calibrate(%r, confirm=True) saves it" % (actual_mv,))
        return
    mon.update()
    print("calibrated: gain %.4f offset %+.0f mV -> pack now reads %.3f V" % (g, o, mon.pack_v))
    print("saved; pos.calibrate_undo() brings back the previous calibration")


def calibrate_undo():
    """Back to the calibration the last pos.calibrate(..., confirm=True) replaced (again: redo)."""
    mon = _cal_mon("calibrate_undo")
    if mon is None:
        return
    r = mon.calibrate_undo()
    if r is None:
        print("nothing to undo: no calibration was saved with pos.calibrate(mv, confirm=True)")
        return
    mon.update()
    print("restored: gain %.4f offset %+.0f mV -> pack now reads %.3f V" % (r[0], r[1], mon.pack_v))


def _cal_mon(what):
    if not _allowed(what):
        return None
    mon = _t().mon
    if mon is None:
        print("no battery monitor")
    return mon


def _print_now(ops):
    t = _t()
    if app.running:
        print("the terminal is running: use pos.reprint(id), it goes through the print queue")
        return None
    if t.mon is not None:
        ok, why = t.mon.can_print(len(ops))
        if not ok:
            print("not printing: battery cannot finish it (%s)" % why)
            return None
    res = asyncio.run(t.drv.print_job(ops))
    print("printer : %s%s" % (res["result"], "" if res["result"] == "printed" else " (%s at line %d)" % (
        res["reason"], res["line"])))
    return res


def test_print():
    """A short test receipt (English and Chinese) straight to the printer."""
    if not _allowed("test_print"):
        return
    t = _t()
    sale = {"id": "TEST", "time": "-", "items": [{"name": "Test \u6d4b\u8bd5", "qty": 1, "unit": 1, "amount": 1}],
            "total": 1, "payment": "-", "header": ["POSGUARD TEST PRINT", t.prof["name"]]}
    _print_now(receipt.layout(sale, t.prof["printer"]["columns"], t.drv.enc.char_cols))


def _last_closed(book):
    after = 0
    last = None
    for _ in range(_MAX_PAGES):
        recs, nxt = book.closed_sales(after, _PAGE)
        if recs:
            last = recs[-1]
        if nxt is None:
            break
        after = nxt
    return last


def last_receipt():
    """The last finished sale, as its receipt reads."""
    if not _allowed("last_receipt"):
        return
    t = _t()
    if t.book is None:
        print("journal not mounted")
        return
    s = None
    if t.jobs.last_sid is not None:
        s = t.book.sale(t.jobs.last_sid)
    if s is None:
        s = _last_closed(t.book)
    if s is None:
        print("no finished sale in the journal")
        return
    sale = printjobs.sale_for_print(s, t.prof["host"]["currency"], [])
    print("sale %d  %s" % (s["id"], s["state"]))
    for op in receipt.layout(sale, t.prof["printer"]["columns"], t.drv.enc.char_cols):
        if op[0] == "text":
            print("  " + op[1])


def journal():
    """Journal fill, unfinished sales, pending reversals, the last finished ids."""
    if not _allowed("journal"):
        return
    t = _t()
    if t.book is None:
        print("journal NOT MOUNTED: last crash:", t.crash.last())
        return
    st = t.book.stats()
    print("journal : %s %% full, %s spare / %s sectors, seq %s, %s corrupt record(s) skipped, %s corrected" % (
        st.get("fill_pct"), st.get("spare"), st.get("sectors"), st.get("seq"), st.get("corrupt_skipped"),
        st.get("corrected")))
    if st.get("recovery_pending"):
        print("recovery: %d sale(s) wait for space: maintenance retries them" % st["recovery_pending"])
    print("erases  : %s" % (st.get("erase_counts"),))
    print("open    : %s" % (", ".join("%d %s" % (sid, t.book.state(sid)) for sid in t.book.open_sales()) or "none"))
    print("reversal: %s" % (", ".join(str(x) for x in t.book.reversals()) or "none"))
    rep = t.recovery
    if rep:
        print("at boot : voided %s, reprint %s, reversal %s" % (rep.get("voided"), rep.get("reprint"),
                                                               rep.get("reversal_pending")))


def reprint(sale_id):
    """A marked copy (DUPLICATE) of a paid sale's receipt."""
    if not _allowed("reprint"):
        return
    t = _t()
    try:
        st = t.book.state(sale_id)
    except (JournalError, AttributeError) as e:
        print("no such sale:", e)
        return
    if st not in ("PRINTED", "CLOSED", "PAID", "PRINTING"):
        print("sale %d is %s: it has no receipt" % (sale_id, st))
        return
    if app.running:
        print("queued" if t.jobs.add(printjobs.REPRINT, sale_id) else "print queue full: try again later")
        return
    s = t.book.receipt(sale_id)
    sale = printjobs.sale_for_print(s, t.prof["host"]["currency"], t.jobs.header)
    _print_now(receipt.layout(sale, t.prof["printer"]["columns"], t.drv.enc.char_cols, printjobs.REPRINT))
