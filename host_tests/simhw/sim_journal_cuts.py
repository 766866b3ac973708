# Power-cut proof harness for the sale journal (MicroPython subset: runs in pytest, on the unix port
# and in the benchmark). A scripted session of sales is replayed by a "host" against a SaleBook on a
# simulated NOR flash; the power is cut at a chosen flash operation; the board reboots (new objects
# over the same flash = RAM gone, flash as it landed), recovers, finishes the work (prints queued
# copies, acknowledges reversals), the host re-sends the command it was on, and the session goes on.
# At the end the invariants of the issue are checked.
import sim_flash
import sim_power

from posguard import records as R
from posguard import sales as S
from posguard.journal import FIRST_REC, PAGES, Journal

_MAX_BOOTS = 200
_MAX_MAINT = 64


def body(arg):
    """The sale body the host sends; scripts keep only (item name, item count, total) in RAM."""
    name, n, total = arg
    return {"items": [[name, 1 + k % 3, 100 + 5 * k] for k in range(n)], "total": total}


def session(extra=0):
    """The scripted session: every path, a large body (data pages), and maintenance in the middle,
    run while sales are unfinished (a reversal owed, a paid sale with a large body not yet printed)
    so that compaction has live sales to carry."""
    s = [
        (1, "open", ("coffee", 2, 205)),
        (1, "pay", None),
        (1, "approve", "AUTH01"),
        (1, "print", None),
        (1, "close", None),
        (2, "open", ("tea", 1, 100)),
        (2, "pay", None),
        (2, "decline", None),
        (3, "open", ("cake", 3, 315)),
        (3, "void", "customer left"),
        (4, "open", ("juice", 1, 100)),
        (4, "pay", None),
        (4, "void", "terminal timeout"),  # the reversal stays owed until the very end
        (5, "open", ("menu item with a long name", 16, 999)),
        (5, "pay", None),
        (5, "approve", "AUTH05"),  # printed only later, after maintenance has moved it
        (0, "maint", None),
    ]
    sid = 6
    for k in range(6 + extra):
        s.append((sid, "open", ("bun", 1 + k % 4, 100 + k)))
        s.append((sid, "pay", None))
        if k % 3 == 2:
            s.append((sid, "decline", None))
        else:
            s.append((sid, "approve", "AUTH%02d" % sid))
            if k % 2 == 1:
                s.append((0, "maint", None))  # while this sale is PAID
            s.append((sid, "print", None))
            s.append((sid, "close", None))
        if k == 5 + extra:
            s.append((5, "print", None))
            s.append((5, "close", None))
        sid += 1
    s.append((0, "maint", None))
    s.append((4, "ack", None))
    return s


class Host:
    def __init__(self):
        self.confirmed = []  # sales whose approval the terminal confirmed as PAID
        self.dead = []  # sales the host gave up on (recovery voided them)
        self.prints = []  # (sale id, copy) for every receipt that came out of the printer


def boot(flash, keep_last):
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=keep_last)
    report = book.recover()
    return book, report


def maintain(book):
    book.maintenance_allowed = True
    for _ in range(_MAX_MAINT):
        if book.maintenance() is None:
            break
    book.maintenance_allowed = False


def _retry(book, fn, *args):
    try:
        return fn(*args)
    except R.JournalError as e:
        if e.code != "needs_maintenance":
            raise
    maintain(book)
    return fn(*args)


def app_print(book, host, sid):
    """What the app does: start printing only from PAID (or print the queued copy), then PRINTED."""
    st = book.state(sid)
    if st == "PAID":
        _retry(book, book.start_print, sid)
    elif st != "PRINTING":
        return
    r = book.receipt(sid)
    host.prints.append((sid, r["copy"]))
    _retry(book, book.print_done, sid)


def finish(book, host):
    for sid in book.print_queue():
        app_print(book, host, sid)
        _retry(book, book.close, sid)
    for sid in book.reversals():
        _retry(book, book.reversal_acked, sid)


def step(book, host, st):
    sid, act, arg = st
    if act == "maint":
        maintain(book)
        return
    if sid in host.dead:
        return
    try:
        if act == "open":
            _retry(book, book.open_sale, sid, body(arg))
        elif act == "pay":
            _retry(book, book.request_payment, sid)
        elif act == "approve":
            if _retry(book, book.payment_approved, sid, arg) == "PAID" and sid not in host.confirmed:
                host.confirmed.append(sid)
        elif act == "decline":
            _retry(book, book.payment_declined, sid)
        elif act == "print":
            app_print(book, host, sid)
        elif act == "close":
            _retry(book, book.close, sid)
        elif act == "void":
            _retry(book, book.void, sid, arg)
        elif act == "ack":
            _retry(book, book.reversal_acked, sid)
    except R.JournalError as e:
        if e.code not in ("illegal_transition", "unknown_sale"):
            raise
        host.dead.append(sid)  # recovery moved the sale on (voided it): the host drops it


def run(flash, script, keep_last=2, cuts=None):
    """Replay the script; cuts() is called at every boot and may arm the next cut. Returns
    (book, host, boots)."""
    host = Host()
    i = 0
    for boots in range(1, _MAX_BOOTS + 1):
        if cuts is not None:
            cuts(flash)
        try:
            book, _ = boot(flash, keep_last)
            finish(book, host)
            while i < len(script):
                step(book, host, script[i])
                i += 1
                book.idle()
            finish(book, host)
            flash.disarm()
            return book, host, boots
        except sim_power.PowerLoss:
            p = sim_power.POWER
            if p is not None:
                p.on = True  # the next boot
    raise AssertionError("session did not finish in %d boots" % _MAX_BOOTS)


def check(book, host, script):
    """The invariants of the issue; raises AssertionError naming the broken one."""
    sids = []
    for st in script:
        if st[0] and st[0] not in sids:
            sids.append(st[0])
    assert not book.live, "unfinished sales left after finishing: %r" % book.live
    originals = {}
    printed = {}
    for sid, copy in host.prints:
        printed[sid] = printed.get(sid, 0) + 1
        if not copy:
            originals[sid] = originals.get(sid, 0) + 1
    for sid, n in originals.items():
        assert n == 1, "sale %d printed %d times unmarked" % (sid, n)
    for sid in host.confirmed:
        assert printed.get(sid, 0) >= 1, "PAID sale %d never printed" % sid
    for sid in sids:
        f = book.io.find(sid)
        if f is None:
            continue  # compacted away (older than keep_last) or never opened
        paid = f["visited"] & (1 << S.PAID)
        assert not (paid and f["visited"] & (1 << S.VOIDED)), "sale %d both PAID and VOIDED" % sid
        if sid in host.confirmed:
            assert f["state"] == S.CLOSED, "PAID sale %d ended %s" % (sid, S.NAMES[f["state"]])
        if sid in printed:
            assert paid, "sale %d printed without PAID" % sid
        if paid:
            assert printed.get(sid, 0) >= 1, "sale %d reached PAID but no receipt came out" % sid
    check_sequence(book.j)


def check_sequence(j):
    last = -1
    for s in j.used_in_order():
        for p in range(1, PAGES):
            if p < FIRST_REC and p != 1:
                continue
            h = j.read_record(s * PAGES + p)
            if h is None:
                continue
            assert h[3] > last, "sequence %d after %d in sector %d" % (h[3], last, s)
            last = h[3]


def count_ops(sectors, script, keep_last=4, timing="typ"):
    """Run the script once without cuts: (number of flash ops, list of op kinds)."""
    flash = sim_flash.NorFlash(sectors * 4096, timing=timing)
    kinds = []

    def note(kind, index, addr):
        kinds.append(kind)

    flash.on_op = note
    try:
        book, host, _ = run(flash, script, keep_last)
        check(book, host, script)
    finally:
        flash.release()
    return kinds


PROGRAM_PARTS = (None, 0.0, 0.3, 0.6, 0.95)
ERASE_PARTS = (None, 0.2, 0.6, 0.95)


def exhaustive(sectors=6, script=None, keep_last=4, program_parts=PROGRAM_PARTS, erase_parts=ERASE_PARTS, seed=1):
    """Cut at every flash operation (before it, and part-way at several offsets). Returns counts."""
    if script is None:
        script = session()
    kinds = count_ops(sectors, script, keep_last)
    tried = 0
    boots = 0
    for op in range(len(kinds)):
        parts = program_parts if kinds[op] == sim_flash.OP_PROGRAM else erase_parts
        for part in parts:
            flash = sim_flash.NorFlash(sectors * 4096, seed=seed + op * 7 + tried)
            armed = [False]

            def arm(f, op=op, part=part, armed=armed):
                if not armed[0]:
                    f.arm_cut(op, part)
                    armed[0] = True

            try:
                book, host, b = run(flash, script, keep_last, arm)
                assert flash.cuts == 1, "cut was not reached"
                check(book, host, script)
            except Exception as e:
                raise AssertionError("cut at op %d (%s, part %r): %s" % (op, kinds[op], part, e))
            finally:
                flash.release()
            tried += 1
            boots += b
    return {"ops": len(kinds), "cut_points": tried, "boots": boots}


def soak(cuts, sectors=8, seed=1, keep_last=3, per_session=40):
    """A long random session with a power cut every few dozen flash operations."""
    rng = sim_flash.Rng(seed)
    script = random_script(rng, per_session)

    def arm(f):
        gap = 1 + rng.below(60)
        part = None if rng.below(4) == 0 else rng.below(1000) / 1000
        f.arm_cut(f.ops + gap, part)

    flash = sim_flash.NorFlash(sectors * 4096, seed=seed)
    total = 0
    sessions = 0
    book = None
    while total < cuts:
        flash.cuts = 0
        book, host, boots = run(flash, script, keep_last, arm)
        total += flash.cuts
        check(book, host, script)
        sessions += 1
        script = None
        script = random_script(rng, per_session, base=sessions * 1000)
    flash.release()
    return {"cuts": total, "sessions": sessions, "records": book.j.seq, "erase_counts": list(book.j.erase_counts)}


def random_script(rng, nsales, base=1):
    s = []
    owed = []  # reversals acknowledged only at the end: unfinished sales for compaction to carry
    for k in range(nsales):
        sid = base + k
        s.append((sid, "open", ("x", 1 + rng.below(30), k)))
        r = rng.below(10)
        if r == 0:
            s.append((sid, "void", "r"))
            continue
        s.append((sid, "pay", None))
        if r == 1:
            s.append((sid, "decline", None))
        elif r == 2:
            s.append((sid, "void", "t"))
            owed.append(sid)
        else:
            s.append((sid, "approve", "A%d" % sid))
            if rng.below(4) == 0:
                s.append((0, "maint", None))  # maintenance while this sale is PAID
            s.append((sid, "print", None))
            s.append((sid, "close", None))
        if rng.below(3) == 0:
            s.append((0, "maint", None))
    for sid in owed:
        s.append((sid, "ack", None))
    return s


def brownouts(sessions, seed=77, per_session=3, sectors=6, extra=2, window_ms=3000):
    """Power pulled by the world's clock at random times (datasheet worst-case flash timing, so the
    cut lands inside whichever page program or sector erase runs then), up to per_session times."""
    import sim_clock

    power = sim_power.POWER
    if power is None or power.clock is not sim_clock.CLOCK:
        # A power domain left by an earlier world listens to a clock that no longer moves: its
        # cuts would never land. The flash advances sim_clock.CLOCK, so the cuts must be on it.
        power = sim_power.PowerDomain(sim_clock.CLOCK, 3.0)
        sim_power.POWER = power
    power.on = True
    clock = power.clock
    rng = sim_flash.Rng(seed)
    script = session(extra)
    total = 0
    for _ in range(sessions):
        flash = sim_flash.NorFlash(sectors * 4096, timing="max", seed=rng.next())
        pending = []
        left = [per_session]

        def arm(f, pending=pending, left=left):
            for h in pending:
                clock.cancel(h)
            del pending[:]
            if left[0] > 0:
                left[0] -= 1
                pending.append(power.pull_at_ms(clock.now_ms() + 1 + rng.below(window_ms), "brownout"))

        try:
            book, host, boots = run(flash, script, 2, arm)
            check(book, host, script)
        finally:
            for h in pending:
                clock.cancel(h)
            power.on = True
        total += flash.cuts
        flash.release()
    if sessions >= 20 and total == 0:
        raise RuntimeError("no brownout landed in %d sessions: the cuts are not on the flash's clock" % sessions)
    return {"sessions": sessions, "cuts": total}
