"""Host-link request validation: every refusal has a stable code, card numbers never get through."""

from __future__ import annotations

import json
from typing import Any

import pytest

from posguard import validate
from posguard.validate import HostError, Limits

LIM = Limits({"line_max": 2048, "items_max": 20, "name_max": 32, "amount_max": 10_000_000})


def check(obj: Any) -> dict[str, Any]:
    return validate.validate_line(json.dumps(obj, ensure_ascii=False).encode(), LIM)


def code_of(obj: Any) -> str:
    with pytest.raises(HostError) as e:
        check(obj) if not isinstance(obj, bytes) else validate.validate_line(obj, LIM)
    return str(e.value.code)


def luhn_reference(number: str) -> bool:
    """Independent Luhn: double every second digit from the right (ISO/IEC 7812-1 annex B)."""
    digits = [int(c) for c in number][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


def test_valid_open_is_normalised() -> None:
    items = [{"name": "拿铁 Latte", "qty": 2, "price": 1800}]
    req = check({"op": "open", "id": 1001, "seq": 7, "time": "2026-11-24 09:15", "items": items})
    assert req == {"op": "open", "seq": 7, "id": 1001, "time": "2026-11-24 09:15", "items": [("拿铁 Latte", 2, 1800)]}


def test_qty_defaults_to_one() -> None:
    req = check({"op": "open", "id": 1, "items": [{"name": "Tea", "price": 5}]})
    assert req["items"] == [("Tea", 1, 5)]
    assert req["seq"] is None


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        (b"{not json", "BAD_JSON"),
        (b"\xff\xfe{}", "BAD_JSON"),
        (b"[1,2]", "BAD_REQUEST"),
        ({"id": "x"}, "BAD_REQUEST"),
        ({"op": 5}, "BAD_REQUEST"),
        ({"op": "teleport"}, "UNKNOWN_OP"),
        ({"op": "status", "extra": 1}, "BAD_FIELD"),
        ({"op": "status", "seq": -1}, "BAD_FIELD"),
        ({"op": "status", "seq": "1"}, "BAD_FIELD"),
        ({"op": "sale"}, "BAD_FIELD"),
        ({"op": "sale", "id": "12"}, "BAD_ID"),
        ({"op": "sale", "id": 0}, "BAD_ID"),
        ({"op": "sale", "id": 2**31}, "BAD_ID"),
        ({"op": "sale", "id": 1.5}, "BAD_ID"),
        ({"op": "sale", "id": True}, "BAD_ID"),
        ({"op": "open", "id": 1, "time": "12:00\x1b", "items": [{"name": "T", "price": 1}]}, "BAD_FIELD"),
        ({"op": "open", "id": 1, "items": "Tea"}, "BAD_FIELD"),
        ({"op": "open", "id": 1, "items": []}, "TOO_MANY_ITEMS"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "price": 1}] * 21}, "TOO_MANY_ITEMS"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "price": 0}]}, "BAD_AMOUNT"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "price": -5}]}, "BAD_AMOUNT"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "price": 12.5}]}, "BAD_AMOUNT"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "price": "12"}]}, "BAD_AMOUNT"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "price": True}]}, "BAD_AMOUNT"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "price": 10_000_001}]}, "BAD_AMOUNT"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "qty": 2, "price": 6_000_000}]}, "BAD_AMOUNT"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "qty": 0, "price": 1}]}, "BAD_FIELD"),
        ({"op": "open", "id": 1, "items": [{"name": "T", "price": 1, "tax": 1}]}, "BAD_FIELD"),
        ({"op": "open", "id": 1, "items": [{"name": "", "price": 1}]}, "BAD_NAME"),
        ({"op": "open", "id": 1, "items": [{"name": "x" * 33, "price": 1}]}, "BAD_NAME"),
        ({"op": "open", "id": 1, "items": [{"name": "Tea\x1b@", "price": 1}]}, "BAD_NAME"),
        ({"op": "open", "id": 1, "items": [{"name": "Tea\x1dV", "price": 1}]}, "BAD_NAME"),
        ({"op": "open", "id": 1, "items": [{"name": "Tea\x85", "price": 1}]}, "BAD_NAME"),
        ({"op": "pay", "id": 1, "method": "bitcoin"}, "BAD_FIELD"),
        ({"op": "approve", "id": 1, "auth": "12 34"}, "BAD_FIELD"),
        ({"op": "approve", "id": 1, "auth": "A1", "last4": "123"}, "CARD_NUMBER"),
        ({"op": "export", "limit": 0}, "BAD_FIELD"),
        ({"op": "export", "limit": 17}, "BAD_FIELD"),
        ({"op": "export", "after": -1}, "BAD_FIELD"),
        (b"[" * 600 + b"]" * 600, "BAD_JSON"),
        (b"x" * 2049, "LINE_TOO_LONG"),
    ],
)
def test_refusals_have_clear_codes(obj: Any, code: str) -> None:
    assert code_of(obj) == code


def test_error_keeps_seq_for_the_reply() -> None:
    with pytest.raises(HostError) as e:
        check({"op": "sale", "seq": 42, "id": 0})
    assert getattr(e.value, "seq", None) == 42


@pytest.mark.parametrize(
    "pan", ["4111111111111111", "5500 0000 0000 0004", "3782-822463-10005", "6011000990139424", "4222222222222"]
)
def test_full_card_numbers_are_refused_in_any_field(pan: str) -> None:
    assert luhn_reference(pan.replace(" ", "").replace("-", ""))
    for obj in (
        {"op": "open", "id": 1, "items": [{"name": "card " + pan[:20], "price": 1}]},
        {"op": "void", "id": 1, "reason": pan},
        {"op": "approve", "id": 1, "auth": "A1", "last4": pan},
        {"op": "status", "note": pan},
        {"op": "teleport", "x": pan},
    ):
        with pytest.raises(HostError) as e:
            check(obj)
        assert e.value.code == "CARD_NUMBER", obj
        assert pan not in e.value.msg and pan not in str(e.value.todo)


def test_card_number_as_json_number_is_refused() -> None:
    assert code_of(b'{"op":"status","seq":4111111111111111}') == "CARD_NUMBER"


def test_card_number_hidden_in_unicode_escapes_is_refused() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in "4111111111111111")
    line = '{"op":"void","id":1,"reason":"' + escaped + '"}'
    assert code_of(line.encode()) == "CARD_NUMBER"


def test_digits_failing_luhn_are_not_a_card() -> None:
    assert not luhn_reference("4111111111111112")
    req = check({"op": "void", "id": 1, "reason": "ref 4111111111111112"})
    assert req["reason"] == "ref 4111111111111112"
    assert check({"op": "approve", "id": 1, "auth": "A1B2", "last4": "1111"})["last4"] == "1111"


def issuer_reference(number: str) -> bool:
    """Independent issuer check: the scheme prefixes and lengths of docs/reference/card-numbers.md."""
    n = len(number)
    p = int(number[:4])
    ranges = [(4, 4, 1, 13, 19), (51, 55, 2, 16, 16), (2221, 2720, 4, 16, 16), (34, 34, 2, 15, 15),
              (37, 37, 2, 15, 15), (62, 62, 2, 16, 19), (81, 81, 2, 16, 19), (3528, 3589, 4, 16, 19),
              (6011, 6011, 4, 16, 19), (644, 649, 3, 16, 19), (65, 65, 2, 16, 19), (300, 305, 3, 14, 19),
              (36, 36, 2, 14, 19), (38, 39, 2, 14, 19), (2200, 2204, 4, 16, 19), (50, 50, 2, 13, 19),
              (56, 69, 2, 13, 19), (60, 60, 2, 16, 16), (82, 82, 2, 16, 16), (1, 1, 1, 15, 15),
              (9792, 9792, 4, 16, 16)]
    return any(lo <= p // 10 ** (4 - k) <= hi and a <= n <= b for lo, hi, k, a, b in ranges)


def test_luhn_and_issuer_rules_match_reference_on_many_numbers() -> None:
    import random

    from posguard import pan

    rng = random.Random(5)
    for _ in range(3000):
        s = "".join(rng.choice("0123456789") for _ in range(rng.randint(13, 19)))
        assert pan.luhn_ok(s) == luhn_reference(s), s
        # Exactly this window (letters around it end the run): a PAN iff Luhn and an issuer rule hold,
        # or a shorter Luhn-valid window inside it does.
        inner = any(luhn_reference(s[i:j]) and issuer_reference(s[i:j])
                    for i in range(len(s)) for j in range(i + 13, len(s) + 1))
        assert validate.contains_pan("x" + s + "y") == inner, s


def test_contains_pan_finds_window_inside_longer_run() -> None:
    assert validate.contains_pan("999999" + "4111111111111111" + "77")
    assert validate.contains_pan("table 12 4111111111111111 ok")
    assert validate.contains_pan("4111 1111 1111 1111")
    assert not validate.contains_pan("4111 111")
    assert not validate.contains_pan("")


def test_reason_is_capped_in_utf8_bytes_like_the_journal() -> None:
    assert check({"op": "void", "id": 1, "reason": "x" * 32})["reason"] == "x" * 32
    assert code_of({"op": "void", "id": 1, "reason": "取消" * 6}) == "BAD_FIELD"  # 12 chars, 36 bytes
