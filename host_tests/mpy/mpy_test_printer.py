# The printer driver on the real MicroPython VM (unix port, ESP32-sized heap): GB table lookups,
# encoder bytes, receipt layout, and whole jobs against the simulated printer on the simulated UART.
import asyncio

import mpy_runner

SALE = {
    "id": "S-9",
    "time": "2026-11-24 21:58",
    "lang": "zh",
    "currency": "CNY",
    "header": ["Posguard \u5496\u5561"],
    "items": [
        {"name": "\u62ff\u94c1 Latte", "qty": 2, "unit": 1500, "amount": 3000},
        {"name": "Bagel \x1b@", "qty": 1, "unit": 350, "amount": 350},
    ],
    "total": 3350,
    "payment": "card",
    "card_last4": "4242",
    "url": "https://r.example.com/S-9",
}


def _job(profile, **over):
    import sim_printer

    from posguard import hw, printer, receipt

    w = mpy_runner.make_world(profile)
    pr = sim_printer.attach(w.board, **over)
    p = w.profile["printer"]
    busy = hw.pin_in(p["busy"]) if p["flow"] == "cts" else None
    drv = printer.Printer(hw.uart(**printer.uart_args(p)), p, busy=busy)
    ops = receipt.layout(SALE, p["columns"], drv.enc.char_cols)

    async def main():
        await drv.start()
        return await drv.print_job(ops)

    res = asyncio.run(main())
    w.clock.advance_ms(5000)
    return res, pr


def test_paper_out_pauses_and_resumes():
    import sim_printer

    from posguard import hw, printer, receipt

    w = mpy_runner.make_world("pos-2s")
    pr = sim_printer.attach(w.board, paper_mm_left=15.0)
    w.clock.call_later_ms(15000, pr.load_paper)
    p = w.profile["printer"]
    events = []
    drv = printer.Printer(
        hw.uart(**printer.uart_args(p)), p, on_event=lambda k, d: events.append(k), busy=hw.pin_in(p["busy"])
    )
    ops = receipt.layout(SALE, p["columns"], drv.enc.char_cols)
    res = asyncio.run(drv.print_job(ops))
    assert res["result"] == "printed" and res["pauses"] == 1, res
    assert events == ["paused", "resumed"], events
    assert pr.dropped == 0


def test_stuck_printer_keeps_the_watchdog_fed():
    import machine
    import sim_printer

    from posguard import hw, printer, receipt

    w = mpy_runner.make_world("pos-2s")
    pr = sim_printer.attach(w.board)
    w.clock.call_later_ms(200, lambda: pr.stall(30000))
    p = w.profile["printer"]
    drv = printer.Printer(hw.uart(**printer.uart_args(p)), p, busy=hw.pin_in(p["busy"]))
    ops = receipt.layout(SALE, p["columns"], drv.enc.char_cols)
    fed = []

    async def main():
        wdt = machine.WDT(timeout=3000)
        done = asyncio.Event()

        async def feeder():
            while not done.is_set():
                wdt.feed()
                fed.append(1)
                await asyncio.sleep(1.0)

        t = asyncio.create_task(feeder())
        r = await drv.print_job(ops)
        done.set()
        await t
        return r

    res = asyncio.run(main())  # a WatchdogReset would escape from here
    assert res["result"] == "printed", res
    assert len(fed) >= 30 and pr.dropped == 0


def test_gb_table_lookups():
    from posguard import gb

    t = gb.table()
    assert t.code(0x4E2D) == 0xD6D0  # 中
    assert t.code(0xFFE5) == 0xA3A4  # full-width yen
    assert t.code(0xA5) == 0  # half-width yen is 4-byte GB18030
    assert t.code(0x1F600) == 0


def test_encoder_wraps_chinese_runs():
    from posguard import escpos

    e = escpos.Encoder("gb18030", 58, False)
    e.text("A\u4e2d\xa5\x1b")
    assert bytes(e.out()) == b"A\x1c&\xd6\xd0\xa3\xa4\x1c.?"


def _text_alloc(e, line):
    # Heap bytes one e.text(line) leaves allocated, with the collector off so garbage counts too. A
    # warm-up call first: the first sight of a character interns it as a qstr (py/objstrunicode.c
    # str_it_iternext), once per character, not per receipt.
    import gc

    e.clear()
    e.text(line)
    if not hasattr(gc, "mem_alloc"):
        return 0  # CPython (this file collected as a module there): nothing to measure
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        e.clear()
        e.text(line)
        return gc.mem_alloc() - before
    finally:
        gc.enable()


def test_encoding_text_allocates_nothing_per_character():
    # escpos.Encoder.text() is the printer's hot path: hundreds of characters a receipt. Only a fixed
    # amount per call (the string's iterator) may be allocated, however long the line: no tuple per
    # character (the old put(*bs)), no struct tuples per GB lookup (gb.GBTable.code).
    from posguard import escpos

    line = "拿铁 Latte x2 ￥ 3000 美式咖啡 Americano, ¥ é 가 {}"
    for encoding in ("gb18030", "gbk", "utf-8", "ascii"):
        e = escpos.Encoder(encoding, 80, False, size=4096)
        one = _text_alloc(e, line)
        eight = _text_alloc(e, line * 8)
        assert one <= 32 and eight <= one, (encoding, one, eight)


def test_job_with_busy_flow_control():
    res, pr = _job("pos-2s")
    assert res["result"] == "printed", res
    assert pr.dropped == 0
    assert pr.auto_wraps == 0
    texts = [r for r in pr.printed if r[0] == "text"]
    assert len(texts) >= 10


def test_job_with_pacing():
    res, pr = _job("devkit-1s")
    assert res["result"] == "printed", res
    assert pr.dropped == 0
    assert any(r[0] == "qr" and r[2] == b"https://r.example.com/S-9" for r in pr.printed)


if __name__ == "__main__":
    mpy_runner.main(globals())
