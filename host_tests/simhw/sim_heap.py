# Heap accounting for the unix port. An ESP32 without PSRAM gives the firmware about 110 KB of free
# heap (docs/reference/micropython-runtime.md); in the unix port the simulated hardware lives in the
# same heap, which a board does not carry. So the VM starts with room for both, the simulator's modules
# load first, and a ballast pins everything above the firmware's budget: from then on the firmware (and
# whatever the simulator allocates while running, which makes the bound stricter, never looser) has
# exactly the board's free heap. CPython: no-op.
#
# The firmware's own bytecode: on a production board without PSRAM it is frozen into the MicroPython
# build (firmware/manifest.py) and lives in flash, not in the heap. preload_firmware() models that by
# importing every posguard module before the budget is pinned, so the 110 KB are for working data;
# code_bytes() says what the code alone would take as .mpy in RAM (a figure the gate prints).
import gc
import sys

FIRMWARE_BUDGET = 110 * 1024
# Loaded before the ballast: every simulated part that exists (the list is the whole simulator).
SIM_MODULES = (
    "sim_clock",
    "sim_power",
    "sim_rtc",
    "sim_board",
    "sim_adc",
    "sim_uart",
    "sim_flash",
    "sim_battery",
    "sim_printer",
    "sim_host",
    "sim_rng",
    "machine",
    "esp32",
    "asyncio",
    "json",
    "binascii",
    "struct",
)
_ballast = []
_base_alloc = 0
_peak = 0
_code_bytes = 0
_MAX_PIECES = 16384  # ballast pieces at most (a bounded fill even on a fragmented heap)
_BIG = 4096  # below this, pieces of fixed sizes fill the holes (no more binary searches)
# Never preloaded: entry points that act when imported (the technician REPL builds the terminal).
_NOT_PRELOADED = ("repl",)


def _import_all():
    for name in SIM_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass  # a part not written yet; the firmware's own import will say so


def preload_firmware():
    """Import every module of the posguard package (frozen code on a board). Returns their heap bytes."""
    global _code_bytes
    import os

    gc.collect()
    before = gc.mem_alloc()
    import posguard

    folder = posguard.__path__ if isinstance(posguard.__path__, str) else posguard.__path__[0]
    names = []
    for fn in os.listdir(folder):
        for ext in (".py", ".mpy"):
            if fn.endswith(ext) and fn != "__init__" + ext:
                names.append(fn[: -len(ext)])
    for name in sorted(names):
        if name in _NOT_PRELOADED:
            continue
        __import__("posguard." + name)  # an import error here is the test's failure to report
    gc.collect()
    _code_bytes = gc.mem_alloc() - before
    return _code_bytes


def code_bytes():
    return _code_bytes


def pin_firmware_budget(budget=FIRMWARE_BUDGET, preload=True):
    """Load the simulator (and the firmware's code, as frozen), then leave exactly `budget` bytes
    of free heap. Returns the bytes pinned."""
    global _base_alloc
    if sys.implementation.name != "micropython":
        return 0
    _import_all()
    if preload:
        preload_firmware()
    gc.collect()
    if gc.mem_free() < budget:
        raise MemoryError("VM heap too small: the simulator leaves %d bytes, the firmware needs %d" % (
            gc.mem_free(), budget))
    # Hold the budget as one block, fill every other free byte with ballast, then release the budget:
    # the firmware gets exactly `budget` contiguous bytes, as on a freshly booted board, whatever holes
    # the simulator's own imports left behind. Pieces shrink from the largest run down to 16 bytes.
    slots = [None] * _MAX_PIECES
    _ballast.append(slots)
    reserve = bytearray(budget)
    n = 0
    pinned = 0
    size = _largest_block()
    while n < _MAX_PIECES and size >= _BIG:
        slots[n] = bytearray(size)
        pinned += size
        n += 1
        size = _largest_block()
    for size in (2048, 512, 128, 32, 8, 1):
        while n < _MAX_PIECES:
            try:
                slots[n] = bytearray(size)
            except MemoryError:
                break
            pinned += size
            n += 1
    del reserve
    gc.collect()
    _base_alloc = gc.mem_alloc()
    return pinned


def _largest_block():
    """The largest bytearray the heap can give now (binary search: about 20 trial allocations)."""
    lo, hi = 0, gc.mem_free()
    for _ in range(32):
        if hi - lo <= 64:
            break
        mid = (lo + hi) // 2
        try:
            b = bytearray(mid)
            del b
            lo = mid
        except MemoryError:
            hi = mid
    gc.collect()
    return lo


def holes():
    """Free heap outside the contiguous budget (scattered small blocks): the bound's slack."""
    if sys.implementation.name != "micropython":
        return 0
    gc.collect()
    return gc.mem_free() - _largest_block()


def firmware_alloc():
    """Bytes allocated since the budget was pinned (the firmware's share of the heap, plus sim churn)."""
    if sys.implementation.name != "micropython":
        return 0
    return gc.mem_alloc() - _base_alloc


def sample_peak():
    """Record the high-water mark; call it from a periodic task or a clock listener."""
    global _peak
    a = firmware_alloc()
    if a > _peak:
        _peak = a
    return _peak


def peak():
    return _peak
