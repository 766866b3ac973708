"""posguard deploy: the build, the .mpy compatibility rule (checked against the real unix-port loader),
the change plan, and a deploy through mpremote to a virtual board, including the bad-input paths."""

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
from test_telemetry_broker import network
from test_vboard import Vboard, start_vboard, stop_vboard

from posguard_tools import deploy, deploy_heapcheck, mpylib, paths

UNIX_PORT_MPY = 2822  # what the unix port reports (docs/reference/micropython-runtime.md)


def _posguard(*args: str, timeout: float = 180, boards: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The posguard command in a fresh process; boards: the folder its profiles come from (default boards/)."""
    cmd = [sys.executable, "-m", "posguard_tools.cli"]
    if boards is not None:
        cmd = [sys.executable, "-c", _WITH_BOARDS, str(boards)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


_WITH_BOARDS = (
    "import sys; from pathlib import Path; from posguard_tools import cli, paths; "
    "paths.BOARDS = Path(sys.argv.pop(1)); raise SystemExit(cli.main(sys.argv[1:]))"
)


@pytest.fixture
def net_boards(tmp_path: Path) -> Path:
    """boards/ plus pos-2s-net: pos-2s with a network section (telemetry, so umqtt.simple on the board)."""
    boards = tmp_path / "boards"
    shutil.copytree(paths.BOARDS, boards)
    prof = json.loads(paths.board_profile("pos-2s").read_text())
    prof["network"] = network("mqtt://127.0.0.1:9")  # nothing listens: the terminal backs off
    (boards / "pos-2s-net.json").write_text(json.dumps(prof))
    return boards


# -- .mpy rule --------------------------------------------------------------------------------------
def test_device_mpy_decodes_the_unix_port() -> None:
    h = deploy.device_mpy(UNIX_PORT_MPY)
    assert (h.version, h.sub_version, deploy.ARCH_NAMES[h.arch]) == (6, 3, "x64")


def _compile(tmp_path: Path, name: str, src: str, march: str) -> Path:
    py = tmp_path / f"{name}.py"
    py.write_text(src)
    out = tmp_path / f"{name}.mpy"
    deploy.compile_mpy(py, march, out)
    return out


def _unix_port_imports(tmp_path: Path, name: str) -> bool:
    r = subprocess.run(
        [paths.venv_bin("micropython"), "-c", f"import {name}; print({name}.f())"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "MICROPYPATH": str(tmp_path)},
    )
    return r.returncode == 0 and r.stdout.strip() == "42"


@pytest.mark.parametrize(
    ("src", "march"),
    [
        ("def f():\n    return 42\n", "xtensawin"),
        ("import micropython\n@micropython.native\ndef f():\n    return 42\n", "xtensawin"),
        ("import micropython\n@micropython.native\ndef f():\n    return 42\n", "x64"),
    ],
    ids=["bytecode-xtensawin", "native-xtensawin", "native-x64"],
)
def test_mpy_rule_predicts_the_real_loader(tmp_path: Path, src: str, march: str) -> None:
    name = "m_" + march + ("_nat" if "native" in src else "_bc")
    mpy = _compile(tmp_path, name, src, march)
    predicted = deploy.mpy_loadable(deploy.mpy_header(mpy.read_bytes()), deploy.device_mpy(UNIX_PORT_MPY))
    (tmp_path / f"{name}.py").unlink()  # import the .mpy, not the source
    assert predicted == _unix_port_imports(tmp_path, name)
    assert predicted == ("native" not in src or march == "x64")


def test_other_mpy_version_is_refused_with_a_clear_message() -> None:
    arts = deploy.build("devkit-1s")
    old_esp32 = deploy.device_mpy(5 | (deploy.MPY_ARCHES["xtensawin"] << 10))  # MicroPython 1.19-1.21
    with pytest.raises(deploy.DeployError, match=r"(?s)cannot load \d+ file\(s\).*1\.23 or newer"):
        deploy.check_loadable(arts, old_esp32)
    deploy.check_loadable(arts, deploy.device_mpy(UNIX_PORT_MPY))  # bytecode only: fine on x64


# -- build and plan ---------------------------------------------------------------------------------
def test_build_compiles_the_package_and_keeps_entry_points() -> None:
    arts = {a.dest: a for a in deploy.build("devkit-1s")}
    sources = sorted(
        p.relative_to(paths.FIRMWARE).with_suffix(".mpy").as_posix()
        for p in (paths.FIRMWARE / "posguard").rglob("*.py")
    )
    assert sources and all(s in arts for s in sources)
    assert not any(d.endswith(".py") and d not in ("boot.py", "main.py") for d in arts)
    assert arts["boot.py"].data == (paths.FIRMWARE / "boot.py").read_bytes()
    assert arts["main.py"].data == (paths.FIRMWARE / "main.py").read_bytes()
    assert json.loads(arts["board.json"].data)["name"] == "devkit-1s"
    for s in sources:
        h = deploy.mpy_header(arts[s].data)
        assert h.version == 6, s
        # Tracebacks on the board name the board's file, not this machine's checkout path.
        assert s[:-4].encode() + b".py" in arts[s].data and str(paths.ROOT).encode() not in arts[s].data


def test_frozen_build_copies_no_package_code() -> None:
    arts = {a.dest for a in deploy.build("devkit-1s", frozen=True)}
    assert {"boot.py", "main.py", "board.json"} <= arts
    assert not any(d.endswith((".mpy", ".py")) and "/" in d for d in arts)
    data = {p.relative_to(paths.FIRMWARE).as_posix() for p in (paths.FIRMWARE / "data").glob("*")}
    assert data <= arts  # data files cannot be frozen: they stay on the filesystem


def test_a_network_profile_brings_its_dependency_compiled(net_boards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """umqtt.simple (telemetry's MQTT client) goes to lib/ as .mpy, from the pinned copy, only when the
    profile has a network section and the board does not run a frozen build (which has it frozen in)."""
    monkeypatch.setattr(paths, "BOARDS", net_boards)
    arts = {a.dest: a for a in deploy.build("pos-2s-net")}
    dep = arts["lib/umqtt/simple.mpy"]
    assert deploy.mpy_header(dep.data).version == 6
    assert b"lib/umqtt/simple.py" in dep.data and str(mpylib.LIB_DIR).encode() not in dep.data
    assert [d for d in arts if d.startswith("lib/")] == ["lib/umqtt/simple.mpy"]
    assert not any(d.startswith("lib/") for d in (a.dest for a in deploy.build("pos-2s")))
    assert not any(d.startswith("lib/") for d in (a.dest for a in deploy.build("pos-2s-net", frozen=True)))
    # The heap check imports it from lib/ as the board does, so its code is counted.
    assert deploy_heapcheck.code_heap_bytes({dep.dest: dep.data}) > 1024
    plain = deploy_heapcheck.plan_for("pos-2s")
    assert deploy_heapcheck.plan_for("pos-2s-net").code > plain.code


def test_a_network_profile_validates_outside_pytest(net_boards: Path) -> None:
    """The network section's validator imports micropython.const, which only the simulator provides on
    CPython: the posguard command (no simulator on its path) must validate such a profile too."""
    r = _posguard("deploy", "--port", "/dev/does-not-exist", "--board", "pos-2s-net", boards=net_boards)
    assert r.returncode == 1 and "/dev/does-not-exist: no such port" in r.stderr, r.stderr


def test_unknown_board_profile_is_refused() -> None:
    r = _posguard("deploy", "--port", "/dev/null", "--board", "no-such-board")
    assert r.returncode == 2
    assert "no board profile 'no-such-board'" in r.stderr and "devkit-1s" in r.stderr


def test_invalid_profile_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prof = json.loads(paths.board_profile("devkit-1s").read_text())
    del prof["journal"]["label"]
    (tmp_path / "broken.json").write_text(json.dumps(prof))
    monkeypatch.setattr(paths, "BOARDS", tmp_path)
    with pytest.raises(deploy.DeployError, match="journal.label"):
        deploy.load_profile("broken")


def test_plan_copies_only_what_changed() -> None:
    a = deploy.Artifact("posguard/a.mpy", b"one")
    b = deploy.Artifact("posguard/b.mpy", b"two")
    on_device = {"posguard/a.mpy": a.sha256, "posguard/b.mpy": "0" * 64, "posguard/gone.mpy": "1" * 64}
    p = deploy.plan([a, b], on_device)
    assert [x.dest for x in p.copy] == ["posguard/b.mpy"]
    assert [x.dest for x in p.unchanged] == ["posguard/a.mpy"]
    assert p.remove == ["posguard/gone.mpy"]
    assert json.loads(p.manifest)["files"] == {"posguard/a.mpy": a.sha256, "posguard/b.mpy": b.sha256}
    assert len(deploy.plan([a, b], on_device, force=True).copy) == 2


# -- through mpremote to a virtual board --------------------------------------------------------------
@pytest.fixture
def vboard(tmp_path: Path) -> Iterator[Vboard]:
    # pos-2s's module, an ESP32-S3 with PSRAM: the .mpy deploy fits there (without PSRAM the package's
    # code leaves too little for the working data and deploy refuses the .mpy: docs/device.md,
    # 'Shipped profiles').
    vb = start_vboard(tmp_path, with_board=False, chip=deploy_heapcheck.plan_for("pos-2s").chip)
    yield vb
    stop_vboard(vb)


def test_deploy_to_a_virtual_board(vboard: Vboard, tmp_path: Path) -> None:
    # A snapshot of the firmware: the three deploys below must see the same sources.
    fw = tmp_path / "firmware"
    shutil.copytree(paths.FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    r = _posguard("deploy", "--port", vboard.port, "--board", "pos-2s", "--firmware", str(fw))
    assert r.returncode == 0, r.stderr
    assert "loads mpy v6.3" in r.stdout and "0 unchanged" in r.stdout
    manifest = _assert_live_files_match_the_manifest(vboard.fs)
    assert manifest["boot.py"] == deploy.Artifact("boot.py", (fw / "boot.py").read_bytes()).sha256
    assert not (vboard.fs / deploy.STAGING).exists()
    assert (vboard.fs / "board.json").read_bytes() == paths.board_profile("pos-2s").read_bytes()
    # The board imports the deployed .mpy (the source tree is not on its path).
    where = vboard.exec("import posguard.profile as p; print(p.__file__)")
    assert where.endswith("posguard/profile.mpy"), where

    # Nothing changed: nothing copied, no reset.
    again = _posguard("deploy", "--port", vboard.port, "--board", "pos-2s", "--firmware", str(fw))
    assert again.returncode == 0 and "0 copied" in again.stdout and "already up to date" in again.stdout, (
        again.stdout + again.stderr)

    # One file differs on the device and one is left over from an older build: exactly those are handled.
    man_path = vboard.fs / deploy.MANIFEST
    man = json.loads(man_path.read_text())
    man["files"]["posguard/hw.mpy"] = "0" * 64
    man["files"]["posguard/old.mpy"] = "1" * 64
    man_path.write_text(json.dumps(man))
    (vboard.fs / "posguard" / "old.mpy").write_bytes(b"stale")
    third = _posguard("deploy", "--port", vboard.port, "--board", "pos-2s", "--firmware", str(fw))
    assert third.returncode == 0, third.stderr
    assert "copied   posguard/hw.mpy" in third.stdout and "removed  posguard/old.mpy" in third.stdout
    assert "1 copied" in third.stdout and "1 removed" in third.stdout
    assert not (vboard.fs / "posguard" / "old.mpy").exists()


def test_deploy_puts_the_dependency_on_the_board(vboard: Vboard, net_boards: Path) -> None:
    r = _posguard("deploy", "--port", vboard.port, "--board", "pos-2s-net", boards=net_boards)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "copied   lib/umqtt/simple.mpy" in r.stdout, r.stdout
    assert "lib/umqtt/simple.mpy" in _assert_live_files_match_the_manifest(vboard.fs)
    where = vboard.exec("import umqtt.simple as s; print(s.__file__, hasattr(s, 'MQTTClient'))")
    assert where.endswith("lib/umqtt/simple.mpy True"), where

    # Unchanged: not copied again (the manifest knows it).
    again = _posguard("deploy", "--port", vboard.port, "--board", "pos-2s-net", boards=net_boards)
    assert again.returncode == 0 and "already up to date" in again.stdout, again.stdout + again.stderr

    # A profile without a network section: deploy removes it like any file the new build lacks.
    plain = _posguard("deploy", "--port", vboard.port, "--board", "pos-2s", boards=net_boards)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "removed  lib/umqtt/simple.mpy" in plain.stdout and "copied   board.json" in plain.stdout, plain.stdout
    assert not (vboard.fs / "lib").exists()
    _assert_live_files_match_the_manifest(vboard.fs)


def _assert_live_files_match_the_manifest(fs: Path) -> dict[str, str]:
    manifest: dict[str, str] = json.loads((fs / deploy.MANIFEST).read_text())["files"]
    for dest, digest in manifest.items():
        assert deploy.Artifact(dest, (fs / dest).read_bytes()).sha256 == digest, dest
    return manifest


def test_an_interrupted_deploy_leaves_nothing_half_done(vboard: Vboard, tmp_path: Path) -> None:
    fw = tmp_path / "firmware"
    shutil.copytree(paths.FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    args = [sys.executable, "-m", "posguard_tools.cli", "deploy", "--port", vboard.port, "--board", "pos-2s",
            "--firmware", str(fw)]
    # Ctrl-C in a terminal: SIGINT to the whole foreground process group (posguard and its mpremote),
    # sent once the first file has reached the staging folder (dozens are still to come).
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    staged = vboard.fs / deploy.STAGING / "posguard"
    try:
        while proc.poll() is None and not (staged.is_dir() and any(staged.iterdir())):
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines() == [
        "deploy: interrupted while copying to .staging/: the live files are untouched; "
        "the next deploy clears .staging/"
    ], err
    assert not (vboard.fs / deploy.MANIFEST).exists() and not (vboard.fs / "posguard").exists()

    r = _posguard("deploy", "--port", vboard.port, "--board", "pos-2s", "--firmware", str(fw))
    assert r.returncode == 0 and "0 unchanged" in r.stdout, r.stdout + r.stderr
    assert not (vboard.fs / deploy.STAGING).exists()
    _assert_live_files_match_the_manifest(vboard.fs)

    # What a deploy interrupted after its copy leaves; the next one has nothing to copy and clears it anyway.
    (vboard.fs / deploy.STAGING / "posguard" / "deep").mkdir(parents=True)
    (vboard.fs / deploy.STAGING / "posguard" / "deep" / "hw.mpy").write_bytes(b"junk")
    (vboard.fs / deploy.STAGING / "boot.py").write_text("raise SystemExit  # junk\n")
    again = _posguard("deploy", "--port", vboard.port, "--board", "pos-2s", "--firmware", str(fw))
    assert again.returncode == 0 and "already up to date" in again.stdout, again.stdout + again.stderr
    assert "cleared .staging/ left by an interrupted deploy" in again.stdout, again.stdout
    assert not (vboard.fs / deploy.STAGING).exists()
    assert (vboard.fs / "boot.py").read_bytes() == (fw / "boot.py").read_bytes()
    _assert_live_files_match_the_manifest(vboard.fs)


def test_wrong_port_is_a_clear_error() -> None:
    r = _posguard("deploy", "--port", "/dev/does-not-exist")
    assert r.returncode == 1
    assert "/dev/does-not-exist: no such port" in r.stderr


def test_a_port_without_micropython_is_refused() -> None:
    master, slave = os.openpty()  # a serial line with nothing answering behind it
    try:
        r = _posguard("deploy", "--port", os.ttyname(slave), "--timeout", "4", timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 1
    assert "no answer from a MicroPython REPL within 4 s" in r.stderr, r.stderr


def test_ctrl_c_during_the_switch_waits_for_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A Ctrl-C while the device moves the staged files live must not stop it half way: the switch
    finishes, then the deploy ends with one line saying the new files are live."""
    calls: list[str] = []

    def fake_mpremote(port: str, *args: str, timeout: float = 0, own_session: bool = False) -> Any:
        script = args[-1]
        if "POSGUARD-SWITCHED" in script:
            assert own_session  # the terminal's SIGINT does not reach this mpremote
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C now
            calls.append("switched")
            return subprocess.CompletedProcess(args, 0, "POSGUARD-SWITCHED\n", "")
        calls.append("copied")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(deploy, "mpremote", fake_mpremote)
    p = deploy.plan([deploy.Artifact("posguard/a.mpy", b"one")], {})
    with pytest.raises(deploy.DeployInterrupted, match="after the switch finished: the new files are live"):
        deploy.upload("/dev/null", p, tmp_path)
    assert calls == ["copied", "switched"]


def test_command_line_is_parsed_by_argparse(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(deploy, "write_package_json", lambda: tmp_path / "package.json")
    assert deploy.main(["--package-json"]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'package.json'}\n"
    for bad in ([], ["--package-json", "extra"]):
        with pytest.raises(SystemExit) as e:
            deploy.main(bad)
        assert e.value.code == 2 and "usage: python -m posguard_tools.deploy" in capsys.readouterr().err


# -- mip ----------------------------------------------------------------------------------------------
def test_package_json_lists_every_firmware_file() -> None:
    """firmware/package.json is regenerated with `python -m posguard_tools.deploy --package-json`."""
    on_disk = json.loads((paths.FIRMWARE / "package.json").read_text())
    assert on_disk == deploy.package_json(), "firmware/package.json is stale: regenerate it"
    listed = {dest for dest, _ in on_disk["urls"]}
    assert "posguard/__init__.py" in listed and "posguard/profile.py" in listed
    # umqtt.simple is a declared dependency (telemetry's MQTT client), at the version the tests use.
    assert ["umqtt.simple", mpylib.PINNED[0][1]] in on_disk["deps"]


def test_mip_installs_the_package_on_a_virtual_board(vboard: Vboard, tmp_path: Path) -> None:
    # The deps come from a local index built from the pinned install (.venv/mpy-lib): never the internet.
    index = mpylib.mip_index(tmp_path / "mip-index")
    r = vboard.mpremote("mip", "install", "--target", "lib", "--index", str(index), "--no-mpy",
                        str(paths.FIRMWARE / "package.json"))
    assert "Done" in r.stdout, r.stdout + r.stderr
    assert f"Installing umqtt.simple ({mpylib.PINNED[0][1]}) from {index}" in r.stdout, r.stdout
    for dest, _ in json.loads((paths.FIRMWARE / "package.json").read_text())["urls"]:
        assert (vboard.fs / "lib" / dest).read_bytes() == (paths.FIRMWARE / dest).read_bytes()
    assert (vboard.fs / "lib/umqtt/simple.py").read_bytes() == (mpylib.LIB_DIR / "umqtt/simple.py").read_bytes()
    assert vboard.exec("import posguard.profile as p; print(p.__file__)").endswith("lib/posguard/profile.py")
    assert vboard.exec("from umqtt import simple; print(simple.__file__)").endswith("lib/umqtt/simple.py")
