"""`posguard receipt`: the firmware's bytes decode back to the sale's text (GB18030 included) and its QR
payload, the PNG is drawn, and a bad sale is refused with a message naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from posguard_tools import cli
from posguard_tools.printer_world import standard_sale


def write_sale(tmp_path: Path, lang: str) -> Path:
    sale = standard_sale(5, lang)
    sale["header"] = ["Posguard \u5496\u5561\u9986"]
    p = tmp_path / f"sale-{lang}.json"
    p.write_text(json.dumps(sale, ensure_ascii=False), encoding="utf-8")
    return p


def decode_text(wire: bytes) -> str:
    """Minimal independent decoder: drop commands, keep text; GB18030 inside FS & ... FS .."""
    out = []
    i = 0
    cn = False
    while i < len(wire):
        b = wire[i]
        if wire.startswith(b"\x1c&", i):
            cn, i = True, i + 2
        elif wire.startswith(b"\x1c.", i):
            cn, i = False, i + 2
        elif wire.startswith(b"\x1d(k", i):
            i += 5 + wire[i + 3] + 256 * wire[i + 4]
        elif b == 0x1B:
            i += {0x37: 5, 0x40: 2, 0x24: 4}.get(wire[i + 1], 3)
        elif b == 0x1D:
            i += 7 if wire[i + 1] == 0x28 else (4 if wire[i + 1] == 0x56 else 3)
        elif b == 0x10:
            i += 3
        elif b == 0x0A:
            out.append("\n")
            i += 1
        elif cn and b >= 0x81:
            out.append(wire[i : i + 2].decode("gb18030"))
            i += 2
        else:
            out.append(chr(b))
            i += 1
    return "".join(out)


@pytest.mark.parametrize("board", ["pos-2s", "devkit-1s"])
def test_receipt_bytes_decode_back(tmp_path: Path, board: str) -> None:
    sale_path = write_sale(tmp_path, "zh")
    out = tmp_path / "r.bin"
    png = tmp_path / "r.png"
    rc = cli.main(["receipt", "--board", board, "--sale", str(sale_path), "--out", str(out), "--png", str(png)])
    assert rc == 0
    wire = out.read_bytes()
    text = decode_text(wire)
    assert "Posguard \u5496\u5561\u9986" in text
    assert "\u5408\u8ba1" in text and "\uffe5" in text  # 合计, full-width yen
    url = b"https://r.example.com/S-000042"
    store = b"\x1d(k" + bytes([len(url) + 3, 0]) + b"1P0" + url
    assert store in wire
    img = Image.open(png)
    assert img.width == 384 + 32 and img.height > 600


def test_duplicate_and_void_copies(tmp_path: Path) -> None:
    sale_path = write_sale(tmp_path, "en")
    for copy, mark in (("duplicate", "DUPLICATE"), ("void", "VOID"), ("reversal", "REVERSAL")):
        out = tmp_path / f"{copy}.bin"
        assert cli.main(["receipt", "--sale", str(sale_path), "--copy", copy, "--out", str(out)]) == 0
        assert mark in decode_text(out.read_bytes())


def test_bad_sale_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    sale = standard_sale(3)
    sale["card_last4"] = "4111111111111111"
    bad.write_text(json.dumps(sale))
    out = tmp_path / "x.bin"
    assert cli.main(["receipt", "--sale", str(bad), "--out", str(out)]) == 2
    assert "card_last4" in capsys.readouterr().err
    assert not out.exists()
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert cli.main(["receipt", "--sale", str(broken), "--out", str(out)]) == 2
    assert cli.main(["receipt", "--board", "nope", "--sale", str(bad), "--out", str(out)]) == 2
