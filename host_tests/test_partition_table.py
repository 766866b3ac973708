"""The partition table writer against the documented ESP-IDF format, read back by a parser written
here from the documentation alone (no code shared with posguard_tools.partition_table), plus the
`posguard provision` command's refusals and warning."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posguard_tools import partition_table as pt
from posguard_tools import paths

FLASH_4MB = 4 * 1024 * 1024


# -- an independent reader of the documented format -------------------------------------------------
def read_table(blob: bytes) -> list[dict[str, int | str]]:
    """ESP-IDF partition table: 32-byte entries starting AA 50 (type, subtype, offset LE32, size LE32,
    16-byte label, flags LE32), then EB EB + 14 x FF + MD5 of the entries, then FF up to 0xC00."""
    assert len(blob) == 0xC00, "a table image is 0xC00 bytes"
    entries: list[dict[str, int | str]] = []
    pos = 0
    while True:
        e = blob[pos : pos + 32]
        if e[0] == 0xEB and e[1] == 0xEB:
            assert e[2:16] == bytes([0xFF]) * 14, "MD5 entry filler"
            assert e[16:32] == hashlib.md5(blob[:pos]).digest(), "MD5 of the entries"
            assert blob[pos + 32 :] == bytes([0xFF]) * (0xC00 - pos - 32), "0xFF after the MD5 entry"
            return entries
        assert e[0] == 0xAA and e[1] == 0x50, f"entry magic at {pos}"
        label = e[12:28]
        name = label.split(b"\x00")[0]
        assert label[len(name) :] == bytes(16 - len(name)), "label is NUL padded"
        entries.append(
            {
                "type": e[2],
                "subtype": e[3],
                "offset": int.from_bytes(e[4:8], "little"),
                "size": int.from_bytes(e[8:12], "little"),
                "label": name.decode("ascii"),
                "flags": int.from_bytes(e[28:32], "little"),
            }
        )
        pos += 32
        assert pos < 0xC00, "no MD5 entry"


def check_layout(entries: list[dict[str, int | str]], flash_size: int) -> None:
    end = 0x9000  # the table's own sector (0x8000-0x8FFF) is not a partition
    for e in entries:
        off, size = int(e["offset"]), int(e["size"])
        align = 0x10000 if e["type"] == 0 else 0x1000
        assert off % align == 0, e
        assert size % 0x1000 == 0 and size > 0, e
        assert off >= end, f"overlap at {e}"
        end = off + size
    assert end <= flash_size


def _profile(name: str) -> dict[str, dict[str, int | str]]:
    data: dict[str, dict[str, int | str]] = json.loads(paths.board_profile(name).read_text())
    return data


# -- the writer ----------------------------------------------------------------------------------------
def test_first_entry_bytes_match_the_documented_layout() -> None:
    blob = pt.encode(pt.stock_micropython())
    # nvs, data (1), nvs subtype (2), offset 0x9000, size 0x6000, label "nvs", flags 0
    expected = bytes([0xAA, 0x50, 0x01, 0x02, 0x00, 0x90, 0, 0, 0x00, 0x60, 0, 0]) + b"nvs" + bytes(13) + bytes(4)
    assert blob[:32] == expected


@pytest.mark.parametrize("board", ["devkit-1s", "pos-2s"])
def test_journal_is_carved_from_the_end_of_vfs(board: str) -> None:
    j = _profile(board)["journal"]
    size = int(j["size_kb"]) * 1024
    stock = read_table(pt.encode(pt.stock_micropython()))
    new = read_table(pt.encode(pt.with_journal(pt.stock_micropython(), str(j["label"]), int(j["size_kb"])), FLASH_4MB))
    check_layout(new, FLASH_4MB)
    by_label = {e["label"]: e for e in new}
    old_vfs = next(e for e in stock if e["label"] == "vfs")
    assert by_label["vfs"]["offset"] == old_vfs["offset"]  # vfs keeps its place...
    assert by_label["vfs"]["size"] == int(old_vfs["size"]) - size  # ...and gives exactly the journal's size
    journal = by_label[str(j["label"])]
    assert (journal["type"], journal["subtype"], journal["size"]) == (1, 0x40, size)
    assert journal["offset"] == FLASH_4MB - size
    # Everything else is untouched.
    assert [e for e in new if e["label"] not in ("vfs", j["label"])] == [e for e in stock if e["label"] != "vfs"]


def test_a_changed_byte_breaks_the_checksum() -> None:
    blob = bytearray(pt.encode(pt.with_journal(pt.stock_micropython(), "journal", 64)))
    blob[40] ^= 0x01  # inside the second entry's offset
    with pytest.raises(AssertionError, match="MD5"):
        read_table(bytes(blob))
    with pytest.raises(pt.PartitionError, match="MD5"):
        pt.decode(bytes(blob))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=12),
    gaps=st.lists(st.integers(min_value=0, max_value=8), min_size=12, max_size=12),
    subtypes=st.lists(st.integers(min_value=0, max_value=0xFE), min_size=12, max_size=12),
)
def test_random_layouts_round_trip(sizes: list[int], gaps: list[int], subtypes: list[int]) -> None:
    parts = []
    off = 0x9000
    for i, n in enumerate(sizes):
        off += gaps[i] * 0x1000
        parts.append(pt.Partition(f"p{i}", pt.TYPE_DATA, subtypes[i], off, n * 0x1000))
        off += n * 0x1000
    blob = pt.encode(parts)
    got = read_table(blob)
    assert [(e["label"], e["subtype"], e["offset"], e["size"]) for e in got] == [
        (p.label, p.subtype, p.offset, p.size) for p in parts
    ]
    assert pt.decode(blob) == parts


@pytest.mark.parametrize(
    ("size_kb", "message"),
    [(6, "multiple of 4 KB"), (0, "multiple of 4 KB"), (2000, "cannot give")],
)
def test_bad_journal_sizes_are_refused(size_kb: int, message: str) -> None:
    with pytest.raises(pt.PartitionError, match=message):
        pt.with_journal(pt.stock_micropython(), "journal", size_kb)


def test_provisioning_twice_is_a_no_op_and_resizing_is_explicit() -> None:
    once = pt.with_journal(pt.stock_micropython(), "journal", 64)
    assert pt.with_journal(once, "journal", 64) == once
    with pytest.raises(pt.PartitionError, match="--resize"):
        pt.with_journal(once, "journal", 128)
    resized = read_table(pt.encode(pt.resize_journal(once, "journal", 128)))
    assert {e["label"]: e["size"] for e in resized}["journal"] == 128 * 1024
    check_layout(resized, FLASH_4MB)


def test_overlaps_and_misalignment_are_refused() -> None:
    stock = pt.stock_micropython()
    with pytest.raises(pt.PartitionError, match="overlaps"):
        pt.encode(stock + [pt.Partition("x", 1, 0x40, 0x3F0000, 0x20000)])
    with pytest.raises(pt.PartitionError, match="aligned"):
        pt.encode([pt.Partition("app", 0, 0, 0x11000, 0x10000)])  # apps sit on 64 KiB
    with pytest.raises(pt.PartitionError, match="beyond"):
        pt.encode(pt.stock_micropython(pt.FLASH_SIZES["8MB"]), FLASH_4MB)


def test_gen_esp32part_agrees_when_available(tmp_path: Path) -> None:
    # ESP-IDF's own generator lives in ESP-IDF (components/partition_table/gen_esp32part.py); esptool
    # 5.6.0 does not ship it (checked: no such module in the installed package).
    spec = importlib.util.find_spec("gen_esp32part") or importlib.util.find_spec("esptool.gen_esp32part")
    if spec is None:
        pytest.skip("gen_esp32part is not installed (not part of esptool 5.6.0; it comes with ESP-IDF)")
    csv = tmp_path / "p.csv"
    csv.write_text(
        "nvs,data,nvs,0x9000,0x6000,\nphy_init,data,phy,0xf000,0x1000,\nfactory,app,factory,0x10000,0x1F0000,\n"
        "vfs,data,fat,0x200000,0x1F0000,\njournal,data,0x40,0x3F0000,0x10000,\n"
    )
    out = tmp_path / "p.bin"
    subprocess.run([sys.executable, "-m", spec.name, str(csv), str(out)], check=True, timeout=60)
    assert out.read_bytes() == pt.encode(pt.with_journal(pt.stock_micropython(), "journal", 64))


# -- posguard provision -----------------------------------------------------------------------------
def _provision(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posguard_tools.cli", "provision", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def test_dry_run_shows_the_change_and_warns(tmp_path: Path) -> None:
    out = tmp_path / "new.bin"
    r = _provision("--stock", "--dry-run", "--board", "pos-2s", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert "WARNING: this reformats the board's filesystem" in r.stdout
    assert "EVERYTHING on it is lost" in r.stdout and "dry run: nothing written" in r.stdout
    entries = read_table(out.read_bytes())
    assert {e["label"]: e["size"] for e in entries}["journal"] == 128 * 1024


def test_already_provisioned_table_is_left_alone(tmp_path: Path) -> None:
    cur = tmp_path / "cur.bin"
    cur.write_bytes(pt.encode(pt.with_journal(pt.stock_micropython(), "journal", 64)))
    r = _provision("--port", "/dev/does-not-exist", "--current", str(cur), "--yes")
    assert r.returncode == 0 and "already provisioned" in r.stdout


def test_unconfirmed_provision_writes_nothing(tmp_path: Path) -> None:
    cur = tmp_path / "cur.bin"
    cur.write_bytes(pt.encode(pt.stock_micropython()))
    r = _provision("--port", "/dev/does-not-exist", "--current", str(cur), stdin="yes\n")
    assert r.returncode == 1
    assert "not confirmed" in r.stderr and "nothing written" in r.stderr


def test_missing_board_and_unknown_profile_are_clear(tmp_path: Path) -> None:
    cur = tmp_path / "cur.bin"
    cur.write_bytes(pt.encode(pt.stock_micropython()))
    r = _provision("--port", "/dev/does-not-exist", "--current", str(cur), "--yes")
    assert r.returncode == 1
    assert "could not erase the journal area" in r.stderr and "/dev/does-not-exist" in r.stderr
    assert "the partition table was not changed" in r.stderr
    r = _provision("--port", "/dev/does-not-exist")
    assert r.returncode == 1 and "cannot read the partition table from /dev/does-not-exist" in r.stderr
    r = _provision("--port", "/dev/does-not-exist", "--board", "nope")
    assert r.returncode == 2 and "no board profile 'nope'" in r.stderr
