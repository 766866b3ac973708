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


def borrow(name):
    """Firmware module `name` (e.g. "posguard.escpos"), leaving sys.modules as it found it."""
    mods = sys.modules
    before = {}
    for k in mods:
        before[k] = True
    mod = __import__(name)
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
