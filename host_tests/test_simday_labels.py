"""The day report reads receipts by receipt.py's own labels (issue 14): reword a label and the simulator's
receipt tracker still tells originals, marked copies and void slips apart on what the printer printed."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from posguard_tools.printer_world import PrinterWorld

sim_day = importlib.import_module("sim_day")  # simulator code (MicroPython subset, untyped)

# (lang, key, new wording): every marker the tracker needs, in both languages, reworded.
REWORDED = (
    ("en", "dup", "*** COPY ***"),
    ("zh", "dup", "*** \u526f\u672c\u91cd\u6253 ***"),  # 副本重打
    ("en", "void", "*** CANCEL ***"),
    ("zh", "void", "*** \u5df2\u64a4\u9500 ***"),  # 已撤销
    ("en", "paid", "Payment"),
    ("zh", "paid", "\u4ed8\u6b3e"),  # 付款
)
# (sale id, lang, copy kind) printed in this order on one roll
JOBS = ((1, "zh", "original"), (2, "zh", "duplicate"), (3, "en", "void"), (4, "en", "duplicate"),
        (5, "zh", "void"), (6, "en", "original"))


def _receipt() -> Any:
    # The receipt module sys.modules holds now (another test's simulated reset may have dropped the one
    # imported at collection): the one sim_day reads its labels from.
    return importlib.import_module("posguard.receipt")


def _sale(sid: int, lang: str) -> dict[str, Any]:
    return {"id": str(sid), "time": "2026-11-24 12:05", "lang": lang, "currency": "CNY",
            "header": ["POSGUARD", "devkit-1s"], "payment": "card", "card_last4": "4242", "total": 1800,
            "items": [{"name": "\u62ff\u94c1 Latte", "qty": 1, "unit": 1800, "amount": 1800}]}


def _printed_roll() -> list[Any]:
    w = PrinterWorld("devkit-1s")
    try:
        drv = w.driver()
        for sid, lang, kind in JOBS:
            ops = _receipt().layout(_sale(sid, lang), 32, drv.enc.char_cols, kind)
            assert w.run(drv.print_job(ops))["result"] == "printed"
        w.clock.advance_ms(5000)
        return list(w.printer.printed)
    finally:
        w.close()


@pytest.fixture
def reworded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for lang, key, text in REWORDED:
        monkeypatch.setitem(_receipt().LABELS[lang], key, text)
    importlib.reload(sim_day)  # its markers are read from the label table when it loads
    yield
    monkeypatch.undo()
    importlib.reload(sim_day)


def test_receipts_are_told_apart_with_the_labels_as_they_are() -> None:
    got = sim_day.parse_receipts(_printed_roll())
    assert got == [(sid, kind, True) for sid, _, kind in JOBS]


def test_a_reworded_label_still_counts_copies_and_voids(reworded: None) -> None:
    roll = _printed_roll()
    text = b"".join(seg[0] for rec in roll if rec[0] == "text" for seg in rec[2])
    assert b"DUPLICATE" not in text and b"VOID" not in text and b"Paid by" not in text  # reworded on paper
    got = sim_day.parse_receipts(roll)
    assert got == [(sid, kind, True) for sid, _, kind in JOBS]


def test_every_marker_label_prints_on_one_line() -> None:
    # The tracker finds a marker within one printed line: a label reworded so long that the layout wraps
    # it (a void's is BIG: 16 columns on 58 mm paper) would split the marker. Fails here, loudly, instead.
    from posguard import escpos

    e = escpos.Encoder("gb18030", 58, True)
    receipt = _receipt()
    for lang in receipt.LABELS:
        for kind, key in (("duplicate", "dup"), ("void", "void"), ("original", "paid")):
            ops = receipt.layout(_sale(7, lang), 32, e.char_cols, kind)
            label = receipt.LABELS[lang][key]
            assert any(op[0] == "text" and label in op[1] for op in ops), (lang, key)
