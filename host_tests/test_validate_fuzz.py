"""Fuzz the host-link validation: random bytes, random JSON, random near-valid commands.

Whatever arrives, validation either returns a clean request or raises HostError with a documented
code; never another exception, and never a request that still carries a card number."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from posguard import validate
from posguard.validate import HostError, Limits

LIM = Limits({"line_max": 2048, "items_max": 20, "name_max": 32, "amount_max": 10_000_000})
CODES = {
    "LINE_TOO_LONG", "BAD_JSON", "BAD_REQUEST", "UNKNOWN_OP", "BAD_FIELD", "BAD_AMOUNT",
    "TOO_MANY_ITEMS", "BAD_NAME", "BAD_ID", "CARD_NUMBER",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)

op_names = st.sampled_from(sorted(validate.OPS) + ["", "OPEN", "open ", "drop"])
field_values = st.one_of(
    st.text(max_size=40),
    st.integers(-5, 2**64),
    st.sampled_from(["4111111111111111", "4111 1111 1111 1111", "1234", "S-1", "card", "cash", "\x1b@", "拿铁"]),
    st.none(),
    st.booleans(),
)
item = st.fixed_dictionaries(
    {"name": st.text(max_size=40) | st.sampled_from(["Tea", "乌龙茶 Oolong", "4111111111111111"]),
     "price": st.integers(-10, 2 * 10**7) | st.floats(allow_nan=False)},
    optional={"qty": st.integers(-1, 1200), "extra": st.just(1)},
)


def run(line: bytes) -> dict[str, Any] | None:
    try:
        req = validate.validate_line(line, LIM)
    except HostError as e:
        assert e.code in CODES, e.code
        assert isinstance(e.msg, str) and e.msg
        return None
    assert req["op"] in validate.OPS
    for v in _strings(req):
        assert not validate.contains_pan(v), "a card number got through"
    return req


def _strings(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, int) and not isinstance(v, bool):
        return [str(v)]
    if isinstance(v, dict):
        return [s for k, x in v.items() for s in _strings(k) + _strings(x)]
    if isinstance(v, (list, tuple)):
        return [s for x in v for s in _strings(x)]
    return []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_crash(data: bytes) -> None:
    run(data)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_never_crashes(obj: Any) -> None:
    run(json.dumps(obj).encode())


@settings(max_examples=500, deadline=None)
@given(op_names, st.dictionaries(st.sampled_from(["id", "items", "method", "auth", "last4", "reason", "after",
                                                  "limit", "seq", "x"]), field_values, max_size=4),
       st.lists(item, max_size=22))
def test_near_valid_commands(op: str, fields: dict[str, Any], items: list[dict[str, Any]]) -> None:
    obj: dict[str, Any] = {"op": op, **fields}
    if op == "open" or items:
        obj["items"] = items
    req = run(json.dumps(obj, ensure_ascii=False).encode())
    if req is not None and req["op"] == "open":
        assert 1 <= len(req["items"]) <= LIM.items_max
        total = 0
        for name, qty, price in req["items"]:
            assert 0 < len(name) <= LIM.name_max and all(ord(c) >= 0x20 for c in name)
            assert isinstance(price, int) and 0 < price <= LIM.amount_max
            total += qty * price
        assert total <= LIM.amount_max
