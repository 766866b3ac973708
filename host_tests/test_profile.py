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
