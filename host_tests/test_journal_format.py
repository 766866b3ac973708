"""The offline journal decoder (posguard journal dump/verify) against images the firmware wrote."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import sim_flash

from posguard import records as R
from posguard import sales as S
from posguard.journal import Journal
from posguard_tools import cmd_journal
from posguard_tools import journal_format as jf


def _image_with_sales() -> tuple[Any, Any]:
    flash = sim_flash.NorFlash(8 * 4096)
    book = S.SaleBook(Journal(sim_flash.BlockDevice(flash)), keep_last=3)
    book.recover()
    book.maintenance_allowed = True
    for sid in range(1, 40):
        try:
            book.open_sale(sid, {"items": [["x", sid, 10]], "total": sid})
        except R.JournalError:
            while book.maintenance():
                pass
            book.open_sale(sid, {"items": [["x", sid, 10]], "total": sid})
        book.request_payment(sid)
        if sid % 4 == 0:
            book.void(sid, "cancel")
            continue
        book.payment_approved(sid, f"A{sid}")
        book.start_print(sid)
        book.print_done(sid)
        book.close(sid)
        book.idle()
    while book.maintenance():
        pass
    book.open_sale(100, {"items": [["live", 1, 1]], "total": 1})
    return flash, book


def test_decoder_agrees_with_the_firmware(world: Any) -> None:
    flash, book = _image_with_sales()
    data = flash.image()
    img = jf.parse(data)
    assert jf.verify(img) == []
    assert img.active == book.j.active and img.generation == book.j.gen
    decoded = jf.sales(img, data)
    for sid, s in decoded.items():
        fw = book.sale(sid)
        assert s["state"] == fw["state"], sid
        if not fw["body_lost"]:
            assert s["body"] == fw["body"] and s["approval"] == fw["approval"]
    assert decoded[100]["state"] == "OPEN"
    assert decoded[8]["state"] == "REVERSAL_PENDING" and decoded[8]["reason"] == "cancel"
    kinds = {s.kind for s in img.sectors}
    assert "used" in kinds and "spare" in kinds


def test_verify_reports_torn_pages_and_foreign_images(world: Any) -> None:
    flash, book = _image_with_sales()
    flash.flip_bit(book.j.active * 4096 + 2 * 256 + 4, 0)
    flash.flip_bit(book.j.active * 4096 + 2 * 256 + 5, 0)
    problems = jf.verify(jf.parse(flash.image()))
    assert any("corrupt" in p for p in problems)
    assert jf.verify(jf.parse(b"\x00" * 8192)) != []
    with pytest.raises(jf.ImageError):
        jf.parse(b"\xff" * 100)


def test_cli_dump_and_verify(world: Any, tmp_path: Path, capsys: Any) -> None:
    img = tmp_path / "j.bin"
    assert cmd_journal.run(argparse.Namespace(action="demo", out=str(img), sectors=8)) == 0
    assert cmd_journal.run(argparse.Namespace(action="verify", image=str(img))) == 0
    assert "ok: generation 1" in capsys.readouterr().out
    assert cmd_journal.run(argparse.Namespace(action="dump", image=str(img), json=False)) == 0
    out = capsys.readouterr().out
    assert "sale 12: PRINTING approval=AUTH12" in out
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x12" * 4096)
    assert cmd_journal.run(argparse.Namespace(action="verify", image=str(bad))) == 1
    assert cmd_journal.run(argparse.Namespace(action="verify", image=str(tmp_path / "missing.bin"))) == 2


def test_dump_corrects_one_bit_and_keeps_records_behind_a_broken_checkpoint(world: Any) -> None:
    flash, book = _image_with_sales()
    act = book.j.active
    ck = next(p for p in range(1, 16) if book.j.read_record(act * 16 + p) and book.j.rbuf[1] == R.T_CHECKPOINT)
    at = act * 4096 + ck * 256
    flash.flip_bit(at + 9, 4)
    img = jf.parse(flash.image())
    assert img.corrected_pages == [act * 16 + ck] and jf.verify(img) == []
    flash.flip_bit(at + 30, 1)
    flash.flip_bit(at + 200, 7)  # three bits: detected, reported, never miscorrected
    data = flash.image()
    img = jf.parse(data)
    assert img.corrupt_pages == [act * 16 + ck] and img.corrected_pages == []
    assert jf.sales(img, data)[100]["state"] == "OPEN"  # its OPEN record lives in that sector
    assert any("torn or corrupt" in p for p in jf.verify(img))


def test_dump_from_a_port_that_is_not_there_is_a_clear_error(capsys: Any) -> None:
    from posguard_tools import cli

    rc = cli.main(["journal", "dump", "--port", "/dev/posguard-no-such-port", "--timeout", "20"])
    out = capsys.readouterr().out
    assert rc == 2 and "/dev/posguard-no-such-port" in out and "posguard journal:" in out
