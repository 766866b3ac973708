# Virtual time for the simulated board (MicroPython subset: runs on the unix port and CPython).
#
# The clock keeps absolute microseconds since the simulated power-on of the *world* (not of the board:
# a board reset does not reset time). Firmware sees it through time.ticks_ms()/ticks_us(), which wrap
# at 2**30 like an ESP32's (ports/esp32 uses MICROPY_PY_TIME_TICKS_PERIOD = 2**30), so wrap bugs show.
#
# Timed events (call_at_us) model the world: a customer arriving, the printer finishing a line, a
# power cut. Listeners get every advance (t0, t1) for continuous models such as the battery.

_WRAP = 1 << 30
_WRAP_MASK = _WRAP - 1
_MAX_EVENTS = 4096  # a world with more pending events than this is a runaway model


class Deadlock(Exception):
    """The firmware waits for nothing: no task is scheduled and no event can ever wake it."""


class VirtualClock:
    def __init__(self, start_ms=0):
        self._us = start_ms * 1000
        self._events = []  # kept sorted: (t_us, seq, fn)
        self._seq = 0
        self._listeners = []
        self._in_advance = False

    # -- reading ------------------------------------------------------------------------------
    def now_us(self):
        return self._us

    def now_ms(self):
        return self._us // 1000

    def ticks_ms(self):
        return (self._us // 1000) & _WRAP_MASK

    def ticks_us(self):
        return self._us & _WRAP_MASK

    # -- world events -------------------------------------------------------------------------
    def call_at_us(self, t_us, fn):
        """Run fn() when the clock reaches t_us. Returns a handle for cancel()."""
        if len(self._events) >= _MAX_EVENTS:
            raise RuntimeError("too many pending simulation events")
        if t_us < self._us:
            t_us = self._us
        self._seq += 1
        ev = [t_us, self._seq, fn]
        # Insertion keeps the list sorted; event counts are small (tens), so this is cheap.
        i = len(self._events)
        while i > 0 and (self._events[i - 1][0] > t_us):
            i -= 1
        self._events.insert(i, ev)
        return ev

    def call_later_ms(self, ms, fn):
        return self.call_at_us(self._us + int(ms * 1000), fn)

    def cancel(self, handle):
        try:
            self._events.remove(handle)
        except ValueError:
            pass

    def next_event_us(self):
        return self._events[0][0] if self._events else None

    def add_listener(self, fn):
        if fn not in self._listeners:
            self._listeners.append(fn)

    def remove_listener(self, fn):
        if fn in self._listeners:
            self._listeners.remove(fn)

    # -- moving time --------------------------------------------------------------------------
    def advance_us(self, dt_us):
        """Move time forward by dt_us, firing events and listeners in order.

        Listeners get every step (t0, t1), and a zero-length step (t, t) right after each event.

        Events may raise (a power cut raises sim_power.PowerLoss): time then stops where the event
        happened, which is what a real cut does.
        """
        if dt_us < 0:
            raise ValueError("time cannot go backwards")
        target = self._us + int(dt_us)
        while True:
            if self._events and self._events[0][0] <= target:
                ev = self._events.pop(0)
                self._move_to(ev[0])
                ev[2]()
                # An event can change the world at an instant (a pack sags, a charger is plugged):
                # the continuous models look at it now, as a brownout detector would, not at the next step.
                self._settle()
            else:
                self._move_to(target)
                return

    def advance_ms(self, dt_ms):
        self.advance_us(int(dt_ms * 1000))

    def advance_to_next_event(self, limit_us):
        """Jump to the next event (or by limit_us if none comes sooner). Used by idle waits."""
        nxt = self.next_event_us()
        if nxt is None or nxt - self._us > limit_us:
            self.advance_us(limit_us)
        else:
            self.advance_us(max(0, nxt - self._us))

    def _settle(self):
        t = self._us
        for fn in self._listeners:
            fn(t, t)

    def _move_to(self, t_us):
        t0 = self._us
        if t_us <= t0:
            return
        self._us = t_us
        for fn in self._listeners:
            fn(t0, t_us)


# The clock of the simulated world. Tests and the simulator replace it with reset().
CLOCK = VirtualClock()


def reset(start_ms=0):
    """Start a fresh world clock (e.g. start_ms close to 2**30 to test wrap-around)."""
    global CLOCK
    CLOCK = VirtualClock(start_ms)
    return CLOCK


# -- the time API the firmware calls ----------------------------------------------------------
def ticks_ms():
    return CLOCK.ticks_ms()


def ticks_us():
    return CLOCK.ticks_us()


def ticks_cpu():
    return CLOCK.ticks_us()


def ticks_add(ticks, delta):
    return (ticks + delta) & _WRAP_MASK


def ticks_diff(end, start):
    # Signed difference in the wrapped ring, as MicroPython defines it.
    d = (end - start) & _WRAP_MASK
    if d >= _WRAP // 2:
        d -= _WRAP
    return d


def sleep_ms(ms):
    if ms > 0:
        CLOCK.advance_us(int(ms) * 1000)
    run_scheduled()


def sleep_us(us):
    if us > 0:
        CLOCK.advance_us(int(us))
    run_scheduled()


def sleep(s):
    sleep_us(int(s * 1000000))


# Idle waits of the event loop are capped so that continuous models (battery, watchdog) get a look
# at least this often even when the firmware sleeps long.
_IDLE_STEP_US = 1000000


def idle_wait_us(dt_us):
    """What an event loop does when nothing is ready: let virtual time pass (no real sleeping).

    dt_us < 0 means "no task will ever wake": only a world event could change that.
    """
    if dt_us < 0:
        if CLOCK.next_event_us() is None:
            raise Deadlock("event loop idle with no timers and no pending world events")
        CLOCK.advance_to_next_event(_IDLE_STEP_US * 3600)
        return
    CLOCK.advance_us(dt_us)


def install():
    """Point the running interpreter's time (and asyncio's idle wait) at the virtual clock.

    CPython: patch MicroPython's tick functions onto the real time module and give asyncio an event
    loop whose clock is virtual. Unix port: time.py in this folder already overrides `time`; asyncio's
    IOQueue wait is replaced so that idle time passes virtually.
    """
    import sys

    if sys.implementation.name == "micropython":
        import asyncio.core as core

        def wait_io_event(dt_ms):
            idle_wait_us(dt_ms * 1000 if dt_ms >= 0 else -1)

        core._io_queue.wait_io_event = wait_io_event
        if not isinstance(core.TaskQueue, type) or core.TaskQueue.__name__ != "_VirtualTaskQueue":
            _VirtualTaskQueue.native = core.TaskQueue
            core.TaskQueue = _VirtualTaskQueue
        if not isinstance(core._task_queue, _VirtualTaskQueue):
            core._task_queue = _VirtualTaskQueue()
        run_scheduled()
    else:
        import sim_cpython_loop

        sim_cpython_loop.install()


class _VirtualTaskQueue:
    """The unix port's C task queue stamps a task pushed without a key with the *host's* tick count,
    not the simulated one: wrap it so every push carries a virtual-time key.

    Known limit: the C heap orders keys with the unix port's 2**62 tick period, so two tasks whose
    deadlines straddle the 2**30 ms wrap pop in the wrong order; the loop still waits correctly for
    each (core.py uses time.ticks_diff). CPython's loop has no such limit.
    """

    native = None

    def __init__(self):
        self._q = _VirtualTaskQueue.native()

    def push(self, v, key=None):
        self._q.push(v, ticks_ms() if key is None else key)

    def peek(self):
        return self._q.peek()

    def pop(self):
        return self._q.pop()

    def remove(self, v):
        return self._q.remove(v)


def run_scheduled():
    """Hook for runtimes without a real scheduler (CPython): run deferred IRQ callbacks."""
    import micropython

    f = getattr(micropython, "_run_pending", None)
    if f is not None:
        f()
