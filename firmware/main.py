# main.py: run the terminal, or stay at the REPL in service mode.
# Service mode (posguard.maint: the long press, deploy, journal dump) is checked before anything of the
# terminal is imported, so the technician and the host tools get the whole heap (the .mpy firmware on a
# board without PSRAM leaves little else: docs/device.md, Shipped profiles).
# On a locked terminal (the "production" file, posguard.app.LOCK_FILE, docs/device.md) Ctrl-C capture
# goes off before anything else: it is on again at the start of every script (shared/runtime/pyexec.c),
# and a locked terminal never drops to a REPL.
import micropython

from posguard import maint

if maint.requested():
    print(maint.BANNER)
else:
    try:
        open("production").close()
        micropython.kbd_intr(-1)
    except OSError:
        pass
    from posguard import app

    app.main()
