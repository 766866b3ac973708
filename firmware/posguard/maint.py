# Service (maintenance) mode: the terminal stopped, no watchdog, the REPL free for a technician or for
# `posguard deploy` / `journal dump --port`.
#
# Why a flag and a reset: the ESP32 port's watchdog cannot be stopped (ports/esp32/machine_wdt.c has
# no deinit and configures the task WDT with trigger_panic = true, machine_wdt.c:51-55), and it keeps
# counting through Ctrl-C and a soft reset (only the VM restarts, ports/esp32/main.c soft_reset loop).
# machine.reset() restarts the whole chip (esp_restart, modmachine.c), which stops the task WDT, and RTC
# user memory survives it (RTC_NOINIT_ATTR, machine_rtc.c:60-64). So: write a mark into RTC memory,
# reset, and let main.py see the mark before anything arms a watchdog. A power cycle clears RTC memory:
# pulling the pack always brings the terminal back.
#
# The service button is read as a long press while the terminal runs, never at reset: GPIO0 held low
# at reset is the ROM serial bootloader's entry (docs/reference/esp32-port.md), MicroPython never runs.
import time

from micropython import const

MARK = b"PGSVC"
BANNER = ("posguard: service mode, no watchdog. On the REPL: from posguard import repl as pos;"
          " back to trading: from posguard import maint; maint.leave() (or a power cycle)")
HOLD_MS = const(3000)  # a press this long, then release: an accidental touch does not stop trading


def requested():
    import machine

    try:
        return machine.RTC().memory() == MARK
    except (OSError, AttributeError):
        return False


def enter():
    """Stop trading: mark RTC memory and restart; main.py then stays at the REPL without a watchdog."""
    import machine

    machine.RTC().memory(MARK)
    machine.reset()


def leave():
    """Back to trading: clear the mark and restart (the watchdog is armed again by the terminal)."""
    import machine

    if requested():
        machine.RTC().memory(b"")
    machine.reset()


class LongPress:
    """The service button (active low) held HOLD_MS and released, seen through pin interrupts (no
    polling: soft IRQs run through micropython.schedule on the ESP32 port). The terminal looks at
    `released_long` each time it feeds the watchdog and then calls enter(): the reset comes after the
    release, because a button still holding GPIO0 low at reset would start the ROM bootloader."""

    def __init__(self, pin, hold_ms=HOLD_MS):
        self.pin = pin
        self.hold_ms = hold_ms
        self.down_at = None
        self.released_long = False
        pin.irq(handler=self._edge, trigger=pin.IRQ_FALLING | pin.IRQ_RISING)
        if pin.value() == 0:
            self.down_at = time.ticks_ms()

    def _edge(self, pin):
        now = time.ticks_ms()
        if pin.value() == 0:
            if self.down_at is None:
                self.down_at = now
            return
        if self.down_at is not None and time.ticks_diff(now, self.down_at) >= self.hold_ms:
            self.released_long = True
        self.down_at = None
