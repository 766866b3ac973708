# Host-link request validation: one JSON line from the cashier app in, a clean request dict out, or a
# HostError with a stable code. Nothing here touches the journal or the printer, so a refused line
# changes nothing. Error messages name fields, never echo values (a value might be a card number).
import json
import sys

from micropython import const

from posguard import pan

# Protocol caps that do not depend on the board (the board's caps come from profile["host"]).
_ID_MAX = const(0x7FFFFFFF)  # sale ids travel in every journal record header (docs/journal.md)
_MDAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_TEXT_MAX = const(32)  # reasons: the journal keeps at most 32 bytes of text (sales.MAX_TEXT)
_AUTH_MAX = const(12)  # ISO 8583 field 38 approval code is 6; leave room for acquirer variants
_QTY_MAX = const(999)
_CURSOR_MAX = const(0x3FFFFFFF)
_PAGE_MAX = const(16)
_NEST_MAX = const(4)  # deepest valid request: {"items":[{...}]} is 3 levels
# MicroPython's json.loads reads any buffer (py/modjson.c takes the buffer protocol): a line is parsed
# where it lies, in the host link's buffer, never copied. CPython's takes str or bytes only.
_PARSE_IN_PLACE = sys.implementation.name == "micropython"

METHODS = ("card", "cash", "qr")


class HostError(Exception):
    """A refusal the cashier app can act on: code (stable, machine-readable), msg, and what to do."""

    def __init__(self, code, msg, todo=None, retry_after_s=None):
        super().__init__(code)
        self.code = code
        self.msg = msg
        self.todo = todo
        self.retry_after_s = retry_after_s  # BUSY: when asking again makes sense


# Field kinds
_K_ID = const(1)
_K_ITEMS = const(2)
_K_TEXT = const(3)
_K_AUTH = const(4)
_K_LAST4 = const(5)
_K_METHOD = const(6)
_K_CURSOR = const(7)
_K_PAGE = const(8)
_K_TIME = const(9)

# op -> ((field, kind, required), ...). "seq" (a number the app picks, echoed in the reply) is allowed
# on every op and checked separately.
OPS = {
    "status": (),
    "sale": (("id", _K_ID, True),),
    "open": (("id", _K_ID, True), ("items", _K_ITEMS, True), ("time", _K_TIME, False)),
    "pay": (("id", _K_ID, True), ("method", _K_METHOD, True)),
    "approve": (("id", _K_ID, True), ("auth", _K_AUTH, True), ("last4", _K_LAST4, False)),
    "decline": (("id", _K_ID, True), ("reason", _K_TEXT, False)),
    "void": (("id", _K_ID, True), ("reason", _K_TEXT, False)),
    "reprint": (("id", _K_ID, False),),
    "ack_reversal": (("id", _K_ID, True),),
    "export": (("after", _K_CURSOR, False), ("limit", _K_PAGE, False)),
}


class Limits:
    """The board's caps (profile["host"]): line length, items per sale, name length, amount."""

    def __init__(self, host_profile):
        self.line_max = host_profile["line_max"]
        self.items_max = host_profile["items_max"]
        self.name_max = host_profile["name_max"]
        self.amount_max = host_profile["amount_max"]


# -- card numbers ----------------------------------------------------------------------------------
_SCANNER = pan.Scanner()
_NODES_MAX = const(256)  # values in one request: a 20-item sale has about 90; bounded work per line
_NUM_PAN = 1000000000000  # 10**12: smaller integers have fewer than 13 digits (a big int on ESP32: no const)


def card_number_error(field, scheme, length):
    return HostError("CARD_NUMBER", "%s holds a full card number (Luhn-valid, %d digits, %s issuer prefix): "
                     "refused, nothing stored" % (field, length, scheme), "send only the last four digits in 'last4'")


def check_text(s, field):
    """Raise CARD_NUMBER if text s holds a card number, however written (docs/terminal.md)."""
    hit = _SCANNER.find(s)
    if hit is not None:
        raise card_number_error(field, hit[0], hit[1])


def contains_pan(text):
    """True if text holds a full card number (digits of any script, groups joined by up to three
    separators; Luhn, then the issuer's prefix and length rule)."""
    return _SCANNER.find(text) is not None


def _scan_number(v):
    t = type(v)
    if t is int:
        if v >= _NUM_PAN or v <= -_NUM_PAN:
            hit = _SCANNER.find(str(-v if v < 0 else v))
            if hit is not None:
                raise card_number_error("a number", hit[0], hit[1])
    elif t is float:
        # A float this large carries no usable amount, and single precision may have dropped the
        # digits a Luhn check needs: refuse it as what it most likely is.
        if v >= 1e12 or v <= -1e12:
            raise HostError("CARD_NUMBER", "a number is as large as a card number: refused, nothing stored",
                            "send only the last four digits in 'last4'")


def scan_request(obj):
    """Walk a decoded request without recursion (an explicit stack of at most _NEST_MAX levels, at most
    _NODES_MAX values): refuse nesting, oversized structures and any card-number-looking value."""
    stack = [obj]
    depth = [1]
    nodes = 0
    while stack:
        v = stack.pop()
        lvl = depth.pop()
        nodes += 1
        if nodes > _NODES_MAX:
            raise HostError("BAD_REQUEST", "request has more than %d values" % _NODES_MAX, "split it")
        t = type(v)
        if t is str:
            check_text(v, "a field")
        elif t is dict or t is list:
            if lvl > _NEST_MAX:
                raise HostError("BAD_JSON", "request nested deeper than %d levels" % _NEST_MAX,
                                "send one flat JSON object per line")
            if t is dict:
                for k in v:
                    stack.append(k)
                    depth.append(lvl + 1)
                    stack.append(v[k])
                    depth.append(lvl + 1)
            else:
                for x in v:
                    stack.append(x)
                    depth.append(lvl + 1)
        else:
            _scan_number(v)


# -- parsing ---------------------------------------------------------------------------------------
def _nesting_ok(line, n):
    """Reject deeply nested JSON before json.loads: '[[[[...' of a few KB exhausts a 110 KB heap on
    the unix port. Counting brackets is C speed; the exact scan (brackets inside strings do not count)
    runs only for odd lines. The depth limit itself is scan_request's, after parsing. Looks at the
    first n bytes of line only (a bytes or bytearray)."""
    if line.count(b"[", 0, n) + line.count(b"{", 0, n) <= 64:
        return True
    depth = 0
    in_str = False
    esc = False
    for i in range(n):
        c = line[i]
        if in_str:
            if esc:
                esc = False
            elif c == 92:  # backslash
                esc = True
            elif c == 34:
                in_str = False
        elif c == 34:
            in_str = True
        elif c == 91 or c == 123:
            depth += 1
            if depth > _NEST_MAX:
                return False
        elif c == 93 or c == 125:
            depth -= 1
    return True


def _bad_utf8():
    return HostError("BAD_JSON", "request is not valid UTF-8 (overlong form, surrogate, beyond U+10FFFF or a "
                     "broken sequence)", "send shortest-form UTF-8 JSON, one object per line")


def parse_line(line, n=-1):
    """The first n bytes (all when n < 0) of line, a bytes or bytearray holding one line without its
    newline -> decoded JSON object. Raises HostError. On MicroPython nothing line-sized is allocated:
    a 2 KB copy per request is what a fragmented ESP32 heap cannot find after hours of trading."""
    if type(line) is memoryview:
        line = bytes(line)  # a caller's view (tests): the host link passes its bytearray and a length
    if n < 0:
        n = len(line)
    if not _nesting_ok(line, n):
        raise HostError("BAD_JSON", "request nested too deeply", "send one flat JSON object per line")
    if _PARSE_IN_PLACE:
        text = memoryview(line)[:n]
        # MicroPython's decoder accepts overlong forms and surrogates: check the bytes strictly ourselves
        # (an all-ASCII line, max() in C, needs no second look).
        if n and max(text) >= 0x80 and pan.utf8_strict(text) >= 0:
            raise _bad_utf8()
    else:
        raw = line[:n]
        try:
            text = str(raw, "utf-8")
        except Exception:
            raise _bad_utf8()
        if len(text) != n and pan.utf8_strict(raw) >= 0:
            raise _bad_utf8()
    try:
        obj = json.loads(text)
    except Exception:
        raise HostError("BAD_JSON", "request is not valid JSON", "send one JSON object per line")
    if type(obj) is not dict:
        raise HostError("BAD_REQUEST", "request must be a JSON object", 'send {"op": ..., ...}')
    return obj


def request_seq(obj):
    """The app's sequence number if it is a sane int (for echoing even in error replies), else None."""
    if type(obj) is dict:
        s = obj.get("seq")
        if type(s) is int and 0 <= s <= _CURSOR_MAX:
            return s
    return None


def _bad(field, what):
    return HostError("BAD_FIELD", "field '%s' %s" % (field, what), "see docs/terminal.md for the request format")


def _printable(s, field, max_chars, code):
    if len(s) == 0:
        raise HostError(code, "field '%s' is empty" % field, "send at least one character")
    if len(s) > max_chars:
        raise HostError(code, "field '%s' is longer than %d characters" % (field, max_chars), "shorten it")
    for ch in s:
        o = ord(ch)
        # C0/C1 control bytes (ESC, GS, DLE... would be printer commands), DEL, lone surrogates.
        if o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF:
            raise HostError(code, "field '%s' contains a control character" % field, "send printable text only")


def _check_id(v, field):
    # Sale ids are chosen by the cashier app: integers 1..2**31-1 (the journal's record header field).
    if type(v) is not int:
        raise HostError("BAD_ID", "field '%s' must be an integer sale id" % field, "send e.g. \"id\": 1042")
    if not (1 <= v <= _ID_MAX):
        raise HostError("BAD_ID", "sale id must be 1-%d" % _ID_MAX, "pick another sale id")
    return v


def _check_time(v, field):
    # The app's wall clock for the receipt ("2026-11-24 21:58"): the board's RTC restarts at 2000 after
    # a power loss, the cashier app's clock does not. A real date and time only: it goes on paper.
    if type(v) is not str or len(v) not in (16, 19):
        raise _bad(field, "must be a time string like \"2026-11-24 21:58\"")
    for i in range(len(v)):
        ch = v[i]
        want = "-" if i in (4, 7) else (":" if i in (13, 16) else (" T" if i == 10 else "0123456789"))
        if ch not in want:
            raise _bad(field, "must be a time string like \"2026-11-24 21:58\"")
    y, mo, d, h, mi = int(v[0:4]), int(v[5:7]), int(v[8:10]), int(v[11:13]), int(v[14:16])
    sec = int(v[17:19]) if len(v) == 19 else 0
    if not (2000 <= y <= 2099 and 1 <= mo <= 12 and 1 <= d <= _MDAYS[mo - 1] and h <= 23 and mi <= 59 and sec <= 59):
        raise _bad(field, "is not a real date and time (years 2000-2099)")
    if mo == 2 and d == 29 and (y % 4 != 0):
        raise _bad(field, "is not a real date and time (years 2000-2099)")
    return v


def _check_amount(v, field, lim):
    if type(v) is not int:
        raise HostError("BAD_AMOUNT", "field '%s' must be an integer in minor units (cents, fen)" % field,
                        "send 1250 for 12.50")
    if v <= 0:
        raise HostError("BAD_AMOUNT", "field '%s' must be positive" % field, "send a positive amount")
    if v > lim.amount_max:
        raise HostError("BAD_AMOUNT", "field '%s' is above the cap of %d" % (field, lim.amount_max),
                        "split the sale or raise host.amount_max in the profile")
    return v


def _check_items(v, lim):
    if type(v) is not list:
        raise _bad("items", "must be a list")
    n = len(v)
    if n == 0:
        raise HostError("TOO_MANY_ITEMS", "a sale needs at least one item", "add an item")
    if n > lim.items_max:
        raise HostError("TOO_MANY_ITEMS", "%d items is more than the cap of %d" % (n, lim.items_max),
                        "split the sale")
    out = []
    total = 0
    for i in range(n):
        it = v[i]
        where = "items[%d]" % i
        if type(it) is not dict:
            raise _bad(where, "must be an object")
        for k in it:
            if k not in ("name", "qty", "price"):
                raise _bad(where, "has an unknown field")
        name = it.get("name")
        if type(name) is not str:
            raise _bad(where + ".name", "must be a string")
        _printable(name, where + ".name", lim.name_max, "BAD_NAME")
        qty = it.get("qty", 1)
        if type(qty) is not int or not (1 <= qty <= _QTY_MAX):
            raise _bad(where + ".qty", "must be an integer 1-%d" % _QTY_MAX)
        price = _check_amount(it.get("price"), where + ".price", lim)
        total += qty * price
        out.append((name, qty, price))
    if total > lim.amount_max:
        raise HostError("BAD_AMOUNT", "sale total is above the cap of %d" % lim.amount_max, "split the sale")
    return out


def _check_field(kind, field, v, lim):
    if kind == _K_ID:
        return _check_id(v, field)
    if kind == _K_TIME:
        return _check_time(v, field)
    if kind == _K_ITEMS:
        return _check_items(v, lim)
    if kind == _K_TEXT:
        if type(v) is not str:
            raise _bad(field, "must be a string")
        _printable(v, field, _TEXT_MAX, "BAD_FIELD")
        if len(v.encode()) > _TEXT_MAX:
            raise _bad(field, "is longer than %d bytes as UTF-8" % _TEXT_MAX)
        return v
    if kind == _K_AUTH:
        if type(v) is not str or not (1 <= len(v) <= _AUTH_MAX):
            raise _bad(field, "must be a string of 1-%d letters or digits" % _AUTH_MAX)
        for ch in v:
            if not ("0" <= ch <= "9" or "A" <= ch <= "Z" or "a" <= ch <= "z"):
                raise _bad(field, "must hold letters and digits only")
        return v
    if kind == _K_LAST4:
        # ASCII digits only: str.isdigit() also takes superscripts and full-width digits on CPython.
        if type(v) is not str or len(v) != 4 or not ("0" <= v[0] <= "9" and "0" <= v[1] <= "9" and "0" <= v[2] <= "9"
                                                     and "0" <= v[3] <= "9"):
            raise HostError("CARD_NUMBER", "field 'last4' must be exactly four digits",
                            "send only the last four digits of the card")
        return v
    if kind == _K_METHOD:
        if v not in METHODS:
            raise _bad(field, "must be one of " + ", ".join(METHODS))
        return v
    if kind == _K_CURSOR:
        if type(v) is not int or not (0 <= v <= _CURSOR_MAX):
            raise _bad(field, "must be a non-negative integer")
        return v
    if kind == _K_PAGE:
        if type(v) is not int or not (1 <= v <= _PAGE_MAX):
            raise _bad(field, "must be an integer 1-%d" % _PAGE_MAX)
        return v
    raise HostError("INTERNAL", "no rule for field '%s'" % field)


def check_request(obj, lim):
    """Decoded JSON object -> clean dict {"op", "seq", fields...}. Raises HostError; never mutates."""
    # Card numbers first: a refusal for a PAN must win over any other complaint about the same line.
    scan_request(obj)
    op = obj.get("op")
    if type(op) is not str:
        raise HostError("BAD_REQUEST", "field 'op' is missing or not a string", 'send {"op": "status"}')
    spec = OPS.get(op)
    if spec is None:
        raise HostError("UNKNOWN_OP", "unknown operation", "known: " + ", ".join(sorted(OPS)))
    for k in obj:
        if k == "op" or k == "seq":
            continue
        known = False
        for f in spec:
            if f[0] == k:
                known = True
                break
        if not known:
            raise _bad(k if type(k) is str and len(k) <= 16 else "?", "is not a field of '%s'" % op)
    if "seq" in obj and request_seq(obj) is None:
        raise _bad("seq", "must be an integer 0-%d" % _CURSOR_MAX)
    req = {"op": op, "seq": request_seq(obj)}
    for f in spec:
        name = f[0]
        if name in obj:
            req[name] = _check_field(f[1], name, obj[name], lim)
        elif f[2]:
            raise _bad(name, "is required for '%s'" % op)
    return req


def validate_line(line, lim, n=-1):
    """One raw line (its first n bytes when n >= 0: the host link's buffer, parsed in place) -> clean
    request. Raises HostError (with .seq set when the app sent one)."""
    if (len(line) if n < 0 else n) > lim.line_max:
        raise HostError("LINE_TOO_LONG", "request longer than %d bytes" % lim.line_max, "send shorter requests")
    obj = parse_line(line, n)
    try:
        return check_request(obj, lim)
    except HostError as e:
        e.seq = request_seq(obj)
        raise
