# Heap accounting for the unix port: the firmware sees the heap an ESP32 port gives it, laid out the way
# the port lays it out. In the unix port the simulated hardware lives in the same heap, which a board does
# not carry. So the VM starts with room for both, the simulator's modules load first, and a ballast pins
# everything else: from then on the firmware (and whatever the simulator allocates while running, which
# makes the bound stricter, never looser) has exactly the board's heap. CPython: no-op.
#
# The port's heap (docs/reference/micropython-runtime.md, "The ESP32 port's heap"): MicroPython starts with
# MICROPY_GC_INITIAL_HEAP_SIZE (ports/esp32/mpconfigport.h:30-37: 56 KB on the ESP32, 64 KB on the S3)
# and, with MICROPY_GC_SPLIT_HEAP_AUTO (mpconfigport.h:89-90), adds separate areas when an allocation
# fails (py/gc.c:293-384 gc_try_add_heap): each one at least doubles the total, at most the largest free
# block of the ESP-IDF system heap (ports/esp32/gccollect.c:80-87). An object never spans two areas, so
# the largest single allocation is bounded by the largest area, not by the total. Modelled here as the
# areas the port would reach from the chip's largest free system block at boot, each a separate free run
# (a pinned separator between them), all present from the start.
#
# The firmware's own bytecode: a build with the package frozen in (firmware/manifest.py) keeps it in flash.
# preload_firmware() models that by importing every posguard module before the heap is pinned; with
# preload=False (code deployed as .mpy) the code loads into the modelled heap and counts against it.
import gc
import sys

# Per chip: usable bytes of each heap area, as micropython.mem_info() reports them ("GC: total").
#  esp32:   the 56 KB initial area ("GC: total: 56000") plus one area the size of the largest free system
#           block at boot; reports from ESP32_GENERIC boards give 57344 to 102400 bytes of "max new split"
#           at boot, the harsher 57344 is used: a second 56000-byte area (total 112000, as the same
#           reports show after one growth). Nothing left for a third.
#  esp32s3: 64 KB initial ("GC: total: 64000", "max new split: 188352" on ESP32_GENERIC_S3 without PSRAM):
#           gc_try_add_heap doubles the total (a 65536-byte area, 64000 usable), then takes what is left
#           of that block (188352 - 65536 = 122816 bytes, 119936 usable after the area's tables).
# Figures and their sources: docs/reference/micropython-runtime.md.
#  esp32s3+psram: an S3 module with 2 MB of PSRAM on the stock ESP32_GENERIC_S3-SPIRAM_OCT firmware. The
#           PSRAM joins ESP-IDF's malloc heap, so gc_try_add_heap keeps doubling the total from the largest
#           free block (docs/reference/micropython-runtime.md, section 5). The harsher model stops at about
#           1 MB (half the PSRAM: ESP-IDF and the Wi-Fi stack take their share first).
PORT_AREAS = {
    "esp32": (56000, 56000),
    "esp32s3": (64000, 64000, 119936),
    "esp32s3+psram": (64000, 64000, 128000, 256000, 512000),
}


def chip_of(profile):
    """The heap model a board profile runs on: its `mcu`, plus "+psram" when it declares PSRAM."""
    chip = profile.get("mcu", DEFAULT_CHIP)
    return chip + "+psram" if profile.get("psram_kb") else chip
DEFAULT_CHIP = "esp32"  # the smaller heap: the harsher default when no profile says which chip
FIRMWARE_BUDGET = sum(PORT_AREAS[DEFAULT_CHIP])
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
    "sim_world",
    "sim_rng",
    "sim_journal_cuts",  # the power-cut harness: test code, never on a board, so outside the firmware's heap
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
_NOT_PRELOADED = ("repl", "compaction")  # on demand on the board too (deploy_heapcheck.ON_DEMAND_MODULES)


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


def areas_for(chip=None):
    """The heap areas (usable bytes) the port gives the firmware on `chip` (None: the default chip)."""
    if chip is None:
        import os

        chip = os.getenv("POSGUARD_CHIP") or DEFAULT_CHIP
    if chip not in PORT_AREAS:
        raise ValueError("no heap model for chip %r (known: %s)" % (chip, ", ".join(sorted(PORT_AREAS))))
    return PORT_AREAS[chip]


_areas = ()


def pinned_areas():
    return _areas


def pin_firmware_budget(budget=None, preload=True, chip=None):
    """Load the simulator (and the firmware's code, as frozen, unless preload=False), then leave exactly
    the port's heap areas free on `chip` (or one contiguous `budget` bytes, when given). Returns the
    bytes pinned."""
    global _base_alloc, _areas
    if sys.implementation.name != "micropython":
        return 0
    sizes = (budget,) if budget is not None else areas_for(chip)
    _import_all()
    if preload:
        preload_firmware()
    gc.collect()
    need = sum(sizes) + _SEPARATOR * len(sizes)
    if gc.mem_free() < need:
        raise MemoryError("VM heap too small: the simulator leaves %d bytes, the firmware needs %d" % (
            gc.mem_free(), need))
    # Hold the whole model as one block, fill every other free byte with ballast, then release it: the
    # firmware gets exactly these areas, whatever holes the simulator's own imports left behind. Pieces
    # shrink from the largest run down to 16 bytes.
    slots = [None] * _MAX_PIECES
    _ballast.append(slots)
    reserve = bytearray(need)
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
    # Now the reserve is the only free run. Carve it into the areas: each area's stand-in, then a small
    # pinned separator, so no allocation can span two areas (it cannot on the port either).
    del reserve
    gc.collect()
    keep = []
    for s in sizes:
        area = bytearray(s - 64)  # its object header and buffer both land in this run (first fit)
        sep = bytearray(_SEPARATOR - 64)
        keep.append(area)
        _ballast.append(sep)
    del keep, area
    gc.collect()
    _areas = tuple(sizes)
    _base_alloc = gc.mem_alloc()
    return pinned


def release():
    """Give the ballast back: the run is over, or the heap is about to be pinned again."""
    del _ballast[:]
    gc.collect()


def repin(preload=True, chip=None, say=None):
    """Pin the heap afresh, as each boot of a simulated board needs (the trading day's and the frozen
    layout check's Board.on_boot hooks, the virtual board's start): release what the last boot pinned,
    load the firmware's code unless preload=False (frozen in flash on a board: a reboot's imports must not
    eat the working heap), then leave exactly the chip's areas free. Returns the bytes pinned.

    say: None raises whatever goes wrong (a test's failure to report). A function (the virtual board,
    which must still give a REPL) gets one line per problem instead, and a firmware that does not import
    is reported and the heap pinned without it."""
    release()
    if say is None:
        return pin_firmware_budget(preload=preload, chip=chip)
    try:
        return pin_firmware_budget(preload=preload, chip=chip)
    except MemoryError as e:
        say(str(e))
    except Exception as e:  # a firmware module that does not import: say so, still pin the heap
        say("firmware preload failed (%s: %s); heap pinned without it" % (type(e).__name__, e))
        try:
            return pin_firmware_budget(preload=False, chip=chip)
        except (MemoryError, ValueError) as e2:
            say(str(e2))
    return 0


_SEPARATOR = 128  # bytes pinned between two areas (object header + buffer of a small bytearray)


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
