# CPython only: an asyncio event loop whose clock is the simulated world's clock.
# The firmware calls asyncio.run(); under CPython that builds a loop through the policy installed here.
# When the loop would block, virtual time jumps to the next deadline instead (no real sleeping).
from __future__ import annotations

import asyncio
import math
import selectors
from typing import Any

import sim_clock


class _VirtualSelector(selectors.SelectSelector):
    def select(self, timeout: float | None = None) -> list:  # type: ignore[override]
        sim_clock.run_scheduled()
        if timeout is None:
            sim_clock.idle_wait_us(-1)
        elif timeout > 0:
            # Round up: a truncated 0.99 us would leave the timer never due and the loop spinning.
            sim_clock.idle_wait_us(max(1, math.ceil(timeout * 1_000_000 - 1e-6)))
        sim_clock.run_scheduled()
        if len(self.get_map()) <= 1:
            # Only the loop's own self-pipe is registered (the firmware's sockets are blocking ones with
            # timeouts, never registered here) and nothing writes to it in the simulation: skip the
            # select() system call the loop would make on every turn (a measured hot spot of long days).
            return []
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__(_VirtualSelector())

    def time(self) -> float:
        return sim_clock.CLOCK.now_us() / 1_000_000

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        # A board reset (power loss, deep sleep, watchdog) ends the task it hit; the board runner
        # reports it. CPython would also log it as "never retrieved" when the dead task is collected.
        import sim_power

        if isinstance(context.get("exception"), sim_power.BoardReset):
            return
        super().call_exception_handler(context)


class _Policy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return VirtualTimeLoop()


_real_run = asyncio.run


def _run(main: Any, debug: bool | None = None) -> Any:
    """asyncio.run for a board that can lose power between any two instructions.

    CPython's own run() cancels and resumes every task on the way out; after a power loss or reset
    no firmware code may run again (its RAM is gone), so the loop is closed with its tasks dropped.
    """
    loop = VirtualTimeLoop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        for task in asyncio.all_tasks(loop):
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        asyncio.set_event_loop(None)
        loop.close()


def install() -> None:
    import time

    for name in ("ticks_ms", "ticks_us", "ticks_cpu", "ticks_add", "ticks_diff", "sleep_ms", "sleep_us"):
        setattr(time, name, getattr(sim_clock, name))
    asyncio.set_event_loop_policy(_Policy())
    asyncio.run = _run


def uninstall() -> None:
    asyncio.set_event_loop_policy(None)
    asyncio.run = _real_run
