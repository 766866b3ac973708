"""Receipt layout: columns never overflow (a Chinese glyph is two columns), items wrap, every copy kind
is marked, the card is masked, and bad sales are refused with the key named."""

from __future__ import annotations

import copy as copy_mod
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posguard import escpos, receipt

SALE: dict[str, Any] = {
    "id": "S-000123",
    "time": "2026-11-24 21:58",
    "lang": "en",
    "currency": "CNY",
    "header": ["Posguard Cafe", "1 Example Road"],
    "items": [
        {"name": "Latte grande with an extra shot of espresso", "qty": 2, "unit": 1500, "amount": 3000},
        {
            "name": "\u62ff\u94c1\u5496\u5561\u52a0\u6d53\u7f29\u4e00\u4efd\u5927\u676f\u70ed",
            "qty": 1,
            "unit": 350,
            "amount": 350,
        },
    ],
    "subtotal": 3350,
    "tax": 436,
    "tax_label": "VAT 13%",
    "total": 3786,
    "payment": "card",
    "card_last4": "4242",
    "url": "https://r.example.com/S-000123",
}


def lines(ops: list[tuple[Any, ...]]) -> list[tuple[str, int]]:
    return [(op[1], op[3]) for op in ops if op[0] == "text"]


def check_widths(ops: list[tuple[Any, ...]], e: escpos.Encoder, columns: int) -> None:
    for text, style in lines(ops):
        width = columns // 2 if style & escpos.BIG else columns
        assert e.cols(text) <= width, (text, e.cols(text), width)


@pytest.mark.parametrize("columns", [32, 48])
@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("kind", receipt.COPIES)
def test_no_line_overflows(columns: int, lang: str, kind: str) -> None:
    e = escpos.Encoder("gb18030", 58 if columns == 32 else 80, True)
    sale = dict(SALE, lang=lang, void_reason="customer changed mind about the order")
    ops = receipt.layout(sale, columns, e.char_cols, kind)
    check_widths(ops, e, columns)
    assert ops[-1] == ("cut",)


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(
        alphabet=st.sampled_from(list("ab cdefg{}-") + ["\u4e2d", "\u6587", "\uff01", "\x1b", "\x10", "\xa5"]),
        min_size=1,
        max_size=80,
    ),
    columns=st.sampled_from([32, 48]),
)
def test_item_names_wrap_and_keep_every_character(name: str, columns: int) -> None:
    e = escpos.Encoder("gb18030", 58 if columns == 32 else 80, False)
    sale = copy_mod.deepcopy(SALE)
    sale["items"] = [{"name": name, "qty": 1, "unit": 100, "amount": 100}]
    sale.update(subtotal=100, tax=0, total=100)
    ops = receipt.layout(sale, columns, e.char_cols)
    check_widths(ops, e, columns)
    name_w = columns - (12 if columns >= 42 else 10) - (5 if columns >= 42 else 4) - 2
    parts = receipt.wrap(name, name_w, e.char_cols)
    assert "".join(parts).replace(" ", "") == name.replace(" ", "")


def test_wrap_breaks_at_spaces_and_never_splits_a_wide_glyph() -> None:
    e = escpos.Encoder("gb18030", 58, False)
    assert receipt.wrap("hello big world", 10, e.char_cols) == ["hello big", "world"]
    assert receipt.wrap("\u4e2d" * 5, 5, e.char_cols) == ["\u4e2d\u4e2d", "\u4e2d\u4e2d", "\u4e2d"]


def test_copies_are_marked() -> None:
    e = escpos.Encoder("gb18030", 58, True)
    dup = [t for t, _ in lines(receipt.layout(SALE, 32, e.char_cols, "duplicate"))]
    assert "DUPLICATE" in dup[0] and "DUPLICATE" in dup[-1]
    assert sum("power loss" in t for t in dup) == 2
    void = [t for t, _ in lines(receipt.layout(dict(SALE, void_reason="x"), 32, e.char_cols, "void"))]
    assert "VOID" in void[0] and not any("Latte" in t for t in void)
    rev = [t for t, _ in lines(receipt.layout(SALE, 32, e.char_cols, "reversal"))]
    assert "REVERSAL" in rev[0] and any("reversed" in t for t in rev)
    zh = [t for t, _ in lines(receipt.layout(dict(SALE, lang="zh"), 32, e.char_cols, "duplicate"))]
    assert "\u91cd\u5370" in zh[0]


def test_card_is_masked_and_amounts_add_up() -> None:
    e = escpos.Encoder("gb18030", 58, True)
    text = "\n".join(t for t, _ in lines(receipt.layout(SALE, 32, e.char_cols)))
    assert "**** 4242" in text
    assert "\uffe537.86" in text and "\uffe54.36" in text and "30.00" in text
    assert receipt.money(-5) == "-0.05"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"card_last4": "4111111111111111"}, "card_last4"),
        ({"total": 1}, "total"),
        ({"items": []}, "items"),
        ({"lang": "fr"}, "lang"),
        ({"colour": "red"}, "colour"),
        ({"items": [{"name": "x", "qty": 2, "unit": 100, "amount": 150}]}, "items[0].amount"),
        ({"items": [{"name": "x", "qty": 0, "unit": 100, "amount": 0}]}, "items[0].qty"),
        ({"tax": 1.5}, "tax"),
    ],
)
def test_bad_sales_are_refused_naming_the_key(change: dict[str, Any], key: str) -> None:
    e = escpos.Encoder("gb18030", 58, True)
    with pytest.raises(receipt.SaleError, match=key.replace("[", r"\[").replace("]", r"\]")):
        receipt.layout(dict(SALE, **change), 32, e.char_cols)


def test_missing_key_and_bad_copy() -> None:
    e = escpos.Encoder("gb18030", 58, True)
    sale = dict(SALE)
    del sale["payment"]
    with pytest.raises(receipt.SaleError, match="payment"):
        receipt.layout(sale, 32, e.char_cols)
    with pytest.raises(receipt.SaleError, match="copy"):
        receipt.layout(SALE, 32, e.char_cols, "triplicate")


@pytest.mark.parametrize(
    ("name", "lang"),
    [("Latte", "en"), ("\u62ff\u94c1", "zh"), ("\uac00\ube44", "zh"), ("\U0001f600 Cake", "en"), ("Caf\u00e9", "en")],
)
def test_sale_language_follows_the_encoders_wide_characters(name: str, lang: str) -> None:
    # printjobs picks the Chinese labels for a name with an East Asian wide character: escpos.is_wide, the
    # one list (it was "any code point from U+2E80 up": an emoji, which the printer prints as "?", made a
    # receipt Chinese).
    from posguard import printjobs

    s = {"id": 1, "state": "PAID", "body": {"t": "x", "i": [[name, 1, 100]]}, "approval": "card:0000:A"}
    assert printjobs.sale_for_print(s, "CNY", ["POSGUARD"])["lang"] == lang
