"""Golden bytes for every command the encoder emits: python-escpos 3.1's Dummy printer where it has the
command, the byte layouts of docs/reference/escpos.md where it does not; the GB18030 path against
CPython's codec."""

from __future__ import annotations

import pytest
from escpos import constants as esc_const
from escpos.printer import Dummy
from hypothesis import given, settings
from hypothesis import strategies as st

from posguard import escpos


def enc(encoding: str = "gb18030", paper: int = 58, cutter: bool = True) -> escpos.Encoder:
    return escpos.Encoder(encoding, paper, cutter)


def out(e: escpos.Encoder) -> bytes:
    return bytes(e.out())


def dummy(fn: str, *args: object, **kw: object) -> bytes:
    d = Dummy()
    getattr(d, fn)(*args, **kw)
    return bytes(d.output)


def test_modes_match_python_escpos() -> None:
    cases = [
        (lambda e: e.bold(True), dummy("_raw", b"") + b"\x1bE\x01"),
        (lambda e: e.underline(1), b"\x1b-\x01"),
        (lambda e: e.align(1), b"\x1ba\x01"),
        (lambda e: e.reverse(True), b"\x1dB\x01"),
        (lambda e: e.size(2, 2), dummy("set", custom_size=True, width=2, height=2)),
        (lambda e: e.size(1, 2), dummy("set", custom_size=True, width=1, height=2)),
        (lambda e: e.feed(3), dummy("print_and_feed", 3)),
        (lambda e: e.newline(), dummy("control", "LF")),
    ]
    for fn, want in cases:
        e = enc()
        fn(e)
        assert out(e) == want
    # python-escpos's set() bundles these into one sequence: each of ours must appear in it
    full = dummy("set", align="center", bold=True, underline=1, invert=True)
    for fn in (lambda e: e.bold(True), lambda e: e.underline(1), lambda e: e.align(1), lambda e: e.reverse(True)):
        e = enc()
        fn(e)
        assert out(e) in full


def test_init_sequence() -> None:
    e = enc()
    e.init()
    assert out(e).startswith(dummy("hw", "INIT"))
    assert out(e) == b"\x1b@\x1c.\x1da\x00"  # ESC @, FS ., GS a 0 (escpos.md)
    e.clear()
    e.init(status_back=True)
    assert out(e) == b"\x1b@\x1c."


def test_cut_is_function_b_and_skipped_without_cutter() -> None:
    e = enc(cutter=True)
    e.cut(True)
    assert out(e) == b"\x1dVB\x00"  # 1D 56 42 n: feed and partial cut (escpos.md)
    e.clear()
    e.cut(False)
    assert out(e) == b"\x1dVA\x00"
    # python-escpos uses function A (1D 56 01 / 00): same command, without the feed
    assert dummy("cut", mode="PART")[-3:-1] == b"\x1dV"
    e2 = enc(cutter=False)
    e2.cut(True)
    assert out(e2) == b""


def test_qr_commands_match_python_escpos() -> None:
    e = enc()
    e.qr(b"hello", ecc=1, module=6)
    ours = out(e)
    theirs = dummy("qr", "hello", ec=1, size=6, model=2, native=True, center=False)
    # the same five GS ( k commands in the same order; ours adds the quiet zone as ESC J feeds
    parts = theirs.split(b"\x1d(k")[1:]
    pos = 0
    for p in parts:
        i = ours.index(b"\x1d(k" + p, pos)
        pos = i + 1
    assert ours.count(b"\x1bJ\x18") == 2  # 4 modules x 6 dots of quiet zone before and after


def test_qr_too_big_for_the_paper_is_refused() -> None:
    e = enc()
    with pytest.raises(escpos.EncodeError):
        e.qr(b"x" * 900)
    with pytest.raises(escpos.EncodeError):
        e.qr(b"x" * 200, module=8)  # version 9 at 8 dots/module = 488 dots > 384


def test_qr_versions_agree_with_the_qrcode_library_at_every_version_boundary() -> None:
    # The pinned qrcode package is the independent oracle for the firmware's capacity table (the
    # simulated printer uses the firmware's table: this test is what makes that sound). At each version
    # and level the largest byte-mode payload qrcode fits there, from its data-bit limits: the 4-bit mode
    # indicator and the 8-bit (versions 1-9) or 16-bit (10-26) length field come off (ISO/IEC 18004).
    import qrcode  # type: ignore[import-untyped]

    levels = (
        qrcode.constants.ERROR_CORRECT_L,
        qrcode.constants.ERROR_CORRECT_M,
        qrcode.constants.ERROR_CORRECT_Q,
        qrcode.constants.ERROR_CORRECT_H,
    )

    def oracle(n: int, level: int) -> int:
        q = qrcode.QRCode(error_correction=level)
        q.add_data(qrcode.util.QRData(b"\xff" * n, mode=qrcode.util.MODE_8BIT_BYTE))
        v = int(q.best_fit())
        return v if v <= 20 else 0

    for ecc, level in enumerate(levels):
        for v in range(1, 21):
            bits = qrcode.util.BIT_LIMIT_TABLE[level][v]
            cap = (bits - 4 - (8 if v <= 9 else 16)) // 8
            for n in (cap, cap + 1):
                assert escpos.qr_version(n, ecc) == oracle(n, level), (n, ecc)
            assert escpos.qr_version(cap, ecc) == v, (v, ecc)


def test_is_wide_follows_unicode_east_asian_width() -> None:
    # UAX #11 (CPython's unicodedata) as the oracle for the one wide-character list
    # (docs/reference/escpos.md, "Character width"): every assigned W/F character of the BMP is wide,
    # but the emoji-presentation symbols a printer font lacks; the only wide non-W/F ones are the three
    # runs inside the CJK block the document names.
    import unicodedata

    narrow_on_purpose = range(0x2300, 0x2C00)
    wide_anyway = [range(0x303F, 0x3040), range(0x3248, 0x3250), range(0x4DC0, 0x4E00)]
    for cp in range(0x80, 0x10000):
        ch = chr(cp)
        if 0xD800 <= cp < 0xE000 or unicodedata.category(ch) == "Cn":
            continue
        w = unicodedata.east_asian_width(ch) in ("W", "F")
        if w and cp not in narrow_on_purpose:
            assert escpos.is_wide(cp), hex(cp)
        if escpos.is_wide(cp) and not w:
            assert any(cp in r for r in wide_anyway), hex(cp)


def test_receipt_pictures_draw_the_firmware_widths() -> None:
    # render.py draws a UTF-8 printer's cells with escpos.is_wide, not a list of its own (it lacked the
    # vertical and small forms).
    from posguard_tools import render

    for cp in (0x41, 0xE9, 0x1100, 0x2615, 0x4E2D, 0xA960, 0xFE10, 0xFE50, 0xFF21, 0xFFE0):
        cells = render.decode_segment(chr(cp).encode(), False, "utf-8")
        assert cells == [(chr(cp), 24 if escpos.is_wide(cp) else 12)], hex(cp)


def test_text_marks_every_continuation_byte() -> None:
    # The allocation-free text path (_put1/_put2/_put3) keeps the command-boundary map a status query
    # relies on: a double-byte or UTF-8 character's trailing bytes are never a boundary.
    e = escpos.Encoder("gb18030", 58, False)
    e.text("A\u4e2dB")
    assert bytes(e.out()) == b"A\x1c&\xd6\xd0\x1c.B"
    assert [e.safe_at(i) for i in range(e.n)] == [True, True, False, True, False, True, False, True]
    u = escpos.Encoder("utf-8", 58, False)
    u.text("\u00e9\u4e2d!")
    assert bytes(u.out()) == "\u00e9\u4e2d!".encode()
    assert [u.safe_at(i) for i in range(u.n)] == [True, False, True, False, False, True]
    assert u.cols("\u00e9\u4e2d!") == 4 and u._x == 4 * 12


def test_code128_prefixes_and_escaping() -> None:
    e = enc()
    e.code128("12ab")
    assert out(e).endswith(dummy("barcode", "{B12ab", "CODE128", function_type="B", check=False)[-10:])
    assert out(e).endswith(b"\x1dkI\x06{B12ab")
    e.clear()
    e.code128("a{b")
    assert out(e).endswith(b"\x1dkI\x06{Ba{{b")  # { escaped as {{, length counts both
    e.clear()
    e.code128("123456")
    assert out(e).endswith(b"\x1dkI\x05{C\x0c\x22\x38")  # code set C: two digits a byte
    with pytest.raises(escpos.EncodeError):
        e.code128("caf\u00e9")


def test_heat_and_density() -> None:
    e = enc()
    e.heat(64, 800, 20)
    assert out(e) == b"\x1b7\x07\x50\x02"  # (7+1)*8 dots, 80*10 us, 2*10 us (battery-and-printer.md)
    e.clear()
    e.density(-2, 5)
    assert out(e) == b"\x1d(K\x02\x001\xfe\x1d(K\x02\x002\x05"


def test_status_query_matches_python_escpos() -> None:
    assert escpos.status_query(1) == esc_const.RT_STATUS_ONLINE
    assert escpos.status_query(4) == esc_const.RT_STATUS_PAPER


def test_chinese_runs_are_wrapped_and_match_cpython() -> None:
    e = enc()
    e.text("Total \u5408\u8ba1 12")
    assert out(e) == b"Total \x1c&" + "\u5408\u8ba1".encode("gb18030") + b"\x1c. 12"


def test_substitutions() -> None:
    e = enc()
    e.text("\xa5")  # half-width yen -> full-width
    assert out(e) == b"\x1c&\xa3\xa4\x1c."
    e.clear()
    e.text("\U0001f600\U00020000")  # emoji and CJK extension B are 4-byte: replaced
    assert out(e) == b"??"


def test_gbk_printer_refuses_gb18030_only_characters() -> None:
    only_18030 = [
        cp
        for cp in range(0x80, 0x10000)
        if not 0xD800 <= cp < 0xF900 and _len_or_0(chr(cp), "gb18030") == 2 and _len_or_0(chr(cp), "gbk") != 2
    ]
    assert only_18030
    e = enc("gbk")
    e.text(chr(only_18030[0]) + "\u4e2d")
    assert out(e) == b"?\x1c&" + "\u4e2d".encode("gbk") + b"\x1c."


def _len_or_0(s: str, codec: str) -> int:
    try:
        return len(s.encode(codec))
    except UnicodeEncodeError:
        return 0


def test_utf8_and_single_byte_printers() -> None:
    e = enc("utf-8")
    e.text("\u4e2d\xe9")
    assert out(e) == "\u4e2d\xe9".encode()
    assert e.cols("\u4e2d\xe9") == 3
    e2 = enc("ascii")
    e2.text("\u4e2d\xe9a")
    assert out(e2) == b"??a"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=40))
def test_text_never_emits_control_bytes_and_round_trips(s: str) -> None:
    """Whatever an item name holds, the bytes are text: no byte < 0x20 other than the FS & / FS . we
    add, and decoding them gives the input back with only the documented substitutions."""
    e = enc()
    e.text(s)
    b = out(e)
    stripped = b.replace(b"\x1c&", b"").replace(b"\x1c.", b"")
    assert all(x >= 0x20 and x != 0x7F for x in stripped), b
    want = []
    for ch in s:
        cp = ord(ch)
        if cp < 0x20 or cp == 0x7F or 0x80 <= cp < 0xA0:
            want.append("?")
        elif cp == 0xA5:
            want.append("\uffe5")
        elif cp < 0x80 or (_len_or_0(ch, "gb18030") == 2 and not 0xE000 <= cp < 0xF900):
            want.append(ch)
        else:
            want.append("?")
    assert stripped.decode("gb18030") == "".join(want)
    assert e.cols(s) == sum(1 if ord(c) < 0x80 or w == "?" else 2 for c, w in zip(s, want, strict=True))


def test_bad_arguments_are_refused() -> None:
    e = enc()
    for bad in (lambda: e.align(3), lambda: e.size(9, 1), lambda: e.feed(300), lambda: e.underline(5)):
        with pytest.raises(escpos.EncodeError):
            bad()
    with pytest.raises(escpos.EncodeError):
        escpos.Encoder("big5", 58, False)
    small = escpos.Encoder("gb18030", 58, False, size=8)
    with pytest.raises(escpos.EncodeError):
        small.text("0123456789")
