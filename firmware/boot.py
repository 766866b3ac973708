# boot.py: runs first after every reset. Keep it small and fast: load the profile, and decide whether
# the battery can carry a boot at all before anything heavy starts.
import gc

import micropython

try:  # a locked terminal (docs/device.md, Production mode): Ctrl-C capture off before anything runs
    open("production").close()
    micropython.kbd_intr(-1)
except OSError:
    pass
del micropython
gc.collect()
try:
    from posguard import bootcheck, profile

    # Below the SHUTDOWN level this deep-sleeps at once (wake on the charger pin or a timer): a weak
    # pack never gets as far as a brownout reboot loop.
    bootcheck.check(profile.load("board.json"))
    del bootcheck, profile  # main.py imports what it needs: boot.py's names must not pin modules in the heap
except Exception as e:  # a bad profile or sensor: main.py reports it; boot.py must not stop the board
    print("boot check skipped:", e)
del gc
