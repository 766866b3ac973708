"""The virtual board end to end with the real mpremote client: exec, cp, ls, run, soft reset, Ctrl-C
into a running main.py, flash persistence across VM restarts, and the control channel.

Every client call has a timeout, so a hang in the bridge fails the test instead of blocking CI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from posguard_tools import paths
from posguard_tools.vboard import BoardNewlines, send_control

_START_TIMEOUT_S = 20
_CLIENT_TIMEOUT_S = 40

# A main.py that never returns, like the firmware's: mpremote has to interrupt it with Ctrl-C.
_FOREVER_MAIN = """\
import time
n = 0
while True:
    time.sleep_ms(50)
    n += 1
"""


class Vboard:
    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any], fs: Path, state: Path) -> None:
        self.proc = proc
        self.port = str(info["repl"])
        self.host = str(info["host"])
        self.control = str(info["control"])
        self.fs = fs
        self.run = Path(info["run"])
        self.state = state  # the state file `posguard vboard status|stop|paper` find this board by

    def mpremote(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [paths.venv_bin("mpremote"), "connect", self.port, *args],
            capture_output=True,
            text=True,
            timeout=_CLIENT_TIMEOUT_S,
        )
        if check:
            assert r.returncode == 0, f"mpremote {args} failed: {r.stdout}\n{r.stderr}"
        return r

    def exec(self, code: str, *more: str) -> str:
        return self.mpremote("exec", code, *more).stdout.strip()

    def ctl(self, *commands: str) -> list[str]:
        return send_control(self.control, list(commands), timeout=_CLIENT_TIMEOUT_S)


def start_vboard(
    tmp_path: Path,
    with_board: bool,
    main_py: str | None = None,
    chip: str | None = None,
    frozen: bool = False,
    from_source: bool = False,
    extra_files: dict[str, str] | None = None,
    board_dir: Path | None = None,
    more_args: tuple[str, ...] = (),
) -> Vboard:
    """Start `posguard vboard` in a subprocess (other suites import this: test_deploy, the e2e test).
    chip: the silicon (its port's heap); frozen: a build with the firmware frozen in (vboard --frozen);
    from_source: the firmware package from the source tree, with boot.py and main.py on the board's
    filesystem (what `make vboard` gives after a deploy, without the deploy); extra_files: more files
    on the filesystem (name -> text); board_dir: the board's folder (--dir: filesystem and flash kept
    across stops, run folder temporary) instead of --fs and --run-dir."""
    fs = tmp_path / "fs" if board_dir is None else board_dir / "fs"
    fs.mkdir(parents=True, exist_ok=True)
    where = ["--fs", str(fs), "--run-dir", str(tmp_path / "run")] if board_dir is None else ["--dir", str(board_dir)]
    if with_board:
        (fs / "board.json").write_text(paths.board_profile("devkit-1s").read_text())
    if from_source:
        for name in ("boot.py", "main.py"):
            shutil.copy(paths.FIRMWARE / name, fs / name)
    if main_py is not None:
        (fs / "main.py").write_text(main_py)
    for name, text in (extra_files or {}).items():
        (fs / name).write_text(text)
    info_file = tmp_path / "info.json"
    info_file.unlink(missing_ok=True)
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "posguard_tools.cli",
            "vboard",
            *where,
            "--state",
            str(state),
            "--info",
            str(info_file),
            *more_args,
            *(["--chip", chip] if chip else []),
            *(["--frozen"] if frozen else []),
            *(["--from-source"] if from_source else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not info_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.communicate(timeout=5)[0]
            pytest.fail(f"virtual board did not start: {out}")
        time.sleep(0.05)
    time.sleep(0.05)  # the file is written in one go after the ports are open
    return Vboard(proc, json.loads(info_file.read_text()), fs, state)


def stop_vboard(vb: Vboard) -> str:
    if vb.proc.poll() is None:
        vb.proc.send_signal(signal.SIGTERM)
    try:
        return vb.proc.communicate(timeout=10)[0]
    except subprocess.TimeoutExpired:
        vb.proc.kill()
        return vb.proc.communicate(timeout=5)[0]


@pytest.fixture
def blank_board(tmp_path: Path) -> Iterator[Vboard]:
    """A board with an empty filesystem: no board.json, no firmware. The REPL must work anyway."""
    vb = start_vboard(tmp_path, with_board=False)
    yield vb
    stop_vboard(vb)


@pytest.fixture
def running_board(tmp_path: Path) -> Iterator[Vboard]:
    """A board with a profile and a main.py that runs forever (as the firmware does)."""
    vb = start_vboard(tmp_path, with_board=True, main_py=_FOREVER_MAIN)
    yield vb
    stop_vboard(vb)


def test_exec_runs_code_on_a_blank_board(blank_board: Vboard) -> None:
    assert blank_board.exec("print(1+1)") == "2"
    assert blank_board.exec("import sys; print(sys.implementation.name)") == "micropython"


def test_firmware_sees_a_boards_heap(blank_board: Vboard) -> None:
    free = int(blank_board.exec("import gc; gc.collect(); print(gc.mem_free())"))
    # sim_heap pins the VM's surplus: the REPL sees about an ESP32's 110 KB, not the VM's 320 KB.
    assert 90 * 1024 < free < 128 * 1024, free


def test_cp_ls_and_copy_back(blank_board: Vboard, tmp_path: Path) -> None:
    data = os.urandom(5000)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    blank_board.mpremote("fs", "mkdir", ":lib")
    blank_board.mpremote("cp", str(src), ":lib/blob.bin")
    assert (blank_board.fs / "lib" / "blob.bin").read_bytes() == data  # the VM's cwd is the board's fs
    listing = blank_board.mpremote("ls", ":lib").stdout
    assert "blob.bin" in listing
    back = tmp_path / "back.bin"
    blank_board.mpremote("cp", ":lib/blob.bin", str(back))
    assert back.read_bytes() == data
    blank_board.mpremote("rm", ":lib/blob.bin")
    assert not (blank_board.fs / "lib" / "blob.bin").exists()


def test_run_a_local_script(blank_board: Vboard, tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("x = 6\nprint('product', x * 7)\n")
    assert "product 42" in blank_board.mpremote("run", str(script)).stdout


def test_soft_reset_clears_ram_keeps_files(blank_board: Vboard) -> None:
    blank_board.exec("import builtins; builtins.MARK = 7; open('kept.txt', 'w').write('still here')")
    # `resume` skips mpremote's soft reset: RAM survives between two connections...
    assert blank_board.mpremote("resume", "exec", "print(MARK)").stdout.strip() == "7"
    # ...an explicit soft reset restarts the VM: RAM gone, filesystem kept.
    out = blank_board.mpremote(
        "resume", "soft-reset", "exec", "import builtins; print(hasattr(builtins, 'MARK'), open('kept.txt').read())"
    ).stdout
    assert out.strip() == "False still here"


def test_friendly_repl_after_mpremote_leaves(blank_board: Vboard) -> None:
    """After mpremote exits (Ctrl-B), a terminal user gets the friendly REPL and can type."""
    blank_board.exec("print('x')")
    fd = os.open(blank_board.port, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"\r21*2\r")
        seen = b""
        deadline = time.monotonic() + 10
        while b"42" not in seen and time.monotonic() < deadline:
            import select

            if select.select([fd], [], [], 0.2)[0]:
                seen += os.read(fd, 4096)
        assert b"42\r\n>>> " in seen, seen
    finally:
        os.close(fd)


def test_mpremote_interrupts_a_running_main_py(running_board: Vboard) -> None:
    time.sleep(0.5)  # main.py is looping by now
    assert running_board.exec("print('in')") == "in"
    # And again: the soft reset of the first session restarted the VM in raw mode (boot.py only).
    assert running_board.exec("print('again')") == "again"


def test_flash_persists_across_soft_reset(running_board: Vboard) -> None:
    write = (
        "import esp32\n"
        "p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label='journal')[0]\n"
        "p.writeblocks(1, b'posguard' + bytes(248), 0)\n"
        "import sim_vboard_boot as v; v.save_flash()\n"
    )
    running_board.exec(write)
    read = (
        "import esp32\n"
        "p = esp32.Partition.find(esp32.Partition.TYPE_DATA, label='journal')[0]\n"
        "b = bytearray(8); p.readblocks(1, b); print(bytes(b))\n"
    )
    assert running_board.exec(read) == "b'posguard'"  # a new VM process (mpremote soft-resets first)
    image = (running_board.run / "flash-journal.bin").read_bytes()
    assert image[4096:4104] == b"posguard"
    assert len(image) == 64 * 1024  # devkit-1s journal.size_kb


def test_control_power_cycle_reboots_the_firmware(running_board: Vboard) -> None:
    time.sleep(0.3)
    status = running_board.ctl("status")[0]
    assert status.startswith("ok power=on") and "boots=1" in status, status
    assert running_board.ctl("power off") == ["ok power off"]
    assert "power=off" in running_board.ctl("status")[0]
    assert running_board.ctl("power on") == ["ok power on"]
    deadline = time.monotonic() + 10
    status = ""
    while time.monotonic() < deadline:
        status = running_board.ctl("status")[0]
        if "boots=2" in status:
            break
        time.sleep(0.2)
    assert "boots=2" in status and "power=on" in status, status
    # The reset button: a fresh VM (RAM gone) whose firmware reads machine.HARD_RESET.
    assert running_board.ctl("reset") == ["ok reset"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "boots=3" not in running_board.ctl("status")[0]:
        time.sleep(0.2)
    cause = running_board.mpremote("resume", "exec", "import machine; print(machine.reset_cause())").stdout
    assert cause.strip() == "2"


def test_control_world_commands(running_board: Vboard) -> None:
    replies = running_board.ctl("temp 5", "age 10", "bogus", "temp 200", "age")
    assert replies[0].startswith("ok temp 5.0 C")
    assert replies[1] == "ok age fade 10 % resistance x1.50"
    assert replies[2].startswith("error unknown command")
    assert replies[3].startswith("error temperature")
    assert replies[4].startswith("error bad arguments")
    assert running_board.ctl("paper out", "cover open") == ["ok paper out", "ok cover open"]
    status = running_board.ctl("status")[0]
    assert "paper_mm=0 " in status and "cover=open" in status, status
    assert running_board.ctl("paper in", "cover closed") == ["ok paper in", "ok cover closed"]
    assert "paper_mm=30000 " in running_board.ctl("status")[0]
    assert running_board.ctl("paper", "cover ajar")[0].startswith("error usage")
    assert running_board.ctl("service hold")[0] == "ok service hold (GPIO0)"  # devkit-1s pins.service
    assert running_board.ctl("service")[0].startswith("error usage")


def test_speed_and_save(running_board: Vboard, tmp_path: Path) -> None:
    assert running_board.ctl("speed 50") == ["ok speed x50"]
    t0 = int(running_board.ctl("status")[0].split("clock_ms=")[1].split()[0])
    time.sleep(1.0)
    t1 = int(running_board.ctl("status")[0].split("clock_ms=")[1].split()[0])
    assert t1 - t0 > 20000, (t0, t1)  # about 50 virtual seconds per real one (scheduling aside)
    assert running_board.ctl("speed 0")[0].startswith("error")
    dest = tmp_path / "saved"
    assert running_board.ctl(f"save {dest}") == [f"ok saved to {dest}"]
    assert (dest / "fs" / "board.json").exists() and (dest / "fs" / "main.py").exists()


def test_world_outlives_a_soft_reset(running_board: Vboard) -> None:
    """A soft reset is a new VM process, but paper, temperature, buttons and time are outside the chip."""
    time.sleep(0.3)
    assert running_board.ctl("paper out", "temp 5", "service hold")[0] == "ok paper out"
    out = running_board.exec(
        "import sim_vboard_boot as v; w = v.world; "
        "print(w.printer.paper_mm_left, w.battery.temp_c, v.board.pin_level(0), w.clock.now_ms() > 0)"
    )
    assert out == "0.0 5.0 0 True", out


_ECHO_MAIN = """\
import json
import time
import machine
host = json.load(open("board.json"))["host"]
u = machine.UART(host["uart_id"], baudrate=host["baud"], tx=host["tx"], rx=host["rx"], timeout=0)
while True:
    n = u.any()
    if n:
        u.write(u.read(n).upper())
    time.sleep_ms(5)
"""


def test_host_link_reaches_the_boards_uart(tmp_path: Path) -> None:
    vb = start_vboard(tmp_path, with_board=True, main_py=_ECHO_MAIN)
    try:
        fd = os.open(vb.host, os.O_RDWR | os.O_NOCTTY)
        try:
            got = b""
            deadline = time.monotonic() + 15
            sent_at = 0.0
            while b"\n" not in got and time.monotonic() < deadline:
                if time.monotonic() - sent_at > 3:  # until main.py has its UART open, bytes fall on the floor
                    os.write(fd, b"sale 12.50\n")
                    sent_at = time.monotonic()
                import select

                if select.select([fd], [], [], 0.05)[0]:
                    got += os.read(fd, 256)
            assert got.endswith(b"SALE 12.50\n"), got
        finally:
            os.close(fd)
        assert "host_rx=" in vb.ctl("status")[0]
    finally:
        stop_vboard(vb)


def test_control_at_the_repl_is_not_queued(blank_board: Vboard) -> None:
    # No world runs on a blank board: a world command is refused, not kept to fire later...
    assert blank_board.ctl("temp 10")[0].startswith("error not applied")
    # ...but pulling the power still stops the board, and putting it back boots it.
    assert blank_board.ctl("power off")[0].startswith("ok power off")
    assert blank_board.ctl("status")[0].startswith("ok power=off")
    assert blank_board.ctl("power on")[0].startswith("ok power on")
    assert blank_board.exec("print(3*3)") == "9"


def test_ctl_client_reports_a_missing_board(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "posguard_tools.cli", "vboard", "--ctl", "127.0.0.1:1", "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert "no virtual board control channel at 127.0.0.1:1" in r.stderr


def test_board_newlines_like_a_board() -> None:
    conv = BoardNewlines()
    assert conv.convert(b"a\nb\r\nc") == b"a\r\nb\r\nc"
    # A \r at the end of one chunk and the \n at the start of the next are one board newline.
    assert conv.convert(b"x\r") == b"x\r"
    assert conv.convert(b"\ny\n") == b"\ny\r\n"


def test_mpremote_repl_session(blank_board: Vboard) -> None:
    """`make repl`: mpremote's interactive REPL on a terminal, a line typed, Ctrl-] to leave."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: mpremote on a terminal, as a user runs it
        os.execv(paths.venv_bin("mpremote"), ["mpremote", "connect", blank_board.port, "repl"])
    out = b""

    def pump(seconds: float, until: bytes) -> None:
        nonlocal out
        deadline = time.monotonic() + seconds
        while until not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    try:
        pump(15, b"exit this shell")
        os.write(fd, b"\r")
        pump(10, b">>> ")
        os.write(fd, b"6*7\r")
        pump(10, b"42")
        assert b"42" in out, out
        os.write(fd, b"\x1d")  # Ctrl-]
        deadline = time.monotonic() + 10
        status = None
        while status is None and time.monotonic() < deadline:
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
            time.sleep(0.05)
        assert status == 0, out
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
