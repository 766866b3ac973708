"""A virtual board that mpremote talks to as if it were a USB-serial ESP32.

The unix port of MicroPython has a real REPL (friendly, raw and raw-paste) but a soft reset (Ctrl-D)
ends the process. The bridge owns the pseudo-terminal the user connects to, runs `micropython` on a
second pseudo-terminal with the board's filesystem directory as its working directory, relays bytes,
and when the VM exits it prints `MPY: soft reboot`, starts a fresh VM and, if the raw REPL was active,
re-enters it with `\\r\\x01` (docs/reference/micropython-runtime.md) — what a board does on a soft reset.

Input gate. The unix port switches its terminal between "executing" (canonical, ISIG) and "REPL
reading" (raw) with TCSAFLUSH, which throws away input that arrived early. mpremote sends `\\r\\x03` and
at once `\\r\\x01`: delivered while a boot script runs, the `\\r\\x01` would be flushed. So bytes from the
host are held while the VM's terminal is canonical and released once it reads raw; a Ctrl-C is passed
at once (the line discipline turns it into SIGINT, the KeyboardInterrupt a board raises on Ctrl-C).

Host link: a third pseudo-terminal is the POS host's end of the board's host UART (profile host.uart_id);
bytes cross through two FIFOs to a sim_uart peer in the VM and arrive at the UART's baud rate.

Control channel: a loopback TCP port with a line protocol (see CONTROL_HELP); the bridge forwards
each command through a FIFO to the simulated world inside the VM (host_tests/simhw/sim_vboard_boot.py)
and routes the reply back by id.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time
import tty
from pathlib import Path

from posguard_tools import paths

SOFT_REBOOT = b"MPY: soft reboot\r\n"
ENTER_RAW_REPL = b"\r\x01"
FRIENDLY_PROMPT = b">>> "
CTRL_A, CTRL_B, CTRL_C = 0x01, 0x02, 0x03
STARTUP_MODULE = "sim_vboard_boot"
REBOOT_REQUEST = "0 reboot"  # reply-FIFO line of a VM whose world had a hard reset (sim_vboard_boot)
RESET_REQUEST = "0 reset hard"  # machine.reset() typed at the REPL: the bridge resets the board
SOFT_REBOOT_REQUEST = "0 reboot soft"  # machine.soft_reset() in the firmware; "... wdt T L S" if one runs
ROM_DOWNLOAD = "0 rom download"  # GPIO0 was low at reset: the ROM waits for esptool, no MicroPython
WORLD_ON = "0 world on"  # the VM's world runs: it reads control commands as virtual time advances
WORLD_OFF = "0 world off"  # the board sits at the REPL; "... wdt TIMEOUT_MS LEFT_MS SPEED" if a watchdog runs

# Boot modes handed to the VM in POSGUARD_VBOARD_BOOT (what a board runs after a reset):
BOOT_FULL = "full"  # power-on or friendly-REPL soft reset: boot.py then main.py
BOOT_RAW = "boot"  # soft reset from the raw REPL: boot.py only (MicroPython skips main.py in raw mode)
BOOT_NONE = "none"  # straight to the REPL (VM restarted after a Ctrl-C landed between script and REPL)

_MAX_HELD_INPUT = 1 << 20  # host bytes held while the VM executes; more than this is a runaway client
_REPLY_TIMEOUT_S = 2.0  # a control command the world has not answered by then is reported as pending
_MAX_CONTROL_LINE = 512
_TICK_S = 0.01  # how often the bridge looks at the VM's terminal mode and exit status

CONTROL_HELP = """\
commands (one per line; the reply is one line starting with ok or error):
  help                     this text
  status                   board state: power, boots, clock, what the world offers
  power off | on | cycle   pull the pack / put it back (flash keeps what landed)
  paper out | in           run the printer out of paper / load a roll
  cover open | closed      open / close the printer cover
  age PERCENT              age the battery pack: capacity fade in percent (0-80)
  temp CELSIUS             ambient temperature of the pack and the board
  speed FACTOR             virtual seconds per real second (1 = real time)
  service hold | release   the service button (pins.service): held 3 s while trading = service mode
  reset                    press the reset button (hard reset: RAM lost, flash kept)
  save PATH                write the board's filesystem and flash images under PATH (bridge side)
  printed                  append what the printer printed to RUN/paper.txt (posguard vboard paper draws it)
"""


CONTROL_VERBS = [line.strip().split("  ")[0] for line in CONTROL_HELP.splitlines()[1:] if line.startswith("  ")]


class ControlAddressError(ValueError):
    """A --ctl address that is not HOST:PORT; the message says what to pass instead."""


def parse_control_address(addr: str) -> tuple[str, int]:
    """'HOST:PORT', ':PORT' or 'PORT' (loopback) -> (host, port), or a ControlAddressError naming the fix."""
    host, sep, port = addr.strip().rpartition(":")
    hint = "pass the CONTROL address `posguard vboard` printed at start, e.g. --ctl 127.0.0.1:40753"
    if not port:
        raise ControlAddressError(f"--ctl {addr!r} has no port: {hint}")
    if not port.isdigit():
        what = "a host name without a port" if not sep else f"the port {port!r} is not a number"
        raise ControlAddressError(f"--ctl {addr!r}: {what}; {hint}")
    number = int(port)
    if not 0 < number < 65536:
        raise ControlAddressError(f"--ctl {addr!r}: port {number} is outside 1..65535; {hint}")
    return (host.strip("[]") or "127.0.0.1"), number


def send_control(addr: str, commands: list[str], timeout: float = 10.0) -> list[str]:
    """Send control lines to a running virtual board (HOST:PORT) and return one reply per line."""
    host, port = parse_control_address(addr)
    replies = []
    with socket.create_connection((host, port), timeout=timeout) as conn:
        f = conn.makefile("rwb")
        for cmd in commands:
            f.write(cmd.encode() + b"\n")
            f.flush()
            replies.append(f.readline().decode("utf-8", "replace").rstrip("\n"))
    return replies


def _set_nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _vm_tty_settings(fd: int) -> None:
    """The VM's terminal at start: canonical with ISIG (Ctrl-C -> SIGINT) and no echo (the REPL echoes
    itself). No output processing: the REPL already writes \\r\\n and the unix port does not touch the
    output flags, so ONLCR would double it; the bridge does a board's \\n -> \\r\\n (see BoardNewlines)."""
    attrs = termios.tcgetattr(fd)
    attrs[3] = (attrs[3] | termios.ISIG | termios.ICANON) & ~(termios.ECHO | termios.ECHONL)
    attrs[1] = attrs[1] & ~termios.OPOST
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class BoardNewlines:
    """A board's stdout turns every \\n that is not already preceded by \\r into \\r\\n (MicroPython's
    cooked stdout); the unix port writes a bare \\n from print(). mpremote matches the board's bytes."""

    def __init__(self) -> None:
        self.last = 0

    def convert(self, data: bytes) -> bytes:
        if not data:
            return data
        out = bytearray()
        prev = self.last
        for b in data:
            if b == 0x0A and prev != 0x0D:
                out.append(0x0D)
            out.append(b)
            prev = b
        self.last = prev
        return bytes(out)


class VirtualBoard:
    """The bridge. `start()` then `serve()` (blocking) or `step()` from your own loop; `close()` ends it."""

    def __init__(
        self,
        fs_dir: Path,
        run_dir: Path | None = None,
        *,
        heapsize: str = paths.VM_HEAPSIZE,
        control_port: int | None = 0,
        firmware_from_source: bool = False,
        boot_firmware: bool = True,
        speed: float = 1.0,
        log: bool = True,
        chip: str | None = None,
    ) -> None:
        self.fs_dir = fs_dir.resolve()
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = (run_dir or Path(tempfile.mkdtemp(prefix="posguard-vboard-"))).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.heapsize = heapsize
        self.control_port = control_port
        self.firmware_from_source = firmware_from_source
        self.chip = chip  # the silicon (its port's heap); None: the deployed profile's mcu, else esp32
        self.boot_firmware = boot_firmware
        self.speed = speed
        self.log_enabled = log
        self.micropython = paths.venv_bin("micropython")
        self.sel = selectors.DefaultSelector()
        self.proc: subprocess.Popen[bytes] | None = None
        self.raw_repl = False  # what the host last asked for: Ctrl-A raw, Ctrl-B friendly
        self.held = bytearray()  # host -> VM bytes waiting for the VM to read its terminal raw
        self.vm_starts = 0
        self.soft_resets = 0
        self.powered = True
        self.control_addr: tuple[str, int] | None = None
        self._ctl_clients: dict[socket.socket, bytearray] = {}
        self._pending_replies: dict[int, socket.socket | None] = {}
        self._pending_words: dict[int, list[str]] = {}
        self._power_on_at: float | None = None
        self._reply_deadlines: dict[int, float] = {}
        self._next_id = 1
        self._reply_buf = bytearray()
        self._newlines = BoardNewlines()
        self._vm_tail = b""  # the VM's last output bytes, to see a prompt
        self._await_prompt: bytes | None = None
        self._await_deadline = 0.0
        self._closed = False
        # What the VM said about its world: None while it boots (commands wait in the FIFO), True while
        # it runs, False at the REPL (the bridge applies power, reset and service itself, refuses the rest).
        self.world_running: bool | None = None
        self._wdt: tuple[int, float, float] | None = None  # (timeout ms, real deadline, speed) at the REPL
        self.service: str | None = None  # last 'service hold|release', handed to every new VM
        self.events: list[str] = []  # what the bridge did on its own (watchdog resets...), newest last
        self.rom_download = False  # the chip sits in the ROM's download mode (GPIO0 was low at reset)
        self._captured: dict[int, str | None] = {}  # replies to ask_world(), by command id

    # -- set-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        # The user's end: its slave is what mpremote opens. The bridge keeps a slave fd open so the
        # master never sees EIO between clients, and reads the slave raw (mpremote's serial does too).
        self.user_master, self._user_slave = os.openpty()
        tty.setraw(self._user_slave)
        _set_nonblocking(self.user_master)
        self.user_port = os.ttyname(self._user_slave)
        # The VM's end: one pty pair for the whole run, so nothing is lost between VM restarts.
        self.vm_master, self._vm_slave = os.openpty()
        _vm_tty_settings(self._vm_slave)
        _set_nonblocking(self.vm_master)
        self.sel.register(self.user_master, selectors.EVENT_READ, "user")
        self.sel.register(self.vm_master, selectors.EVENT_READ, "vm")
        # The host link: a third pty for the POS host program; its bytes go to the board's host UART.
        self.host_master, self._host_slave = os.openpty()
        tty.setraw(self._host_slave)
        _set_nonblocking(self.host_master)
        self.host_port = os.ttyname(self._host_slave)
        self.sel.register(self.host_master, selectors.EVENT_READ, "host")
        fifos = {}
        for name in ("control", "reply", "hostin", "hostout"):
            fifo = self.run_dir / f"{name}.fifo"
            if fifo.exists():
                fifo.unlink()
            os.mkfifo(fifo)
            # O_RDWR keeps each FIFO open from both ends: neither side blocks in open() or sees EOF.
            fifos[name] = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self._ctl_fd, self._reply_fd = fifos["control"], fifos["reply"]
        self._hostin_fd, self._hostout_fd = fifos["hostin"], fifos["hostout"]
        self.sel.register(self._reply_fd, selectors.EVENT_READ, "reply")
        self.sel.register(self._hostout_fd, selectors.EVENT_READ, "hostout")
        if self.control_port is not None:
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", self.control_port))
            srv.listen(4)
            srv.setblocking(False)
            self._ctl_server: socket.socket | None = srv
            self.control_addr = srv.getsockname()
            self.sel.register(srv, selectors.EVENT_READ, "listen")
        else:
            self._ctl_server = None
        self._start_vm(BOOT_FULL if self.boot_firmware else BOOT_NONE)

    def info(self) -> dict[str, str | int | None]:
        return {
            "repl": self.user_port,
            "host": self.host_port,
            "control": None if self.control_addr is None else f"{self.control_addr[0]}:{self.control_addr[1]}",
            "fs": str(self.fs_dir),
            "run": str(self.run_dir),
            "pid": os.getpid(),
        }

    def micropython_path(self) -> str:
        # sys.path of a board is ['', '.frozen', '/lib']: the filesystem first, so what mpremote
        # deployed is what runs. The simulated hardware follows (never on a board). The firmware
        # source tree only with firmware_from_source, to try changes without a deploy.
        # firmware_from_source stands for a build with the package frozen in: it sits where a board's
        # '.frozen' entry does, after the filesystem and before /lib.
        parts = [str(self.fs_dir)]
        if self.firmware_from_source:
            parts.append(str(paths.FIRMWARE))
        parts += [str(self.fs_dir / "lib"), str(paths.SIMHW), ".frozen"]
        return ":".join(parts)

    def _start_vm(self, boot: str, why: str = "start") -> None:
        env = paths.micropython_env()
        env["MICROPYPATH"] = self.micropython_path()
        env["POSGUARD_VBOARD_BOOT"] = boot if self.powered else BOOT_NONE
        env["POSGUARD_VBOARD_RUN"] = str(self.run_dir)
        env["POSGUARD_VBOARD_SPEED"] = repr(self.speed)
        # start | soft | resume | reboot | hard | wdt: what restarted the chip (the first boot's reset cause)
        env["POSGUARD_VBOARD_RESET"] = why
        env.pop("MICROPYINSPECT", None)
        env.pop("POSGUARD_VBOARD_WDT", None)
        if why in ("soft", "resume") and self._wdt is not None:
            # A soft reset does not stop the port's task watchdog: the new VM gets what is left of it.
            timeout_ms, deadline, speed = self._wdt
            left_ms = max(0, int((deadline - time.monotonic()) * 1000 * speed))
            env["POSGUARD_VBOARD_WDT"] = f"{timeout_ms} {left_ms}"
        if self.service is not None:
            env["POSGUARD_VBOARD_SERVICE"] = self.service
        if self.chip is not None:
            env["POSGUARD_VBOARD_CHIP"] = self.chip
        pool = self._flash_pool_sectors()
        if pool:
            env["POSGUARD_FLASH_POOL"] = str(pool)
        self._wdt = None
        self.world_running = None
        self.rom_download = False
        slave = self._vm_slave
        # The VM before may have died in raw mode (-icanon -isig: killed while reading the REPL, by a power
        # cut or a reset), and a new VM inherits its terminal: without ISIG a Ctrl-C never becomes SIGINT
        # and the input gate would think the VM reads the REPL. A board's UART has no such memory.
        _vm_tty_settings(slave)

        def become_terminal_owner() -> None:
            # A board's UART is the REPL's console: make the pty the VM's controlling terminal so the
            # line discipline can deliver Ctrl-C as SIGINT to it.
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [self.micropython, "-X", f"heapsize={self.heapsize}", "-i", "-c", f"import {STARTUP_MODULE}"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=str(self.fs_dir),
            env=env,
            preexec_fn=become_terminal_owner,
            close_fds=True,
        )
        self.vm_starts += 1
        self._log(f"VM started (pid {self.proc.pid}, boot {boot})")

    def _flash_pool_sectors(self) -> int:
        """Sectors of simulator memory for the journal's flash (sim_flash's pool): the profile's whole
        journal, so a big journal (pos-2s: 128 KB) never spills into the firmware's pinned heap."""
        try:
            profile = json.loads((self.fs_dir / "board.json").read_text())
            return int(profile["journal"]["size_kb"]) // 4
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    # -- the relay ------------------------------------------------------------------------------
    def serve(self) -> None:
        while not self._closed:
            self.step(_TICK_S)

    def step(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            what = key.data
            if what == "user":
                self._from_user()
            elif what == "vm":
                self._from_vm()
            elif what == "listen":
                self._accept_control()
            elif what == "reply":
                self._from_world()
            elif what == "host":
                self._relay(self.host_master, self._hostin_fd)
            elif what == "hostout":
                self._relay(self._hostout_fd, self.host_master)
            elif isinstance(key.fileobj, socket.socket):
                self._from_control(key.fileobj)
        self._release_held()
        self._check_vm()
        self._check_watchdog()
        self._expire_replies()

    def _from_user(self) -> None:
        try:
            data = os.read(self.user_master, 4096)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return
            raise
        if not self.powered or self.rom_download:
            return  # a board without power (or in the ROM's download mode) has no REPL to hear it
        if len(self.held) + len(data) > _MAX_HELD_INPUT:
            self._log("host input overflow: dropped held bytes")
            self.held.clear()
        self.held += data

    def _relay(self, src: int, dst: int) -> None:
        """Host link bytes, either way. Like a UART: what the other side cannot take now is lost."""
        try:
            data = os.read(src, 4096)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return
            raise
        try:
            os.write(dst, data)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EIO):
                raise
            self._log(f"host link: {len(data)} bytes lost (nobody reading)")

    def _vm_reads_raw(self) -> bool:
        try:
            lflag = termios.tcgetattr(self._vm_slave)[3]
        except termios.error:
            return False
        return not lflag & termios.ICANON

    def _release_held(self) -> None:
        if not self.held or self.proc is None or self.proc.poll() is not None:
            return
        if self._await_prompt is not None:
            # Leaving the raw REPL, the unix port re-enters its friendly REPL with TCSAFLUSH: bytes sent
            # behind the Ctrl-B would be thrown away. Hold them until the prompt is out (or 1 s passed).
            if self._await_prompt not in self._vm_tail and time.monotonic() < self._await_deadline:
                return
            self._await_prompt = None
        if self._vm_reads_raw():
            cut = self.held.find(CTRL_B)
            end = len(self.held) if cut < 0 else cut + 1
            data = bytes(self.held[:end])
            del self.held[:end]
            if cut >= 0:
                self._await_prompt = FRIENDLY_PROMPT
                self._await_deadline = time.monotonic() + 1.0
                self._vm_tail = b""
            self._track_repl_mode(data)
            self._write_vm(data)
            return
        # Executing (boot script, firmware): only Ctrl-C gets through, as SIGINT.
        if CTRL_C in self.held:
            i = self.held.index(CTRL_C)
            del self.held[: i + 1]
            if self._vm_catches_ctrl_c():
                self._write_vm(bytes([CTRL_C]))
            # else: the firmware called micropython.kbd_intr(-1). On the unix port that puts SIGINT back
            # to its default (ports/unix/unix_mphal.c mp_hal_set_interrupt_char: SIG_DFL), which would
            # kill the VM; on a board the byte is just input nobody reads (ports/esp32/uart.c:115).
            # The board's behaviour: the byte goes nowhere, the firmware keeps running.

    def _vm_catches_ctrl_c(self) -> bool:
        """Whether the VM has a SIGINT handler (MicroPython's Ctrl-C capture is on), from /proc."""
        if self.proc is None:
            return True
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        except (OSError, ValueError):
            pass
        return True

    def _track_repl_mode(self, data: bytes) -> None:
        # mpremote never sends raw control bytes inside code (it sends repr()s), so the last Ctrl-A /
        # Ctrl-B says which REPL the board is in.
        for b in data:
            if b == CTRL_A:
                self.raw_repl = True
            elif b == CTRL_B:
                self.raw_repl = False

    def _write_vm(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + 2.0
        while view and time.monotonic() < deadline:
            try:
                n = os.write(self.vm_master, view)
                view = view[n:]
            except BlockingIOError:
                time.sleep(0.001)

    def _from_vm(self) -> None:
        try:
            data = os.read(self.vm_master, 65536)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return
            raise
        self._vm_tail = (self._vm_tail + data)[-64:]
        self._to_user(self._newlines.convert(data))

    def _to_user(self, data: bytes) -> None:
        # Like a UART with nobody listening: output no client reads is dropped, never blocks the VM.
        try:
            os.write(self.user_master, data)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EIO):
                raise

    def _drain_vm_output(self) -> None:
        for _ in range(64):
            try:
                data = os.read(self.vm_master, 65536)
            except OSError:
                break
            if not data:
                break
            self._to_user(self._newlines.convert(data))

    def _check_vm(self) -> None:
        if self.proc is None:
            return
        rc = self.proc.poll()
        if rc is None:
            return
        self._drain_vm_output()  # what the VM printed last comes before the reboot message
        if self._closed:
            return
        if rc == -signal.SIGINT:
            # A Ctrl-C arrived while the VM was between its boot script and its REPL: that is "back at
            # the REPL" on a board, not a reset.
            self._log("VM interrupted before its REPL: restarting into the REPL")
            self._start_vm(BOOT_NONE, "resume")
        else:
            self.soft_resets += 1
            self._to_user(SOFT_REBOOT)
            self._start_vm(BOOT_RAW if self.raw_repl else BOOT_FULL, "soft")
        if self.raw_repl:
            self.held[:0] = ENTER_RAW_REPL

    # -- control channel ------------------------------------------------------------------------
    def _accept_control(self) -> None:
        assert self._ctl_server is not None
        try:
            conn, _ = self._ctl_server.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self._ctl_clients[conn] = bytearray()
        self.sel.register(conn, selectors.EVENT_READ, "control")

    def _drop_client(self, conn: socket.socket) -> None:
        self.sel.unregister(conn)
        self._ctl_clients.pop(conn, None)
        conn.close()

    def _from_control(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop_client(conn)
            return
        buf = self._ctl_clients[conn]
        buf += data
        if len(buf) > _MAX_CONTROL_LINE and b"\n" not in buf:
            self._send(conn, "error line too long")
            buf.clear()
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            self.handle_command(line.decode("utf-8", "replace").strip(), conn)

    def _send(self, conn: socket.socket | None, text: str) -> None:
        if conn is None:
            self._log(text)
            return
        try:
            conn.sendall(text.encode() + b"\n")
        except OSError:
            pass

    def handle_command(self, line: str, conn: socket.socket | None = None) -> None:
        """One control line. Bridge-side commands are answered here; world commands go to the VM."""
        words = line.split()
        if not words:
            return
        verb = words[0].lower()
        if verb == "help":
            self._send(conn, "ok " + "; ".join(CONTROL_VERBS))
        elif verb == "save":
            if len(words) != 2:
                self._send(conn, "error usage: save PATH")
                return
            try:
                self.save(Path(words[1]))
                self._send(conn, f"ok saved to {words[1]}")
            except OSError as e:
                self._send(conn, f"error cannot save: {e}")
        elif not self.powered:
            if verb == "power" and words[1:2] == ["on"]:
                self.power_on()
                self._send(conn, "ok power on (cold boot)")
            elif verb == "status":
                self._send(conn, "ok power=off (the VM is stopped: 'power on' boots it)")
            else:
                self._send(conn, "error the board is off: 'power on' first")
        elif self.world_running is False or self.proc is None or self.proc.poll() is not None:
            self._sent_to_board_at_repl(words, conn)
        else:
            if verb == "service" and words[1:2] in (["hold"], ["release"]):
                self.service = words[1]
            cid = self._next_id
            self._next_id += 1
            self._pending_replies[cid] = conn
            self._pending_words[cid] = words
            self._reply_deadlines[cid] = time.monotonic() + _REPLY_TIMEOUT_S
            msg = f"{cid} {' '.join(words)}\n".encode()
            try:
                os.write(self._ctl_fd, msg)
            except BlockingIOError:
                self._send(conn, "error the world is not reading commands (control FIFO full)")

    def _sent_to_board_at_repl(self, words: list[str], conn: socket.socket | None) -> None:
        """No world runs in the VM (the board sits at the REPL: main.py returned or was interrupted, service
        mode, no board.json): what acts on the chip from outside is applied here, at once."""
        verb, arg = words[0].lower(), words[1:2]
        if verb == "power" and arg in (["off"], ["cycle"]):
            self.power_off()
            if arg == ["cycle"]:
                self._power_on_at = time.monotonic() + 1.0
            self._send(conn, f"ok power {arg[0]} (board was at the REPL: VM stopped, RAM lost)")
        elif verb == "power" and arg == ["on"]:
            self._send(conn, "ok power on (already on)")
        elif verb == "status" and self.rom_download:
            self._send(
                conn,
                "ok power=on rom-download (GPIO0 was held low at reset: the ROM waits for esptool, MicroPython "
                "does not run; 'service release' then 'reset')",
            )
        elif verb == "status":
            wdt = ""
            if self._wdt is not None:
                wdt = f" watchdog resets in {max(0.0, self._wdt[1] - time.monotonic()):.1f} s"
            self._send(conn, f"ok power=on at-repl (no world running: firmware stopped){wdt}")
        elif verb == "reset":
            self.reset_board("hard", "reset button")
            self._send(conn, "ok reset (board was at the REPL: hard reset, boot.py and main.py run)")
        elif verb == "service" and arg in (["hold"], ["release"]):
            self.service = arg[0]
            self._send(
                conn,
                f"ok service {arg[0]} (board at the REPL: applied from the next start; "
                "held at a reset, GPIO0 = ROM download mode)",
            )
        else:
            self._send(
                conn,
                "error not applied: the simulated world is not running (board at the REPL, or no board.json); "
                "'reset' boots the firmware (after 'service release' if service mode is on), then send it again",
            )

    def _world_stopped(self, fields: list[str]) -> None:
        self.world_running = False
        self._wdt = None
        if len(fields) == 4 and fields[0] == "wdt":
            try:
                timeout_ms, left_ms, speed = int(fields[1]), int(fields[2]), float(fields[3])
            except ValueError:
                return
            speed = speed if speed > 0 else 1.0
            self._wdt = (timeout_ms, time.monotonic() + left_ms / 1000.0 / speed, speed)
            self._log(f"board at the REPL with its watchdog running: resets in {left_ms / 1000.0 / speed:.1f} s")

    def _check_watchdog(self) -> None:
        if self._wdt is None or self.proc is None or self.proc.poll() is not None:
            return
        timeout_ms, deadline, _ = self._wdt
        if time.monotonic() >= deadline:
            self._wdt = None
            self.reset_board(
                "wdt", f"watchdog not fed for {timeout_ms} ms (the firmware armed it; REPL code does not feed it)"
            )

    def _kill_vm(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._drain_vm_output()

    def reset_board(self, why: str, detail: str) -> None:
        """A hard reset of a board whose VM sits at the REPL (no world to do it): RAM gone, flash kept."""
        self._kill_vm()
        self.held.clear()
        self.raw_repl = False  # a board comes back in the friendly REPL
        note = f"{'watchdog reset' if why == 'wdt' else 'hard reset'}: {detail}"
        self.events.append(note)
        del self.events[:-32]
        self._to_user(f"\r\nvboard: {note}\r\n".encode())
        self._log(note)
        self._start_vm(BOOT_FULL, why)

    def _from_world(self) -> None:
        try:
            self._reply_buf += os.read(self._reply_fd, 4096)
        except BlockingIOError:
            return
        while b"\n" in self._reply_buf:
            line, _, rest = bytes(self._reply_buf).partition(b"\n")
            self._reply_buf[:] = rest
            text = line.decode("utf-8", "replace")
            if text.startswith(SOFT_REBOOT_REQUEST):
                self._world_stopped(text[len(SOFT_REBOOT_REQUEST) :].split())
                self._kill_vm()
                self.soft_resets += 1
                self._to_user(SOFT_REBOOT)
                self._start_vm(BOOT_FULL, "soft")
                continue
            if text == REBOOT_REQUEST:
                self._hard_reset()
                continue
            if text == ROM_DOWNLOAD:
                self._kill_vm()
                self.proc = None  # no MicroPython runs until a reset or a power cycle
                self.rom_download = True
                self.world_running = False
                self._log("GPIO0 held low at reset: ROM download mode, MicroPython does not run")
                continue
            if text == RESET_REQUEST:
                self.reset_board("hard", "machine.reset() at the REPL")
                continue
            if text == WORLD_ON:
                self.world_running = True
                continue
            if text.startswith(WORLD_OFF):
                self._world_stopped(text[len(WORLD_OFF) :].split())
                continue
            head, _, reply = text.partition(" ")
            cid = int(head) if head.isdigit() else 0
            if cid in self._captured:
                self._captured[cid] = reply
                continue
            conn = self._pending_replies.pop(cid, None)
            late = cid not in self._reply_deadlines
            self._reply_deadlines.pop(cid, None)
            self._pending_words.pop(cid, None)
            if late:
                self._log(f"control {cid} (late): {reply}")
            else:
                self._send(conn, reply)

    def _expire_replies(self) -> None:
        now = time.monotonic()
        if self._power_on_at is not None and now >= self._power_on_at:
            self._power_on_at = None
            self.power_on()
        expired = [cid for cid, deadline in self._reply_deadlines.items() if now > deadline]
        if expired:
            self._drain_control_fifo()
        for cid in expired:
            del self._reply_deadlines[cid]
            conn = self._pending_replies.pop(cid, None)
            words = self._pending_words.pop(cid, [])
            if words[:1] == ["power"] and words[1:2] in (["off"], ["cycle"]):
                # Nobody in the VM runs the world (the board sits at the REPL): pulling the pack still
                # kills it. Flash keeps what the VM last saved (within a second of the last write).
                self.power_off()
                if words[1] == "cycle":
                    self._power_on_at = now + 1.0
                self._send(conn, f"ok power {words[1]} (board was at the REPL: VM stopped, RAM lost)")
            else:
                self._send(
                    conn,
                    "error not applied: the simulated world is not running (board at the REPL, or no "
                    "board.json); run the firmware (soft reset) and send it again",
                )

    def _drain_control_fifo(self) -> None:
        # Commands nobody read are stale: drop them rather than let a "power off" fire minutes later.
        for _ in range(64):
            try:
                if not os.read(self._ctl_fd, 4096):
                    return
            except BlockingIOError:
                return

    def _hard_reset(self) -> None:
        """The world had a hard reset (power loss, watchdog, deep sleep, reset button) and waited for
        power in the old VM: a fresh VM boots with RAM really gone (and the firmware loaded once, as
        frozen code would be). A board comes back in the friendly REPL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._drain_vm_output()
        self.raw_repl = False
        self._log("hard reset: new VM")
        self._start_vm(BOOT_FULL, "reboot")

    def power_off(self) -> None:
        self.powered = False
        self._wdt = None  # no power, no watchdog
        self.held.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None
        self._log("power off: VM stopped")

    def power_on(self) -> None:
        if self.powered:
            return
        self.powered = True
        self.raw_repl = False  # a cold boot starts in the friendly REPL
        self._start_vm(BOOT_FULL, "start")

    def ask_world(self, line: str, timeout: float = _REPLY_TIMEOUT_S) -> str | None:
        """One control command from this process (no TCP client): the world's reply, or None when no world
        runs (board off, at the REPL, booting) or it did not answer within timeout."""
        if not self.powered or self.world_running is not True or self.proc is None or self.proc.poll() is not None:
            return None
        cid = self._next_id
        self._next_id += 1
        self._captured[cid] = None
        try:
            os.write(self._ctl_fd, f"{cid} {line}\n".encode())
        except BlockingIOError:
            del self._captured[cid]
            return None
        deadline = time.monotonic() + timeout
        while self._captured.get(cid) is None and time.monotonic() < deadline and not self._closed:
            self.step(_TICK_S)
        return self._captured.pop(cid, None)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, dest: Path) -> None:
        """Copy the board's filesystem and the simulated flash images (written by the VM under run/)."""
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.fs_dir, dest / "fs", dirs_exist_ok=True)
        for img in self.run_dir.glob("flash-*.bin"):
            shutil.copy2(img, dest / img.name)

    # -- tear-down ------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        for conn in list(self._ctl_clients):
            self._drop_client(conn)
        if self._ctl_server is not None:
            self._ctl_server.close()
        fds = (self.user_master, self._user_slave, self.vm_master, self._vm_slave, self.host_master, self._host_slave)
        for fd in fds + (self._ctl_fd, self._reply_fd, self._hostin_fd, self._hostout_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.sel.close()

    def _log(self, text: str) -> None:
        if self.log_enabled:
            print(f"vboard: {text}", file=sys.stderr, flush=True)


def write_info(board: VirtualBoard, path: Path) -> None:
    path.write_text(json.dumps(board.info(), indent=2) + "\n")
