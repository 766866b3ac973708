"""After a power cut the firmware cannot know what the printer still holds or whether it is online.
The scene `posguard sim --cuts 3` found: paper runs out mid-receipt on the pacing printer (devkit-1s)
with its receive buffer full, the pack is pulled, the board boots again. Before the fix the boot's
printer init went into the full buffer of an offline printer (bytes dropped). Two ways the power
goes: a connector bounce (20 ms: the printer's controller rides through it and keeps its buffer) and a
pack pulled for seconds (longer than sim_printer.HOLDUP_US: the printer resets). Either way no byte is
dropped and, once paper is loaded, the interrupted sale is reprinted once as a marked copy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import machine
import pytest
from test_app import Counter, sale_script
from test_printer_faults import job

from posguard import receipt
from posguard_tools.printer_world import PrinterWorld, printed_text, standard_sale

_SID = 51


def _cut_during_paper_out(tmp_path: Path, how: str) -> tuple[Counter, dict[str, Any]]:
    c = Counter(tmp_path)
    day = c.day
    pr = day.printer
    pr.paper_mm_left = 30.0  # the roll ends halfway down the receipt
    sale_script(c, _SID, 25)  # after the 20 s rest every boot takes before it prints
    seen: dict[str, Any] = {}

    def cut() -> None:
        seen["rx_at_cut"] = pr.rx.n
        seen["paper_out"] = pr.paper_mm_left <= 0
        day._bounce() if how == "bounce" else day._pull()

    day.clock.call_at_us(int(56e6), cut)
    day.clock.call_at_us(int(150e6), pr.load_paper)
    after = c.at(290, {"op": "sale", "id": _SID})
    c.run(300)
    seen["state"] = c.replies[after]["state"]
    return c, seen


@pytest.mark.parametrize(("how", "resets"), [("bounce", 0), ("pull", 1)])
def test_boot_into_a_full_offline_printer_drops_nothing_and_reprints(tmp_path: Path, how: str, resets: int) -> None:
    c, seen = _cut_during_paper_out(tmp_path, how)
    pr = c.day.printer
    assert seen["paper_out"] and seen["rx_at_cut"] == pr.rx.cap, seen  # the scene: full buffer, no paper
    assert pr.resets == resets  # the bounce leaves the printer's buffer, the pull resets it
    assert pr.dropped == 0
    assert [r for r in c.receipts if r[2]] == [(_SID, "duplicate", True)], c.receipts
    assert seen["state"] == "CLOSED"


# -- the driver alone, on each flow mode ------------------------------------------------------------


@pytest.fixture
def make(printer_worlds: Any) -> Any:
    return printer_worlds


def _left_full_and_out(w: PrinterWorld) -> None:
    """The printer as the last boot left it: paper out, its buffer full of blank lines (a 30-row feed a
    byte: the slowest bytes a receipt sends), and the BUSY/XOFF it raised sent to a board in reset."""
    pr = w.printer
    pr.paper_mm_left = 0
    for _ in range(pr.rx.cap):
        pr.rx.put(0x0A)
    pr._drive_busy()


@pytest.mark.parametrize(("off_ms", "resets"), [(20, 0), (5000, 1)])
def test_the_printer_loses_its_buffer_only_past_its_hold_up(make: Any, off_ms: int, resets: int) -> None:
    import sim_printer

    w = make("devkit-1s")
    w.power.on = False  # the board is down anyway; only the printer's own supply matters here
    _left_full_and_out(w)
    src = w.power.source
    volts = src.volts
    w.clock.call_later_ms(100, lambda: setattr(src, "volts", 0.0))  # the pack leaves its connector
    w.clock.call_later_ms(100 + off_ms, lambda: setattr(src, "volts", volts))
    w.clock.advance_ms(off_ms + 1000)
    assert (off_ms * 1000 > sim_printer.HOLDUP_US) == bool(resets)
    assert w.printer.resets == resets
    assert w.printer.rx.n == (0 if resets else w.printer.rx.cap)


@pytest.mark.parametrize("flow", ["cts", "xon", "pacing"])
def test_a_fresh_driver_sends_nothing_to_a_full_offline_printer(make: Any, flow: str) -> None:
    w = make("pos-2s", pcfg={"flow": flow})
    _left_full_and_out(w)
    w.clock.call_later_ms(20_000, w.printer.load_paper)
    res, want, events, _ = job(w)
    assert res["result"] == "printed", res
    assert events[0][0] == "paused" and events[0][1].startswith("paper out"), events
    assert w.printer.dropped == 0
    assert printed_text(w.printer) == [""] * w.printer.rx.cap + want  # what it held, then the whole job


def test_a_printer_that_never_answers_is_a_clear_fault_not_a_hang(make: Any) -> None:
    """Pacing has no back-pressure to show a silent printer is there: after a boot nothing but status
    queries goes to it, and the job ends "offline" after pause_limit_s with the watchdog fed."""
    w = make("pos-2s", pcfg={"flow": "pacing"}, answers_status=False)  # the profile says it answers
    drv = w.driver()
    drv.pause_limit_s = 30
    ops = receipt.layout(standard_sale(), w.pcfg["columns"], drv.enc.char_cols)

    async def boot() -> dict[str, Any]:
        st = await drv.start()
        assert not st["answered"]
        res: dict[str, Any] = await drv.print_job(ops)
        return res

    async def fed() -> dict[str, Any]:
        wdt = machine.WDT(timeout=3000)  # the app's feeder: fed only while the event loop turns
        task = asyncio.create_task(boot())
        while not task.done():
            wdt.feed()
            await asyncio.sleep(1.0)
        return task.result()

    res = w.run(fed())  # a WatchdogReset would propagate out of here
    assert res["result"] == "failed" and res["reason"] == "offline", res
    assert w.printer.received == 3 * drv.link.queries  # DLE EOT n only
