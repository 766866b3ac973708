"""Issue 12, items 1-4 and the small ones: card numbers written to slip past the filter, strict UTF-8,
false positives, and stable codes for numeric card numbers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from posguard import validate
from posguard.validate import HostError, Limits

LIM = Limits({"line_max": 2048, "items_max": 20, "name_max": 32, "amount_max": 10_000_000})
PAN = "4111111111111111"


def code(line: bytes | dict[str, Any]) -> str:
    raw = line if isinstance(line, bytes) else json.dumps(line, ensure_ascii=False).encode()
    try:
        validate.validate_line(raw, LIM)
    except HostError as e:
        return str(e.code)
    return "OK"


def refusal(line: dict[str, Any]) -> HostError:
    with pytest.raises(HostError) as e:
        validate.validate_line(json.dumps(line, ensure_ascii=False).encode(), LIM)
    return e.value


def overlong(text: str) -> bytes:
    """ASCII written as two-byte overlong UTF-8 (C0 B0 is '0' read leniently)."""
    out = bytearray()
    for c in text.encode():
        out += bytes([0xC0 | (c >> 6), 0x80 | (c & 0x3F)])
    return bytes(out)


def test_overlong_utf8_digits_are_refused_before_anything_reads_them() -> None:
    from posguard import pan

    body = overlong(PAN)
    for line in (b'{"op":"open","id":1,"items":[{"name":"' + body + b'","price":100}]}',
                 b'{"op":"void","id":1,"reason":"' + body + b'"}'):
        assert code(line) == "BAD_JSON"
    assert pan.utf8_strict(body) == 0
    assert pan.utf8_strict(b"ok \xed\xa0\x80") == 3  # a UTF-16 surrogate written as UTF-8
    assert pan.utf8_strict(b"\xf4\x90\x80\x80") == 0  # U+110000
    assert pan.utf8_strict(b"\xe0\x80\xb0") == 0  # overlong three-byte '0'
    assert pan.utf8_strict(b"\xf0\x80\x80\xb0") == 0  # overlong four-byte '0'
    assert pan.utf8_strict("拿铁 Latte \U0001f600 \U0010ffff".encode()) == -1


@pytest.mark.parametrize("sep", [".", "/", "_", ",", "\u00a0", "\u3000", "\u200b", " - ", "\u200b" * 5, "/ ,"])
def test_card_number_with_any_short_separator_is_refused(sep: str) -> None:
    grouped = sep.join(PAN[i:i + 4] for i in range(0, 16, 4))
    assert code({"op": "open", "id": 1, "items": [{"name": grouped[:32], "price": 1}]}) == "CARD_NUMBER" or \
        len(grouped) > 32
    assert code({"op": "void", "id": 1, "reason": grouped[:32]}) == "CARD_NUMBER" or len(grouped.encode()) > 32
    assert code({"op": "status", "x": grouped}) == "CARD_NUMBER"


def test_card_number_in_the_time_field_is_refused() -> None:
    e = refusal({"op": "open", "id": 1, "time": "4111/1111/1111/1111", "items": [{"name": "Tea", "price": 1}]})
    assert e.code == "CARD_NUMBER"


@pytest.mark.parametrize("digits", [
    "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",  # full-width
    "\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661",  # Arabic-Indic
    "\u096a\u0967\u0967\u0967 \u0967\u0967\u0967\u0967 \u0967\u0967\u0967\u0967 \u0967\u0967\u0967\u0967",  # Devanagari
    "4111\uff11\uff11\uff11\uff11" + "1111" + "\U0001d7cf" * 4,  # mixed scripts, mathematical bold ones
])
def test_digits_of_any_script_count(digits: str) -> None:
    assert code({"op": "status", "x": digits}) == "CARD_NUMBER"


def test_long_separators_or_letters_split_groups() -> None:
    assert code({"op": "void", "id": 1, "reason": "4111    1111 1111 1111"}) == "OK"  # four spaces
    assert code({"op": "void", "id": 1, "reason": "4111a1111b1111c1111"}) == "OK"


def test_zeros_and_luhn_valid_numbers_without_an_issuer_are_not_card_numbers() -> None:
    assert code({"op": "open", "id": 1, "items": [{"name": "0" * 20, "price": 1}]}) == "OK"
    assert code({"op": "void", "id": 1, "reason": "0000000000000"}) == "OK"
    assert code({"op": "void", "id": 1, "reason": "ref 7000000000000000003"}) == "OK"  # Luhn-valid, no scheme
    from posguard import pan

    assert pan.luhn_ok("7000000000000000003")


def test_refusal_says_which_rule_and_never_echoes_the_number() -> None:
    e = refusal({"op": "void", "id": 1, "reason": "378282246310005"})
    assert e.code == "CARD_NUMBER" and "American Express" in e.msg and "15 digits" in e.msg and "Luhn" in e.msg
    assert "3782" not in e.msg and "3782" not in (e.todo or "")


@pytest.mark.parametrize("num", [-4111111111111111, 4111111111111111.0, -4.111111111111111e15, 4111111111111111,
                                 41111111111111110000])
@pytest.mark.parametrize("field", ["seq", "id", "price", "x"])
def test_numeric_card_numbers_get_one_stable_code(num: float, field: str) -> None:
    if field == "price":
        obj: dict[str, Any] = {"op": "open", "id": 1, "items": [{"name": "T", "price": num}]}
    else:
        obj = {"op": "sale", "id": 1}
        obj[field] = num
    assert code(obj) == "CARD_NUMBER"


@pytest.mark.parametrize("last4", ["\u00b2\u00b3\u00b9\u2074", "\uff11\uff12\uff13\uff14", "\u0661\u0662\u0663\u0664"])
def test_last4_takes_ascii_digits_only(last4: str) -> None:
    assert code({"op": "approve", "id": 1, "auth": "A1", "last4": last4}) == "CARD_NUMBER"
    assert code({"op": "approve", "id": 1, "auth": "A1", "last4": "0042"}) == "OK"


@pytest.mark.parametrize("t", ["9999-99-99 99:99", "2026-13-01 10:00", "2026-02-30 10:00", "2026-11-24 24:00",
                               "2026-11-24", "1999-12-31 23:59", "2026/11/24 10:00", "2025-02-29 10:00"])
def test_time_must_be_a_real_date(t: str) -> None:
    assert code({"op": "open", "id": 1, "time": t, "items": [{"name": "T", "price": 1}]}) == "BAD_FIELD"


@pytest.mark.parametrize("t", ["2026-11-24 21:58", "2028-02-29 00:00", "2026-11-24T21:58:59"])
def test_real_times_pass(t: str) -> None:
    assert code({"op": "open", "id": 1, "time": t, "items": [{"name": "T", "price": 1}]}) == "OK"


def test_deep_nesting_under_the_bracket_gate_is_refused_without_recursion() -> None:
    line = b'{"op":"status","x":' + b"[" * 63 + b"]" * 63 + b"}"
    assert len(line) == 146
    assert code(line) == "BAD_JSON"
    line = b'{"op":"status","x":' + b'{"a":' * 30 + b"1" + b"}" * 30 + b"}"
    assert code(line) == "BAD_JSON"


def test_scan_is_iterative() -> None:
    """No Python recursion at any depth the bracket gate lets through: run with a tiny recursion limit."""
    import sys

    line = b'{"op":"status","x":' + b"[" * 63 + b"]" * 63 + b"}"
    obj = validate.parse_line(line)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(40 + len([f for f in _frames()]))
    try:
        with pytest.raises(HostError) as e:
            validate.check_request(obj, LIM)
    finally:
        sys.setrecursionlimit(old)
    assert e.value.code == "BAD_JSON"


def _frames() -> list[Any]:
    import sys

    f = sys._getframe()
    out = []
    while f is not None:
        out.append(f)
        f = f.f_back  # type: ignore[assignment]
    return out


def test_too_many_values_in_one_line_are_refused() -> None:
    line = b'{"op":"status","x":[' + b",".join([b"1"] * 600) + b"]}"
    assert code(line) == "BAD_REQUEST"


def test_a_long_run_of_zeros_is_not_a_card_number() -> None:
    """Every window of a zero run is Luhn-valid, none has an issuer: the worst case of the scan."""
    from posguard import pan

    s = pan.Scanner()
    assert s.find("0" * 2000) is None
    assert s.find("0" * 1000 + "4111111111111111") == ("Visa", 16)
    assert code(b'{"op":"status","x":"' + b"0" * 2000 + b'"}') == "BAD_FIELD"  # unknown field, no card


def test_digit_table_matches_unicodedata() -> None:
    """Every Nd character CPython knows is a digit of its value (docs/reference/unicode-digits.md)."""
    import unicodedata

    from posguard import pan

    for cp in range(0x110000):
        ch = chr(cp)
        if unicodedata.category(ch) == "Nd":
            assert pan.digit_value(cp) == unicodedata.decimal(ch), hex(cp)
        elif pan.digit_value(cp) >= 0:
            # superscripts and subscripts, or a Unicode 15.0 block newer than CPython's table
            assert unicodedata.digit(ch, -1) == pan.digit_value(cp) or 0x11F50 <= cp < 0x11F5A or \
                0x1E4F0 <= cp < 0x1E4FA, hex(cp)


def test_terminal_doc_lists_every_error_code() -> None:
    """docs/terminal.md has a row (cause, what to do) for every code the firmware can answer."""
    import re

    from posguard_tools import paths

    fw = paths.FIRMWARE / "posguard"
    src = "\n".join(p.read_text() for p in fw.glob("*.py"))
    codes = set(re.findall(r'HostError\(\s*"([A-Z_]+)"', src))
    mappings = (fw / "commands.py").read_text() + (fw / "printer_status.py").read_text()
    codes |= set(re.findall(r'\("([A-Z_]+)", "[a-z]', mappings))  # journal-code and printer-fault mappings
    codes |= {"BAD_NAME", "JOURNAL_ERROR"}  # passed in as a parameter / the mapping's default
    doc = (paths.ROOT / "docs" / "terminal.md").read_text()
    rows = set(re.findall(r"^\| `([A-Z_]+)` \|", doc, re.M))
    assert codes - rows == set(), codes - rows
    assert len(codes) >= 25


def test_brackets_inside_names_are_not_nesting() -> None:
    items = [{"name": "[" * 32, "price": 1} for _ in range(5)]
    assert code({"op": "open", "id": 1, "items": items}) == "OK"
