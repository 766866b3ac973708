# main.py: load the board profile and run the terminal. On a locked terminal (the "production" file,
# posguard.app.LOCK_FILE, docs/device.md) Ctrl-C capture goes off before anything else: it is on again
# at the start of every script (shared/runtime/pyexec.c), and a locked terminal never drops to a REPL.
import micropython

try:
    open("production").close()
    micropython.kbd_intr(-1)
except OSError:
    pass
from posguard import app  # noqa: E402

app.main()
