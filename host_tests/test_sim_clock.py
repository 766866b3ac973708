"""The virtual clock: ESP32-like wrap at 2**30 ms, ordered world events, asyncio in virtual time."""

from __future__ import annotations

import asyncio
import time as _time
from typing import Any

import pytest
import sim_clock

WRAP = 1 << 30
# The firmware's view: `time` with MicroPython's tick functions (sim_clock.install() put them there).
time: Any = _time


def test_ticks_ms_wraps_at_2_pow_30_like_an_esp32() -> None:
    clock = sim_clock.reset(WRAP - 5)
    before = time.ticks_ms()
    assert before == WRAP - 5
    clock.advance_ms(10)
    after = time.ticks_ms()
    assert after == 5, "ticks_ms must wrap to 0 at 2**30 ms"
    assert time.ticks_diff(after, before) == 10
    assert time.ticks_diff(before, after) == -10
    assert time.ticks_add(before, 10) == after


def test_ticks_us_wraps_too_and_absolute_time_does_not() -> None:
    clock = sim_clock.reset(0)
    clock.advance_us(WRAP + 7)
    assert time.ticks_us() == 7
    assert clock.now_us() == WRAP + 7


def test_naive_subtraction_across_the_wrap_is_what_ticks_diff_fixes() -> None:
    clock = sim_clock.reset(WRAP - 1)
    t0 = time.ticks_ms()
    clock.advance_ms(2)
    assert time.ticks_ms() - t0 < 0  # the bug a firmware would have
    assert time.ticks_diff(time.ticks_ms(), t0) == 2


def test_events_fire_in_time_order_and_listeners_see_every_step() -> None:
    clock = sim_clock.reset(0)
    fired: list[tuple[str, int]] = []
    steps: list[tuple[int, int]] = []
    clock.call_later_ms(30, lambda: fired.append(("b", clock.now_ms())))
    clock.call_later_ms(10, lambda: fired.append(("a", clock.now_ms())))
    handle = clock.call_later_ms(20, lambda: fired.append(("cancelled", 0)))
    clock.cancel(handle)
    clock.add_listener(lambda t0, t1: steps.append((t0, t1)))
    clock.advance_ms(50)
    assert fired == [("a", 10), ("b", 30)]
    assert steps[0][0] == 0 and steps[-1][1] == 50_000
    assert all(a[1] == b[0] for a, b in zip(steps, steps[1:], strict=False)), "steps must be contiguous"


def test_time_cannot_go_backwards() -> None:
    clock = sim_clock.reset(0)
    with pytest.raises(ValueError):
        clock.advance_us(-1)


def test_asyncio_runs_an_hour_of_sleeps_in_virtual_time() -> None:
    clock = sim_clock.reset(0)
    woke: list[int] = []

    async def sleeper(s: float) -> None:
        await asyncio.sleep(s)
        woke.append(clock.now_ms())

    async def day() -> None:
        await asyncio.gather(sleeper(3600), sleeper(0.25), sleeper(60))

    asyncio.run(day())
    assert woke == [250, 60_000, 3_600_000]


def test_an_idle_loop_with_nothing_to_wake_it_is_a_deadlock_not_a_hang() -> None:
    sim_clock.reset(0)

    async def wait_forever() -> None:
        await asyncio.Event().wait()

    with pytest.raises(sim_clock.Deadlock):
        asyncio.run(wait_forever())


def test_sleep_ms_advances_the_clock_and_fires_events() -> None:
    clock = sim_clock.reset(0)
    hit: list[int] = []
    clock.call_later_ms(5, lambda: hit.append(clock.now_ms()))
    time.sleep_ms(7)
    assert hit == [5] and clock.now_ms() == 7
