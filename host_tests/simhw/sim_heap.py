# Heap accounting for the unix port. An ESP32 without PSRAM gives the firmware about 110 KB of free
# heap (shared/reference/micropython-runtime.md); in the unix port the simulated hardware lives in the
# same heap, which a board does not carry. So the VM starts with room for both, the simulator's modules
# load first, and a ballast pins everything above the firmware's budget: from then on the firmware (and
# whatever the simulator allocates while running, which makes the bound stricter, never looser) has
# exactly the board's free heap. CPython: no-op.
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
    "machine",
    "esp32",
    "asyncio",
    "json",
    "binascii",
    "struct",
)
_CHUNK = 8192
_MAX_CHUNKS = 512  # 4 MB of ballast at most: a bounded loop even on a huge -X heapsize
_ballast = []
_base_alloc = 0
_peak = 0


def _import_all():
    for name in SIM_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass  # a part not written yet; the firmware's own import will say so


def pin_firmware_budget(budget=FIRMWARE_BUDGET):
    """Load the simulator, then leave exactly `budget` bytes of free heap. Returns the bytes pinned."""
    global _base_alloc
    if sys.implementation.name != "micropython":
        return 0
    _import_all()
    gc.collect()
    spare = gc.mem_free() - budget
    if spare < 0:
        raise MemoryError("VM heap too small: the simulator leaves %d bytes, the firmware needs %d" % (
            gc.mem_free(), budget))
    # Chunks, not one block: the free heap after imports need not be contiguous.
    pinned = 0
    for _ in range(_MAX_CHUNKS):
        left = gc.mem_free() - budget
        if left <= 64:
            break
        n = _CHUNK if left > _CHUNK + 64 else left - 32
        try:
            _ballast.append(bytearray(n))
        except MemoryError:
            break
        pinned += n
    gc.collect()
    _base_alloc = gc.mem_alloc()
    return pinned


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
