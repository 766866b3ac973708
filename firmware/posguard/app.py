# The terminal application: wires the profile's hardware into the parts and runs them as asyncio tasks.
import asyncio

from micropython import const

from posguard import hw, profile

_WDT_TIMEOUT_MS = const(8000)  # above the 400 ms worst-case sector erase (storage.md), with room
_FEED_EVERY_S = 1.0


async def _feed(wdt):
    while True:
        wdt.feed()
        await asyncio.sleep(_FEED_EVERY_S)


async def run(prof):
    wdt = hw.watchdog(_WDT_TIMEOUT_MS)
    await _feed(wdt)


def main(path="board.json"):
    prof = profile.load(path)
    asyncio.run(run(prof))
