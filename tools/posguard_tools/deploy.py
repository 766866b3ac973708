"""Deploy the firmware to a board (or a virtual board) through mpremote.

1. Build: every `firmware/posguard/**.py` compiled with mpy-cross (`-march`, `-O2`) to `.mpy`, data files
   as they are, `boot.py`/`main.py` as `.py` (MicroPython runs those two by name), and the chosen
   board profile, validated, as `board.json`; the micropython-lib packages the profile needs (umqtt.simple
   with a `network` section) as `lib/*.mpy`, from the pinned copy (mpylib), unless the build is frozen.
2. Probe the device: it must answer as a MicroPython REPL, and its `sys.implementation._mpy` must load
   every produced `.mpy` (see `mpy_loadable`).
3. Copy only what changed against the hash manifest on the device (`.posguard-manifest.json`), into the
   staging folder `.staging/`; then one script on the device moves the staged files into place, removes
   files the new build no longer has and writes the new manifest last. A failed or interrupted copy
   leaves the live files untouched; the next deploy clears `.staging/` first, even when nothing changed.
   Ctrl-C ends a deploy with one line and exit 130 (DeployInterrupted); during the switch it waits for
   the switch to finish, so the live files are never half old, half new.
4. Soft reset in the friendly REPL (Ctrl-D), so `boot.py` and `main.py` run: mpremote's own
   `soft-reset` resets in the raw REPL, where MicroPython skips `main.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posguard_tools import deploy_heapcheck, maintenance, mpylib, paths, port_diag

MANIFEST = ".posguard-manifest.json"
STAGING = ".staging"
MPY_ARCHES = {  # mpy-cross -march names -> MP_NATIVE_ARCH_* numbers (py/persistentcode.h)
    "x86": 1,
    "x64": 2,
    "armv6": 3,
    "armv6m": 4,
    "armv7m": 5,
    "armv7em": 6,
    "armv7emsp": 7,
    "armv7emdp": 8,
    "xtensa": 9,
    "xtensawin": 10,
    "rv32imc": 11,
    "rv64imc": 12,
}
ARCH_NAMES = {v: k for k, v in MPY_ARCHES.items()}
DEFAULT_MARCH = "xtensawin"  # ESP32, ESP32-S2, ESP32-S3 (docs/reference/micropython-runtime.md)
_MPREMOTE_TIMEOUT_S = 120  # a whole copy of the firmware over 115200 baud fits with room
PROBE_TIMEOUT_S = 20.0  # mpremote blocks forever on a silent pty: the probe gives up after this
# Live files are switched in this order: the package first, the entry points last, so a reset in the
# middle of the switch boots either the old entry points or a complete new package.
_SWITCH_LAST = ("board.json", "boot.py", "main.py")


class DeployError(Exception):
    """A deploy that cannot go on; the message says why and what to do."""


class DeployInterrupted(KeyboardInterrupt):
    """Ctrl-C: the message says what the device holds now (one line for the user)."""


@dataclass(frozen=True)
class Artifact:
    dest: str  # path on the device, relative to its filesystem root
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# -- .mpy versions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MpyHeader:
    version: int
    sub_version: int
    arch: int  # 0: bytecode only, loads on any arch of the same version

    def describe(self) -> str:
        """As a file: bytecode-only files carry no sub-version (their flags byte is 0)."""
        if self.arch == 0:
            return f"mpy v{self.version} (bytecode only)"
        return f"mpy v{self.version}.{self.sub_version} (native code for {ARCH_NAMES.get(self.arch, self.arch)})"

    def describe_device(self) -> str:
        return f"mpy v{self.version}.{self.sub_version}, native arch {ARCH_NAMES.get(self.arch, self.arch)}"


def mpy_header(data: bytes) -> MpyHeader:
    """The 4-byte .mpy header: 'M', version, flags (arch << 2 | sub-version), small-int bits."""
    if len(data) < 4 or data[0] != ord("M"):
        raise ValueError("not a .mpy file")
    return MpyHeader(version=data[1], sub_version=data[2] & 3, arch=data[2] >> 2)


def device_mpy(mpy: int) -> MpyHeader:
    """sys.implementation._mpy = version | sub-version << 8 | arch << 10 (py/modsys.c)."""
    return MpyHeader(version=mpy & 0xFF, sub_version=(mpy >> 8) & 3, arch=mpy >> 10)


def mpy_loadable(file: MpyHeader, device: MpyHeader) -> bool:
    """What MicroPython's loader accepts: the same version; native code only for the same arch and
    sub-version. A bytecode-only file (arch 0) loads on every port of that version, which is why an
    xtensawin build without @native code runs on the unix port of the virtual board."""
    if file.version != device.version:
        return False
    if file.arch == 0:
        return True
    return file.arch == device.arch and file.sub_version == device.sub_version


# -- build --------------------------------------------------------------------------------------
def load_profile(board: str) -> bytes:
    """The board profile's bytes, validated by the firmware's own validator (what boot would do)."""
    path = paths.board_profile(board)  # FileNotFoundError names the known profiles
    if str(paths.FIRMWARE) not in sys.path:
        sys.path.insert(0, str(paths.FIRMWARE))
    if "micropython" not in sys.modules:
        # The validator of a `network` section (posguard/netconfig.py) imports micropython.const: the
        # simulator's CPython stand-in, loaded by path (simhw on sys.path would shadow CPython's time).
        spec = importlib.util.spec_from_file_location("micropython", paths.SIMHW / "micropython.py")
        assert spec is not None and spec.loader is not None
        sys.modules["micropython"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["micropython"])
    profile = importlib.import_module("posguard.profile")
    data = path.read_bytes()
    try:
        profile.validate(json.loads(data))
    except ValueError as e:  # ProfileError, and bad JSON
        raise DeployError(f"board profile {path} is invalid: {e}") from e
    return data


def compile_mpy(src: Path, march: str, out: Path, source_name: str | None = None) -> bytes:
    """mpy-cross one file. source_name is what tracebacks on the board show (default: the host path).
    A previous output is reused when the source and the options are byte for byte the same (the key
    sits next to it as NAME.mpy.key): a deploy that changes one file compiles one file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    key_file = out.with_name(out.name + ".key")
    key = hashlib.sha256(src.read_bytes() + f"|{march}|-O2|{source_name}".encode()).hexdigest()
    if out.exists() and key_file.exists() and key_file.read_text() == key:
        return out.read_bytes()
    key_file.unlink(missing_ok=True)
    name = ["-s", source_name] if source_name else []
    r = subprocess.run(
        [paths.venv_bin("mpy-cross"), f"-march={march}", "-O2", *name, "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0:
        raise DeployError(f"mpy-cross rejected {src}: {(r.stderr or r.stdout).strip()}")
    key_file.write_text(key)
    return out.read_bytes()


def build(
    board: str,
    march: str = DEFAULT_MARCH,
    firmware: Path = paths.FIRMWARE,
    out: Path | None = None,
    frozen: bool = False,
) -> list[Artifact]:
    """frozen: the board runs a build with the package frozen in (firmware/manifest.py): copy no .mpy
    (on the filesystem they would shadow the frozen modules), only data files, entry points, profile.
    Not frozen: the micropython-lib dependencies the profile needs (mpylib.deps_for: umqtt.simple with a
    `network` section) go along as lib/*.mpy, compiled from the pinned copy in .venv/mpy-lib; a frozen
    build has them frozen in (manifest.py require)."""
    if march not in MPY_ARCHES:
        raise DeployError(f"unknown -march {march!r} (mpy-cross knows: {', '.join(MPY_ARCHES)})")
    out = out or paths.OUT / "deploy" / f"{board}-{march}"
    arts: list[Artifact] = []
    pkg = firmware / "posguard"
    for src in sorted(pkg.rglob("*")):
        if not src.is_file() or "__pycache__" in src.parts or src.suffix == ".pyc":
            continue
        rel = src.relative_to(firmware)
        if src.suffix == ".py":
            if frozen:
                continue
            dest = rel.with_suffix(".mpy").as_posix()
            arts.append(Artifact(dest, compile_mpy(src, march, out / dest, rel.as_posix())))
        else:
            raise DeployError(f"{rel}: only Python inside the package; data files belong in firmware/data/")
    # Data files go beside the package, never inside it: a posguard/ directory on the filesystem comes
    # before .frozen on sys.path and would hide a frozen package (posguard/gb.py data_path).
    for src in sorted((firmware / "data").glob("*")) if (firmware / "data").is_dir() else []:
        if src.is_file():
            arts.append(Artifact("data/" + src.name, src.read_bytes()))
    profile = load_profile(board)
    if not frozen:
        for dest, src in dependency_sources(json.loads(profile)):
            arts.append(Artifact(dest, compile_mpy(src, march, out / dest, dest[: -len(".mpy")] + ".py")))
    for name in ("boot.py", "main.py"):
        arts.append(Artifact(name, (firmware / name).read_bytes()))
    arts.append(Artifact("board.json", profile))
    return arts


def dependency_sources(profile: dict[str, Any]) -> list[tuple[str, Path]]:
    """(lib/NAME.mpy on the board, the pinned .py here) for each dependency file the profile needs. /lib
    is on a board's sys.path after '' and .frozen (docs/reference/esp32-port.md), where mip installs too."""
    try:
        return [("lib/" + rel[: -len(".py")] + ".mpy", src) for rel, src in mpylib.deps_for(profile)]
    except (OSError, RuntimeError) as e:
        raise DeployError(
            f"cannot get the pinned MicroPython libraries the profile needs into {mpylib.LIB_DIR} ({e}): "
            "run `make setup` (it installs them)"
        ) from e


def check_loadable(arts: list[Artifact], device: MpyHeader) -> None:
    bad = []
    for a in arts:
        if a.dest.endswith(".mpy"):
            h = mpy_header(a.data)
            if not mpy_loadable(h, device):
                bad.append((a.dest, h))
    if not bad:
        return
    listing = "\n  ".join(f"{d}: {h.describe()}" for d, h in bad[:8])
    if any(h.version != device.version for _, h in bad):
        fix = (
            "Flash a MicroPython whose .mpy version matches mpy-cross's (v6.3: MicroPython 1.23 or newer), "
            "or install the mpy-cross of the device's version."
        )
    else:
        fix = f"The files hold native code for another arch: rebuild with --march {ARCH_NAMES.get(device.arch, '?')}."
    raise DeployError(
        f"the device's MicroPython loads {device.describe_device()} and cannot load {len(bad)} file(s) of this "
        f"build:\n  {listing}\n{fix}"
    )


# -- the device ---------------------------------------------------------------------------------
_PROBE = (
    "import sys\n"
    "m = getattr(sys.implementation, '_mpy', -1)\n"
    "try:\n"
    "    f = open('" + MANIFEST + "'); t = f.read(); f.close()\n"
    "except OSError:\n"
    "    t = ''\n"
    "print('POSGUARD-PROBE %s %d %s' % (sys.implementation.name, m, sys.platform))\n"
    "print('POSGUARD-MANIFEST ' + t.replace(chr(10), ' '))\n"
    "import os\n"
    "try:\n"
    "    os.stat('" + STAGING + "')\n"
    "    print('POSGUARD-STAGING')\n"
    "except OSError:\n"
    "    pass\n"
) + maintenance.STATE_SCRIPT + deploy_heapcheck.PROBE_SNIPPET  # state first: the snippet drops posguard.*


@dataclass
class Device:
    port: str
    impl: str
    mpy: int
    platform: str
    manifest: dict[str, str]
    state: maintenance.State | None = None
    free_heap: int | None = None  # gc.mem_free() with posguard's modules dropped (deploy_heapcheck)
    staging: bool = False  # a .staging/ folder an interrupted or failed deploy left


def mpremote(
    port: str, *args: str, timeout: float = _MPREMOTE_TIMEOUT_S, own_session: bool = False
) -> subprocess.CompletedProcess[str]:
    """own_session: the terminal's Ctrl-C does not reach this mpremote (the switch must finish)."""
    try:
        return subprocess.run(
            [paths.venv_bin("mpremote"), "connect", port, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=own_session,
        )
    except subprocess.TimeoutExpired as e:
        raise DeployError(port_diag.explain_silence(port, timeout)) from e


def _explain(port: str, r: subprocess.CompletedProcess[str]) -> str:
    text = (r.stderr + r.stdout).strip()
    better = port_diag.explain_failure(port, text)
    if better:
        return better
    if "failed to access" in text or "No such file" in text or "could not open port" in text:
        return f"{port}: no device there (check the cable and `mpremote devs`): {text.splitlines()[-1]}"
    if "could not enter raw repl" in text:
        return (
            f"{port}: the device does not answer as a MicroPython REPL (a different firmware, or busy): {text[-200:]}"
        )
    return f"{port}: mpremote failed: {text[-400:]}"


def probe(port: str, timeout: float = PROBE_TIMEOUT_S) -> Device:
    problem = port_diag.open_problem(port)
    if problem:
        raise DeployError(problem)
    # `resume`: no soft reset first, so the probe still sees whether posguard's terminal was running.
    r = mpremote(port, "resume", "exec", _PROBE, timeout=timeout)
    if r.returncode != 0:
        raise DeployError(_explain(port, r))
    m = re.search(r"POSGUARD-PROBE (\S+) (-?\d+) (\S+)", r.stdout)
    if not m:
        raise DeployError(f"{port}: the device answered, but not like MicroPython: {r.stdout[-200:]!r}")
    if m.group(1) != "micropython":
        raise DeployError(f"{port}: runs {m.group(1)}, not MicroPython")
    man: dict[str, str] = {}
    mm = re.search(r"POSGUARD-MANIFEST (.*)", r.stdout)
    if mm and mm.group(1).strip():
        try:
            loaded = json.loads(mm.group(1))
            man = {str(k): str(v) for k, v in loaded.get("files", {}).items()}
        except (ValueError, AttributeError):
            man = {}  # a damaged manifest: copy everything
    return Device(port, m.group(1), int(m.group(2)), m.group(3), man, maintenance.parse_state(r.stdout),
                  deploy_heapcheck.free_heap_from_probe(r.stdout), "POSGUARD-STAGING" in r.stdout)


@dataclass
class Plan:
    copy: list[Artifact]
    unchanged: list[Artifact]
    remove: list[str]
    manifest: bytes


def plan(arts: list[Artifact], on_device: dict[str, str], force: bool = False) -> Plan:
    """What to copy, against the device's manifest, not mpremote's own check. `mpremote cp` skips a file
    whose destination already has the same SHA-256 (mpremote 1.29.0 commands.py:173-184, unless -f:
    commands.py:446-449), but deploy copies into a freshly emptied `.staging/`, where that check can never
    match: it would cost two raw-REPL round trips per file for nothing (transport.py:249-262, hence
    `cp -f` in upload). Staging is what keeps the switch atomic, and the manifest is what lets it stage
    only the changed files; it also knows which files the old build had that the new one lacks (mpremote
    cannot: it compares one destination at a time), and says "up to date" in one probe."""
    copy = [a for a in arts if force or on_device.get(a.dest) != a.sha256]
    unchanged = [a for a in arts if a not in copy]
    remove = sorted(set(on_device) - {a.dest for a in arts})
    manifest = json.dumps({"format": 1, "files": {a.dest: a.sha256 for a in arts}}, sort_keys=True).encode()
    return Plan(copy, unchanged, remove, manifest)


def _switch_script(p: Plan) -> str:
    dests = {a.dest for a in p.copy}
    moves = sorted(d for d in dests if d not in _SWITCH_LAST) + [d for d in _SWITCH_LAST if d in dests]
    return (
        "import os\n"
        f"S = {STAGING!r}\n"
        + _MKDIR_P
        +
        f"for d in {moves!r}:\n"
        "    if '/' in d:\n"
        "        mk(d[:d.rfind('/')])\n"
        "    os.rename(S + '/' + d, d)\n"
        f"for d in {p.remove!r}:\n"
        "    try:\n"
        "        os.remove(d)\n"
        "    except OSError:\n"
        "        pass\n"
        # Folders left empty go too: an empty posguard/ would still shadow a frozen package.
        f"for d in {_emptied_dirs(p)!r}:\n"
        "    try:\n"
        "        os.rmdir(d)\n"
        "    except OSError:\n"
        "        pass\n"
        f"os.rename(S + '/' + {MANIFEST!r}, {MANIFEST!r})\n" + _RMTREE + "rmtree(S)\n"
        "print('POSGUARD-SWITCHED')\n"
    )


def _prefixes(path: str) -> list[str]:
    """The folders above a file: 'a/b/c.mpy' -> ['a/b', 'a']."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _emptied_dirs(p: Plan) -> list[str]:
    """Folders of removed files that the new build does not use, deepest first."""
    used = {d for a in p.copy + p.unchanged for d in _prefixes(a.dest)}
    gone = {d for r in p.remove for d in _prefixes(r)}
    return sorted(gone - used, key=lambda d: (-d.count("/"), d))


# Device-side helpers spliced into the scripts deploy runs on the board (MicroPython has no makedirs).
_MKDIR_P = (
    "def mk(d):\n"
    "    p = ''\n"
    "    for part in d.split('/'):\n"
    "        p = part if not p else p + '/' + part\n"
    "        try:\n"
    "            os.mkdir(p)\n"
    "        except OSError:\n"
    "            pass\n"
)
_RMTREE = (
    "def rmtree(d):\n"
    "    try:\n"
    "        ents = list(os.ilistdir(d))\n"
    "    except OSError:\n"
    "        return\n"
    "    for e in ents:\n"
    "        p = d + '/' + e[0]\n"
    "        if e[1] == 0x4000:\n"
    "            rmtree(p)\n"
    "        else:\n"
    "            os.remove(p)\n"
    "    os.rmdir(d)\n"
)


def _prepare_staging_script(p: Plan) -> str:
    dirs = sorted({STAGING + "/" + a.dest.rsplit("/", 1)[0] for a in p.copy if "/" in a.dest})
    return (
        "import os\n" + _RMTREE + f"rmtree({STAGING!r})\n"  # what a failed deploy left
        + _MKDIR_P
        + f"for d in {[STAGING] + dirs!r}:\n"
        "    mk(d)\n"
    )


def upload(port: str, p: Plan, build_dir: Path) -> None:
    """Copy the plan's files to the staging folder, then switch them live in one script."""
    build_dir.mkdir(parents=True, exist_ok=True)
    args = ["exec", _prepare_staging_script(p)]
    for a in p.copy:
        local = build_dir / "upload" / a.dest
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(a.data)
        args += ["+", "cp", "-f", str(local), f":{STAGING}/{a.dest}"]  # -f: see plan()
    man = build_dir / "upload" / MANIFEST
    man.write_bytes(p.manifest)
    args += ["+", "cp", "-f", str(man), f":{STAGING}/{MANIFEST}"]
    try:
        r = mpremote(port, *args)
    except KeyboardInterrupt as e:
        raise DeployInterrupted(
            f"while copying to {STAGING}/: the live files are untouched; the next deploy clears {STAGING}/"
        ) from e
    if r.returncode != 0:
        raise DeployError(
            _explain(port, r) + "\nThe live files were not touched (the copy went to the staging folder)."
        )
    with _sigint_deferred() as interrupted:
        r = mpremote(port, "resume", "exec", _switch_script(p), own_session=True)
    if r.returncode != 0 or "POSGUARD-SWITCHED" not in r.stdout:
        raise DeployError(_explain(port, r) + "\nThe switch from the staging folder did not finish: deploy again.")
    if interrupted:
        raise DeployInterrupted("after the switch finished: the new files are live; reset the board to run them")


def clear_staging(port: str) -> None:
    """Remove the .staging/ an interrupted or failed deploy left (a deploy with nothing to copy too)."""
    r = mpremote(port, "resume", "exec", "import os\n" + _RMTREE + f"rmtree({STAGING!r})\nprint('POSGUARD-CLEARED')\n")
    if r.returncode != 0 or "POSGUARD-CLEARED" not in r.stdout:
        raise DeployError(_explain(port, r) + f"\nCould not remove the leftover {STAGING}/: deploy again.")


@contextmanager
def _sigint_deferred() -> Iterator[list[int]]:
    """Hold Ctrl-C until the block ends; the list says whether one came (the caller acts on it)."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield got
    finally:
        signal.signal(signal.SIGINT, old)


def soft_reset_friendly(port: str, timeout: float = 10.0) -> bool:
    """Ctrl-D in the friendly REPL (mpremote leaves it there): the board reruns boot.py and main.py."""
    import serial  # pyserial, installed with mpremote

    try:
        with serial.Serial(port, 115200, timeout=0.1) as s:
            s.write(b"\r\x02")  # friendly REPL, whatever the last client left
            time.sleep(0.1)
            s.reset_input_buffer()
            s.write(b"\x04")
            seen = b""
            deadline = time.monotonic() + timeout
            while b"soft reboot" not in seen and time.monotonic() < deadline:
                seen += s.read(256)
            return b"soft reboot" in seen
    except (OSError, serial.SerialException):
        return False


@dataclass
class Report:
    device: Device
    plan: Plan
    restarted: bool
    serviced: bool = False  # the terminal was trading: the copy ran in service mode, then it restarted
    cleared_staging: bool = False  # removed a .staging/ an interrupted deploy left

    def lines(self) -> list[str]:
        p, d = self.plan, self.device
        out = [f"device {d.port}: {d.impl} on {d.platform}, loads {device_mpy(d.mpy).describe_device()}"]
        for a in p.copy:
            out.append(f"  copied   {a.dest} ({len(a.data)} B)")
        for gone in p.remove:
            out.append(f"  removed  {gone}")
        out.append(f"  {len(p.copy)} copied, {len(p.unchanged)} unchanged, {len(p.remove)} removed")
        if self.cleared_staging:
            out.append(f"  cleared {STAGING}/ left by an interrupted deploy")
        elif d.staging and not (p.copy or p.remove):
            out.append(f"  {STAGING}/ left by an interrupted deploy: a deploy (not a dry run) clears it")
        if self.serviced:
            out.insert(1, "  the terminal was trading: restarted into service mode (no watchdog) for the copy")
        if p.copy or p.remove:
            out.append(
                "  switched the staging folder live; "
                + (
                    "restarted into trading (machine.reset): boot.py and main.py running"
                    if self.serviced
                    else "soft reset: boot.py and main.py running"
                    if self.restarted
                    else "soft reset not confirmed: press reset"
                )
            )
        elif self.serviced:
            out.append("  already up to date: nothing copied; restarted into trading")
        else:
            out.append("  already up to date: nothing copied, no reset")
        return out


def deploy(
    port: str,
    board: str,
    march: str = DEFAULT_MARCH,
    force: bool = False,
    dry_run: bool = False,
    probe_timeout: float = PROBE_TIMEOUT_S,
    frozen: bool = False,
    firmware: Path = paths.FIRMWARE,
) -> Report:
    if not (firmware / "posguard").is_dir():
        raise DeployError(f"{firmware} holds no firmware (no posguard/ package in it)")
    # What the device holds if Ctrl-C comes now: the one line DeployInterrupted prints (upload says its own).
    phase = ["before any copy: the live files are unchanged"]
    try:
        return _deploy(port, board, march, force, dry_run, probe_timeout, frozen, firmware, phase)
    except DeployInterrupted:
        raise
    except KeyboardInterrupt as e:
        raise DeployInterrupted(phase[0]) from e


def _deploy(
    port: str,
    board: str,
    march: str,
    force: bool,
    dry_run: bool,
    probe_timeout: float,
    frozen: bool,
    firmware: Path,
    phase: list[str],
) -> Report:
    arts = build(board, march, firmware=firmware, frozen=frozen)
    dev = probe(port, probe_timeout)
    if dev.mpy < 0:
        raise DeployError(
            f"{port}: this MicroPython has no sys.implementation._mpy (older than 1.19): it cannot load "
            f"mpy v6 files; flash MicroPython 1.23 or newer"
        )
    check_loadable(arts, device_mpy(dev.mpy))
    if dry_run:
        _check_heap(port, dev, arts, frozen)
        return Report(dev, plan(arts, dev.manifest, force), False)
    # The probe interrupted a trading terminal: its watchdog is still counting (issue 13, item 5).
    try:
        serviced = dev.state is not None and maintenance.enter(port, dev.state)
    except maintenance.MaintenanceError as e:
        raise DeployError(str(e)) from e
    cleared = False
    try:
        if serviced:
            dev = probe(port, probe_timeout)  # in service mode: the heap as the new firmware will find it
        _check_heap(port, dev, arts, frozen)
        p = plan(arts, dev.manifest, force)
        if p.copy or p.remove:
            upload(port, p, paths.OUT / "deploy" / f"{board}-{march}")  # clears .staging/ first
            phase[0] = "after the switch: the new files are live; " + (
                "restarted into trading" if serviced else "reset the board to run them")
        elif dev.staging:
            clear_staging(port)
            cleared = True
    except BaseException:
        if serviced:
            _leave(port)
        raise
    if serviced and _leave(port):
        raise KeyboardInterrupt
    if not (p.copy or p.remove):
        return Report(dev, p, serviced, serviced, cleared)
    return Report(dev, p, serviced or soft_reset_friendly(port), serviced)


def _leave(port: str) -> bool:
    """Back to trading (its watchdog must run again), even after a Ctrl-C; True if one came meanwhile."""
    with _sigint_deferred() as interrupted:
        maintenance.leave(port)
    return bool(interrupted)


def _check_heap(port: str, dev: Device, arts: list[Artifact], frozen: bool) -> None:
    msg = deploy_heapcheck.check(port, dev.free_heap, {a.dest: a.data for a in arts}, frozen)
    if msg:
        raise DeployError(msg)


# -- mip ----------------------------------------------------------------------------------------
def package_json(firmware: Path = paths.FIRMWARE, version: str = "0.1.0") -> dict[str, Any]:
    """mip's package.json for the posguard package: every file of firmware/posguard and firmware/data
    (installed as TARGET/data/, beside the package, where posguard/gb.py looks), as source, with
    URLs relative to the package.json (mip and `mpremote mip install` resolve them against its location).
    boot.py, main.py and board.json are not in it: mip installs into /lib, a board runs them from /.
    deps: the micropython-lib packages the firmware imports (mpylib.MIP_DEPS: umqtt.simple for telemetry), at
    the version mpylib pins for the tests; mip fetches them from its index (`--index` to use another)."""
    files = sorted(
        p.relative_to(firmware).as_posix()
        for top in ("posguard", "data")
        for p in (firmware / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    return {"urls": [[f, f] for f in files], "deps": [list(d) for d in mpylib.MIP_DEPS], "version": version}


def write_package_json(firmware: Path = paths.FIRMWARE) -> Path:
    path = firmware / "package.json"
    pkg = package_json(firmware)
    urls = ",\n".join("    " + json.dumps(u) for u in pkg["urls"])
    deps = ",\n".join("    " + json.dumps(d) for d in pkg["deps"])
    path.write_text(f'{{\n  "urls": [\n{urls}\n  ],\n  "deps": [\n{deps}\n  ],\n'
                    f'  "version": {json.dumps(pkg["version"])}\n}}\n')
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m posguard_tools.deploy",
        description="firmware/package.json for mip (a board is deployed with `posguard deploy`)",
    )
    parser.add_argument("--package-json", action="store_true", help="regenerate firmware/package.json")
    args = parser.parse_args(argv)
    if not args.package_json:
        parser.error("nothing to do: --package-json regenerates firmware/package.json")
    print(f"wrote {write_package_json()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
