# Entry point of a unix-port test run: `micropython -X heapsize=<VM> mpy_main.py mpy_test_x`.
# Pins the firmware's heap budget first (sim_heap), then imports the test script and runs its tests.
import sys

import sim_heap

sim_heap.pin_firmware_budget()
name = sys.argv[1]
if name.endswith(".py"):
    name = name[:-3]
if "/" in name:
    name = name[name.rfind("/") + 1 :]
mod = __import__(name)
import mpy_runner  # noqa: E402

mpy_runner.main(mod.__dict__)
