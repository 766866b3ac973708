# Startup of the virtual board's VM (MicroPython subset; never deployed).
#
# tools/posguard_tools/vboard.py runs `micropython -i -c "import sim_vboard_boot"` with the board's
# filesystem directory as working directory; this module then does what an ESP32 does after a reset
# and the REPL follows (-i), exactly as on a board when main.py returns or is interrupted (Ctrl-C).
#
# - No board.json in the filesystem: nothing to simulate, straight to the REPL (a blank board).
# - Otherwise: build the simulated world from board.json (clock, power, battery pack, thermal printer,
#   host-link peer, the journal flash partition as `posguard provision` leaves it), pin the heap to a
#   board's budget (sim_heap), pace virtual time to real time (times the speed), and run boot.py and
#   main.py from the filesystem (boot.py only after a soft reset in the raw REPL, as MicroPython does).
# - A hard reset (power loss, watchdog, deep sleep, reset button) ends this VM: the world waits here for
#   power or the wake-up, everything that survives is saved, and the bridge starts a fresh VM.
# - What survives a VM: flash images in POSGUARD_VBOARD_RUN/flash-<label>.bin (saved within a second of
#   a write, after every reset and at exit) and the world outside the chip in world.json (clock, RTC,
#   pack, printer paper/cover, service button, boot count, reset cause, speed).
# - Control commands arrive as lines "ID VERB ARGS" on POSGUARD_VBOARD_RUN/control.fifo; replies go to
#   reply.fifo as "ID ok|error TEXT". They are read whenever virtual time advances, so a "power off"
#   lands at the virtual moment it was sent, inside whatever the firmware was doing.
# - The host link: the profile's host UART has a peer (HostLinkPeer) whose bytes cross to the bridge's
#   host pseudo-terminal through hostin.fifo / hostout.fifo.
#
# From the REPL: `import sim_vboard_boot as v` then v.board, v.world, v.status(), v.command("temp 5").
import os
import sys

import sim_clock
import sim_power
import sim_world

MODE = os.getenv("POSGUARD_VBOARD_BOOT") or "full"
RUN_DIR = os.getenv("POSGUARD_VBOARD_RUN")
SPEED = float(os.getenv("POSGUARD_VBOARD_SPEED") or "1")
# The watchdog as the bridge hands it over across a soft reset: "TIMEOUT_MS LEFT_MS" (virtual ms). The
# port's machine.WDT has no deinit and a soft reset does not stop the task watchdog
# (ports/esp32/machine_wdt.c:51-62: esp_task_wdt_reconfigure with trigger_panic), so it keeps running.
WDT_HANDOVER = os.getenv("POSGUARD_VBOARD_WDT") or ""
# The service button as last set through the control channel (hold | release), which the bridge may
# have applied while no world was running (the board sat at the REPL).
SERVICE = os.getenv("POSGUARD_VBOARD_SERVICE") or ""

_CHUNK_MS = 50  # longest real sleep between looks at the control FIFO
_MAX_LINE = 512

board = None
world = None


class HardReset(sim_power.BoardReset):
    """The reset button (EN pin): RAM gone, RTC memory and flash kept."""

    cause = 2  # machine.HARD_RESET


class World(sim_world.World):
    """What the control channel acts on: the world of sim_world on the board's filesystem. The printer is
    None when its model cannot read the profile (printer_note says why)."""

    def __init__(self, profile, state=None):
        state = state or {}
        # A soft reset starts a new VM, but the world outside the chip goes on: time, the RTC, the
        # pack, the printer and the buttons come back from RUN/world.json (save_world()).
        cwd = os.getcwd()
        sim_world.World.__init__(self, profile, cwd, cwd, clock_ms=state.get("clock_ms", 0))
        _journal_flash(self)
        # `power off` pulls the pack: frozen while off (rests=False), as this world has always had it.
        import sim_battery

        self.add_pack(sim_battery.Battery(cells=profile["battery"]["cells_series"]), rests=False)
        self.switch = self.conn
        self.printer_note = self._attach_printer()
        self.add_host(HostLinkPeer)
        self.service_held = False
        self._restore(state)
        # Why this VM started (the bridge says): its first boot's machine.reset_cause().
        why = os.getenv("POSGUARD_VBOARD_RESET") or "start"
        if why == "soft":
            self.board.reset_cause = 5  # machine.SOFT_RESET
            self._restore_watchdog(state)
        elif why == "resume":
            self._restore_watchdog(state)  # a Ctrl-C before the REPL: no reset at all on a board
        elif why == "start":
            self.board.reset_cause = 1  # machine.PWRON_RESET
            # The pack was off (or this is the first start): RTC memory and the RTC's time are gone.
            self.board.rtc_memory = b""
            self.board._rtc_offset_s = None
        elif why == "hard":
            self.board.reset_cause = 2  # machine.HARD_RESET: the reset button or machine.reset()
        elif why == "wdt":
            self.board.reset_cause = 3  # machine.WDT_RESET: the bridge saw it expire at the REPL

    def _restore_watchdog(self, state):
        # What the bridge counted at the REPL, else what the VM before saved (same virtual clock).
        b = self.board
        parts = WDT_HANDOVER.split()
        if len(parts) == 2:
            timeout_ms, left_ms = int(parts[0]), int(parts[1])
            b._wdt_timeout_ms = timeout_ms
            b._wdt_fed_us = self.clock.now_us() - (timeout_ms - left_ms) * 1000
        elif state.get("wdt"):
            b._wdt_timeout_ms, b._wdt_fed_us = state["wdt"]

    def watchdog_left_ms(self):
        """(timeout, virtual ms before it fires) of a running watchdog, or None."""
        b = self.board
        if not b._wdt_timeout_ms:
            return None
        left = b._wdt_timeout_ms - (self.clock.now_us() - b._wdt_fed_us) // 1000
        return b._wdt_timeout_ms, max(0, left)

    def _restore(self, st):
        b = self.board
        self.switch.connected = st.get("pack_connected", True)
        b.boots = st.get("boots", 0)
        b.reset_cause = st.get("reset_cause", 1)
        b.wake_reason = st.get("wake_reason", 0)
        if "rtc_offset_s" in st:
            b._rtc_offset_s = st["rtc_offset_s"]
            b._rtc_base_us = st["rtc_base_us"]
        if "rtc_memory" in st:
            b.rtc_memory = bytes(st["rtc_memory"])  # RTC memory survives a soft reset (storage.md)
        if self.battery is not None and "soc" in st:
            self.battery.set_soc(st["soc"])
            self.battery.fade = st["fade"]
            self.battery.r_growth = st["r_growth"]
            self.battery.temp_c = st["temp_c"]
        b.mcu_temp_c = st.get("mcu_temp_c", b.mcu_temp_c)
        if self.printer is not None and "paper_mm" in st:
            self.printer.load_paper(st["paper_mm"])
            if st["cover_open"]:
                self.printer.open_cover()
        held = st.get("service_held")
        if SERVICE in ("hold", "release"):
            held = SERVICE == "hold"  # set through the bridge while no world ran
        if held and self.profile["pins"]["service"] is not None:
            self.service_held = True
            b.drive_pin(self.profile["pins"]["service"], 0)

    def state(self):
        b = self.board
        st = {
            "clock_ms": self.clock.now_ms(),
            "rtc_offset_s": b._rtc_offset_s,
            "rtc_base_us": b._rtc_base_us,
            "rtc_memory": list(b.rtc_memory),
            "mcu_temp_c": b.mcu_temp_c,
            "service_held": self.service_held,
            "pack_connected": self.switch.connected,
            "boots": b.boots,
            "reset_cause": b.reset_cause,
            "wake_reason": b.wake_reason,
            "wdt": [b._wdt_timeout_ms, b._wdt_fed_us] if b._wdt_timeout_ms else None,
        }
        if pacer is not None:
            st["speed"] = pacer.speed
        if self.battery is not None:
            bat = self.battery
            st.update({"soc": bat.soc(), "fade": bat.fade, "r_growth": bat.r_growth, "temp_c": bat.temp_c})
        if self.printer is not None:
            st.update({"paper_mm": self.printer.paper_mm_left, "cover_open": self.printer.cover_open})
        return st

    def _attach_printer(self):
        try:
            self.add_printer()
            return "model"
        except (KeyError, ValueError) as e:  # a profile the printer model cannot read yet
            return "none (%s: %s)" % (type(e).__name__, e)


def _journal_flash(w):
    """The journal partition as `posguard provision` leaves it, with the image of the last run."""
    f = w.add_journal()
    data = _read_image(w.profile["journal"]["label"])
    if data is not None:
        if len(data) == f.size:
            f.load_image(data)
        else:
            print("vboard: flash image is %d bytes, the profile's journal %d: starting erased" % (len(data), f.size))
    _track_writes(f)
    return f


_dirty = [False]
_SAVE_EVERY_MS = 1000  # a dirty flash image reaches RUN_DIR within a second of real time


def _track_writes(f):
    # Mark the image dirty on every program/erase, so the pacer saves it soon after (the VM can be
    # killed any time: a SIGTERM from the bridge runs no atexit).
    program, erase = f.program, f.erase_sector

    def tracked_program(addr, data):
        _dirty[0] = True
        return program(addr, data)

    def tracked_erase(s):
        _dirty[0] = True
        return erase(s)

    f.program = tracked_program
    f.erase_sector = tracked_erase


def _image_path(label):
    return RUN_DIR + "/flash-" + label + ".bin" if RUN_DIR else None


def _read_image(label):
    p = _image_path(label)
    if p is None:
        return None
    try:
        with open(p, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _world_path():
    return RUN_DIR + "/world.json" if RUN_DIR else None


def load_world_state():
    p = _world_path()
    if p is None:
        return None
    try:
        import json

        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save_world():
    """What outlives this VM process: the flash images and the world outside the chip."""
    save_flash()
    save_world_state()
    save_paper()


_paper_last = [None]  # the newest printer record already appended to RUN/paper.txt


def save_paper():
    """Append what the printer printed since the last call to RUN/paper.txt, one repr() per line. The
    paper is outside the chip: it outlives every VM (`posguard vboard paper` draws it). Returns the
    number of records appended."""
    p = world.printer if world is not None else None
    if p is None or RUN_DIR is None:
        return 0
    recs = p.printed
    i = len(recs)
    while i > 0 and recs[i - 1] is not _paper_last[0]:
        i -= 1
    n = len(recs) - i
    if n:
        with open(RUN_DIR + "/paper.txt", "a") as f:
            for k in range(i, len(recs)):
                f.write(repr(recs[k]))
                f.write("\n")
        _paper_last[0] = recs[-1]
    return n


def save_world_state():
    p = _world_path()
    if world is None or p is None:
        return
    import json

    with open(p + ".tmp", "w") as f:
        json.dump(world.state(), f)
    os.rename(p + ".tmp", p)


def save_flash():
    """Write every flash partition of the board to RUN_DIR (what survives this VM process).

    Sector by sector from the sparse store: NorFlash.image() would build the whole partition in RAM,
    which the firmware's pinned heap budget (sim_heap) cannot spare."""
    if board is None or RUN_DIR is None:
        return
    _dirty[0] = False
    for label, f in board.partitions.items():
        if label == "factory":
            continue  # the app partition: the firmware lives on the filesystem here
        p = _image_path(label)
        with open(p + ".tmp", "wb") as fh:
            sectors = getattr(f, "_data", None)
            if sectors is None:
                fh.write(f.image())
            else:
                for data in sectors:
                    fh.write(_ERASED if data is None else data)
        os.rename(p + ".tmp", p)


_ERASED = b"\xff" * 4096  # one erased sector (docs/reference/storage.md: erase sets bits to 1)


# -- the POS host at the far end of the host-link UART ----------------------------------------------
_HOST_OUT_MAX = 4096  # bytes the board sent that the bridge has not taken yet (a UART has no memory)


class HostLinkPeer:
    """sim_uart peer on the profile's host UART: what the firmware transmits goes to the bridge's host
    pseudo-terminal (through hostout.fifo); what a host program writes there arrives on the board's RX
    wire at the UART's baud rate (sim_uart.send_to_board)."""

    def __init__(self, b, uart_id):
        self.board = b
        self.uart_id = uart_id
        self.out = bytearray()
        self.dropped = 0
        self.received = 0
        b.uart_peers[uart_id] = self

    def receive(self, data, t_us):
        if len(self.out) + len(data) > _HOST_OUT_MAX:
            self.dropped += len(data)
            return
        self.out += data

    def from_host(self, data):
        import sim_uart

        self.received += len(data)
        sim_uart.send_to_board(self.board, self.uart_id, data)


# -- real-time pacing, the control FIFO and the host-link FIFOs -----------------------------------
class Pacer:
    def __init__(self, clock, speed, host=None):
        import select

        import utime  # the builtin time (simhw/time.py shadows `time`): real milliseconds

        self.rt = utime
        self.clock = clock
        self.speed = speed if speed > 0 else 1.0
        self.real0 = utime.ticks_ms()
        self.virt0 = clock.now_us()
        self.saved_ms = self.real0
        self.poller = select.poll()
        self.ctl = None
        self.reply = None
        self.host = host
        self.host_in = None
        self.host_out = None
        self.host_buf = bytearray(256)
        if RUN_DIR:
            try:
                # The bridge holds every FIFO open read-write, so these opens do not block.
                self.ctl = open(RUN_DIR + "/control.fifo", "rb")
                self.reply = open(RUN_DIR + "/reply.fifo", "wb")
                self.poller.register(self.ctl, select.POLLIN)
                # Per-FIFO pollers: "is there more on this one?" must not be answered by the other
                # (a readline() on an empty FIFO would block the whole board).
                self.ctl_poll = select.poll()
                self.ctl_poll.register(self.ctl, select.POLLIN)
                if host is not None:
                    self.host_in = open(RUN_DIR + "/hostin.fifo", "rb")
                    self.host_out = open(RUN_DIR + "/hostout.fifo", "wb")
                    self.poller.register(self.host_in, select.POLLIN)
                    self.host_poll = select.poll()
                    self.host_poll.register(self.host_in, select.POLLIN)
            except OSError as e:
                print("vboard: no control channel: %s" % e)
                self.ctl = None
        self.advance_raw = clock.advance_us
        clock.advance_us = self.advance_us  # instance attribute: every advance of this clock is paced

    def lag_ms(self, virt_us):
        """Real ms still to wait before virtual time virt_us is due."""
        due = (virt_us - self.virt0) / 1000.0 / self.speed
        return int(due - self.rt.ticks_diff(self.rt.ticks_ms(), self.real0))

    def wait_real(self, ms):
        """Sleep up to ms real milliseconds, waking for control commands and host bytes."""
        ms = max(0, min(ms, _CHUNK_MS))
        if _dirty[0] and self.rt.ticks_diff(self.rt.ticks_ms(), self.saved_ms) >= _SAVE_EVERY_MS:
            self.saved_ms = self.rt.ticks_ms()
            save_flash()
        self.flush_host()
        if self.ctl is None:
            if ms:
                self.rt.sleep_ms(ms)
            return
        self.service(self.poller.poll(ms))

    def advance_us(self, dt_us):
        target = self.clock.now_us() + int(dt_us)
        while True:
            now = self.clock.now_us()
            if now >= target:
                self.advance_raw(0)
                break
            lag = self.lag_ms(target)
            if lag <= 0:
                self.advance_raw(target - now)
                self.poll_now()
                break
            self.wait_real(lag)
            # Move virtual time up to what real time allows, so a command lands at the right moment.
            step_to = self.virt0 + int(self.rt.ticks_diff(self.rt.ticks_ms(), self.real0) * 1000 * self.speed)
            if step_to > now:
                self.advance_raw(min(target, step_to) - now)

    def poll_now(self):
        if self.ctl is not None:
            self.flush_host()
            self.service(self.poller.poll(0))

    def service(self, events):
        for obj, _ in events:
            if obj is self.ctl:
                self.read_commands()
            elif obj is self.host_in:
                self.read_host()
        if _pending_reset is not None:
            _raise_pending()

    def read_host(self):
        # A file's read(n) on the unix port waits for all n bytes; a FIFO has only what was sent, so
        # take it a byte at a time while poll says more is there (host messages are short).
        buf = self.host_buf
        n = 0
        while n < len(buf) and self.host_poll.poll(0):
            b = self.host_in.read(1)
            if not b:
                break
            buf[n] = b[0]
            n += 1
        if n:
            self.host.from_host(bytes(buf[:n]))

    def flush_host(self):
        h = self.host
        if h is not None and h.out and self.host_out is not None:
            try:
                self.host_out.write(h.out)
            except OSError:
                h.dropped += len(h.out)
            h.out = bytearray()

    def read_commands(self):
        for _ in range(16):  # bounded: a flood of commands cannot starve the firmware
            line = self.ctl.readline()
            if not line:
                return
            text = line.decode().strip()[:_MAX_LINE]
            cid, _, cmd = text.partition(" ")
            reply = command(cmd)
            try:
                self.reply.write(("%s %s\n" % (cid, reply)).encode())
            except OSError:
                pass
            if not cmd.startswith("status"):
                save_world_state()  # the world changed: a soft reset must find it so
            if _pending_reset is not None:
                return
            if not self.ctl_poll.poll(0):
                return


pacer = None
_pending_reset = None


def _raise_pending():
    global _pending_reset
    r = _pending_reset
    _pending_reset = None
    raise r


# -- the command set ------------------------------------------------------------------------------
def command(cmd):
    """Apply one control command to the world; returns the reply text ("ok ..." or "error ...")."""
    global _pending_reset
    words = cmd.split()
    if not words:
        return "error empty command"
    if world is None:
        return "error no simulated world (no board.json on the board's filesystem)"
    verb, args = words[0].lower(), words[1:]
    w = world
    try:
        if verb == "status":
            return "ok " + status()
        if verb == "power":
            what = args[0] if args else ""
            if what in ("off", "cycle"):
                w.switch.connected = False
                if what == "cycle":
                    # Back on after one second of virtual time: the board sees a clean power cycle.
                    w.clock.call_later_ms(1000, _reconnect)
                if w.power.on:
                    _pending_reset = sim_power.PowerLoss("pack pulled (control channel)")
                    w.power.on = False
                    w.power.cuts += 1
                return "ok power " + what
            if what == "on":
                w.switch.connected = True
                return "ok power on"
            return "error usage: power off|on|cycle"
        if verb == "reset":
            if not w.power.on:
                return "error the board is off (power on first)"
            _pending_reset = HardReset("reset button")
            return "ok reset"
        if verb == "temp":
            t = float(args[0])
            if not -40.0 <= t <= 85.0:  # the ESP32's rated ambient range
                return "error temperature must be within -40..85 C"
            w.board.mcu_temp_c = t
            if w.battery is not None:
                w.battery.temp_c = t
                return "ok temp %.1f C (pack and board)" % t
            return "ok temp %.1f C (board only: no battery model)" % t
        if verb == "age":
            pct = float(args[0])
            if not 0.0 <= pct <= 80.0:
                return "error age is capacity fade in percent, 0..80"
            if w.battery is None:
                return "error no battery model on this board (sim_battery missing)"
            w.battery.fade = pct / 100.0
            # End of life is 80 % capacity with 200 % resistance (battery-and-printer.md): grow the
            # resistance along with the fade, reaching x2 at 20 % fade.
            w.battery.r_growth = 1.0 + min(pct, 20.0) / 20.0
            return "ok age fade %.0f %% resistance x%.2f" % (pct, w.battery.r_growth)
        if verb == "speed":
            f = float(args[0])
            if not 0.01 <= f <= 10000:
                return "error speed must be within 0.01..10000"
            if pacer is not None:
                pacer.real0 = pacer.rt.ticks_ms()
                pacer.virt0 = w.clock.now_us()
                pacer.speed = f
            return "ok speed x%g" % f
        if verb == "printed":
            return "ok printed %d new records to RUN/paper.txt" % save_paper()
        if verb in ("paper", "cover"):
            return _printer_command(verb, args)
        if verb == "service":
            # The service button (profile pins.service; GPIO0 = BOOT on dev kits) pulls the pin low
            # while held; released, the pin's pull-up reads 1. The firmware polls it while trading (a
            # long press = service mode); held through a reset, GPIO0 starts the ROM's download mode.
            pin = w.profile["pins"]["service"]
            if pin is None:
                return "error this profile has no service pin"
            want = args[0] if args else ""
            if want not in ("hold", "release"):
                return "error usage: service hold|release"
            w.board.drive_pin(pin, 0 if want == "hold" else None)
            w.service_held = want == "hold"
            return "ok service %s (GPIO%d)" % (want, pin)
        return "error unknown command %r (try help)" % verb
    except (IndexError, ValueError):
        return "error bad arguments for %s" % verb


def _reconnect():
    world.switch.connected = True


def _printer_command(verb, args):
    p = world.printer
    if p is None:
        return "error no printer model on this board: " + world.printer_note
    want = args[0] if args else ""
    if verb == "paper" and want in ("out", "in"):
        p.load_paper(0.0 if want == "out" else 30000.0)  # a 58 mm x 30 m roll (sim_printer default)
        return "ok paper " + want
    if verb == "cover" and want in ("open", "closed"):
        if want == "open":
            p.open_cover()
        else:
            p.close_cover()
        return "ok cover " + want
    return "error usage: paper out|in, cover open|closed"


def status():
    w = world
    parts = [
        "power=%s" % ("on" if w.power.on else ("off" if not w.switch.connected else "down")),
        "rail=%.3fV" % w.power.rail_v(),
        "boots=%d" % w.board.boots,
        "clock_ms=%d" % w.clock.now_ms(),
        "speed=%g" % (pacer.speed if pacer else SPEED),
    ]
    if w.battery is not None:
        parts.append("soc=%.1f%%" % (w.battery.soc() * 100))
    parts.append("battery=%s" % ("model" if w.battery is not None else "bench-supply"))
    if w.printer is not None:
        p = w.printer
        parts.append(
            "printer=model paper_mm=%d cover=%s rows=%d"
            % (p.paper_mm_left, "open" if p.cover_open else "closed", p.rows)
        )
    else:
        parts.append("printer=none")
    parts.append("host_rx=%d host_tx_dropped=%d" % (w.host.received, w.host.dropped))
    parts.append("journal=%s" % ("%dB" % w.flash.size if w.flash is not None else "none"))
    return " ".join(parts)


# -- boot -----------------------------------------------------------------------------------------
def _exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def _load_profile():
    import json

    with open("board.json") as f:
        return json.load(f)


_ROM_STRAP_PIN = 0  # GPIO0 low at reset: the ROM's serial download mode (docs/reference/esp32-port.md)


def _boot(files):
    """Run the board's startup files (those present), as sim_board.Board.boot_once does. Returns None
    (they ended), a BoardReset, or "rom" (GPIO0 held low at reset: MicroPython never starts)."""
    import sim_board

    b = board
    sim_board._reset_event_loop()  # before the boot hooks, as Board.boot_once (the heap re-pin counts from here)
    b.power_up()
    b.power.set_load("board", b.profile["power"]["idle_a"])
    # Strapping pins are sampled by the chip's reset, not by a soft reset (only the VM restarts then).
    chip_reset = (os.getenv("POSGUARD_VBOARD_RESET") or "start") not in ("soft", "resume")
    if chip_reset and b.pin_net(_ROM_STRAP_PIN).world_level == 0:
        return "rom"
    try:
        sim_board.run_files([name for name in files if _exists(name)])
        return None
    except sim_power.BoardReset as e:
        return e


def _wdt_fields():
    wdt = world.watchdog_left_ms() if world is not None and world.power.on else None
    speed = pacer.speed if pacer is not None else SPEED
    return "" if wdt is None else " wdt %d %d %r" % (wdt[0], wdt[1], speed)


def _run(files):
    """Boot once. A reset (power loss, watchdog, deep sleep, reset button) ends this VM: the world
    waits for power (or the wake-up) here, is saved, and the bridge starts a fresh VM, so the next boot
    gets a fresh heap with the firmware loaded once, as frozen code in flash would be."""
    r = _boot(files)
    if r is None:
        return
    if r == "rom":
        # What the ESP32 ROM prints on UART0 when a strapping pin selects download mode; then it waits for
        # esptool, and MicroPython (its REPL included) never runs.
        print("rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))")
        print("waiting for download")
        save_world()
        _tell_bridge("rom download")
        _wait_for_bridge()
        return
    if getattr(r, "keeps_watchdog", False):
        # machine.soft_reset() in the firmware: a soft reset (only the VM restarts), the watchdog goes on.
        save_world()
        _tell_bridge("reboot soft" + _wdt_fields())
        _wait_for_bridge()
        return
    save_flash()
    print("vboard: reset (%s: %s), booting again" % (r.__class__.__name__, r.args[0] if r.args else ""))
    if not board._after_reset(r):
        print("vboard: the pack never recovered; board stays off")
        return
    save_world()
    _ask_for_new_vm()


def _wait_for_bridge():
    import utime

    for _ in range(100):  # the bridge replaces this VM within a tick; bounded in case it does not
        utime.sleep_ms(100)
    print("vboard: the bridge did not restart the VM")


def _ask_for_new_vm():
    # With -i, a SystemExit lands in the REPL instead of ending the process: ask the bridge (over the
    # reply FIFO) to replace this VM, and wait to be killed. Everything that survives is saved above.
    if pacer is None or pacer.reply is None:
        print("vboard: no bridge to restart the VM; staying at the REPL")
        return
    pacer.reply.write(b"0 reboot\n")
    for _ in range(600):  # bounded: if the bridge never acts, give the REPL back after a minute
        pacer.rt.sleep_ms(100)
    print("vboard: the bridge did not restart the VM")


def _firmware_present():
    try:
        import posguard  # noqa: F401  (deployed on the filesystem, or frozen: vboard --from-source)

        return True
    except ImportError:
        return False


def _chip():
    # The silicon under the virtual board: what the bridge was told (--chip, or the --board profile's mcu),
    # else the deployed profile's mcu, else the default (the smaller ESP32 heap).
    chip = os.getenv("POSGUARD_VBOARD_CHIP")
    if not chip and world is not None:
        chip = world.profile.get("mcu")
    return chip or None


def _pin_heap():
    # The VM's heap also holds the simulator; pin the rest so the firmware and the REPL see the heap the
    # chip's port gives (host_tests/simhw/sim_heap.py: its areas, split as the port splits them). Code
    # deployed on the filesystem (.mpy or .py under posguard/) loads into that heap, as on a board; only a
    # firmware that is not on the filesystem (vboard --frozen: the package frozen into the build) is
    # loaded first, as frozen code lives in flash.
    import sim_heap

    frozen = not _exists("posguard") and _firmware_present()
    sim_heap.repin(preload=frozen, chip=_chip(), say=lambda text: print("vboard: " + text))


def _tell_bridge(text):
    """A line for the bridge on the reply FIFO, id 0 (not a reply to a control command)."""
    if RUN_DIR is None:
        return
    try:
        if pacer is not None and pacer.reply is not None:
            pacer.reply.write(("0 %s\n" % text).encode())
        else:
            with open(RUN_DIR + "/reply.fifo", "wb") as f:
                f.write(("0 %s\n" % text).encode())
    except OSError:
        pass


def _world_off():
    """The board is at the REPL now: nothing here reads control commands or advances virtual time. The
    bridge takes over what still happens to a board sitting at its REPL: the buttons, the power, and a
    watchdog the firmware armed (it keeps counting on the chip, in real time)."""
    _tell_bridge("world off" + _wdt_fields())


def _repl_reset():
    # machine.reset() typed at the REPL (deploy's maintenance reset, a technician): esp_restart() on the
    # port, a hard reset whose machine.reset_cause() is HARD_RESET (ports/esp32/modmachine.c:250-253).
    save_world()
    _tell_bridge("reset hard")
    _wait_for_bridge()


def _repl_soft_reset():
    # machine.soft_reset() typed at the REPL: what Ctrl-D does. The unix port ends its process on a
    # SystemExit at the REPL and the bridge starts the next VM as a soft reset (the watchdog goes on).
    save_world()
    raise SystemExit


def _install_repl_hooks():
    import machine

    machine.reset = _repl_reset
    machine.soft_reset = _repl_soft_reset


def start():
    global board, world, pacer
    if not _exists("board.json"):
        _pin_heap()
        return
    try:
        profile = _load_profile()
        saved = load_world_state() or {}
        world = World(profile, saved)
    except Exception as e:  # a broken board.json must still leave a working REPL to fix it with
        print("vboard: no simulated world: %s: %s" % (type(e).__name__, e))
        world = None
        _pin_heap()
        return
    _pin_heap()
    board = world.board
    world.power.on = True
    sim_clock.install()
    pacer = Pacer(world.clock, saved.get("speed", SPEED), world.host)
    _tell_bridge("world on")
    sys.atexit(save_world)
    try:
        if not world.power.can_start():
            print("vboard: no power (pack disconnected): waiting for 'power on'")
            if not board._wait_until(world.power.can_start, 0):
                return
        if MODE != "none":  # "none": a Ctrl-C landed before the REPL; the world goes on, no script runs
            _run(("boot.py",) if MODE == "boot" else ("boot.py", "main.py"))
    except KeyboardInterrupt as e:
        sys.print_exception(e)
    except Exception as e:  # like a board: the traceback, then the REPL
        sys.print_exception(e)
    save_world()


start()
_install_repl_hooks()
_world_off()
