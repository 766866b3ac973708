"""Draw what the simulated printer printed (sim_printer.ThermalPrinter.printed) as a PNG people can read.

One image pixel is one printer dot (203 dpi): 384 px wide on 58 mm paper, 576 on 80 mm. Latin text uses
12x24-dot cells and Chinese 24x24, like the printer's fonts. Chinese glyphs need a CJK font from the
system (Debian: fonts-wqy-zenhei or fonts-noto-cjk); without one they come out as boxes and
`find_font()` says so.
"""

from __future__ import annotations

import functools
import importlib
import subprocess
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from posguard_tools import paths

CELL_H = 24
LATIN_W = 12
CJK_W = 24
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
)
_LATIN_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",)  # 12-dot cells need a narrow face
FONT_HINT = "install a CJK font (Debian/Ubuntu: sudo apt-get install fonts-wqy-zenhei)"


def find_font() -> tuple[str | None, str]:
    """(path of a font with Chinese glyphs or None, a message for the user)."""
    for p in _FONT_CANDIDATES:
        if Path(p).exists():
            return p, f"CJK font: {p}"
    try:
        out = subprocess.run(
            ["fc-match", "-f", "%{file}", ":lang=zh-cn"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    if out and Path(out).exists() and any(k in out.lower() for k in ("cjk", "wqy", "han", "hei", "song", "ming")):
        return out, f"CJK font: {out}"
    return None, "no CJK font found: Chinese glyphs will be drawn as boxes; " + FONT_HINT


def dots_for(paper_mm: int) -> int:
    """Printer dots per line for a paper width (203 dpi: 58 mm paper prints 384 dots, 80 mm 576)."""
    return 384 if int(paper_mm) == 58 else 576


@functools.cache
def _escpos() -> Any:
    # Loaded once, on first use: importing this module does not put the firmware on sys.path.
    paths.use_simulated_hardware()  # the firmware's modules and the micropython.const they use
    return importlib.import_module("posguard.escpos")


def _is_wide(ch: str) -> bool:
    # What the printer draws double width is the firmware's own range list (escpos.is_wide), so the picture
    # and the firmware's layout can never disagree about a column.
    return bool(_escpos().is_wide(ord(ch)))


def decode_segment(raw: bytes, chinese_mode: bool, encoding: str) -> list[tuple[str, int]]:
    """Characters of one printed segment with their cell widths in dots (before size multipliers)."""
    out: list[tuple[str, int]] = []
    if encoding == "utf-8":
        for ch in raw.decode("utf-8", errors="replace"):
            out.append((ch, CJK_W if _is_wide(ch) else LATIN_W))
        return out
    if chinese_mode and encoding in ("gb18030", "gbk"):
        i = 0
        while i < len(raw):
            b = raw[i]
            if b >= 0x81 and i + 1 < len(raw):
                out.append((raw[i : i + 2].decode("gb18030", errors="replace"), CJK_W))
                i += 2
            else:
                out.append((chr(b) if b < 0x80 else "\ufffd", LATIN_W))
                i += 1
        return out
    return [(chr(b) if b < 0x80 else raw[i : i + 1].decode("cp437"), LATIN_W) for i, b in enumerate(raw)]


class Renderer:
    def __init__(self, dots: int, encoding: str, font_path: str | None) -> None:
        self.dots = dots
        self.encoding = encoding
        self.font: Any
        if font_path:
            self.font = ImageFont.truetype(font_path, 22)
        else:
            self.font = ImageFont.load_default()
        self.latin: Any = self.font
        for p in _LATIN_FONTS:
            if Path(p).exists():
                self.latin = ImageFont.truetype(p, 19)
                break
        self.rows: list[Image.Image] = []

    def _glyph_row(self, chars: list[tuple[str, int, tuple[Any, ...]]], align: int) -> Image.Image:
        hmul = max([k[3] for _, _, k in chars] or [1])
        img = Image.new("L", (self.dots, CELL_H * hmul), 255)
        width = sum(w * k[2] for _, w, k in chars)
        x = {0: 0, 1: (self.dots - width) // 2, 2: self.dots - width}.get(align, 0)
        x = max(0, x)
        for ch, w, key in chars:
            _, bold, wmul, h, ul, rev = key
            cell = Image.new("L", (w, CELL_H), 0 if rev else 255)
            d = ImageDraw.Draw(cell)
            fill = 255 if rev else 0
            font = self.latin if w == LATIN_W and ord(ch) < 0x80 else self.font
            d.text((w / 2, CELL_H / 2), ch, font=font, fill=fill, anchor="mm")
            if bold:
                d.text((w / 2 + 1, CELL_H / 2), ch, font=font, fill=fill, anchor="mm")
            if ul:
                d.line((0, CELL_H - 2, w, CELL_H - 2), fill=fill, width=ul)
            cell = cell.resize((w * wmul, CELL_H * h), Image.Resampling.NEAREST)
            img.paste(cell, (x, CELL_H * hmul - CELL_H * h))
            x += w * wmul
        return img

    def add(self, rec: tuple[Any, ...]) -> None:
        kind = rec[0]
        if kind == "text":
            chars: list[tuple[str, int, tuple[Any, ...]]] = []
            for raw, key in rec[2]:
                for ch, w in decode_segment(raw, bool(key[0]), self.encoding):
                    chars.append((ch, w, key))
            if chars:
                self.rows.append(self._glyph_row(chars, rec[1]))
            self.rows.append(Image.new("L", (self.dots, 6), 255))  # line spacing
        elif kind == "feed":
            self.rows.append(Image.new("L", (self.dots, max(1, rec[1])), 255))
        elif kind == "qr":
            self.rows.append(self._qr(rec[2], rec[3], rec[1], rec[5] if len(rec) > 5 else 1))
        elif kind == "barcode":
            img = Image.new("L", (self.dots, 80), 255)
            ImageDraw.Draw(img).text((4, 30), "[CODE128 " + rec[2].decode("latin-1") + "]", fill=0)
            self.rows.append(img)
        elif kind == "cut":
            img = Image.new("L", (self.dots, 16), 255)
            d = ImageDraw.Draw(img)
            for x in range(0, self.dots, 12):
                d.line((x, 8, x + 6, 8), fill=0)
            self.rows.append(img)

    def _qr(self, data: bytes, module: int, align: int, ecc: int) -> Image.Image:
        import qrcode  # type: ignore[import-untyped]

        levels = (
            qrcode.constants.ERROR_CORRECT_L,
            qrcode.constants.ERROR_CORRECT_M,
            qrcode.constants.ERROR_CORRECT_Q,
            qrcode.constants.ERROR_CORRECT_H,
        )
        q = qrcode.QRCode(error_correction=levels[ecc & 3], box_size=module, border=0)
        q.add_data(data)
        q.make(fit=True)
        sym = q.make_image(fill_color="black", back_color="white").get_image().convert("L")
        img = Image.new("L", (self.dots, sym.height), 255)
        x = {0: 0, 1: (self.dots - sym.width) // 2, 2: self.dots - sym.width}.get(align, 0)
        img.paste(sym, (max(0, x), 0))
        return img

    def image(self, margin: int = 16) -> Image.Image:
        h = sum(r.height for r in self.rows) + 2 * margin
        out = Image.new("L", (self.dots + 2 * margin, h), 255)
        y = margin
        for r in self.rows:
            out.paste(r, (margin, y))
            y += r.height
        return out


def render(printed: list[tuple[Any, ...]], dots: int, encoding: str, out: Path) -> str:
    """Write the PNG; returns the font message."""
    font, msg = find_font()
    r = Renderer(dots, encoding, font)
    for rec in printed:
        r.add(rec)
    r.image().save(out)
    return msg
