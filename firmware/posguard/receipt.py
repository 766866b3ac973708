# Receipt layout: a sale dict -> a list of line ops for the printer driver. Pure text arithmetic: a
# character is as wide as the printer draws it (a Chinese glyph is two columns, escpos.md), item lines
# wrap inside their column and never overflow the paper. The op list is what Printer.print_job sends;
# op number N (1-based) is the "line N" a failed job reports.
#
# Ops (tuples, so they cost little RAM):
#   ("text", s, align, style)   align 0 left / 1 centre / 2 right; style bits below
#   ("qr", payload)             native QR, centred
#   ("feed", n)                 n blank lines
#   ("cut",)                    partial cut (the encoder drops it when the profile has no cutter)
from micropython import const

from posguard.escpos import BIG, BOLD, REVERSE, TALL

COPIES = ("original", "duplicate", "retry", "reprint", "void", "reversal")
# A marked copy says why it was printed: after a power loss, after a printer fault, or on request.
_COPY_NOTE = {"duplicate": "dup2", "retry": "dup_fault", "reprint": "dup_asked"}
_MAX_ITEMS = const(200)  # a sale with more items is refused: bounded RAM for the op list
_MAX_TEXT = const(200)
_CURRENCY = {"CNY": "\uffe5", "JPY": "\uffe5", "USD": "$", "EUR": "EUR ", "GBP": "GBP "}

_LABELS = {
    "en": {
        "item": "Item",
        "qty": "Qty",
        "amount": "Amount",
        "subtotal": "Subtotal",
        "tax": "Tax",
        "total": "TOTAL",
        "paid": "Paid by",
        "card": "card",
        "cash": "cash",
        "qr": "mobile",
        "sale": "Sale",
        "time": "Time",
        "dup": "*** DUPLICATE ***",
        "dup2": "Reprinted after power loss",
        "dup_fault": "Reprinted after a printer fault",
        "dup_asked": "Reprint on request",
        "void": "*** VOID ***",
        "void2": "This sale was cancelled",
        "reason": "Reason",
        "rev": "REVERSAL NOTICE",
        "rev2": "The card payment was reversed",
        "rev3": "No money was taken",
        "ereceipt": "Scan for your e-receipt",
        "thanks": "Thank you",
    },
    "zh": {
        "item": "\u5546\u54c1",  # 商品
        "qty": "\u6570\u91cf",  # 数量
        "amount": "\u91d1\u989d",  # 金额
        "subtotal": "\u5c0f\u8ba1",  # 小计
        "tax": "\u7a0e\u989d",  # 税额
        "total": "\u5408\u8ba1",  # 合计
        "paid": "\u652f\u4ed8\u65b9\u5f0f",  # 支付方式
        "card": "\u94f6\u884c\u5361",  # 银行卡
        "cash": "\u73b0\u91d1",  # 现金
        "qr": "\u626b\u7801",  # 扫码
        "sale": "\u5355\u53f7",  # 单号
        "time": "\u65f6\u95f4",  # 时间
        "dup": "*** \u91cd\u5370\u526f\u672c ***",  # 重印副本
        "dup2": "\u65ad\u7535\u540e\u91cd\u65b0\u6253\u5370",  # 断电后重新打印
        "dup_fault": "\u6253\u5370\u6545\u969c\u540e\u91cd\u65b0\u6253\u5370",  # 打印故障后重新打印
        "dup_asked": "\u5e94\u8981\u6c42\u91cd\u5370",  # 应要求重印
        "void": "*** \u4f5c\u5e9f ***",  # 作废
        "void2": "\u672c\u7b14\u4ea4\u6613\u5df2\u53d6\u6d88",  # 本笔交易已取消
        "reason": "\u539f\u56e0",  # 原因
        "rev": "\u51b2\u6b63\u901a\u77e5",  # 冲正通知
        "rev2": "\u94f6\u884c\u5361\u652f\u4ed8\u5df2\u51b2\u6b63",  # 银行卡支付已冲正
        "rev3": "\u672a\u6263\u6b3e",  # 未扣款
        "ereceipt": "\u626b\u7801\u83b7\u53d6\u7535\u5b50\u5c0f\u7968",  # 扫码获取电子小票
        "thanks": "\u8c22\u8c22\u60e0\u987e",  # 谢谢惠顾
    },
}

# Read by the simulator's receipt tracker (host_tests/simhw/sim_day.py), which recognises copies, void slips
# and payment lines by these labels: reword one here and the day report follows.
LABELS = _LABELS

_KEYS = (
    "id",
    "time",
    "lang",
    "currency",
    "header",
    "items",
    "subtotal",
    "tax",
    "tax_label",
    "total",
    "payment",
    "card_last4",
    "url",
    "void_reason",
)
_REQUIRED = ("id", "time", "items", "total", "payment")
_ITEM_KEYS = ("name", "qty", "unit", "amount")


class SaleError(ValueError):
    pass


def _int(v, what):
    if not isinstance(v, int) or isinstance(v, bool):
        raise SaleError("%s must be an integer amount in minor units, got %r" % (what, v))
    return v


def _str(v, what):
    if not isinstance(v, str) or len(v) > _MAX_TEXT:
        raise SaleError("%s must be a string of at most %d characters" % (what, _MAX_TEXT))
    return v


def check_sale(sale):
    """Validate a sale dict; raise SaleError naming the bad key. Returns the sale."""
    if not isinstance(sale, dict):
        raise SaleError("a sale must be an object")
    for k in sale:
        if k not in _KEYS:
            raise SaleError("unknown sale key '%s'" % k)
    for k in _REQUIRED:
        if k not in sale:
            raise SaleError("missing sale key '%s'" % k)
    _str(sale["id"], "id")
    _str(sale["time"], "time")
    _str(sale["payment"], "payment")
    if sale.get("lang", "en") not in _LABELS:
        raise SaleError("lang must be 'en' or 'zh'")
    items = sale["items"]
    if not isinstance(items, list) or not items or len(items) > _MAX_ITEMS:
        raise SaleError("items must be a list of 1-%d items" % _MAX_ITEMS)
    total = 0
    for i, it in enumerate(items):
        where = "items[%d]" % i
        if not isinstance(it, dict):
            raise SaleError("%s must be an object" % where)
        for k in it:
            if k not in _ITEM_KEYS:
                raise SaleError("unknown key '%s.%s'" % (where, k))
        for k in _ITEM_KEYS:
            if k not in it:
                raise SaleError("missing key '%s.%s'" % (where, k))
        _str(it["name"], where + ".name")
        q = it["qty"]
        if not isinstance(q, int) or isinstance(q, bool) or q < 1 or q > 9999:
            raise SaleError("%s.qty must be an integer 1-9999" % where)
        if _int(it["amount"], where + ".amount") != q * _int(it["unit"], where + ".unit"):
            raise SaleError("%s.amount %d is not qty %d x unit %d" % (where, it["amount"], q, it["unit"]))
        total += it["amount"]
    sub = _int(sale.get("subtotal", total), "subtotal")
    if sub != total:
        raise SaleError("subtotal %d is not the sum of the items (%d)" % (sub, total))
    tax = _int(sale.get("tax", 0), "tax")
    if _int(sale["total"], "total") != sub + tax:
        raise SaleError("total %d is not subtotal %d + tax %d" % (sale["total"], sub, tax))
    last4 = sale.get("card_last4")
    if last4 is not None and (not isinstance(last4, str) or len(last4) != 4 or not last4.isdigit()):
        raise SaleError("card_last4 must be exactly four digits (never the full card number)")
    for k in ("tax_label", "url", "void_reason", "currency"):
        if sale.get(k) is not None:
            _str(sale[k], k)
    hdr = sale.get("header", [])
    if not isinstance(hdr, list) or len(hdr) > 6:
        raise SaleError("header must be a list of at most 6 lines")
    for i, h in enumerate(hdr):
        _str(h, "header[%d]" % i)
    return sale


def money(minor, symbol=""):
    sign = "-" if minor < 0 else ""
    minor = -minor if minor < 0 else minor
    return "%s%s%d.%02d" % (sign, symbol, minor // 100, minor % 100)


def wrap(s, width, cols_of):
    """Split s into lines of at most `width` columns, breaking at spaces when a word fits."""
    if width < 2:
        raise SaleError("column too narrow")
    out = []
    line = ""
    used = 0
    word_start = -1  # index in `line` after the last space
    for ch in s:
        w = cols_of(ord(ch))
        if used + w > width:
            if ch == " ":
                out.append(line)
                line, used, word_start = "", 0, -1
                continue
            if word_start > 0 and ord(ch) < 0x80:
                # carry the unfinished ASCII word to the next line
                head, tail = line[:word_start], line[word_start:]
                out.append(head.rstrip())
                line = tail
                used = 0
                for c2 in tail:
                    used += cols_of(ord(c2))
            else:
                out.append(line)
                line, used = "", 0
            word_start = -1
        line += ch
        used += w
        if ch == " ":
            word_start = len(line)
    if line or not out:
        out.append(line)
    return out


def _pad(s, width, cols_of, right):
    fill = width - _cols(s, cols_of)
    if fill <= 0:
        return s
    return (" " * fill + s) if right else (s + " " * fill)


def _cols(s, cols_of):
    n = 0
    for ch in s:
        n += cols_of(ord(ch))
    return n


def _fit(s, width, cols_of):
    # One line only: cut to the width (used for labels, never for item names, which wrap)
    return wrap(s, width, cols_of)[0]


def layout(sale, columns, cols_of, copy="original"):
    """The op list of one receipt. cols_of(cp) is the printer's column count for a code point
    (Encoder.char_cols), so widths match what the printer really draws."""
    check_sale(sale)
    if copy not in COPIES:
        raise SaleError("copy must be one of %s" % ", ".join(COPIES))
    if columns not in (32, 42, 48):
        raise SaleError("columns must be 32, 42 or 48")
    L = _LABELS[sale.get("lang", "en")]
    sym = _CURRENCY.get(sale.get("currency", ""), "")
    ops = []
    add = ops.append

    def centred(s, style=0):
        width = columns // 2 if style & BIG else columns
        for part in wrap(s, width, cols_of):
            add(("text", part, 1, style))

    def pair(left, right, style=0):
        width = columns // 2 if style & BIG else columns
        rw = _cols(right, cols_of)
        left = _fit(left, max(2, width - rw - 1), cols_of)
        add(("text", _pad(left, width - rw, cols_of, False) + right, 0, style))

    note = _COPY_NOTE.get(copy)
    if note is not None:
        centred(L["dup"], BOLD | REVERSE)
        centred(L[note])
    elif copy == "void":
        centred(L["void"], BIG | BOLD)
    elif copy == "reversal":
        centred(L["rev"], BIG | BOLD)
    hdr = sale.get("header", [])
    for i, h in enumerate(hdr):
        centred(h, (BOLD | TALL) if i == 0 else 0)
    pair(L["sale"], sale["id"])
    pair(L["time"], sale["time"])
    rule = ("text", "-" * columns, 0, 0)
    add(rule)

    if copy == "original" or note is not None:
        amt_w = 12 if columns >= 42 else 10
        qty_w = 5 if columns >= 42 else 4
        name_w = columns - amt_w - qty_w - 2
        add(
            (
                "text",
                _pad(_fit(L["item"], name_w, cols_of), name_w, cols_of, False)
                + " "
                + _pad(L["qty"], qty_w, cols_of, True)
                + " "
                + _pad(L["amount"], amt_w, cols_of, True),
                0,
                BOLD,
            )
        )
        for it in sale["items"]:
            names = wrap(it["name"], name_w, cols_of)
            q = str(it["qty"])
            a = money(it["amount"])
            for j, nm in enumerate(names):
                if j == 0:
                    add(
                        (
                            "text",
                            _pad(nm, name_w, cols_of, False)
                            + " "
                            + _pad(q, qty_w, cols_of, True)
                            + " "
                            + _pad(a, amt_w, cols_of, True),
                            0,
                            0,
                        )
                    )
                else:
                    add(("text", nm, 0, 0))
            if it["qty"] > 1:
                add(("text", "  @ " + money(it["unit"]), 0, 0))
        add(rule)
        tax = sale.get("tax", 0)
        pair(L["subtotal"], money(sale.get("subtotal", sale["total"] - tax), sym))
        if tax:
            pair(sale.get("tax_label") or L["tax"], money(tax, sym))
        pair(L["total"], money(sale["total"], sym), BOLD | TALL)
        method = L.get(sale["payment"], sale["payment"])
        last4 = sale.get("card_last4")
        if last4:
            method = method + " **** " + last4
        pair(L["paid"], method)
    elif copy == "void":
        pair(L["total"], money(sale["total"], sym))
        centred(L["void2"])
        if sale.get("void_reason"):
            for part in wrap(L["reason"] + ": " + sale["void_reason"], columns, cols_of):
                add(("text", part, 0, 0))
    else:
        pair(L["total"], money(sale["total"], sym))
        if sale.get("card_last4"):
            pair(L["card"], "**** " + sale["card_last4"])
        centred(L["rev2"])
        centred(L["rev3"], BOLD)
    if sale.get("url") and (copy == "original" or note is not None):
        add(("feed", 1))
        add(("qr", sale["url"]))
        centred(L["ereceipt"])
    if note is not None:
        centred(L[note])
        centred(L["dup"], BOLD | REVERSE)
    elif copy == "original":
        centred(L["thanks"])
    add(("feed", 3))
    add(("cut",))
    return ops
