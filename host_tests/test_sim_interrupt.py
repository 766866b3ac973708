"""Ctrl-C in `posguard sim` (issue 14): one line on stderr, exit status 130, nothing half-written in --out,
no unix-port VM left running; and the day's progress and table stay plain text off a terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from posguard_tools import paths, report, simday

HANG_GUARD_S = 600  # a hung run fails the test instead of blocking the suite (not a speed assert)


def _children(pid: int) -> list[int]:
    """PIDs whose parent is pid (from /proc: Linux, as the unix-port runtime itself)."""
    kids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(d.name))
    return kids


def _is_vm(pid: int) -> bool:
    """pid is (still) a unix-port VM: running, not a PID handed on to another program."""
    try:
        return b"micropython" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# "group": a terminal's Ctrl-C (SIGINT to the whole foreground process group); "process": `kill -INT PID`
# of posguard alone, which must still take its unix-port VM down with it.
@pytest.mark.parametrize(("runtime", "to"), [("cpython", "group"), ("micropython", "group"),
                                             ("micropython", "process")])
def test_ctrl_c_ends_the_day_with_one_line_and_130(runtime: str, to: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [paths.venv_bin("posguard"), "sim", "--hours", "2", "--seed", "1", "--runtime", runtime,
           "--out", str(out)]
    # Its own process group, so that the group can be signalled as a terminal does.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    kids: list[int] = []
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the first progress line: the firmware is trading
        assert first.rstrip().endswith("%"), first
        kids = _children(proc.pid)
        if runtime == "micropython":
            assert any(_is_vm(pid) for pid in kids), "the unix-port VM should be running the day"
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        stdout, rest = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        left = [pid for pid in kids if _is_vm(pid)]
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in kids:
            if _is_vm(pid):
                os.kill(pid, signal.SIGKILL)  # never leave a VM behind for the next test
    err = first + rest
    assert proc.returncode == 130, err[-2000:]
    assert not left, f"unix-port VM still running: {left}"
    assert err.strip().splitlines()[-1] == "posguard sim: interrupted", err[-2000:]
    assert "Traceback" not in err and "Task exception was never retrieved" not in err, err[-2000:]
    assert "Exception ignored" not in err, err[-2000:]
    assert "posguard sim:" not in stdout  # no day table for a day that did not end
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


@pytest.fixture(scope="module")
def day_report() -> dict[str, Any]:
    rep: dict[str, Any] = simday.run_day(hours=0.05, seed=2, cuts=0)
    return rep


def test_progress_off_a_terminal_is_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with simday.ProgressBar("posguard cpython") as bar:
        for i in range(0, 101):
            bar(i / 100)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err
    assert err.splitlines() == [f"posguard cpython {p:3d}%" for p in range(0, 101, 10)]


def test_day_table_is_plain_and_right_aligned(day_report: dict[str, Any]) -> None:
    rep = day_report
    text = report.table([rep, dict(rep, policy="naive")])
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("posguard sim: board devkit-1s, 0.05 h, seed 2")
    head = next(ln for ln in lines if "posguard (cpython)" in ln)
    row = next(ln for ln in lines if ln.strip().startswith("sales attempted"))
    # numbers right-aligned under their heading, in both policy columns
    assert row.index(str(rep["counts"]["attempted"])) + len(str(rep["counts"]["attempted"])) == \
        head.index("posguard (cpython)") + len("posguard (cpython)")
    assert all(len(ln) <= len(lines[0]) + 80 for ln in lines)  # no cell folded onto a second line
    assert sum(1 for ln in lines if ln.strip().startswith("battery low warning")) == 1


def test_outputs_are_all_or_nothing(day_report: dict[str, Any], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rep = day_report
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"old": 1}')

    def interrupted(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "battery_plot", interrupted)  # Ctrl-C while the plot is drawn
    with pytest.raises(KeyboardInterrupt):
        report.write_outputs([rep], out, simday.load_profile("devkit-1s"))
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert json.loads((out / "report.json").read_text()) == {"old": 1}
