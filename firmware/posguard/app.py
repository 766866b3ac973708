# The terminal application: wires the profile's hardware into the parts and runs them as asyncio
# tasks: battery monitor + power policy, printer worker, host link, journal maintenance (only when
# the policy allows), watchdog feeding. A task that crashes is logged to flash and restarted; a task
# that keeps crashing resets the board, and the journal's recovery picks every sale up again.
import asyncio
import time

import machine
import micropython
from micropython import const

from posguard import commands, crashlog, hw, maint, printer_status, printjobs, profile, validate
from posguard import pins as pinrules
from posguard.hostlink import HostLink
from posguard.printer_link import sleep_ms

# Every wait below is whole milliseconds through sleep_ms: ESP32 floats are single precision and
# asyncio.sleep(t) truncates int(t * 1000) (printer_link.sleep_ms says where).
_WDT_TIMEOUT_MS = const(8000)  # above the 400 ms worst-case sector erase (storage.md), with room
_ERASE_WORST_MS = const(400)  # datasheet worst-case 4 KiB sector erase (storage.md)
_FEED_EVERY_MS = const(2000)  # a quarter of the watchdog timeout
_MONITOR_BUSY_MS_STEP = const(1000)  # battery updates while printing or just after: sag and relaxation
_MONITOR_IDLE_MS_STEP = const(5000)  # ...and at rest, where the voltage moves slowly (saves CPU and ADC)
_MONITOR_BUSY_MS = const(60000)
_POLL_ACTIVE_MS = const(100)  # host-link poll while a sale is in progress: replies within ~100 ms
_POLL_IDLE_MS = const(400)  # ...and when the counter is quiet (one line fits the RX buffer, see rxbuf)
_ACTIVE_MS = const(5000)
_LINES_PER_WAKE = const(4)
_MAINT_EVERY_MS = const(10000)
_MAINT_SOON_MS = const(1000)
_RESTART_AFTER_MS = const(1000)  # a crashed task restarts after this
_MAINT_STEPS_BETWEEN = const(2)
_PRINTER_CHECK_ROUNDS = const(6)  # idle printer status poll once a minute (DLE EOT: no paper used)
_MAINT_STEPS = const(4)  # at most 4 x 400 ms of erase per round (storage.md worst case)
_CRASH_WINDOW_MS = const(60000)
_CRASHES_BEFORE_RESET = const(5)

LOCK_FILE = "production"  # on the board's filesystem: this terminal is locked down (docs/device.md)

current = None  # the running Terminal, for the REPL API (posguard.repl)
running = False  # True while the asyncio tasks run (the REPL then queues instead of printing itself)
# "production" (locked, trading), "service" (the documented path), "dev" (never locked). Imported in
# service mode (main.py stays at the REPL, the technician's REPL API imports this module): "service".
mode = "service" if maint.requested() else "dev"


class _NoWatchdog:
    def feed(self):
        pass


def rtc_text():
    t = machine.RTC().datetime()
    return "%04d-%02d-%02d %02d:%02d" % (t[0], t[1], t[2], t[4], t[5])


class Terminal:
    def __init__(self, prof, wrap_monitor=None):
        self.prof = prof
        self.wrap_monitor = wrap_monitor  # the simulator's naive-policy baseline wraps the monitor
        self.crash = crashlog.CrashLog()
        self.lim = validate.Limits(prof["host"])
        self.wdt = None
        self.mon = None
        self.book = None
        self.recovery = None
        self.drv = None
        self.jobs = None
        self.cmds = None
        self.link = None
        self.telemetry = None  # posguard.telemetry, when the profile has a network section
        self.started_ms = time.ticks_ms()
        self.last_host_ms = time.ticks_add(self.started_ms, -_MONITOR_BUSY_MS)

    # -- construction (each part from hw.py objects) -----------------------------------------------
    def build(self, watchdog=True):
        prof = self.prof
        pins = prof["pins"]
        # First: a hang while mounting resets the board. But a first boot formats the journal, every
        # sector erased (seconds: 400 ms each at datasheet worst case, storage.md), so the watchdog
        # starts with room for that and is tightened once the journal is up. Creating it again
        # reconfigures the one task watchdog (ports/esp32/machine_wdt.c:51-56), which also takes over
        # a watchdog left running by a soft reset. Service mode runs without one (posguard.maint).
        if watchdog:
            sectors = prof["journal"]["size_kb"] // 4
            self.wdt = hw.watchdog(sectors * _ERASE_WORST_MS + _WDT_TIMEOUT_MS)
        else:
            self.wdt = _NoWatchdog()
        self.mon = self._part("power", self._build_monitor)
        if self.mon is not None and self.wrap_monitor is not None:
            self.mon = self.wrap_monitor(self.mon)
        self.book = self._part("journal", self._build_journal)
        if watchdog:
            self.wdt = hw.watchdog(_WDT_TIMEOUT_MS)
        self.wdt.feed()
        from posguard import printer

        pcfg = prof["printer"]
        # The BUSY line read as a GPIO as well: without it a paper-out printer holding BUSY looks
        # offline (printer_link.Link), and new sales are refused as PRINTER_FAULT.
        busy = hw.pin_in(pcfg["busy"])
        self.drv = printer.Printer(hw.uart(**printer.uart_args(pcfg)), pcfg, busy=busy)
        self.jobs = printjobs.PrintJobs(self.book, self.drv, self.mon, prof)
        self.drv.on_event = self.jobs.on_printer_event
        if self.book is not None:
            self.jobs.before_job = self.between_jobs
        if self.recovery is not None:
            cut = False
            for sid in self.recovery.get("reprint", ()):
                self.jobs.add(printjobs.DUPLICATE, sid)  # "reprinted after power loss", top and bottom
                try:
                    cut = cut or self.book.state(sid) == "PRINTING"
                except Exception:  # noqa: BLE001  (a damaged record: the copy is queued all the same)
                    pass
            if cut and self.mon is not None:
                # A receipt was on the printer when the board reset: perhaps a brownout (the ESP32 reports it
                # as a power-on reset), so the battery prediction must not simply try the same again.
                self.mon.cut = True
        h = prof["host"]
        # rxbuf holds one whole request: the app sends the next line only after the reply.
        uart = hw.uart(h["uart_id"], h["baud"], tx=h["tx"], rx=h["rx"], txbuf=512, rxbuf=h["line_max"] + 64)
        self.link = HostLink(uart, h["line_max"])
        self.cmds = commands.Commands(self.book, self.jobs, self.mon, rtc_text, self._extra_status)
        if prof.get("network") is not None:
            self.telemetry = self._part("telemetry", self._build_telemetry)
        if self.mon is not None:
            self.mon.add_shutdown_hook(self._on_shutdown)
            pf = hw.pin_in(pins["power_fail"], pinrules.pull_for(prof, "power_fail"))
            if pf is not None:
                from posguard import bootcheck

                bootcheck.arm_power_fail(pf, self.mon.shutdown)

    def _part(self, name, fn):
        try:
            return fn()
        except Exception as e:  # the terminal still answers the host and the REPL, and says why
            self.crash.record(name, e)
            return None

    def _build_monitor(self):
        from posguard import powermon

        pins = self.prof["pins"]
        return powermon.PowerMonitor(
            self.prof,
            hw.adc(pins["vbat_adc"]),
            charger_pin=hw.pin_in(pins["charger_present"]),
            therm_adc=hw.adc(pins["thermistor_adc"]),
            current_adc=hw.adc(pins["current_adc"]),
            store_dir="",
        )

    def _build_journal(self):
        from posguard import journal, sales

        book = sales.SaleBook(journal.Journal(hw.journal_partition(self.prof)),
                              keep_last=self.prof["journal"]["keep_last"])
        book.maintenance_allowed = False  # until the power policy has had a look
        self.recovery = book.recover()
        return book

    def _build_telemetry(self):
        from posguard import netconfig, telemetry

        t = telemetry.start(netconfig.check(self.prof["network"]), self.cmds.status, self.book, self._trading)
        t.boot_events(self.recovery)
        return t

    def _trading(self):
        """A sale in progress: the cashier app spoke within the last seconds, or a receipt prints."""
        from posguard.telemetry import QUIET_MS

        return self.jobs.active is not None or time.ticks_diff(time.ticks_ms(), self.last_host_ms) < QUIET_MS

    def _extra_status(self):
        st = {
            "uptime_s": time.ticks_diff(time.ticks_ms(), self.started_ms) // 1000,
            "crashes": self.crash.count,
            "last_crash": self.crash.last(),
            "link": self.link.counters() if self.link is not None else None,
        }
        if hw.uncalibrated_adcs:
            # No factory ADC calibration in eFuse: read_u16 scaled, corrected only by calib.json.
            st["adc"] = "uncalibrated (read_u16) on GPIO" + ",".join(str(p) for p in hw.uncalibrated_adcs)
        held = self.jobs.held if self.jobs is not None else ()
        if held:
            st["held_receipts"] = list(held)
        if self.telemetry is not None:
            st["telemetry"] = self.telemetry.counters()
        return st

    def _on_shutdown(self, reason):
        # Nothing to seal: every committed change is already one page on flash. Stop new work.
        if self.book is not None:
            self.book.maintenance_allowed = False

    # -- tasks ------------------------------------------------------------------------------------
    async def guard(self, name, fn):
        """Run fn() forever: log a crash and restart it; reset the board if it keeps crashing."""
        crashes = 0
        while True:
            t0 = time.ticks_ms()
            try:
                await fn()
                raise RuntimeError("task ended")
            except Exception as e:
                self.crash.record(name, e)
                if time.ticks_diff(time.ticks_ms(), t0) > _CRASH_WINDOW_MS:
                    crashes = 0
                crashes += 1
                if crashes >= _CRASHES_BEFORE_RESET:
                    machine.reset()  # a clean start: the journal's recovery resumes every sale
            await sleep_ms(_RESTART_AFTER_MS)

    async def host_loop(self):
        link = self.link
        last = time.ticks_ms()
        while True:
            n = 0
            while n < _LINES_PER_WAKE:
                crc = False
                try:
                    line = link.poll()
                    if line is None:
                        break
                    body, crc = link.unwrap(line)
                    # Parsed where it lies (the start of the link's buffer): no line-sized copy per request.
                    reply = self.handle_line(link.buf, len(body))
                except validate.HostError as e:
                    reply = commands.error_reply(getattr(e, "seq", None), e)
                except Exception as e:  # noqa: BLE001 - whatever a line does, the host task answers
                    # Never the reason for a reset: log it, answer, keep reading (BaseException, e.g.
                    # a power loss in the simulator, still ends the task).
                    self.crash.record("host", e)
                    reply = commands.error_reply(None, validate.HostError(
                        "INTERNAL", "internal error (logged)", "retry; ask {\"op\":\"sale\"} for the sale's state"))
                n += 1
                await link.send(reply, crc)
            now = time.ticks_ms()
            if n:
                last = now
                self.last_host_ms = now
            busy = time.ticks_diff(now, last) < _ACTIVE_MS
            await sleep_ms(_POLL_ACTIVE_MS if busy else _POLL_IDLE_MS)

    def handle_line(self, line, n=-1):
        """One request line (its first n bytes when n >= 0) -> reply dict. Never raises: a bug answers
        INTERNAL and is logged."""
        try:
            req = validate.validate_line(line, self.lim) if n < 0 else validate.validate_line(line, self.lim, n)
        except validate.HostError as e:
            return commands.error_reply(getattr(e, "seq", None), e)
        except Exception as e:  # noqa: BLE001 - e.g. RuntimeError/MemoryError inside the parser
            self.crash.record("host:validate", e)
            return commands.error_reply(None, validate.HostError("INTERNAL", "internal error (logged)",
                                                                 "send the request again"))
        try:
            return self.cmds.handle(req)
        except Exception as e:
            self.crash.record("host:" + req["op"], e)
            return commands.error_reply(req.get("seq"), validate.HostError(
                "INTERNAL", "internal error (logged)", "retry; the sale state is unchanged or ask {\"op\":\"sale\"}"))

    async def monitor_loop(self):
        mon = self.mon
        jobs = self.jobs
        last_busy = time.ticks_ms()
        while True:
            try:
                mon.update()
            except (OSError, ValueError) as e:  # a sensor glitch: the monitor reports FAULT itself
                mon.fault = "update failed: %s" % e
            now = time.ticks_ms()
            if jobs.active is not None or jobs.pending() or time.ticks_diff(now, self.last_host_ms) < _MONITOR_BUSY_MS:
                # A sale in progress: the next receipt's voltage step (the resistance measurement) must
                # fall inside the monitor's 1 s step window, so read every second from the first request.
                last_busy = now
            busy = time.ticks_diff(now, last_busy) < _MONITOR_BUSY_MS
            await sleep_ms(_MONITOR_BUSY_MS_STEP if busy else _MONITOR_IDLE_MS_STEP)

    async def printer_loop(self):
        try:
            await self.drv.start()
        except OSError as e:
            self.jobs.problem = printer_status.OFFLINE
            self.crash.record("printer", e)
        await self.jobs.run()

    def maintain(self, steps):
        """Up to `steps` bounded journal maintenance steps (each at most one 400 ms sector erase,
        storage.md), only while the printer is idle and the power policy allows flash erases."""
        book = self.book
        mon = self.mon
        if book is None:
            return
        allowed = (mon is None or mon.maintenance_allowed) and self.jobs.active is None
        book.maintenance_allowed = allowed
        if not allowed:
            return
        try:
            book.idle()
            for _ in range(steps):
                if book.maintenance() is None:
                    self.cmds.maintenance_wanted = False
                    break
                self.wdt.feed()
        finally:
            book.maintenance_allowed = False

    def between_jobs(self):
        # A steady stream of receipts (a lunch rush) would otherwise keep maintenance waiting until the
        # journal refuses new sales: give it a step between two receipts, printer idle.
        self.maintain(_MAINT_STEPS_BETWEEN)

    async def maintenance_loop(self):
        rounds = 0
        while True:
            # A refused sale (needs_maintenance) makes the next round come sooner.
            await sleep_ms(_MAINT_SOON_MS if self.cmds.maintenance_wanted else _MAINT_EVERY_MS)
            rounds += 1
            if rounds % _PRINTER_CHECK_ROUNDS == 0:
                self.jobs.check_printer()
            self.maintain(_MAINT_STEPS)

    async def run(self):
        global current, running
        current = self
        self.build()
        running = True
        wdt = self.wdt
        if self.mon is not None:
            asyncio.create_task(self.guard("power", self.monitor_loop))
        asyncio.create_task(self.guard("printer", self.printer_loop))
        asyncio.create_task(self.guard("host", self.host_loop))
        if self.book is not None:
            asyncio.create_task(self.guard("journal", self.maintenance_loop))
        if self.telemetry is not None:
            asyncio.create_task(self.guard("telemetry", self.telemetry.run))
        service = self.service_button()
        while True:
            wdt.feed()
            if service is not None and service.released_long:
                print("posguard: service button held: restarting into service mode")
                maint.enter()
            await sleep_ms(_FEED_EVERY_MS)

    def service_button(self):
        pin = hw.pin_in(self.prof["pins"]["service"], pinrules.pull_for(self.prof, "service"))
        return maint.LongPress(pin) if pin is not None else None


async def run(prof, wrap_monitor=None):
    await Terminal(prof, wrap_monitor).run()


def lockdown(on):
    """Production: Ctrl-C on the USB REPL no longer raises KeyboardInterrupt (micropython.kbd_intr(-1);
    on ESP32 the byte then goes to stdin, ports/esp32/uart.c:115; docs/reference/micropython-runtime.md)."""
    micropython.kbd_intr(-1 if on else 3)


def locked():
    """True when the board's filesystem carries the production marker (written by pos.lock())."""
    try:
        with open(LOCK_FILE):
            return True
    except OSError:
        return False


def service_mode(prof):
    """Service mode was asked for (RTC mark set by maint.enter(): the button's long press while
    trading, deploy, journal dump): no terminal tasks and no watchdog, just the REPL. Never a button
    held at reset: GPIO0 low at reset starts the ROM bootloader, not MicroPython (posguard.maint)."""
    return maint.requested()




def main(path="board.json", wrap_monitor=None):
    global mode
    if not locked():
        mode = "dev"  # a development board: Ctrl-C stops main.py as usual
        prof = profile.load(path)
        if service_mode(prof):
            mode = "service"
            print(maint.BANNER)
            return
        asyncio.run(run(prof, wrap_monitor))
        return
    # Locked (production): Ctrl-C off (main.py turned it off first thing) and nothing ends in a REPL
    # that could read the terminal's RAM or flash, except the documented service path.
    mode = "production"
    lockdown(True)
    try:
        prof = profile.load(path)
        if service_mode(prof):
            mode = "service"
            lockdown(False)
            print(maint.BANNER)
            return
        asyncio.run(run(prof, wrap_monitor))
    except Exception as e:  # noqa: BLE001 - a bug or a bad profile: log it and start again, never a REPL
        print("posguard: stopped (%s): restarting" % e)
        crashlog.CrashLog().record("main", e)
        time.sleep_ms(5000)  # a broken profile boot-loops slowly; service mode needs a valid profile
        machine.reset()
