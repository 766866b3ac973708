# After a reset the ESP32 port gives the firmware exactly its heap areas again (RAM is gone; the port
# starts from MICROPY_GC_INITIAL_HEAP_SIZE: host_tests/simhw/sim_heap.py PORT_AREAS). The unix-port model
# must too: the previous boot's garbage (its event loop, its tasks, the modules the reset dropped) is
# collected before each boot's heap is pinned. Before the fix the re-pin counted the old boot's objects,
# which were freed right after it, so the second boot had 140-190 KB more than the chip and
# sim_heap.firmware_alloc() went negative.
import gc
import json
import os
import sys

import mpy_runner
import sim_heap

BOOT_SAMPLE_MS = 1500  # after boot.py/main.py have built the terminal and its tasks run
CUTS_MS = (4000, 9000)
END_MS = 14000
TOLERANCE = 2048  # what differs between two boots' firmware state (journal position, queued jobs)
# The first boot carries what the simulator makes on first use and keeps across resets (sim_uart's
# ports and their FIFOs, 3.9 KB on devkit-1s, ...): made inside the firmware's areas then, pinned
# outside them from the next boot on. The harsher boot is the first; a reset boot may see this much more.
FIRST_BOOT_SIM = 10240


def _day():
    # The trading day's world (simulator code and storage, none of it on a board) is built outside the
    # firmware's heap, as sim_day_main builds it: the ballast goes first, each boot pins it again.
    sim_heap.release()
    import sim_day

    with open(mpy_runner.root() + "/boards/devkit-1s.json") as f:
        profile = json.load(f)
    fs = mpy_runner.tmp_dir() + "/mpyfs-heapreset"
    try:
        os.mkdir(fs)
    except OSError:
        pass
    day = sim_day.Day(profile, fs, mpy_runner.root() + "/firmware", hours=1, seed=3, cuts=0)
    day.preallocate()
    return day


def test_each_boot_sees_the_chips_heap():
    if sys.implementation.name != "micropython":
        return  # the heap model is the unix port's (sim_heap is a no-op on CPython)
    day = _day()
    clock = day.clock
    seen = []  # per boot: free heap BOOT_SAMPLE_MS after it (collected), lowest firmware_alloc
    low = [0]

    def sample():
        gc.collect()
        a = sim_heap.firmware_alloc()
        if a < low[0]:
            low[0] = a
        sim_heap.sample_peak()
        return a

    def tick():
        sample()
        clock.call_at_us(clock.now_us() + 250000, tick)

    def at_boot_sample():
        sample()
        seen.append(gc.mem_free())

    def on_boot(board):
        sim_heap.repin()
        clock.call_at_us(clock.now_us() + BOOT_SAMPLE_MS * 1000, at_boot_sample)

    day.board.on_boot.append(on_boot)
    for t in CUTS_MS:
        day.power.pull_at_ms(t)
    clock.call_at_us(clock.now_us() + 250000, tick)
    try:
        summary = day.board.run(END_MS)
    finally:
        sim_heap.release()
        sim_heap.pin_firmware_budget()
    assert summary["boots"] == 3, summary
    assert len(seen) == 3, seen
    assert low[0] >= 0, "firmware_alloc went to %d: a boot had more than the chip's heap (%r)" % (low[0], seen)
    assert abs(seen[2] - seen[1]) <= TOLERANCE, "free heap after each boot: %r" % (seen,)
    assert seen[0] <= seen[1] <= seen[0] + FIRST_BOOT_SIM, "free heap after each boot: %r" % (seen,)

