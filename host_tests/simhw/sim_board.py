# The simulated board: a registry of its hardware (pin nets, analog nets, UART peers, flash partitions,
# watchdog, RTC) and the runner that boots the firmware through boot.py and main.py, resets it on a
# power loss, watchdog or deep sleep, and boots it again with RAM gone and flash as it landed.
# MicroPython subset: the same runner works on the unix port and on CPython.
import sys

import sim_clock
import sim_power

current = None  # the board the `machine`/`esp32` stand-ins talk to

_MAX_RESETS_LOG = 64
_MAX_WAIT_S = 7 * 24 * 3600  # a dead pack waits at most a simulated week for a charger
# Module names that live in the board's RAM: dropped on every reset so the next boot imports afresh.
_FIRMWARE_MODULES = ("posguard", "boot", "main")
# UART0's console pins per chip, where the ROM prints its boot log at every reset (docs/reference/
# esp32-port.md: quickref.rst:33 for the ESP32, U0TXD/U0RXD GPIO43/44 on the ESP32-S3).
_CONSOLE_TX = {"esp32": 1, "esp32s3": 43}
_ROM_LOG = {
    "esp32": b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
    "esp32s3": b"ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n",
}


class PinNet:
    """One GPIO: what the firmware drove, what the outside world drives, and the IRQ attached to it."""

    def __init__(self, pin_id):
        self.id = pin_id
        self.world_level = None  # None: nothing outside drives the pin
        self.ext_pullup = False  # a resistor on the board (survives resets: it is hardware)
        self.reset()

    def reset(self):
        self.mode = -1
        self.pull = -1
        self.out_level = 0
        self.irq_handler = None
        self.irq_trigger = 0
        self.irq_pin = None

    def read(self):
        if self.mode == 3:  # Pin.OUT reads back its own output
            return self.out_level
        if self.world_level is not None:
            return self.world_level
        # Pin.PULL_UP (or a resistor on the board, profile pins.external_pullups) keeps a released line
        # high; a floating input reads 0 here, the harsh case for an active-low line.
        return 1 if (self.pull == 2 or self.ext_pullup) else 0

    def drive(self, level):
        before = self.read()
        self.world_level = None if level is None else (1 if level else 0)
        after = self.read()
        if self.irq_handler is None or before == after:
            return
        # Pin.IRQ_RISING = 1, Pin.IRQ_FALLING = 2
        if (after and self.irq_trigger & 1) or (not after and self.irq_trigger & 2):
            import micropython

            micropython.schedule(self.irq_handler, self.irq_pin)


class Board:
    def __init__(self, profile, fs_dir, firmware_dir, clock=None, power=None, seed=1, epoch_s=0):
        global current
        self.profile = profile
        self.fs_dir = fs_dir
        self.firmware_dir = firmware_dir
        self.clock = clock if clock is not None else sim_clock.CLOCK
        if power is None:
            power = sim_power.PowerDomain(self.clock, profile["power"]["brownout_v"])
        self.power = power
        sim_power.POWER = power
        self.seed = seed
        self.unique_id = bytes([0x24, 0x0A, 0xC4, (seed >> 16) & 255, (seed >> 8) & 255, seed & 255])
        self.cpu_hz = 160000000
        self.pins = {}
        self.analog_sources = {}  # pin id -> callable returning volts at the pin
        self.uart_peers = {}  # uart id -> far-end model (printer, host link)
        self.uarts = {}  # uart id -> the firmware's live UART object (dropped on reset)
        self.partitions = {}  # label -> sim_flash.NorFlash (kept across resets: it is flash)
        self.mcu_temp_c = 25.0
        self.wake_ext0 = None  # (pin id, level) set by esp32.wake_on_ext0
        self.rtc_memory = b""
        self.reset_cause = 1  # PWRON_RESET
        self.wake_reason = 0
        self._epoch_s = epoch_s  # world wall time at clock 0 (seconds since 2000, the ESP32 epoch)
        self._rtc_offset_s = None  # None: RTC never set since power-on, counts from 2000-01-01
        self._rtc_base_us = 0
        self._wdt_timeout_ms = 0
        self._wdt_fed_us = 0
        self.boots = 0
        self.rom_download = False  # the last reset found GPIO0 low: the ROM bootloader runs
        self.resets = []  # (world ms, cause name, detail), bounded
        self.on_boot = []  # world hooks called before each boot (e.g. to re-attach a UART peer)
        self.clock.add_listener(self._watchdog)
        current = self

    # -- hardware views -------------------------------------------------------------------------
    def pin_net(self, pin_id):
        net = self.pins.get(pin_id)
        if net is None:
            net = PinNet(pin_id)
            net.ext_pullup = pin_id in self.profile.get("pins", {}).get("external_pullups", ())
            self.pins[pin_id] = net
        return net

    def drive_pin(self, pin_id, level):
        """The outside world sets an input (charger plugged, power-fail comparator, service button)."""
        self.pin_net(pin_id).drive(level)

    def pin_level(self, pin_id):
        return self.pin_net(pin_id).read()

    def analog_v(self, pin_id):
        src = self.analog_sources.get(pin_id)
        return 0.0 if src is None else src()

    # -- watchdog ---------------------------------------------------------------------------------
    def wdt_start(self, timeout_ms):
        self._wdt_timeout_ms = timeout_ms
        self._wdt_fed_us = self.clock.now_us()

    def wdt_feed(self):
        self._wdt_fed_us = self.clock.now_us()

    def _watchdog(self, t0_us, t1_us):
        if self._wdt_timeout_ms and self.power.on:
            if t1_us - self._wdt_fed_us > self._wdt_timeout_ms * 1000:
                self._wdt_timeout_ms = 0
                raise sim_power.WatchdogReset("watchdog not fed for %d ms" % ((t1_us - self._wdt_fed_us) // 1000))

    # -- wall clock -------------------------------------------------------------------------------
    def world_seconds(self):
        return self._epoch_s + self.clock.now_us() // 1000000

    def wall_seconds(self):
        up_s = (self.clock.now_us() - self._rtc_base_us) // 1000000
        if self._rtc_offset_s is None:
            return up_s  # the ESP32 RTC restarts at 2000-01-01 after a power loss
        return self._rtc_offset_s + up_s

    def set_wall_seconds(self, secs):
        self._rtc_base_us = self.clock.now_us()
        self._rtc_offset_s = secs

    # -- reset and boot ---------------------------------------------------------------------------
    def _drop_ram(self, power_lost, keep_wdt=False):
        mods = sys.modules
        for name in list(mods.keys()):
            for prefix in _FIRMWARE_MODULES:
                if name == prefix or name.startswith(prefix + "."):
                    del mods[name]
                    break
        for net in self.pins.values():
            net.reset()
        self.uarts = {}
        if not keep_wdt:
            self._wdt_timeout_ms = 0
        import micropython

        clear = getattr(micropython, "_clear", None)
        if clear is not None:
            clear()
        if power_lost:
            self.rtc_memory = b""
            self._rtc_offset_s = None
            self._rtc_base_us = self.clock.now_us()
        for name in list(self.power.loads.keys()):
            self.power.loads[name] = 0.0

    def _note_reset(self, name, detail):
        if len(self.resets) >= _MAX_RESETS_LOG:
            self.resets.pop(0)
        self.resets.append((self.clock.now_ms(), name, detail))

    def power_up(self):
        """A boot starts: counted, the world's hooks run (a UART peer re-attached...), the rail is on."""
        self.boots += 1
        for hook in self.on_boot:
            hook(self)
        self.power.on = True

    def boot_once(self):
        """Run boot.py then main.py until they return or the board resets. Returns the reset, or None."""
        import os

        # The last boot's event loop (its tasks hold the whole terminal) is RAM the reset wiped: gone
        # before the on_boot hooks run, so a hook that measures the heap (sim_heap.repin) sees none of it.
        _reset_event_loop()
        self.power_up()
        # GPIO0 is a strapping pin: low at reset starts the ROM serial bootloader, not MicroPython
        # (docs/reference/esp32-port.md). Nothing of the firmware runs, no watchdog.
        self.rom_download = self.pin_net(0).world_level == 0
        if self.rom_download:
            return None
        self._rom_log()
        cwd = os.getcwd()
        os.chdir(self.fs_dir)
        try:
            # Inside the try: a pack too weak to carry even the idle load browns out here, and the
            # runner waits for it to recover like any other brownout.
            self.power.set_load("board", self.profile["power"]["idle_a"])
            run_files((self.firmware_dir + "/boot.py", self.firmware_dir + "/main.py"))
            return None
        except KeyboardInterrupt:  # Ctrl-C: MicroPython prints the traceback and stops at the REPL
            return None
        except sim_power.BoardReset as e:
            return e
        finally:
            os.chdir(cwd)

    def _rom_log(self):
        """A peer wired to the chip's console TX pin hears the ROM boot log (a host link there would
        hand it to the cashier app)."""
        mcu = self.profile.get("mcu", "esp32")
        host = self.profile.get("host", {})
        if host.get("tx") == _CONSOLE_TX.get(mcu):
            peer = self.uart_peers.get(host.get("uart_id"))
            if peer is not None:
                peer.receive(_ROM_LOG.get(mcu, b""), self.clock.now_us())

    def watchdog_running(self):
        return self._wdt_timeout_ms > 0

    def idle_at_repl(self, ms):
        """The board sits at the REPL for ms (nothing fed). A watchdog armed before keeps counting
        (machine_wdt.c: no deinit) and resets the board: returns that WatchdogReset, or None."""
        self.power.on = True
        end = self.clock.now_us() + int(ms) * 1000
        try:
            while self.clock.now_us() < end:  # 10 ms steps: the reset lands when the timeout runs out
                self.clock.advance_us(min(10000, end - self.clock.now_us()))
        except sim_power.WatchdogReset as e:
            return e
        return None

    def run(self, until_ms, max_boots=100000):
        """Run the board until world time until_ms. Returns a short summary dict."""
        end = self.clock.call_at_us(int(until_ms) * 1000, _end_of_simulation)
        outcome = "time up"
        try:
            while self.boots < max_boots:
                r = self.boot_once()
                if r is None and self.watchdog_running():
                    # Back at the REPL with the watchdog still counting: it fires within its timeout.
                    r = self.idle_at_repl(self._wdt_timeout_ms + 1000)
                if r is None:
                    outcome = "firmware returned to the REPL"
                    if self.rom_download:
                        outcome = "ROM download mode (GPIO0 held low at reset)"
                    break
                if isinstance(r, sim_power.SimulationEnd):
                    break
                if not self._after_reset(r):
                    outcome = "pack dead: never recovered"
                    break
            else:
                outcome = "boot limit reached"
        except sim_power.SimulationEnd:
            pass
        finally:
            self.clock.cancel(end)
            self.power.on = False
        return {"outcome": outcome, "boots": self.boots, "resets": list(self.resets)}

    def _after_reset(self, r):
        name = r.__class__.__name__
        detail = r.args[0] if r.args else ""
        self._note_reset(name, detail)
        self.reset_cause = r.cause
        self.power.on = False
        if isinstance(r, sim_power.PowerLoss):
            self._drop_ram(True)
            return self._wait_until(self.power.can_start, 0)
        self._drop_ram(False, getattr(r, "keeps_watchdog", False))
        if isinstance(r, sim_power.DeepSleep):
            return self._deep_sleep(r.ms)
        return True

    def _deep_sleep(self, ms):
        self.power.set_load("board", self.profile["power"]["sleep_a"])
        deadline = None if ms is None or ms < 0 else self.clock.now_us() + ms * 1000

        def woken():
            w = self.wake_ext0
            if w is not None and self.pin_level(w[0]) == w[1]:
                self.wake_reason = 2  # machine.EXT0_WAKE
                return True
            if deadline is not None and self.clock.now_us() >= deadline:
                self.wake_reason = 4  # machine.TIMER_WAKE
                return True
            return False

        ok = self._wait_until(woken, deadline)
        return ok and self._wait_until(self.power.can_start, 0)

    def _wait_until(self, cond, deadline_us):
        # One-second steps: the wake pin and the rail are looked at as often as an RTC-timer wake.
        for _ in range(_MAX_WAIT_S):
            if cond():
                return True
            step = 1000000
            if deadline_us:
                step = max(1, min(step, deadline_us - self.clock.now_us()))
            self.clock.advance_us(step)
        return False


def run_files(paths):
    """Run startup scripts as the port runs boot.py and main.py: each as __main__, in order."""
    for path in paths:
        with open(path) as f:
            src = f.read()
        exec(compile(src, path, "exec"), {"__name__": "__main__", "__file__": path})


def _end_of_simulation():
    raise sim_power.SimulationEnd("end of simulated time")


def _reset_event_loop():
    # A reset wipes the event loop with the rest of RAM. MicroPython's asyncio keeps a module-level
    # task queue; new_event_loop() empties it. It also keeps the task that ran when the reset hit
    # (cur_task), the run's main task (_stop_task) and the last unhandled task error (_exc_context):
    # each holds a coroutine and through it the old boot's whole terminal, so they go too.
    # CPython gets a fresh loop per asyncio.run().
    if sys.implementation.name == "micropython":
        import asyncio
        import asyncio.core as core

        asyncio.new_event_loop()
        core.cur_task = None
        core._stop_task = None
        ctx = core._exc_context
        ctx["exception"] = None
        ctx["future"] = None
        import sim_clock as c

        c.install()
