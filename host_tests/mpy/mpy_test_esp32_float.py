# Issue 13 item 11 on the unix port: the simulated `machine` gives asyncio.sleep the ESP32's single-
# precision rounding (int(float32(t) * 1000), extmod/asyncio/core.py:62-63, mpconfigport.h:69). Every
# whole-ms wait the printer link asks for must last at least that long, for every value 1-5000 ms.
import asyncio
import time

import mpy_runner


def test_asyncio_sleep_rounds_like_float32():
    import machine  # noqa: F401  (installs the float32 asyncio.sleep)

    mpy_runner.make_world("devkit-1s")
    t0 = time.ticks_ms()

    async def nap():
        await asyncio.sleep(0.251)  # float32(0.251) * 1000 = 250.99998 -> 250 ms on a board (251 in doubles)

    asyncio.run(nap())
    assert time.ticks_diff(time.ticks_ms(), t0) == 250


def test_printer_link_sleeps_are_never_short_under_float32():
    import machine  # noqa: F401

    from posguard import printer_link

    mpy_runner.make_world("devkit-1s")
    short = []

    async def main():
        for ms in range(1, 5001):
            t0 = time.ticks_ms()
            await printer_link.sleep_us(ms * 1000)
            got = time.ticks_diff(time.ticks_ms(), t0)
            if got < ms and len(short) < 50:
                short.append((ms, got))

    asyncio.run(main())
    assert not short, "sleep_us came out short for %d values, e.g. %r" % (len(short), short[:5])
