# The printer's RX stream, split by pattern (docs/reference/escpos.md): XON 0x11 / XOFF 0x13,
# DLE EOT replies 0xx1xx10, ASB first byte 0xx1xx00 (+3 bytes), GS r replies 0xx0xxxx; anything else
# is garbage, counted and dropped. Status bits decode into one dict the app and the job runner share.
from micropython import const

# The one printer-fault vocabulary: the print job runner, the host commands, the REPL and the
# simulator's report all use these strings (and fault_of's order) so one printer state has one name.
OFFLINE = "offline"
COVER_OPEN = "cover open"
PAPER_OUT = "paper out"
CUTTER_ERROR = "cutter error"
HEAD_HOT = "head too hot"
FAULTS = (OFFLINE, COVER_OPEN, PAPER_OUT, CUTTER_ERROR, HEAD_HOT)

XON = const(0x11)
XOFF = const(0x13)
_RX_CHUNK = const(16)


def decode(s1, s2, s4):
    """A status dict from DLE EOT 1, 2 and 4 replies (None = that query got no answer)."""
    answered = s1 is not None and s2 is not None
    st = {
        "answered": answered,
        "online": answered and not (s1 & 0x08),
        "paper_out": bool(s2 is not None and s2 & 0x20) or bool(s4 is not None and s4 & 0x60),
        "paper_near_end": bool(s4 is not None and s4 & 0x0C),
        "cover_open": bool(s2 is not None and s2 & 0x04),
        "head_hot": False,
        "cutter_error": False,
    }
    return st


def fault_of(st, s3=None):
    """The reason a job must pause, or "" when the printer can print. First match wins: no answer,
    cover open, paper out, cutter error, head too hot, answered but offline."""
    if s3 is not None:
        st["head_hot"] = bool(s3 & 0x40)
        st["cutter_error"] = bool(s3 & 0x08)
    if not st.get("answered", False):
        return OFFLINE
    if st.get("cover_open"):
        return COVER_OPEN
    if st.get("paper_out"):
        return PAPER_OUT
    if st.get("cutter_error"):
        return CUTTER_ERROR
    if st.get("head_hot"):
        return HEAD_HOT
    if not st.get("online", False):
        return OFFLINE
    return ""


def refusal(problem):
    """A printer problem -> (host error code, what the cashier should do)."""
    if problem == PAPER_OUT:
        return "PAPER_OUT", "load a new paper roll"
    if problem == COVER_OPEN:
        return "PRINTER_FAULT", "close the printer cover"
    return "PRINTER_FAULT", "check the printer (cover, paper, cable)"


class Demux:
    def __init__(self, uart):
        self.uart = uart
        self.xoff = False
        self.garbage = 0
        self.replies = 0
        self.last_reply = -1  # the most recent DLE EOT reply byte, -1 = none since take_reply()
        self.gsr = -1
        self.asb = bytearray(4)
        self._asb_left = 0
        self._buf = bytearray(_RX_CHUNK)

    def poll(self):
        """Read and classify whatever the printer sent (bounded: at most 64 bytes a call)."""
        buf = self._buf
        for _ in range(4):
            n = self.uart.readinto(buf)
            if not n:
                return
            for i in range(n):
                self.feed(buf[i])

    def feed(self, b):
        if self._asb_left:
            if b & 0x90 == 0:  # ASB bytes 2-4 are shaped 0xx0xxxx ...
                self.asb[4 - self._asb_left] = b
                self._asb_left -= 1
                return
            self._asb_left = 0  # ... so this one (an XOFF, say) ends a false ASB start
            self.garbage += 1
        if b == XON:
            self.xoff = False
        elif b == XOFF:
            self.xoff = True
        elif b & 0x93 == 0x12:
            self.last_reply = b
            self.replies += 1
        elif b & 0x93 == 0x10:
            self.asb[0] = b
            self._asb_left = 3
        elif b & 0x90 == 0:
            self.gsr = b
        else:
            self.garbage += 1

    def take_reply(self):
        r = self.last_reply
        self.last_reply = -1
        return r
