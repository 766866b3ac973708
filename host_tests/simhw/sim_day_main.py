# Entry point for a trading day inside the MicroPython unix port (never deployed):
#   micropython -X heapsize=640k sim_day_main.py ARGS.json OUT.json
# ARGS.json: {"profile": {...}, "fs_dir", "firmware_dir", "hours", "seed", "cuts", "aged", "temp_c", "policy",
#             "soc", "pack", "charger"}
# The simulator loads first, then sim_heap pins a ballast so the firmware's working data sees exactly an
# ESP32's free heap (110 KB); the result JSON carries the peak live heap the firmware held.
import json
import sys

import sim_clock
import sim_day  # simulator code: loaded before the budget is pinned, like the rest of the simulator
import sim_heap
import sim_naive  # noqa: F401

sim_clock.install()


def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    # The world first (battery, printer, the journal's flash with every sector's storage allocated):
    # none of it is on a real board's heap. Then the budget is pinned and the firmware boots.
    day = sim_day.Day(a["profile"], a["fs_dir"], a["firmware_dir"], a["hours"], a["seed"], a["cuts"], a["aged"],
                      a["temp_c"], a["policy"], a.get("soc", 1.0), a.get("pack"), a.get("charger", True))
    state = [0]

    def progress(frac):
        pct = int(frac * 100)
        if pct > state[0]:
            state[0] = pct
            print("PROGRESS %d" % pct)

    day.on_progress = progress

    day.on_end = sim_heap.release
    day.preallocate()
    # Every boot: the firmware's code is frozen into flash on a board, so (re)importing it after a reset
    # must not eat the working heap (sim_heap.repin).
    day.board.on_boot.append(lambda board: sim_heap.repin())
    rep = day.run(a["cuts"])
    rep["heap_peak_bytes"] = sim_heap.peak()
    rep["heap_budget_bytes"] = sim_heap.FIRMWARE_BUDGET
    with open(sys.argv[2], "w") as f:
        f.write(json.dumps(rep))


main()
