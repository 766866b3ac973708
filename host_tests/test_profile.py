"""Board profiles: both shipped profiles validate; every defect is named by its key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from posguard import profile
from posguard_tools import paths

BOARDS = sorted(paths.BOARDS.glob("*.json"))


@pytest.mark.parametrize("path", BOARDS, ids=[p.stem for p in BOARDS])
def test_shipped_profiles_validate(path: Path) -> None:
    data = profile.load(str(path))
    assert data["name"] == path.stem


def test_the_two_required_boards_exist() -> None:
    names = {p.stem for p in BOARDS}
    assert {"devkit-1s", "pos-2s"} <= names


def _devkit() -> dict[str, Any]:
    return json.loads(paths.board_profile("devkit-1s").read_text())


def test_unknown_key_is_named() -> None:
    d = _devkit()
    d["printer"]["baudrate"] = 9600
    with pytest.raises(profile.ProfileError, match=r"unknown profile key 'printer\.baudrate'"):
        profile.validate(d)


def test_missing_key_is_named() -> None:
    d = _devkit()
    del d["battery"]["divider_ratio"]
    with pytest.raises(profile.ProfileError, match=r"missing profile key 'battery\.divider_ratio'"):
        profile.validate(d)


def test_wrong_type_is_named() -> None:
    d = _devkit()
    d["pins"]["vbat_adc"] = "34"
    with pytest.raises(profile.ProfileError, match=r"'pins\.vbat_adc' must be an integer"):
        profile.validate(d)


def test_null_only_where_not_fitted_is_allowed() -> None:
    d = _devkit()
    d["pins"]["thermistor_adc"] = None
    profile.validate(d)
    d2 = copy.deepcopy(d)
    d2["pins"]["vbat_adc"] = None
    with pytest.raises(profile.ProfileError, match=r"'pins\.vbat_adc' must not be null"):
        profile.validate(d2)


def test_unreadable_and_invalid_json_are_clear(tmp_path: Path) -> None:
    with pytest.raises(profile.ProfileError, match="cannot read board profile"):
        profile.load(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(profile.ProfileError, match="not valid JSON"):
        profile.load(str(bad))


def test_host_link_may_not_share_the_repl_uart() -> None:
    # Production mode: the cashier app's UART must never reach the REPL on UART0.
    d = _devkit()
    d["host"]["uart_id"] = 0
    with pytest.raises(profile.ProfileError, match=r"'host\.uart_id' must not be 0"):
        profile.validate(d)
    d = _devkit()
    d["printer"]["uart_id"] = d["host"]["uart_id"]
    with pytest.raises(profile.ProfileError, match=r"'printer\.uart_id' must differ"):
        profile.validate(d)


def test_unknown_chemistry_is_named() -> None:
    d = _devkit()
    d["battery"]["chemistry"] = "LiPo-magic"
    with pytest.raises(profile.ProfileError, match=r"'battery\.chemistry' must be one of NMC, LFP"):
        profile.validate(d)


def test_profile_chemistries_match_the_soc_tables() -> None:
    from posguard import soc

    assert set(profile._CHEMISTRIES) == set(soc.CHEMISTRIES)


# -- issue 12, item 6: every value against a range and against each other --------------------------
@pytest.mark.parametrize(("path", "value", "message"), [
    ("name", "N" * 201, r"'name' must be 1-32 characters"),
    ("name", "shop 4111 1111 1111 1111", r"'name' holds what looks like a full card number"),
    ("name", "shop\x1b@", r"'name' holds a control character"),
    ("printer.columns", 40, r"'printer\.columns' must be 32 for 58 mm paper, got 40"),
    ("printer.paper_mm", 57, r"'printer\.paper_mm' must be one of 58 or 80"),
    ("host.name_max", 300, r"'host\.name_max' must be 1-64, got 300"),
    ("host.currency", "C" * 300, r"'host\.currency' must be a three-letter ISO 4217 code"),
    ("host.amount_max", 10**10, r"'host\.amount_max' must be 1-999999999 for 32 receipt columns"),
    ("host.amount_max", 10**13, r"'host\.amount_max' must be 1-99999999999, got 10000000000000"),
    ("host.line_max", 100, r"'host\.line_max' must be 256-4096"),
    ("host.baud", 12345, r"'host\.baud' must be one of 9600"),
    ("printer.baud", 250000, r"'printer\.baud' must be one of 9600 or 19200"),
    ("printer.encoding", "latin-1", r"'printer\.encoding' must be one of gb18030 or gbk or utf-8 or ascii"),
    ("printer.flow", "rts", r"'printer\.flow' must be one of cts or xon or pacing"),
    ("printer.heat", "max", r"'printer\.heat' must be one of"),
    ("battery.capacity_mah", 0, r"'battery\.capacity_mah' must be 100-50000, got 0"),
    ("policy.critical_pct", 30, r"'policy\.shutdown_pct' <= 'policy\.critical_pct' < 'policy\.low_pct'"),
    ("policy.heat_dots", 1000, r"'policy\.heat_dots' must be 8-384"),
    ("journal.size_kb", 66, r"'journal\.size_kb' must be a multiple of 4"),
    ("power.boost_eff", 1.5, r"'power\.boost_eff' must be 0\.5-1\.0"),
])
def test_out_of_range_values_are_named_with_their_range(path: str, value: Any, message: str) -> None:
    d = _devkit()
    *head, last = path.split(".")
    sec = d
    for k in head:
        sec = sec[k]
    sec[last] = value
    with pytest.raises(profile.ProfileError, match=message):
        profile.validate(d)


def test_values_checked_against_each_other() -> None:
    d = _devkit()
    d["printer"]["paper_mm"], d["printer"]["columns"] = 80, 48
    d["host"]["amount_max"] = 99_999_999_999  # fits 12 columns: 999999999.99
    profile.validate(d)
    d["printer"]["columns"] = 32
    with pytest.raises(profile.ProfileError, match=r"'printer\.columns' must be 42 or 48 for 80 mm paper"):
        profile.validate(d)
    d = _devkit()
    d["printer"]["flow"], d["printer"]["busy"] = "cts", None
    with pytest.raises(profile.ProfileError, match=r"'printer\.busy' must name the BUSY pin"):
        profile.validate(d)


def test_value_sets_match_the_parts_that_use_them() -> None:
    from posguard import escpos, printer, printer_link

    assert profile._ENCODINGS == escpos.ENCODINGS
    assert profile._FLOWS == printer_link.MODES
    assert profile._HEATS == printer.HEATS


@pytest.mark.parametrize("path", BOARDS, ids=[p.stem for p in BOARDS])
def test_every_sale_the_limits_admit_can_be_laid_out(path: Path) -> None:
    """The widest sale the host caps allow (items_max items, name_max wide characters, amount_max)
    lays out on the board's printer: a valid profile can never make a paid receipt vanish."""
    from posguard import escpos, printjobs, receipt

    d = profile.load(str(path))
    h = d["host"]
    enc = escpos.Encoder(d["printer"]["encoding"], d["printer"]["paper_mm"], d["printer"]["cutter"])
    per = h["amount_max"] // h["items_max"]
    body = {"t": "2026-11-24 21:58", "i": [["\u62ff" * h["name_max"], 1, per] for _ in range(h["items_max"])]}
    s = {"id": 0x7FFFFFFF, "state": "PAID", "body": body, "approval": "card:0000:ABCDEFGHIJKL"}
    for kind in receipt.COPIES:
        ops = receipt.layout(printjobs.sale_for_print(s, h["currency"], ["POSGUARD", d["name"]]),
                             d["printer"]["columns"], enc.char_cols, kind)
        for op in ops:
            if op[0] == "text":
                assert enc.cols(op[1]) <= d["printer"]["columns"], (kind, op[1])


def test_a_bad_profile_stops_before_the_watchdog_is_armed(tmp_path: Path, monkeypatch: Any) -> None:
    from posguard import app, hw

    armed: list[int] = []
    monkeypatch.setattr(hw, "watchdog", lambda ms: armed.append(ms))
    d = _devkit()
    d["printer"]["columns"] = 40
    p = tmp_path / "board.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="printer.columns"):  # ProfileError (the simulator may reload modules)
        app.main(str(p))
    assert armed == []
