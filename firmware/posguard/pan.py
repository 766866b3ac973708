# Text hygiene before anything reads a host line: strict UTF-8, and card-number (PAN) detection on
# normalised text. MicroPython's str() accepts overlong UTF-8 ("C0 B0" reads as "0"), so the bytes are
# checked here first; then every string is scanned for a full card number however it is written
# (digits of any script, separators between the groups), in one pass with a fixed cost per character.
# Facts: docs/reference/card-numbers.md (Luhn, issuer prefixes, lengths) and
# docs/reference/unicode-digits.md (the decimal-digit blocks).
# No micropython import: the host tools validate board profiles (which use the scanner) on plain
# CPython. The hot loop uses literals where const() would have inlined them.
PAN_MIN = 13  # ISO/IEC 7812 payment card numbers are 13-19 digits
PAN_MAX = 19
_SEP_MAX = 3  # a run of at most 3 non-alphanumerics between digit groups joins them
_RING = 32  # > PAN_MAX + 1, a power of two: ring index with & 31
_MASK = 31

# First code point of every block of ten decimal digits (Unicode general category Nd: the digit
# value is the offset in the block). Unicode 15.0; docs/reference/unicode-digits.md.
_ND_ZEROS = (
    0x0030, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
    0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950, 0x1FBF0,
)
# Characters a printer draws as nothing: they never count as a separator (four zero-width spaces must
# not split "4111<ZWSP x4>1111..." into harmless pieces).
_INVISIBLE = (0x00AD, 0x034F, 0x061C, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0x2061,
              0x2062, 0x2063, 0x2064, 0xFEFF)
_DOUBLE = b"\x00\x02\x04\x06\x08\x01\x03\x05\x07\x09"  # Luhn: 2d with its digits summed

# Issuer rules (ISO/IEC 7812 IIN ranges of the card schemes, docs/reference/card-numbers.md):
# (prefix digits, lowest prefix, highest prefix, shortest PAN, longest PAN, scheme).
RULES = (
    (1, 4, 4, 13, 19, "Visa"),
    (2, 51, 55, 16, 16, "Mastercard"),
    (4, 2221, 2720, 16, 16, "Mastercard"),
    (2, 34, 34, 15, 15, "American Express"),
    (2, 37, 37, 15, 15, "American Express"),
    (2, 62, 62, 16, 19, "UnionPay"),
    (2, 81, 81, 16, 19, "UnionPay"),
    (4, 3528, 3589, 16, 19, "JCB"),
    (4, 6011, 6011, 16, 19, "Discover"),
    (3, 644, 649, 16, 19, "Discover"),
    (2, 65, 65, 16, 19, "Discover/RuPay"),
    (3, 300, 305, 14, 19, "Diners Club"),
    (2, 36, 36, 14, 19, "Diners Club"),
    (2, 38, 39, 14, 19, "Diners Club"),
    (4, 2200, 2204, 16, 19, "Mir"),
    (2, 50, 50, 13, 19, "Maestro"),
    (2, 56, 69, 13, 19, "Maestro"),
    (2, 60, 60, 16, 16, "RuPay"),
    (2, 82, 82, 16, 16, "RuPay"),
    (1, 1, 1, 15, 15, "UATP"),
    (4, 9792, 9792, 16, 16, "Troy"),
)


def utf8_strict(b):
    """Index of the first byte that is not strict UTF-8 (overlong form, surrogate, above U+10FFFF,
    stray or missing continuation byte), or -1 when all of b is well-formed. One pass, no allocation."""
    n = len(b)
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif c == 0xE0:
            k, lo = 2, 0xA0  # E0 80..9F would be an overlong 3-byte form
        elif c == 0xED:
            k, hi = 2, 0x9F  # ED A0..BF are the UTF-16 surrogates D800-DFFF
        elif 0xE1 <= c <= 0xEF:
            k = 2
        elif c == 0xF0:
            k, lo = 3, 0x90  # F0 80..8F: overlong
        elif 0xF1 <= c <= 0xF3:
            k = 3
        elif c == 0xF4:
            k, hi = 3, 0x8F  # above 8F: beyond U+10FFFF
        else:
            return i  # 80-C1 (continuation or overlong 2-byte lead), F5-FF
        if i + k >= n:
            return i
        c2 = b[i + 1]
        if c2 < lo or c2 > hi:
            return i
        j = i + 2
        while j <= i + k:
            if b[j] & 0xC0 != 0x80:
                return i
            j += 1
        i += k + 1
    return -1


def digit_value(cp):
    """0-9 for a decimal digit of any script (Nd) or a super/subscript digit, else -1."""
    if cp < 0x80:
        return cp - 48 if 48 <= cp <= 57 else -1
    if 0xFF10 <= cp <= 0xFF19:  # full-width, the look-alike a CJK keyboard types
        return cp - 0xFF10
    if cp < 0x660 and cp not in (0xB2, 0xB3, 0xB9):
        return -1
    if cp in (0xB2, 0xB3):
        return cp - 0xB0
    if cp == 0xB9:
        return 1
    if 0x2070 <= cp <= 0x2079:
        return -1 if cp in (0x2071, 0x2072, 0x2073) else cp - 0x2070
    if 0x2080 <= cp <= 0x2089:
        return cp - 0x2080
    lo = 0
    hi = len(_ND_ZEROS) - 1
    while lo <= hi:  # binary search: the block whose zero is the largest <= cp
        mid = (lo + hi) >> 1
        if _ND_ZEROS[mid] <= cp:
            lo = mid + 1
        else:
            hi = mid - 1
    if hi >= 0 and cp - _ND_ZEROS[hi] < 10:
        return cp - _ND_ZEROS[hi]
    return -1


def _alnum_ascii(cp):
    return 65 <= cp <= 90 or 97 <= cp <= 122


def _by_first_digit():
    out = []
    for d in range(10):
        out.append(tuple(r for r in RULES if r[1] // 10 ** (r[0] - 1) <= d <= r[2] // 10 ** (r[0] - 1)))
    return tuple(out)


_BY_FIRST = _by_first_digit()  # the rules a window starting with digit d can match (most: none)
_POW = (1, 10, 100, 1000)


def rule_for(digits, start, length):
    """The issuer rule a Luhn-valid window matches (the longest prefix wins): its scheme, or None.
    digits is the scanner's ring."""
    rules = _BY_FIRST[digits[start & _MASK]]
    if not rules:
        return None
    p4 = 0
    for k in range(4):
        p4 = p4 * 10 + digits[(start + k) & _MASK]
    best = None
    for r in rules:
        if r[3] <= length <= r[4] and r[1] <= p4 // _POW[4 - r[0]] <= r[2]:
            if best is None or r[0] > best[0]:
                best = r
    return None if best is None else best[5]


class Scanner:
    """One scanner, reused: find(text) -> None, or (scheme, length) of the first full card number.
    Linear: per character a digit lookup; per digit two ring updates and at most 7 equality tests
    (a window is Luhn-valid when two prefix sums agree); the issuer table only for Luhn hits."""

    def __init__(self):
        self.d = bytearray(_RING)  # the run's last digits
        self.a = bytearray(_RING)  # Luhn prefix sums mod 10, even positions plain
        self.b = bytearray(_RING)  # ... odd positions plain
        self.work = 0  # characters examined since reset_work(): the validation budget's meter

    def find(self, text):
        # Literals below: 13 = PAN_MIN, 19 = PAN_MAX, 31 = _MASK, 3 = _SEP_MAX (no const() here).
        d = self.d
        a = self.a
        b = self.b
        n = 0  # digits in the current run
        gap = 0  # separators since the last digit
        self.work += len(text)
        if len(text) < 13:
            return None  # too short to hold 13 digits
        for ch in text:
            cp = ord(ch)
            v = cp - 48 if 48 <= cp <= 57 else (-1 if cp < 0x80 else digit_value(cp))
            if v < 0:
                if n:
                    if _alnum_ascii(cp):
                        n = 0  # a letter ends the run
                    elif cp not in _INVISIBLE:
                        gap += 1
                        if gap > 3:
                            n = 0
                continue
            gap = 0
            if n == 0:
                a[0] = 0
                b[0] = 0
            i = n & 31
            e = (n + 1) & 31
            d[i] = v
            if n & 1:
                a[e] = (a[i] + _DOUBLE[v]) % 10
                b[e] = (b[i] + v) % 10
            else:
                a[e] = (a[i] + v) % 10
                b[e] = (b[i] + _DOUBLE[v]) % 10
            n += 1
            if n < 13:
                continue
            # Windows ending at this digit: it is not doubled, nor is any digit of the same parity. A
            # window is Luhn-valid when the prefix sums at its two ends agree.
            ring = a if n & 1 else b
            want = ring[e]
            st = n - 13
            lo = n - 19 if n > 19 else 0
            while st >= lo:
                if ring[st & 31] == want and _BY_FIRST[d[st & 31]]:
                    scheme = rule_for(d, st, n - st)
                    if scheme is not None:
                        return scheme, n - st
                st -= 1
        return None


def luhn_ok(digits):
    """Luhn over a str of ASCII digits (tests and tools: the scanner has its own rolling form)."""
    total = 0
    dbl = False
    for i in range(len(digits) - 1, -1, -1):
        v = ord(digits[i]) - 48
        total += _DOUBLE[v] if dbl else v
        dbl = not dbl
    return total % 10 == 0
