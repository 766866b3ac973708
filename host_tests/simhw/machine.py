# Simulated `machine` module (MicroPython subset; never deployed). Every class is a thin view onto the
# current simulated board (sim_board.current), so the firmware constructs them exactly as on an ESP32.
# Signatures follow MicroPython's documentation for the esp32 port; host_tests/test_sim_api.py lists them.
import sim_board
import sim_clock
import sim_power
from sim_adc import ADC  # noqa: F401  (re-exported: machine.ADC)
from sim_uart import UART  # noqa: F401  (re-exported: machine.UART)

# machine.reset_cause() values of the esp32 port (ports/esp32/modmachine.c)
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
# machine.wake_reason() values of the esp32 port
PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4

_DEEPSLEEP_FOREVER = -1
# Pads without an internal pull resistor: docs/esp32/quickref.rst "Pins 34-39 are input only, and also do
# not have internal pull-up resistors"; machine_pin.c:237-250 sets the pull bit anyway and reports nothing,
# so the line floats. (ESP32-S3: every GPIO has both pulls.)
_NO_PULL = {"esp32": (34, 35, 36, 37, 38, 39)}


def _board():
    b = sim_board.current
    if b is None:
        raise OSError("no simulated board is powered (sim_board.current is None)")
    return b


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        self._id = id
        self._net = _board().pin_net(id)
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        net = self._net
        if mode != -1:
            if mode != Pin.IN and self._id in _NO_PULL.get(_board().profile.get("mcu", "esp32"), ()):
                raise ValueError("pin can only be input")  # machine_pin.c:228-232 (GPIO34-39)
            net.mode = mode
        if pull != -1:
            prof = _board().profile
            if pull is not None and self._id in _NO_PULL.get(prof.get("mcu", "esp32"), ()):
                pull = None  # asked for, silently absent: the input floats (reads 0 here)
            net.pull = pull
        if value is not None:
            net.out_level = 1 if value else 0

    def value(self, x=None):
        net = self._net
        if x is None:
            return net.read()
        net.out_level = 1 if x else 0
        return None

    __call__ = value

    def on(self):
        self._net.out_level = 1

    def off(self):
        self._net.out_level = 0

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
        # Handlers are deferred through micropython.schedule like a soft IRQ on the ESP32.
        self._net.irq_handler = handler
        self._net.irq_trigger = trigger
        self._net.irq_pin = self
        return None

    def __repr__(self):
        return "Pin(%s)" % self._id


class Signal:
    def __init__(self, pin, invert=False):
        self._pin = pin
        self._invert = invert

    def value(self, x=None):
        if x is None:
            return self._pin.value() ^ self._invert
        self._pin.value((1 if x else 0) ^ self._invert)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class WDT:
    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("timeout too short")
        _board().wdt_start(timeout)

    def feed(self):
        _board().wdt_feed()


class RTC:
    def __init__(self, id=0):
        self._b = _board()

    def datetime(self, dt=None):
        import sim_rtc

        if dt is None:
            return sim_rtc.to_rtc_tuple(self._seconds())
        self._b.set_wall_seconds(sim_rtc.from_rtc_tuple(dt))
        return None

    def init(self, dt):
        self.datetime(dt)

    def memory(self, data=None):
        # Survives soft reset, deep sleep and WDT reset, not power loss (storage.md). 2 KiB on ESP32.
        if data is None:
            return bytes(self._b.rtc_memory)
        if len(data) > 2048:
            raise ValueError("buffer too long")
        self._b.rtc_memory = bytes(data)
        return None

    def _seconds(self):
        return self._b.wall_seconds()


def reset_cause():
    # After a brownout this reads PWRON_RESET, as on the chip: the esp32 port maps ESP_RST_BROWNOUT to
    # MP_PWRON_RESET (ports/esp32/modmachine.c:237-240); sim_power.PowerLoss.cause sets it.
    return _board().reset_cause


def wake_reason():
    return _board().wake_reason


class ChipReset(sim_power.SoftReset):
    """machine.reset() is esp_restart(): the whole chip restarts (the task watchdog stops, RTC user
    memory stays) and machine.reset_cause() then reads HARD_RESET (ports/esp32/modmachine.c:250-253:
    ESP_RST_SW -> MP_HARD_RESET)."""

    cause = HARD_RESET


def reset():
    raise ChipReset("machine.reset()")


class SoftReboot(sim_power.SoftReset):
    """A MicroPython soft reset (machine.soft_reset(), Ctrl-D at the REPL): only the VM restarts
    (ports/esp32/main.c `soft_reset:` loop), the task watchdog keeps counting (machine_wdt.c has no
    deinit). machine.reset() is esp_restart(): the chip restarts and the watchdog with it."""

    keeps_watchdog = True


def soft_reset():
    raise SoftReboot("machine.soft_reset()")


def deepsleep(time_ms=_DEEPSLEEP_FOREVER):
    raise sim_power.DeepSleep(time_ms)


def lightsleep(time_ms=_DEEPSLEEP_FOREVER):
    if time_ms < 0:
        raise ValueError("lightsleep forever is not simulated")
    sim_clock.sleep_ms(time_ms)


def idle():
    # Wait for the next interrupt: in the simulation, the next world event or 1 ms.
    sim_clock.CLOCK.advance_to_next_event(1000)


def unique_id():
    return _board().unique_id


def freq(hz=None):
    b = _board()
    if hz is None:
        return b.cpu_hz
    b.cpu_hz = hz
    return None


def disable_irq():
    return 0


def enable_irq(state=0):
    return None


def bootloader():
    raise NotImplementedError("no bootloader on a simulated board")


def _float32_asyncio():
    """The ESP32 port computes in single precision (ports/esp32/mpconfigport.h:69) and asyncio.sleep(t)
    is sleep_ms(int(t * 1000)) (extmod/asyncio/core.py:62-63). The unix port uses doubles: give its
    asyncio.sleep the board's rounding, so a float sleep that comes out 1 ms short on a board does
    here too."""
    import sys

    if sys.implementation.name != "micropython":
        return
    import asyncio
    import struct

    if getattr(asyncio, "_sim_float32", False):
        return

    def f32(x):
        return struct.unpack("<f", struct.pack("<f", x))[0]

    def sleep(t):
        return asyncio.sleep_ms(int(f32(f32(t) * 1000.0)))

    asyncio.sleep = sleep
    asyncio._sim_float32 = True


_float32_asyncio()
