"""The committed GB18030 table is exactly what the generator makes from CPython's codec, and the
firmware's file lookup agrees with the codec for every BMP code point."""

from __future__ import annotations

from pathlib import Path

import pytest

from posguard import gb
from posguard_tools import gbtable


def test_committed_table_is_regenerated_byte_for_byte() -> None:
    committed = gbtable.TABLE_PATH.read_bytes()
    assert committed == gbtable.build(), "run `python -m posguard_tools.gbtable` and commit the result"


def test_every_bmp_code_point_matches_cpython() -> None:
    t = gb.GBTable(str(gbtable.TABLE_PATH))
    wrong = []
    for cp in range(0x80, 0x10000):
        want = 0
        if not 0xD800 <= cp < 0xF900:
            try:
                b = chr(cp).encode("gb18030")
                if len(b) == 2:
                    want = b[0] << 8 | b[1]
            except UnicodeEncodeError:
                pass
        if t.code(cp) != want:
            wrong.append(cp)
    assert t.code(0x10000) == 0 and t.code(0x20000) == 0
    t.close()
    assert not wrong, [hex(c) for c in wrong[:10]]


def test_gbk_membership() -> None:
    t = gb.GBTable(str(gbtable.TABLE_PATH))
    for cp in (0x4E2D, 0xFFE5, 0x00E9):
        assert t.in_gbk(cp)
    missing = [cp for cp in range(0x80, 0x10000) if t.code(cp) and not t.in_gbk(cp)]
    for cp in missing:
        try:
            assert chr(cp).encode("gbk") != chr(cp).encode("gb18030")
        except UnicodeEncodeError:
            pass
    assert 0 < len(missing) < 200
    t.close()


def test_corrupt_tables_give_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"NOPE" + bytes(20))
    with pytest.raises(gb.TableError):
        gb.GBTable(str(bad))
    short = tmp_path / "short.bin"
    short.write_bytes(gbtable.TABLE_PATH.read_bytes()[:2000])
    t = gb.GBTable(str(short))
    with pytest.raises(gb.TableError):
        t.code(0x9000)
    t.close()
