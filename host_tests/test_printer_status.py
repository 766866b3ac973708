"""The RX demultiplexer and status decoding, and a status request hidden in QR data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posguard import printer_status, receipt
from posguard_tools.printer_world import PrinterWorld, printed_text, standard_sale


class FakeUart:
    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)

    def readinto(self, buf: bytearray) -> int | None:
        k = min(len(buf), len(self.data))
        if not k:
            return None
        buf[:k] = self.data[:k]
        del self.data[:k]
        return k


def demux(data: bytes) -> printer_status.Demux:
    d = printer_status.Demux(FakeUart(data))
    d.poll()
    return d


def test_stream_is_split_by_pattern() -> None:
    d = demux(b"\x13")
    assert d.xoff
    d = demux(b"\x13\x11")
    assert not d.xoff
    d = demux(b"\x1a")  # DLE EOT reply shape 0xx1xx10: paper out answers 1A to n=1 (escpos.md)
    assert d.take_reply() == 0x1A and d.take_reply() == -1
    d = demux(b"\x18\x00\x0c\x00\x12")  # ASB: 4 bytes, then a DLE EOT reply
    assert bytes(d.asb) == b"\x18\x00\x0c\x00" and d.take_reply() == 0x12
    d = demux(b"\x0c")  # GS r: paper end
    assert d.gsr == 0x0C
    d = demux(b"\xff\x80")
    assert d.garbage == 2


def test_a_false_asb_start_does_not_swallow_xoff() -> None:
    d = demux(b"\x50\x39\x13")  # 0x50 looks like an ASB start; XOFF cannot be an ASB byte
    assert d.xoff


def test_decode_paper_out_and_cover() -> None:
    st_ = printer_status.decode(0x1A, 0x32, 0x7E)
    assert st_["answered"] and not st_["online"] and st_["paper_out"] and st_["paper_near_end"]
    assert printer_status.fault_of(st_) == "paper out"
    st_ = printer_status.decode(0x1A, 0x16, 0x12)
    assert printer_status.fault_of(st_) == "cover open"
    st_ = printer_status.decode(0x12, 0x12, 0x12)
    assert printer_status.fault_of(st_) == ""
    st_ = printer_status.decode(0x1A, 0x52, 0x12)
    assert printer_status.fault_of(st_, 0x52) == "head too hot"
    assert printer_status.fault_of(printer_status.decode(None, None, None)) == "offline"


@pytest.fixture
def world() -> Iterator[Any]:
    w = PrinterWorld("pos-2s")
    yield w
    w.close()


def test_dle_eot_inside_qr_data_is_answered_and_tolerated(world: Any) -> None:
    """A real-time command acts even inside another command's data (escpos.md): the printer answers a
    10 04 01 found in a QR payload; the driver drops the stray reply and prints the QR intact."""
    sale = standard_sale(3)
    sale["url"] = "https://r.example.com/?k=\x10\x04\x01"
    drv = world.driver()
    ops = receipt.layout(sale, 32, drv.enc.char_cols)
    before = world.printer.rt_replies
    res = world.run(drv.print_job(ops))
    world.clock.advance_ms(5000)
    assert res["result"] == "printed"
    assert world.printer.rt_replies == before + drv.link.queries + 1
    qr = [r for r in world.printer.printed if r[0] == "qr"]
    assert qr and qr[0][2] == sale["url"].encode()
    assert printed_text(world.printer) == [op[1] for op in ops if op[0] == "text"]


@settings(max_examples=12, deadline=None)
@given(
    rx_buffer=st.integers(min_value=32, max_value=256),
    busy_free=st.integers(min_value=8, max_value=20),
    baud=st.sampled_from([9600, 19200, 38400, 115200]),
    flow=st.sampled_from(["cts", "xon", "pacing"]),
)
def test_no_drops_for_any_buffer(rx_buffer: int, busy_free: int, baud: int, flow: str) -> None:
    w = PrinterWorld("pos-2s", pcfg={"flow": flow, "baud": baud, "rx_buffer": rx_buffer, "busy_free": busy_free})
    try:
        drv = w.driver()
        ops = receipt.layout(standard_sale(6, "zh"), 32, drv.enc.char_cols)
        res = w.run(drv.print_job(ops))
        w.clock.advance_ms(5000)
        assert res["result"] == "printed", res
        assert w.printer.dropped == 0
        assert printed_text(w.printer) == [op[1] for op in ops if op[0] == "text"]
    finally:
        w.close()
