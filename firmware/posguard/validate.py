# Host-link request validation: one JSON line from the cashier app in, a clean request dict out, or a
# HostError with a stable code. Nothing here touches the journal or the printer, so a refused line
# changes nothing. Error messages name fields, never echo values (a value might be a card number).
import json

from micropython import const

# Protocol caps that do not depend on the board (the board's caps come from profile["host"]).
_ID_MAX = const(0x7FFFFFFF)  # sale ids travel in every journal record header (docs/journal.md)
_TIME_MAX = const(19)
_TEXT_MAX = const(32)  # reasons: the journal keeps at most 32 bytes of text (sales.MAX_TEXT)
_AUTH_MAX = const(12)  # ISO 8583 field 38 approval code is 6; leave room for acquirer variants
_QTY_MAX = const(999)
_CURSOR_MAX = const(0x3FFFFFFF)
_PAGE_MAX = const(16)
_NEST_MAX = const(4)  # deepest valid request: {"items":[{...}]} is 3 levels
_PAN_MIN = const(13)  # ISO/IEC 7812 card numbers are 13-19 digits with a Luhn check digit
_PAN_MAX = const(19)

METHODS = ("card", "cash", "qr")


class HostError(Exception):
    """A refusal the cashier app can act on: code (stable, machine-readable), msg, and what to do."""

    def __init__(self, code, msg, todo=None):
        super().__init__(code)
        self.code = code
        self.msg = msg
        self.todo = todo


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
def luhn_ok(digits, start, end):
    """Luhn check over digits[start:end] (a bytes/bytearray of ASCII digits), no allocation."""
    total = 0
    double = False
    i = end - 1
    while i >= start:
        d = digits[i] - 48
        if double:
            d += d
            if d > 9:
                d -= 9
        total += d
        double = not double
        i -= 1
    return total % 10 == 0


def contains_pan(text):
    """True if text holds a card number: 13-19 digits passing Luhn, also when written in groups
    ("4111 1111 1111 1111", "3782-822463-10005"). Any run of consecutive groups counts, and so does
    any 13-19 digit window inside a group longer than 19 digits: better refuse than store one."""
    digits = bytearray()
    bounds = [0]  # group ends inside digits; consecutive groups are joined by spaces or dashes
    last_sep = False
    for ch in text:
        if "0" <= ch <= "9":
            if last_sep:
                bounds.append(len(digits))
                last_sep = False
            digits.append(ord(ch))
        elif (ch == " " or ch == "-") and len(digits):
            last_sep = True
        else:
            if len(digits) >= _PAN_MIN:
                bounds.append(len(digits))
                if _run_has_pan(digits, bounds):
                    return True
            digits = bytearray()
            bounds = [0]
            last_sep = False
    if len(digits) >= _PAN_MIN:
        bounds.append(len(digits))
        return _run_has_pan(digits, bounds)
    return False


def _run_has_pan(digits, bounds):
    nb = len(bounds)
    for a in range(nb - 1):
        for b in range(a + 1, nb):
            n = bounds[b] - bounds[a]
            if n > _PAN_MAX:
                break
            if n >= _PAN_MIN and luhn_ok(digits, bounds[a], bounds[b]):
                return True
        g0 = bounds[a]
        g1 = bounds[a + 1]
        if g1 - g0 > _PAN_MAX:
            for s in range(g0, g1 - _PAN_MIN + 1):
                for n in range(_PAN_MIN, min(_PAN_MAX, g1 - s) + 1):
                    if luhn_ok(digits, s, s + n):
                        return True
    return False


def _scan_pan(v):
    """Walk a decoded request (bounded by the line cap) and refuse any card-number-looking value."""
    t = type(v)
    if t is str:
        if contains_pan(v):
            raise HostError("CARD_NUMBER", "a field holds what looks like a full card number: refused, nothing stored",
                            "send only the last four digits in 'last4'")
    elif t is int:
        if v >= 10 ** (_PAN_MIN - 1) and contains_pan(str(v)):
            raise HostError("CARD_NUMBER", "a number looks like a full card number: refused, nothing stored",
                            "send only the last four digits in 'last4'")
    elif t is dict:
        for k in v:
            _scan_pan(k)
            _scan_pan(v[k])
    elif t is list:
        for x in v:
            _scan_pan(x)


# -- parsing ---------------------------------------------------------------------------------------
def _nesting_ok(line):
    """Reject deeply nested JSON before json.loads: '[[[[...' of a few KB exhausts a 110 KB heap
    on the unix port. Counting brackets is C speed; the exact scan runs only for odd lines."""
    if line.count(b"[") + line.count(b"{") <= 64:
        return True
    depth = 0
    in_str = False
    esc = False
    for c in line:
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


def parse_line(line):
    """bytes of one line (no newline) -> decoded JSON object. Raises HostError."""
    if not _nesting_ok(line):
        raise HostError("BAD_JSON", "request nested too deeply", "send one flat JSON object per line")
    try:
        text = str(line, "utf-8")
    except Exception:
        raise HostError("BAD_JSON", "request is not valid UTF-8", "send UTF-8 JSON, one object per line")
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
    # a power loss, the cashier app's clock does not.
    if type(v) is not str or not (1 <= len(v) <= _TIME_MAX):
        raise _bad(field, "must be a time string like \"2026-11-24 21:58\"")
    for ch in v:
        if not ("0" <= ch <= "9" or ch == "-" or ch == ":" or ch == " " or ch == "T" or ch == "/"):
            raise _bad(field, "must be a time string like \"2026-11-24 21:58\"")
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
        if type(v) is not str or len(v) != 4 or not v.isdigit():
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
    _scan_pan(obj)
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


def validate_line(line, lim):
    """One raw line -> clean request. Raises HostError (with .seq set when the app sent one)."""
    if len(line) > lim.line_max:
        raise HostError("LINE_TOO_LONG", "request longer than %d bytes" % lim.line_max, "send shorter requests")
    obj = parse_line(line)
    try:
        return check_request(obj, lim)
    except HostError as e:
        e.seq = request_seq(obj)
        raise
