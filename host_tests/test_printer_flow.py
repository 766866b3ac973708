"""Flow control: the firmware's driver against a 45-byte-buffer simulated printer loses no byte with
BUSY on CTS, with XON/XOFF and with timing-only pacing, at 9600 and 115200 baud; a printer stuck busy
for 60 s never freezes the firmware (the watchdog keeps being fed)."""

from __future__ import annotations

import asyncio
from typing import Any

import machine
import pytest

from posguard import receipt
from posguard_tools.printer_world import PrinterWorld, printed_text, standard_sale


@pytest.fixture
def make(printer_worlds: Any) -> Any:
    return printer_worlds


def run_job(w: PrinterWorld, sale: dict[str, Any], **drv_kw: Any) -> tuple[dict[str, Any], list[str], Any]:
    events: list[tuple[str, str]] = []
    drv = w.driver(on_event=lambda k, d: events.append((k, d)), **drv_kw)
    ops = receipt.layout(sale, w.pcfg["columns"], drv.enc.char_cols)

    async def main() -> dict[str, Any]:
        await drv.start()
        res: dict[str, Any] = await drv.print_job(ops)
        return res

    res = w.run(main())
    w.clock.advance_ms(10_000)  # let the mechanism finish what is in its buffer
    want = [op[1] for op in ops if op[0] == "text"]
    return res, want, events


@pytest.mark.parametrize("baud", [9600, 115200])
@pytest.mark.parametrize("flow", ["cts", "xon", "pacing"])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_no_byte_is_dropped(make: Any, flow: str, baud: int, lang: str) -> None:
    w = make("pos-2s", pcfg={"flow": flow, "baud": baud, "rx_buffer": 45})
    res, want, events = run_job(w, standard_sale(13, lang))
    assert res["result"] == "printed", res
    assert res["lines"] == 30
    assert w.printer.rx.cap == 45
    assert w.printer.dropped == 0
    assert w.printer.auto_wraps == 0
    got = printed_text(w.printer)
    assert got == [t.rstrip() if False else t for t in want]
    assert not [e for e in events if e[0] == "paused"]


def test_without_flow_control_the_same_job_overflows(make: Any) -> None:
    """The check can fail: blasting the receipt without any gating drops bytes on this printer."""
    w = make("pos-2s", pcfg={"flow": "pacing", "baud": 115200, "rx_buffer": 45})
    drv = w.driver()
    drv.pacer.window = 10_000  # pacing that believes the buffer is huge = no flow control
    drv.pacer.row_min_us = 0
    drv.pacer.heat_us = 0
    ops = receipt.layout(standard_sale(), w.pcfg["columns"], drv.enc.char_cols)

    async def main() -> None:
        await drv.print_job(ops)

    w.run(main())
    w.clock.advance_ms(10_000)
    assert w.printer.dropped > 0


def test_stuck_busy_for_60_s_does_not_block_other_tasks(make: Any) -> None:
    w = make("pos-2s", pcfg={"flow": "cts", "baud": 9600})
    drv = w.driver()
    ops = receipt.layout(standard_sale(), w.pcfg["columns"], drv.enc.char_cols)
    ticks: list[int] = []
    w.clock.call_later_ms(300, lambda: w.printer.stall(60_000))

    async def main() -> dict[str, Any]:
        wdt = machine.WDT(timeout=3000)
        done = asyncio.Event()

        async def other() -> None:
            while not done.is_set():
                wdt.feed()
                ticks.append(w.clock.now_ms())
                await asyncio.sleep(1.0)

        t = asyncio.create_task(other())
        res: dict[str, Any] = await drv.print_job(ops)
        done.set()
        await t
        return res

    res = w.run(main())  # a WatchdogReset would propagate out of here
    assert res["result"] == "printed", res
    assert w.clock.now_ms() > 60_000
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert len(ticks) >= 60 and max(gaps) <= 1100
    assert w.printer.dropped == 0


def test_one_big_write_freezes_the_board(make: Any) -> None:
    """What the chunked transport avoids: a plain uart.write of the receipt into a stuck printer."""
    import sim_power

    from posguard import hw, printer

    w = make("pos-2s", pcfg={"flow": "cts", "baud": 9600})
    uart = hw.uart(**printer.uart_args(w.pcfg))
    w.printer.stall(60_000)
    machine.WDT(timeout=3000)
    with pytest.raises(sim_power.WatchdogReset):
        uart.write(b"x" * 2000)


def test_adafruit_style_pacing_is_safe_but_slow(make: Any) -> None:
    w = make("devkit-1s")
    t0 = w.clock.now_us()
    res, _, _ = run_job(w, standard_sale(), adafruit_pacing=True)
    slow = w.clock.now_us() - t0
    w2 = make("devkit-1s")
    t1 = w2.clock.now_us()
    res2, _, _ = run_job(w2, standard_sale())
    fast = w2.clock.now_us() - t1
    assert res["result"] == res2["result"] == "printed"
    assert w.printer.dropped == w2.printer.dropped == 0
    assert slow > 2 * fast


def test_pacer_deadline_does_not_go_stale_across_the_ticks_us_wrap() -> None:
    # ticks_us wraps every 2**30 us (17.9 min): a receipt's deadline read 10 minutes later looks
    # 7.9 minutes in the future to ticks_diff. The pacer must see an idle mechanism, not sleep.
    import asyncio

    import sim_clock

    from posguard import printer_link

    clock = sim_clock.reset(0)
    pcfg = {"rx_buffer": 45, "busy_free": 16, "mm_per_s": 50}
    pacer = printer_link.Pacer(pcfg, frame_us=1042)
    pacer.after(40, rows_print=24, rows_feed=0, ink_dots=200)
    clock.advance_ms(10 * 60 * 1000)
    t0 = clock.now_us()
    asyncio.run(pacer.before(40))
    asyncio.run(pacer.idle())
    assert clock.now_us() - t0 < 1000, "the pacer slept on a deadline that lapsed 10 minutes ago"
    # and a fresh deadline is still honoured
    pacer.after(40, rows_print=24, rows_feed=0, ink_dots=200)
    t1 = clock.now_us()
    asyncio.run(pacer.idle())
    assert clock.now_us() - t1 > 24 * 2000
