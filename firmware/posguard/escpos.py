# ESC/POS encoder: turns one receipt line at a time into printer bytes in a preallocated buffer.
# Command bytes from docs/reference/escpos.md. Text never carries a control byte to the printer:
# C0/C1 controls and DEL print as "?", so an item name holding 1B / 1D / 10 04 is printed, not obeyed.
from micropython import const

from posguard import gb

ESC = const(0x1B)
GS = const(0x1D)
FS = const(0x1C)
DLE = const(0x10)
EOT = const(0x04)
LF = const(0x0A)

_SPACE_RUN = const(5)  # runs this long become an ESC $ position (4 bytes)
_REPLACEMENT = const(0x3F)  # "?" stands for anything the printer cannot print
_YEN_HALF = const(0xA5)  # half-width yen is 4-byte GB18030 and prints as "0 6" (escpos.md) ...
_YEN_FULL = const(0xFFE5)  # ... so use full-width (A3 A4)
_DOTS_58 = const(384)  # 58 mm paper: 384 dots, 80 mm: 576 (escpos.md)
_DOTS_80 = const(576)
_QR_QUIET = const(4)  # modules of quiet zone each side (ISO/IEC 18004)
_QR_MAX_VERSION = const(20)
# QR model 2 byte-mode capacity for versions 1-20 at error level L, M, Q, H (ISO/IEC 18004 table 7).
_QR_CAP = (
    (17, 14, 11, 7),
    (32, 26, 20, 14),
    (53, 42, 32, 24),
    (78, 62, 46, 34),
    (106, 84, 60, 44),
    (134, 106, 74, 58),
    (154, 122, 86, 64),
    (192, 152, 108, 84),
    (230, 180, 130, 98),
    (271, 213, 151, 119),
    (321, 251, 177, 137),
    (367, 287, 203, 155),
    (425, 331, 241, 177),
    (458, 362, 258, 194),
    (520, 412, 292, 220),
    (586, 450, 322, 250),
    (644, 504, 364, 280),
    (718, 560, 394, 310),
    (792, 624, 442, 338),
    (858, 666, 482, 382),
)

ENCODINGS = ("gb18030", "gbk", "utf-8", "ascii")

# Text styles of a line op (posguard/receipt.py)
BOLD = const(1)
BIG = const(2)  # double width and height
TALL = const(4)  # double height only
UNDERLINE = const(8)
REVERSE = const(16)


class EncodeError(ValueError):
    pass


def paper_dots(paper_mm):
    if paper_mm == 58:
        return _DOTS_58
    if paper_mm == 80:
        return _DOTS_80
    raise EncodeError("paper width %r mm is not 58 or 80" % (paper_mm,))


def is_wide(cp):
    # Characters a UTF-8 printer draws double width: the East Asian Wide/Fullwidth blocks (UAX #11), the
    # one list in the tree (docs/reference/escpos.md, "Character width"; the simulated printer and the
    # receipt pictures use it too).
    return (
        (0x1100 <= cp <= 0x115F)
        or (0x2E80 <= cp <= 0xA4CF)
        or (0xA960 <= cp <= 0xA97F)
        or (0xAC00 <= cp <= 0xD7A3)
        or (0xF900 <= cp <= 0xFAFF)
        or (0xFE10 <= cp <= 0xFE19)
        or (0xFE30 <= cp <= 0xFE6F)
        or (0xFF00 <= cp <= 0xFF60)
        or (0xFFE0 <= cp <= 0xFFE6)
    )


def qr_version(nbytes, ecc):
    """Smallest QR model 2 version holding nbytes in byte mode at error level ecc (0-3 = L, M, Q, H)."""
    for v in range(_QR_MAX_VERSION):
        if _QR_CAP[v][ecc] >= nbytes:
            return v + 1
    return 0


class Encoder:
    def __init__(self, encoding="gb18030", paper_mm=58, cutter=False, size=512, table=None):
        if encoding not in ENCODINGS:
            raise EncodeError("printer encoding %r is not one of %s" % (encoding, ", ".join(ENCODINGS)))
        self.encoding = encoding
        self.dots = paper_dots(paper_mm)
        self.cutter = cutter
        self.buf = bytearray(size)
        # cont[i] = 1: byte i continues a command or a double-byte character. A real-time status query
        # must never land there (escpos.md: DLE EOT inside another command's data breaks it).
        self.cont = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0
        self._gb = encoding in ("gb18030", "gbk")
        self._table = table
        self._cn = False  # inside FS & (Chinese double-byte mode)
        self._align = -1  # the printer's justification as last set (-1 unknown); it persists per line
        self._x = 0  # dots printed on the current line (for ESC $ absolute positions)
        self._wmul = 1

    # -- buffer ---------------------------------------------------------------------------------
    def clear(self):
        self.n = 0
        self._cn = False

    def out(self):
        """The bytes encoded since clear(), as a memoryview (no copy)."""
        return self.mv[: self.n]

    def _room(self, k):
        if self.n + k > len(self.buf):
            raise EncodeError("line too long for the %d-byte encoder buffer" % len(self.buf))

    def put(self, *bs):
        """Append one indivisible item (a command). Builds a tuple per call, so it is for commands; text
        goes through _put1/_put2/_put3, which allocate nothing."""
        self._room(len(bs))
        b = self.buf
        c = self.cont
        n = self.n
        first = n
        for x in bs:
            b[n] = x
            c[n] = 0 if n == first else 1
            n += 1
        self.n = n

    def _put1(self, a, cont=0):
        # One byte: the first of an item (cont 0) or one continuing it (cont 1). No tuple, unlike put().
        n = self.n
        if n >= len(self.buf):
            self._room(1)
        self.buf[n] = a
        self.cont[n] = cont
        self.n = n + 1

    def _put2(self, a, b):
        self._room(2)  # the whole character fits, or none of it is written
        self._put1(a)
        self._put1(b, 1)

    def _put3(self, a, b, c):
        self._room(3)
        self._put1(a)
        self._put1(b, 1)
        self._put1(c, 1)

    def put_bytes(self, data):
        """Append data that continues the command just put (a QR payload)."""
        k = len(data)
        self._room(k)
        self.mv[self.n : self.n + k] = data
        c = self.cont
        for i in range(self.n, self.n + k):
            c[i] = 1
        self.n += k

    def safe_at(self, i):
        """May a status query be sent after byte i-1 (i.e. is offset i a command boundary)?"""
        return i >= self.n or not self.cont[i]

    def table(self):
        if self._table is None:
            self._table = gb.table()
        return self._table

    # -- setup and modes --------------------------------------------------------------------------
    def init(self, status_back=False):
        """ESC @ resets every mode, so leave Chinese mode (FS .) and switch automatic status back off."""
        self.put(ESC, 0x40)
        self.put(FS, 0x2E)
        if not status_back:
            self.put(GS, 0x61, 0)
        self._cn = False
        self._align = 0
        self._x = 0
        self._wmul = 1

    def align(self, n):
        if n not in (0, 1, 2):
            raise EncodeError("alignment must be 0 left, 1 centre or 2 right")
        if n == self._align:
            return  # unchanged since the last line: 3 bytes fewer for a small receive buffer
        self.put(ESC, 0x61, n)
        self._align = n

    def bold(self, on):
        self.put(ESC, 0x45, 1 if on else 0)

    def size(self, width, height):
        if not (1 <= width <= 8 and 1 <= height <= 8):
            raise EncodeError("character size must be 1-8 in each direction")
        self.put(GS, 0x21, ((width - 1) << 4) | (height - 1))
        self._wmul = width

    def underline(self, n):
        if n not in (0, 1, 2):
            raise EncodeError("underline must be 0, 1 or 2 dots")
        self.put(ESC, 0x2D, n)

    def reverse(self, on):
        self.put(GS, 0x42, 1 if on else 0)

    def feed(self, lines):
        if not 0 <= lines <= 255:
            raise EncodeError("feed must be 0-255 lines")
        self.put(ESC, 0x64, lines)
        self._x = 0

    def feed_dots(self, dots):
        if not 0 <= dots <= 255:
            raise EncodeError("feed must be 0-255 dots")
        self.put(ESC, 0x4A, dots)

    def newline(self):
        self._leave_cn()
        self._put1(LF)
        self._x = 0

    def cut(self, partial=True):
        """Feed and cut (GS V 66/65 n); nothing at all when the profile has no cutter."""
        if self.cutter:
            self.put(GS, 0x56, 0x42 if partial else 0x41, 0)

    def heat(self, dots, time_us, interval_us):
        """CSN-A2-class ESC 7: heating dots (n1+1)*8, time n2*10 us, interval n3*10 us (escpos.md)."""
        n1 = max(0, min(255, dots // 8 - 1))
        n2 = max(3, min(255, time_us // 10))
        n3 = max(0, min(255, interval_us // 10))
        self.put(ESC, 0x37, n1, n2, n3)

    def density(self, density, speed):
        """Epson GS ( K: fn 49 print density (-6..6), fn 50 print speed (1 slow - 9 fast)."""
        if not (-6 <= density <= 6 and 1 <= speed <= 9):
            raise EncodeError("density -6..6 and speed 1..9")
        self.put(GS, 0x28, 0x4B, 2, 0, 0x31, density & 0xFF)
        self.put(GS, 0x28, 0x4B, 2, 0, 0x32, speed)

    # -- text -----------------------------------------------------------------------------------
    def _leave_cn(self):
        if self._cn:
            self._put2(FS, 0x2E)
            self._cn = False

    def _enter_cn(self):
        if not self._cn:
            self._put2(FS, 0x26)
            self._cn = True

    def _code(self, cp):
        # The GB code (2 bytes as an int) of cp, or 0 when the printer has no glyph for it.
        code = self.table().code(cp)
        if code and self.encoding == "gbk" and not self.table().in_gbk(cp):
            return 0
        return code

    def char_cols(self, cp):
        """Columns one character takes on this printer: a double-byte glyph is two (escpos.md)."""
        if cp < 0x80:
            return 1
        if cp == _YEN_HALF:
            cp = _YEN_FULL
        if self._gb:
            return 2 if self._code(cp) else 1
        if self.encoding == "utf-8":
            if cp > 0xFFFF or 0xD800 <= cp < 0xE000:
                return 1
            return 2 if is_wide(cp) else 1
        return 1

    def cols(self, s):
        n = 0
        for ch in s:
            n += self.char_cols(ord(ch))
        return n

    def _spaces(self, k):
        # A run of spaces on a left-justified line: ESC $ (absolute position, 4 bytes) instead of k
        # bytes, so item lines fit a 45-byte receive buffer and print without waiting for the wire.
        if k == 0:
            return
        step = 12 * self._wmul  # font A cell: 12 dots (384 dots / 32 columns, escpos.md)
        if k >= _SPACE_RUN and self._align == 0:
            self._leave_cn()
            self._x += k * step
            self.put(ESC, 0x24, self._x & 0xFF, self._x >> 8)
            return
        self._leave_cn()
        for _ in range(k):
            self._put1(0x20)
        self._x += k * step

    def text(self, s):
        """Append s in the printer's encoding; Chinese runs are wrapped in FS & ... FS .. Allocates
        nothing per character (a receipt is hundreds of them): no tuples, one GB lookup each
        (host_tests/mpy/mpy_test_printer.py measures it on the unix port). Widths as char_cols()."""
        spaces = 0
        step = 12 * self._wmul
        for ch in s:
            cp = ord(ch)
            if cp == 0x20:
                spaces += 1
                continue
            if spaces:
                self._spaces(spaces)
                spaces = 0
            if cp < 0x20 or cp == 0x7F or 0x80 <= cp < 0xA0:
                cp = _REPLACEMENT
            if cp < 0x80:
                self._x += step
                self._leave_cn()
                self._put1(cp)
                continue
            if cp == _YEN_HALF:
                cp = _YEN_FULL
            if self._gb:
                code = self._code(cp)
                if code:
                    self._x += 2 * step
                    self._enter_cn()
                    self._put2(code >> 8, code & 0xFF)
                else:
                    self._x += step
                    self._leave_cn()
                    self._put1(_REPLACEMENT)
            elif self.encoding == "utf-8" and cp <= 0xFFFF and not (0xD800 <= cp < 0xE000):
                self._x += 2 * step if is_wide(cp) else step
                if cp < 0x800:
                    self._put2(0xC0 | (cp >> 6), 0x80 | (cp & 0x3F))
                else:
                    self._put3(0xE0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F))
            else:
                self._x += step
                self._put1(_REPLACEMENT)  # single-byte printers and 4-byte characters
        if spaces:
            self._spaces(spaces)
        self._leave_cn()

    # -- QR and barcodes ----------------------------------------------------------------------------
    def qr_fit(self, nbytes, ecc=1, module=None):
        """(version, module size) for a payload, or raise if it cannot fit the paper with its quiet zone."""
        if not 0 <= ecc <= 3:
            raise EncodeError("QR error level must be 0-3 (L, M, Q, H)")
        v = qr_version(nbytes, ecc)
        if v == 0:
            raise EncodeError("QR payload of %d bytes is too long for this receipt" % nbytes)
        modules = 17 + 4 * v + 2 * _QR_QUIET
        biggest = self.dots // modules
        if module is None:
            module = min(6, biggest)  # 6 dots = 0.75 mm modules scan well off a phone
        if module < 1 or module > 16 or module > biggest:
            raise EncodeError("QR version %d with %r-dot modules does not fit %d dots" % (v, module, self.dots))
        return v, module

    def qr(self, data, ecc=1, module=None):
        """Native QR, model 2 (GS ( k, cn 0x31), with a vertical quiet zone fed as dots."""
        if isinstance(data, str):
            data = data.encode()
        k = len(data)
        _, module = self.qr_fit(k, ecc, module)
        self.put(GS, 0x28, 0x6B, 4, 0, 0x31, 0x41, 0x32, 0)
        self.put(GS, 0x28, 0x6B, 3, 0, 0x31, 0x43, module)
        self.put(GS, 0x28, 0x6B, 3, 0, 0x31, 0x45, 0x30 + ecc)
        k3 = k + 3
        self.put(GS, 0x28, 0x6B, k3 & 0xFF, k3 >> 8, 0x31, 0x50, 0x30)
        self.put_bytes(data)
        self.feed_dots(min(255, _QR_QUIET * module))
        self.put(GS, 0x28, 0x6B, 3, 0, 0x31, 0x51, 0x30)
        self.feed_dots(min(255, _QR_QUIET * module))

    def code128(self, data, height=80, width=2, hri=2):
        """CODE128 via GS k 73: {C for an even run of digits (two per byte), else {B with { escaped."""
        if not data:
            raise EncodeError("empty barcode")
        for ch in data:
            c = ord(ch)
            if c < 0x20 or c > 0x7E:
                raise EncodeError("CODE128 set B takes printable ASCII only")
        self.put(GS, 0x68, max(1, min(255, height)))
        self.put(GS, 0x77, max(2, min(6, width)))
        self.put(GS, 0x48, hri)
        if len(data) % 2 == 0 and data.isdigit():
            k = 2 + len(data) // 2
            self.put(GS, 0x6B, 73, k, 0x7B, 0x43)
            for i in range(0, len(data), 2):
                self._put1(int(data[i : i + 2]))
        else:
            k = 2 + len(data) + data.count("{")
            if k > 255:
                raise EncodeError("barcode data too long")
            self.put(GS, 0x6B, 73, k, 0x7B, 0x42)
            for ch in data:
                c = ord(ch)
                self._put1(c)
                if c == 0x7B:
                    self._put1(c)


def status_query(n):
    """DLE EOT n: the real-time status request (escpos.md); n = 1..4."""
    return bytes((DLE, EOT, n))


def encode_op(enc, op):
    """Append one receipt line op (see posguard/receipt.py) to the encoder."""
    kind = op[0]
    if kind == "text":
        style = op[3]
        enc.align(op[2])
        if style & BOLD:
            enc.bold(True)
        if style & BIG:
            enc.size(2, 2)
        elif style & TALL:
            enc.size(1, 2)
        if style & UNDERLINE:
            enc.underline(1)
        if style & REVERSE:
            enc.reverse(True)
        enc.text(op[1])
        enc.newline()
        # Modes outlive the line on the printer: put back the ones this line changed.
        if style & BOLD:
            enc.bold(False)
        if style & (BIG | TALL):
            enc.size(1, 1)
        if style & UNDERLINE:
            enc.underline(0)
        if style & REVERSE:
            enc.reverse(False)
    elif kind == "qr":
        enc.align(1)
        enc.qr(op[1])
        enc.align(0)
    elif kind == "barcode":
        enc.align(1)
        enc.code128(op[1])
        enc.align(0)
    elif kind == "feed":
        enc.feed(op[1])
    elif kind == "cut":
        enc.cut(True)
    else:
        raise EncodeError("unknown line op %r" % (kind,))
