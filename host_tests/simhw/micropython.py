# CPython stand-in for MicroPython's builtin `micropython` module (the unix port's builtin wins there).
# schedule() defers like the ESP32: the callback runs later, at a safe point of the main loop, never
# inside the "interrupt". The queue is bounded like MicroPython's (MICROPY_SCHEDULER_DEPTH = 8).
_DEPTH = 8
_pending = []


def const(x):
    return x


def native(f):
    return f


viper = native


def schedule(fn, arg):
    if len(_pending) >= _DEPTH:
        raise RuntimeError("schedule queue full")
    _pending.append((fn, arg))


def _run_pending():
    # Bounded: callbacks scheduled while draining run on the next safe point.
    n = len(_pending)
    for _ in range(n):
        fn, arg = _pending.pop(0)
        fn(arg)


def _clear():
    del _pending[:]


_heap_locked = 0


def heap_lock():
    global _heap_locked
    _heap_locked += 1


def heap_unlock():
    global _heap_locked
    _heap_locked = max(0, _heap_locked - 1)
    return _heap_locked


def alloc_emergency_exception_buf(size):
    pass


def mem_info(*args):
    print("mem_info: not available on CPython")


def opt_level(level=None):
    return 0


kbd_intr_char = 3  # what the last micropython.kbd_intr() set (MicroPython's default while a script runs)


def kbd_intr(c):
    global kbd_intr_char
    kbd_intr_char = c
