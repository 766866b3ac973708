# The firmware's own tables for the simulator (MicroPython subset; never deployed).
#
# Where a simulated part would only repeat a firmware table (a copy that checks nothing), it borrows the
# firmware's module instead. Borrowed, not imported: the simulator loads before the heap budget is pinned
# (sim_heap.SIM_MODULES), and a firmware module it left in sys.modules would be free for the firmware
# afterwards: its code would not count against the board's heap when deployed as .mpy (sim_heap
# preload=False, the MicroPython gate's import costs), and a reset (sim_board._drop_ram) could not model
# reloading it. So every module the borrow loaded is taken off sys.modules (and off its package) again;
# the simulator keeps its own reference, the firmware imports and pays for its own copy.
import sys


def _firmware_dir():
    # The checkout's firmware/ (beside host_tests/), not whatever the board's path holds: a virtual
    # board's filesystem may have no firmware at all, or a deploy without its data files.
    f = __file__
    here = f.rsplit("/", 1)[0] if "/" in f else "."
    return here + "/../../firmware"


def borrow(name):
    """Firmware module `name` (e.g. "posguard.escpos") from the checkout's firmware/, leaving sys.modules
    (and sys.path) as it found them."""
    mods = sys.modules
    before = {}
    for k in mods:
        before[k] = True
    sys.path.insert(0, _firmware_dir())
    try:
        mod = __import__(name)
    finally:
        sys.path.pop(0)
    for part in name.split(".")[1:]:
        mod = getattr(mod, part)
    for k in list(mods.keys()):
        if k in before:
            continue
        del mods[k]
        dot = k.rfind(".")
        if dot > 0 and k[:dot] in before:
            parent = mods[k[:dot]]
            child = k[dot + 1 :]
            if child in parent.__dict__:
                delattr(parent, child)
    return mod
