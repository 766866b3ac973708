# Unicode -> GB18030 two-byte lookup from data/gb18030.bin (format: tools/posguard_tools/gbtable.py).
# The data file lives OUTSIDE the package, in data/ next to the package directory (on a board: /data,
# or /lib/data after a mip install to /lib). A frozen build cannot freeze it, and a posguard/ directory
# on the filesystem would come before .frozen on sys.path and turn the frozen package into an empty
# namespace package (docs/reference/esp32-port.md).
# MicroPython has no GB18030 codec; the 44 KB table stays in flash and each lookup is one seek and a
# 2-byte readinto. Only the range index (about 760 bytes) is held in RAM.
import os
import struct

from micropython import const

_HEADER = const(12)
_RANGE = const(6)
_MAX_RANGES = const(1024)  # a corrupt header must not make us allocate the heap away


DATA_DIR = "data"
DATA_FILE = "gb18030.bin"


def _parent(path):
    return path[: path.rfind("/")] if "/" in path else ""


def data_path(name):
    """DATA_DIR/NAME from the working directory (a board's root: where deploy puts it, frozen build or
    not; MicroPython starts in / and the firmware never changes it), else data/NAME beside the package
    directory (a mip install to /lib, a checkout). A frozen module's __file__ is relative
    ("posguard/gb.py", py/builtinimport.c:158) and names no real directory: it is not trusted alone."""
    first = DATA_DIR + "/" + name
    root = _parent(_parent(__file__))
    for p in (first, (root + "/" if root else "") + DATA_DIR + "/" + name):
        try:
            os.stat(p)
            return p
        except OSError:
            pass
    return first  # open() then raises ENOENT naming the path a deploy puts it at


def _default_path():
    return data_path(DATA_FILE)


class TableError(OSError):
    """The table file is there but unusable. An OSError like a missing file: both mean this firmware
    cannot print Chinese, and printjobs holds such a receipt instead of retrying it."""


class GBTable:
    def __init__(self, path=None):
        self._path = path or _default_path()
        self._f = open(self._path, "rb")
        head = self._f.read(_HEADER)
        if len(head) != _HEADER or head[:4] != b"GB2T" or head[4] != 1:
            self._f.close()
            raise TableError("%s is not a version-1 GB table" % self._path)
        n, nmiss = struct.unpack_from("<HH", head, 6)
        if n == 0 or n > _MAX_RANGES or nmiss > _MAX_RANGES:
            self._f.close()
            raise TableError("%s has a bad header" % self._path)
        self._n = n
        self._index = bytearray(n * _RANGE)
        self._f.readinto(self._index)
        self._miss_at = _HEADER + n * _RANGE
        self._nmiss = nmiss
        self._data_at = self._miss_at + nmiss * 2
        self._two = bytearray(2)
        self._lo_cp = struct.unpack_from("<H", self._index, 0)[0]
        last = (n - 1) * _RANGE
        first, count = struct.unpack_from("<HH", self._index, last)
        self._hi_cp = first + count - 1

    def close(self):
        self._f.close()

    def code(self, cp):
        """The two GB18030 bytes of code point cp as an int (lead << 8 | trail), or 0 if it has none."""
        if cp < self._lo_cp or cp > self._hi_cp:
            return 0
        idx = self._index
        lo = 0
        hi = self._n - 1
        # Binary search over at most _MAX_RANGES entries: 10 steps. The u16 fields are read byte by byte,
        # not with struct.unpack_from, which builds a tuple a step: escpos.Encoder.text() looks up every
        # character of a receipt and must not allocate (host_tests/mpy/mpy_test_printer.py).
        while lo <= hi:
            mid = (lo + hi) >> 1
            o = mid * _RANGE
            first = idx[o] | (idx[o + 1] << 8)
            if cp < first:
                hi = mid - 1
            elif cp >= first + (idx[o + 2] | (idx[o + 3] << 8)):
                lo = mid + 1
            else:
                entry = idx[o + 4] | (idx[o + 5] << 8)
                self._f.seek(self._data_at + (entry + cp - first) * 2)
                two = self._two
                if self._f.readinto(two) != 2:
                    raise TableError("%s is truncated" % self._path)
                return (two[0] << 8) | two[1]
        return 0

    def in_gbk(self, cp):
        """False for the few two-byte GB18030 characters that GBK printers do not have."""
        lo = 0
        hi = self._nmiss - 1
        two = self._two
        while lo <= hi:
            mid = (lo + hi) >> 1
            self._f.seek(self._miss_at + mid * 2)
            self._f.readinto(two)
            v = two[0] | (two[1] << 8)
            if cp < v:
                hi = mid - 1
            elif cp > v:
                lo = mid + 1
            else:
                return False
        return True


_shared = None


def table():
    """One open table for the whole firmware (a file handle, not a copy of the table)."""
    global _shared
    if _shared is None:
        _shared = GBTable()
    return _shared
