# Power-cut proof harness for the sale journal (MicroPython subset: runs in pytest, on the unix port
# and in the benchmark). A scripted session of sales is replayed by a "host" against a SaleBook on a
# simulated NOR flash; the power is cut at a chosen flash operation, with any torn shape the harsh
# model knows (sim_flash.PROGRAM_MODES / ERASE_MODES); the board reboots (new objects over the same
# flash = RAM gone, flash as it landed), recovers, finishes the work (prints queued copies,
# acknowledges reversals), the host re-sends the command it was on, and the session goes on.
# Drivers: exhaustive() (every operation x every torn shape), chains() (8 cuts in a row, inside
# recovery, formats and compaction), soak(), storm() (bursts of 10-150 cuts), brownouts() (cuts by
# the clock). At the end the invariants of the issues are checked (check()): no paid sale lost, no
# reversal dropped, nothing printed twice unmarked or without PAID, no sale back from a state the host
# saw (Host.saw), no page programmed twice between erases, sequence numbers increasing.
import sim_flash
import sim_power

from posguard import records as R
from posguard import sales as S
from posguard.journal import FIRST_REC, PAGES, Journal

_MAX_BOOTS = 200
_MAX_MAINT = 64


# The largest sale body the host link accepts on devkit-1s with ASCII names (20 items of 32 characters,
# built like posguard/commands.py builds it); tests may replace it with a larger one (CJK names).
LARGEST = {"t": "2026-11-24 21:58:00", "i": [["W" * 32, 1, 500000] for _ in range(20)]}


def body(arg):
    """The sale body the host sends; scripts keep only (item name, item count, total) in RAM.
    Item name "L": the largest legal body."""
    name, n, total = arg
    if name == "L":
        return LARGEST
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
        self.saw = {}  # sale id -> the last state a call answered: the sale may never go back from it
        self.resurrected = []  # (sale id, state seen, state reported by a later recovery)

    def answer(self, sid, state):
        if isinstance(state, str):
            self.saw[sid] = state

    def recovered(self, book, rep):
        # Every sale a recovery touched must be at or after the state the host last saw: a sale seen
        # finished never comes back, a sale seen PAID is never voided.
        for key in ("voided", "reprint", "closed", "reversal_pending", "pending"):
            for sid in rep.get(key, ()):
                seen = self.saw.get(sid)
                if seen is None:
                    continue
                now = book.state(sid)
                if not _may_follow(seen, now):
                    self.resurrected.append((sid, seen, now))


def _may_follow(seen, now):
    """True when a sale the host saw in state `seen` may later be found in state `now`."""
    if now == "VOIDED" and seen == "REVERSAL_PENDING":
        return True  # recovery reports a reversal owed under "voided" as well
    a = S.NAMES.index(seen)
    b = S.NAMES.index(now)
    from posguard.saleio import VISITED

    return bool(VISITED[b] & (1 << a))


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


def _said(host, sid, state):
    host.answer(sid, state)
    return state


def app_print(book, host, sid):
    """What the app does: start printing only from PAID (or print the queued copy), then PRINTED."""
    st = book.state(sid)
    if st == "PAID":
        _said(host, sid, _retry(book, book.start_print, sid))
    elif st != "PRINTING":
        return
    r = book.receipt(sid)
    host.prints.append((sid, r["copy"]))
    _said(host, sid, _retry(book, book.print_done, sid))


def finish(book, host):
    for sid in book.print_queue():
        app_print(book, host, sid)
        _said(host, sid, _retry(book, book.close, sid))
    for sid in book.reversals():
        _said(host, sid, _retry(book, book.reversal_acked, sid))


def step(book, host, st):
    sid, act, arg = st
    if act == "maint":
        maintain(book)
        return
    if sid in host.dead:
        return
    try:
        if act == "open":
            _said(host, sid, _retry(book, book.open_sale, sid, body(arg)))
        elif act == "pay":
            _said(host, sid, _retry(book, book.request_payment, sid))
        elif act == "approve":
            if _said(host, sid, _retry(book, book.payment_approved, sid, arg)) == "PAID" and sid not in host.confirmed:
                host.confirmed.append(sid)
        elif act == "decline":
            _said(host, sid, _retry(book, book.payment_declined, sid))
        elif act == "print":
            app_print(book, host, sid)
        elif act == "start":  # the printer started; the power dies before it ends
            _said(host, sid, _retry(book, book.start_print, sid))
        elif act == "close":
            _said(host, sid, _retry(book, book.close, sid))
        elif act == "void":
            _said(host, sid, _retry(book, book.void, sid, arg))
        elif act == "ack":
            _said(host, sid, _retry(book, book.reversal_acked, sid))
    except R.JournalError as e:
        if e.code not in ("illegal_transition", "unknown_sale"):
            raise
        host.dead.append(sid)  # recovery moved the sale on (voided it): the host drops it


def run(flash, script, keep_last=2, cuts=None, max_boots=_MAX_BOOTS, host=None):
    """Replay the script; cuts() is called at every boot and may arm the next cut. Returns
    (book, host, boots). Pass the host of an earlier run to go on with the same terminal."""
    if host is None:
        host = Host()
    i = 0
    for boots in range(1, max_boots + 1):
        if cuts is not None:
            cuts(flash)
        try:
            book, rep = boot(flash, keep_last)
            host.recovered(book, rep)
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
    raise AssertionError("session did not finish in %d boots" % max_boots)


def check(book, host, script, flash=None, strict=False):
    """The invariants of the issue; raises AssertionError naming the broken one."""
    sids = []
    for st in script:
        if st[0] and st[0] not in sids:
            sids.append(st[0])
    assert not book.live, "unfinished sales left after finishing: %r" % book.live
    assert not host.resurrected, "recovery moved sales back from what the host saw: %r" % host.resurrected
    for sid, seen in host.saw.items():
        try:
            now = book.state(sid)
        except R.JournalError as e:
            # every sale is finished by now: compaction may have dropped it (keep_last)
            assert e.code == "unknown_sale", "sale %d: %s" % (sid, e.code)
            continue
        assert _may_follow(seen, now), "sale %d the host saw %s now reads %s" % (sid, seen, now)
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
    if flash is not None:
        assert flash.reprograms == 0, "%d page(s) programmed twice between erases" % flash.reprograms
        # A page whose program was cut before any bit changed reads erased: after two boots in a row
        # that both die on it, no firmware can know (docs/journal.md). Single cuts must avoid it too.
        if strict:
            assert not flash.reprograms_blank, "%d torn blank page(s) programmed again" % flash.reprograms_blank


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


# (mode, part) of every cut tried at a program / an erase: (None, None) cuts before the operation;
# the modes are sim_flash.PROGRAM_MODES and ERASE_MODES (every torn shape the chip can leave).
PROGRAM_CUTS = (
    (None, None),
    ("none", 0.0),
    ("prefix", 0.3),
    ("prefix", 0.95),
    ("suffix", 0.5),
    ("spread", 0.5),
    ("all_but_one", 0.0),
    ("all_but_tail", 0.0),
    ("all", 0.0),
    ("mix", 0.6),
)
ERASE_CUTS = (
    (None, None),
    ("unchanged", 0.0),
    ("zeros", 0.0),
    ("random", 0.0),
    ("pages", 0.5),
    ("bits", 0.0),
    ("weak", 0.6),
    ("all", 0.0),
)
QUICK_PROGRAM_CUTS = ((None, None), ("none", 0.0), ("prefix", 0.5), ("all_but_one", 0.0), ("all", 0.0))
QUICK_ERASE_CUTS = ((None, None), ("zeros", 0.0), ("pages", 0.5), ("all", 0.0))


def _legacy(parts):
    # program_parts / erase_parts of the older API: part-way cuts with the default torn shape
    return tuple((None, None) if p is None else (None, p) for p in parts)


def exhaustive(
    sectors=6,
    script=None,
    keep_last=4,
    program_cuts=PROGRAM_CUTS,
    erase_cuts=ERASE_CUTS,
    seed=1,
    program_parts=None,
    erase_parts=None,
):
    """Cut at every flash operation (before it, and with every torn shape). Returns counts."""
    if script is None:
        script = session()
    if program_parts is not None:
        program_cuts = _legacy(program_parts)
    if erase_parts is not None:
        erase_cuts = _legacy(erase_parts)
    kinds = count_ops(sectors, script, keep_last)
    tried = 0
    boots = 0
    for op in range(len(kinds)):
        cuts = program_cuts if kinds[op] == sim_flash.OP_PROGRAM else erase_cuts
        for mode, part in cuts:
            flash = sim_flash.NorFlash(sectors * 4096, seed=seed + op * 7 + tried)
            armed = [False]

            def arm(f, op=op, part=part, mode=mode, armed=armed):
                if not armed[0]:
                    f.arm_cut(op, part, mode)
                    armed[0] = True

            try:
                book, host, b = run(flash, script, keep_last, arm)
                assert flash.cuts == 1, "cut was not reached"
                check(book, host, script, flash, strict=True)
            except Exception as e:
                raise AssertionError("cut at op %d (%s, %s %r): %s" % (op, kinds[op], mode, part, e))
            finally:
                flash.release()
            tried += 1
            boots += b
    return {"ops": len(kinds), "cut_points": tried, "boots": boots}


def chains(depth=8, sectors=6, script=None, keep_last=4, seed=1, stride=1, limit=None, failures=None):
    """Cut chains: a first cut at every `stride`-th flash operation of the session, then depth - 1
    more cuts, each a few operations into the next boot (inside mount, recovery, a format, a
    compaction), every cut with a torn shape drawn from all the modes. Returns counts."""
    if script is None:
        script = session()
    kinds = count_ops(sectors, script, keep_last)
    rng = sim_flash.Rng(seed)
    tried = 0
    total = 0
    for op in range(0, len(kinds), stride):
        if limit is not None and tried >= limit:
            break
        flash = sim_flash.NorFlash(sectors * 4096, seed=rng.next())
        left = [depth]
        desc = []

        def arm(f, op=op, left=left, desc=desc):
            if left[0] <= 0:
                return
            at = op if left[0] == depth else f.ops + rng.below(6)
            left[0] -= 1
            desc.append(at)
            f.arm_cut(at, rng.below(1000) / 1000, "any")

        try:
            book, host, _ = run(flash, script, keep_last, arm)
            check(book, host, script, flash)
        except Exception as e:
            why = "chain from op %d (cuts at ops %r, seed %d): %s" % (op, desc, seed, e)
            if failures is None:
                raise AssertionError(why)
            failures.append(why)  # the bench counts failures and reports the first ones
        finally:
            flash.release()
        tried += 1
        total += flash.cuts
    return {"chains": tried, "depth": depth, "cuts": total, "ops": len(kinds)}


def storm(sectors=6, keep_last=3, seed=1, cuts=150, per_session=30, big=False):
    """Brownout storms: bursts of 10-150 cuts a few operations apart (inside recovery, maintenance,
    formats and rolls), every torn shape, then calm, until `cuts` cuts have landed. Sessions of
    random sales (big: bodies up to the largest) must still finish and keep every invariant.
    Returns counts."""
    rng = sim_flash.Rng(seed)
    flash = sim_flash.NorFlash(sectors * 4096, seed=seed)
    burst = [0]
    total = 0
    done = 0

    def arm(f):
        if burst[0] <= 0 and rng.below(3) == 0:
            burst[0] = 10 + rng.below(141)
        if burst[0] > 0:
            burst[0] -= 1
            gap = rng.below(8)
        else:
            gap = 10 + rng.below(200)
        f.arm_cut(f.ops + gap, rng.below(1000) / 1000, "any")

    while total < cuts:
        script = random_script(rng, per_session, base=1 + done * 1000, big=big)
        flash.cuts = 0
        try:
            book, host, _ = run(flash, script, keep_last, arm, max_boots=400)
            check(book, host, script, flash)
        except Exception as e:
            raise AssertionError("storm seed %d session %d: %s" % (seed, done, e))
        total += flash.cuts
        done += 1
    flash.disarm()
    flash.release()
    return {"sessions": done, "cuts": total}


def soak(cuts, sectors=8, seed=1, keep_last=3, per_session=40):
    """A long random session with a power cut every few dozen flash operations."""
    rng = sim_flash.Rng(seed)
    script = random_script(rng, per_session)

    def arm(f):
        gap = 1 + rng.below(60)
        if rng.below(4) == 0:
            f.arm_cut(f.ops + gap)
        else:
            f.arm_cut(f.ops + gap, rng.below(1000) / 1000, "any")

    flash = sim_flash.NorFlash(sectors * 4096, seed=seed)
    total = 0
    sessions = 0
    book = None
    while total < cuts:
        flash.cuts = 0
        book, host, boots = run(flash, script, keep_last, arm)
        total += flash.cuts
        check(book, host, script, flash)
        sessions += 1
        script = None
        script = random_script(rng, per_session, base=sessions * 1000)
    flash.release()
    return {"cuts": total, "sessions": sessions, "records": book.j.seq, "erase_counts": list(book.j.erase_counts)}


def random_script(rng, nsales, base=1, big=False):
    s = []
    owed = []  # reversals acknowledged only at the end: unfinished sales for compaction to carry
    for k in range(nsales):
        sid = base + k
        n = 1 + rng.below(30)
        s.append((sid, "open", ("L" if big and rng.below(3) == 0 else "x", n, k)))
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
            check(book, host, script, flash)
        finally:
            for h in pending:
                clock.cancel(h)
            power.on = True
        total += flash.cuts
        flash.release()
    if sessions >= 20 and total == 0:
        raise RuntimeError("no brownout landed in %d sessions: the cuts are not on the flash's clock" % sessions)
    return {"sessions": sessions, "cuts": total}


def held_state(extra=24):
    """A script that leaves a sale in every state (finished ones before them, several sectors of
    them): OPEN 901, PAYMENT_PENDING 902, PAID 903, PRINTING 904, PRINTED 905, REVERSAL_PENDING 906,
    DECLINED 907, VOIDED 908 and CLOSED 1..extra. Replayed with play() (no finishing)."""
    s = []
    for sid in range(1, extra + 1):
        s += [(sid, "open", ("bun", 1 + sid % 5, 100)), (sid, "pay", None), (sid, "approve", "A%d" % sid)]
        s += [(sid, "print", None), (sid, "close", None)]
    s += [(901, "open", ("open", 2, 1))]
    s += [(902, "open", ("pending", 2, 1)), (902, "pay", None)]
    s += [(903, "open", ("L", 1, 1)), (903, "pay", None), (903, "approve", "A903")]
    s += [(904, "open", ("printing", 3, 1)), (904, "pay", None), (904, "approve", "A904"), (904, "start", None)]
    s += [(905, "open", ("printed", 1, 1)), (905, "pay", None), (905, "approve", "A905"), (905, "print", None)]
    s += [(906, "open", ("reversal", 1, 1)), (906, "pay", None), (906, "void", "timeout")]
    s += [(907, "open", ("declined", 1, 1)), (907, "pay", None), (907, "decline", None)]
    s += [(908, "open", ("voided", 1, 1)), (908, "void", "left")]
    return s


def play(flash, script, keep_last):
    """Boot and replay the script without finishing anything; returns (book, host)."""
    host = Host()
    book, _ = boot(flash, keep_last)
    for st in script:
        step(book, host, st)
        book.idle()
    return book, host


def after_boot(book, sids):
    """What a booted terminal tells about these sales: ({sid: state or None}, print queue, reversals)."""
    states = {}
    for sid in sids:
        try:
            states[sid] = book.state(sid)
        except R.JournalError as e:
            if e.code != "unknown_sale":
                raise
            states[sid] = None
    return states, sorted(book.print_queue()), book.reversals()


def promises_kept(host, ref, got, one_record=False):
    """Compare a boot after a fault (got) with the boot without it (ref): returns '' when no promise
    is broken, else what broke. Promises: every sale still at or after what the host saw, no paid
    sale lost (its receipt still owed or printed), no reversal dropped. one_record: damage beyond
    correction may cost the damaged record, so a sale may read one of its own earlier states (never
    another branch: a paid sale never voided, a declined one never open)."""
    states, queue, revs = got
    rstates, rqueue, rrevs = ref
    for sid, seen in host.saw.items():
        now = states.get(sid)
        if now is None:
            if rstates.get(sid) is not None and not one_record:
                return "sale %d (seen %s) is gone" % (sid, seen)
            continue
        if one_record and _may_follow(now, seen) and now not in ("OPEN", "PAYMENT_PENDING"):
            continue  # the damaged record was the sale's last: it reads its state before
        if one_record and seen == "DECLINED" and now in ("REVERSAL_PENDING", "REVERSAL_ACKED"):
            continue  # its DECLINED record lost: PAYMENT_PENDING, so a reversal is owed (moves no money)
        if not _may_follow(seen, now):
            return "sale %d seen %s reads %s" % (sid, seen, now)
    for sid in rqueue:
        if sid not in queue and states.get(sid) not in ("PRINTED", "CLOSED"):
            return "paid sale %d lost its receipt (%s)" % (sid, states.get(sid))
    for sid in rrevs:
        if sid not in revs:
            return "reversal of sale %d dropped (%s)" % (sid, states.get(sid))
    return ""
