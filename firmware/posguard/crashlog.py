# Task crash log: a few short lines on the board's filesystem so a technician can see what failed
# (pos.status() shows the last one). Bounded: at most _KEEP entries of at most _LINE_MAX bytes each,
# rewritten through a temporary file and a rename (atomic on littlefs), so a power cut mid-write
# leaves the old log or the new one, never a torn one. Never holds request data (card numbers).
import os

from micropython import const

_KEEP = const(8)
_LINE_MAX = const(160)


def _now_text():
    try:
        import machine

        t = machine.RTC().datetime()
        return "%04d-%02d-%02d %02d:%02d:%02d" % (t[0], t[1], t[2], t[4], t[5], t[6])
    except Exception:
        return "?"


def describe(exc):
    """'ValueError: message' cut to one line: the type and message, no traceback (RAM, and privacy)."""
    msg = str(exc)
    nl = msg.find("\n")
    if nl >= 0:
        msg = msg[:nl]
    return "%s: %s" % (type(exc).__name__, msg)


class CrashLog:
    def __init__(self, path="crash.log"):
        self.path = path
        self.count = 0  # crashes recorded since boot

    def read(self):
        """The stored lines, oldest first (empty if there is no log or it cannot be read)."""
        try:
            with open(self.path) as f:
                lines = []
                for _ in range(_KEEP + 1):  # bounded even if the file was replaced by a huge one
                    ln = f.readline()
                    if not ln:
                        break
                    lines.append(ln.rstrip("\n")[:_LINE_MAX])
                return lines[-_KEEP:]
        except OSError:
            return []

    def last(self):
        lines = self.read()
        return lines[-1] if lines else None

    def record(self, task, exc):
        """Append one line; returns it. Never raises: a full or broken filesystem must not turn a
        logged crash into a second one."""
        self.count += 1
        line = ("%s %s %s" % (_now_text(), task, describe(exc)))[:_LINE_MAX].replace("\n", " ")
        try:
            lines = self.read()
            lines.append(line)
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                for ln in lines[-_KEEP:]:
                    f.write(ln)
                    f.write("\n")
            os.rename(tmp, self.path)
        except OSError:
            pass
        print("posguard: task", task, "crashed:", describe(exc))
        return line

    def clear(self):
        try:
            os.remove(self.path)
        except OSError:
            pass
