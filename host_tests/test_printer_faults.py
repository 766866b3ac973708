"""Printer faults: paper out at line 7 of 30 pauses, is reported, resumes after paper is loaded and the
receipt prints exactly once; cover open, head too hot, cutter error; a silent printer is offline;
garbage on RX is tolerated; ESC/POS control bytes in item names never reach the printer as commands."""

from __future__ import annotations

import re
from typing import Any

import pytest

from posguard import receipt
from posguard_tools.printer_world import PrinterWorld, printed_text, standard_sale


@pytest.fixture
def make(printer_worlds: Any) -> Any:
    return printer_worlds


def job(w: PrinterWorld, sale: dict[str, Any] | None = None, pause_limit_s: int | None = None) -> Any:
    events: list[tuple[str, str]] = []
    drv = w.driver(on_event=lambda k, d: events.append((k, d)))
    if pause_limit_s is not None:
        drv.pause_limit_s = pause_limit_s
    ops = receipt.layout(sale or standard_sale(), w.pcfg["columns"], drv.enc.char_cols)

    async def main() -> dict[str, Any]:
        await drv.start()
        res: dict[str, Any] = await drv.print_job(ops)
        return res

    res = w.run(main())
    w.clock.advance_ms(10_000)
    want = [op[1] for op in ops if op[0] == "text"]
    return res, want, events, drv


@pytest.mark.parametrize("flow", ["cts", "xon", "pacing"])
def test_paper_out_at_line_7_of_30_pauses_and_resumes_once(make: Any, flow: str) -> None:
    w = make("pos-2s", pcfg={"flow": flow, "rx_buffer": 45}, paper_mm_left=24.0)
    w.clock.call_later_ms(20_000, lambda: w.printer.load_paper())
    res, want, events, _ = job(w)
    assert res["result"] == "printed" and res["lines"] == 30 and res["pauses"] == 1, res
    kinds = [k for k, _ in events]
    assert kinds == ["paused", "resumed"], events
    m = re.match(r"paper out at line (\d+)", events[0][1])
    assert m and 7 <= int(m.group(1)) <= 9, events
    assert printed_text(w.printer) == want  # every line exactly once, in order
    assert w.printer.dropped == 0


def test_paper_never_loaded_fails_at_the_line(make: Any) -> None:
    w = make("pos-2s", paper_mm_left=24.0)
    res, _, events, _ = job(w, pause_limit_s=30)
    assert res["result"] == "failed" and res["reason"] == "paper out", res
    assert 7 <= res["line"] <= 9
    assert events[-1][0] == "failed"


@pytest.mark.parametrize(
    ("fault", "clear", "reason"),
    [
        ("open_cover", "close_cover", "cover open"),
        ("head_hot", None, "head too hot"),
    ],
)
def test_faults_pause_and_resume(make: Any, fault: str, clear: str | None, reason: str) -> None:
    w = make("pos-2s")
    pr = w.printer

    def inject() -> None:
        if fault == "head_hot":
            pr.set_head_hot(True)
        else:
            getattr(pr, fault)()

    def fix() -> None:
        if clear is None:
            pr.set_head_hot(False)
        else:
            getattr(pr, clear)()

    w.clock.call_later_ms(600, inject)
    w.clock.call_later_ms(15_000, fix)
    res, want, events, _ = job(w)
    assert res["result"] == "printed", res
    assert events[0][0] == "paused" and events[0][1].startswith(reason), events
    assert events[-1][0] == "resumed"
    assert printed_text(w.printer) == want


def test_cutter_error_is_reported(make: Any) -> None:
    w = make("pos-2s")
    w.printer.cutter_jam = True
    w.clock.call_later_ms(20_000, w.printer.clear_cutter)
    res, _, events, drv = job(w)
    assert res["result"] == "printed" and res["pauses"] == 1, res
    assert events[0] == ("paused", "cutter error at line 30"), events
    st = w.run(drv.status())
    assert st["answered"] and not st["cutter_error"]


def test_status_reports_paper_out_and_cover(make: Any) -> None:
    w = make("pos-2s")
    drv = w.driver()
    st = w.run(drv.status())
    assert st["answered"] and st["online"] and not st["paper_out"]
    w.printer.load_paper(0)
    st = w.run(drv.status())
    assert st["paper_out"] and not st["online"]
    w.printer.load_paper(500)
    w.printer.open_cover()
    st = w.run(drv.status())
    assert st["cover_open"] and st["paper_near_end"] and not st["paper_out"]


def test_silent_printer_is_offline(make: Any) -> None:
    w = make("pos-2s", answers_status=False)
    drv = w.driver()
    st = w.run(drv.status())
    assert not st["answered"] and not st["online"]
    # It still prints: status is only needed when something is wrong
    res, want, _, _ = job(w)
    assert res["result"] == "printed" and printed_text(w.printer) == want


def test_silent_printer_out_of_paper_fails_as_offline(make: Any) -> None:
    w = make("pos-2s", answers_status=False, paper_mm_left=24.0)
    res, _, events, _ = job(w, pause_limit_s=20)
    assert res["result"] == "failed" and res["reason"] == "offline", res
    assert ("paused", f"offline at line {res['line']}") in events


@pytest.mark.parametrize("flow", ["cts", "xon", "pacing"])
def test_garbage_on_rx_is_tolerated(make: Any, flow: str) -> None:
    w = make("pos-2s", pcfg={"flow": flow})
    import random

    rng = random.Random(5)

    def noise() -> None:
        w.printer.inject_garbage(bytes(rng.randrange(256) for _ in range(8)))
        w.clock.call_later_ms(150, noise)

    w.clock.call_later_ms(100, noise)
    res, want, _, drv = job(w)
    assert res["result"] == "printed", res
    assert drv.demux.garbage > 0
    assert w.printer.dropped == 0
    assert printed_text(w.printer) == want


def test_control_bytes_in_item_names_never_reach_the_printer(make: Any) -> None:
    w = make("pos-2s")
    sale = standard_sale()
    evil = ["\x1b@reset", "\x1dV\x00cut", "\x10\x04\x01", "x\x1d!\x77big", "\x1c&\xff\xfe"]
    for it, name in zip(sale["items"], evil, strict=False):
        it["name"] = name
    replies_before = w.printer.rt_replies
    res, want, _, drv = job(w, sale)
    assert res["result"] == "printed"
    got = printed_text(w.printer)
    assert got == [as_printed(drv, t) for t in want]
    assert any("?@reset" in t for t in got) and any("?V?cut" in t for t in got)
    cuts = [r for r in w.printer.printed if r[0] == "cut"]
    assert len(cuts) == 1  # only the receipt's own cut
    texts = [r for r in w.printer.printed if r[0] == "text"]
    assert all(key[2] == 1 for r in texts for _, key in r[2] if "big" in _.decode("latin-1"))
    assert w.printer.rt_replies == replies_before + drv.link.queries  # no DLE EOT but our own


def as_printed(drv: Any, text: str) -> str:
    """What the printer shows for a line: the encoder's bytes decoded back (controls became "?")."""
    e = drv.enc
    e.clear()
    e.text(text)
    b = bytes(e.out()).replace(b"\x1c&", b"").replace(b"\x1c.", b"")
    assert all(x >= 0x20 for x in b)
    return b.decode("gb18030")


def test_printer_brownout_resets_its_modes(make: Any) -> None:
    w = make("pos-2s")
    pr = w.printer
    pr.cn = False
    pr.bold = True
    pr.brownout()
    assert pr.cn and not pr.bold and pr.resets == 1 and pr.rx.n == 0


def test_cts_without_the_busy_pin_object_is_safe(make: Any) -> None:
    """Built without the BUSY pin (busy=None), a held CTS cannot be bypassed for status: the stuck
    printer is reported offline, nothing overflows, and the job resumes once paper is back."""
    from posguard import hw, printer

    w = make("pos-2s", paper_mm_left=24.0)
    w.clock.call_later_ms(20_000, lambda: w.printer.load_paper())
    events: list[tuple[str, str]] = []
    drv = printer.Printer(hw.uart(**printer.uart_args(w.pcfg)), w.pcfg, on_event=lambda k, d: events.append((k, d)))
    ops = receipt.layout(standard_sale(), w.pcfg["columns"], drv.enc.char_cols)
    res = w.run(drv.print_job(ops))
    w.clock.advance_ms(10_000)
    assert res["result"] == "printed", res
    assert events[0][0] == "paused" and events[-1][0] == "resumed", events
    assert w.printer.dropped == 0
    assert printed_text(w.printer) == [op[1] for op in ops if op[0] == "text"]
