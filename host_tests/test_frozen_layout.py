"""Issue 13 item 1: the firmware as a frozen build runs it. `deploy --frozen` output on the board's
filesystem, the package on a relative path entry standing where '.frozen' stands, on the unix port:
a CNY receipt prints (the yen sign comes from the GB table in data/, outside the package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from posguard_tools import deploy, paths


def _run(fs: Path) -> str:
    env = paths.micropython_env()
    # '' (the board's filesystem) first, then the frozen package, like sys.path on a board.
    env["MICROPYPATH"] = ":".join(["", "fz", ".frozen", str(paths.SIMHW), str(paths.MPY_TESTS)])
    r = subprocess.run(
        [
            paths.venv_bin("micropython"),
            "-X",
            f"heapsize={paths.VM_HEAPSIZE}",
            str(paths.MPY_TESTS / "frozen_layout_check.py"),
        ],
        cwd=fs,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r.stdout + r.stderr


def _layout(tmp: Path, board: str) -> Path:
    fs = tmp / "fs"
    for a in deploy.build(board, frozen=True, out=tmp / "build"):
        dest = fs / a.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(a.data)
    # The "frozen" package: Python only, as firmware/manifest.py's package("posguard") freezes it.
    pkg = fs / "fz" / "posguard"
    pkg.mkdir(parents=True)
    for src in (paths.FIRMWARE / "posguard").glob("*.py"):
        shutil.copy(src, pkg / src.name)
    return fs


def test_frozen_deploy_puts_nothing_in_a_posguard_directory(tmp_path: Path) -> None:
    # A posguard/ directory on the filesystem comes before '.frozen' and hides the frozen package.
    dests = [a.dest for a in deploy.build("devkit-1s", frozen=True, out=tmp_path)]
    assert not [d for d in dests if d.startswith("posguard/")], dests
    assert "data/gb18030.bin" in dests


@pytest.mark.parametrize("board", ["devkit-1s", "pos-2s"])
def test_frozen_layout_prints_a_cny_receipt(tmp_path: Path, board: str) -> None:
    out = _run(_layout(tmp_path, board))
    assert "PRINTED gb.__file__=fz/posguard/gb.py resets=0" in out, out[-3000:]


def test_without_the_table_a_cny_receipt_is_held_not_a_reset_loop(tmp_path: Path) -> None:
    # A board that lost data/gb18030.bin: the receipt cannot print. It is held and reported in status;
    # the printer task does not crash into a reset, and the next sale is accepted.
    fs = _layout(tmp_path, "devkit-1s")
    (fs / "data" / "gb18030.bin").unlink()
    out = _run(fs)
    assert "HELD [7] resets=0 next_sale_ok=True" in out, out[-3000:]


def test_deploy_frozen_after_a_plain_deploy_removes_the_posguard_folder(tmp_path: Path) -> None:
    # The device's manifest from a plain deploy lists posguard/*.mpy: a frozen deploy removes them and
    # then the folder itself (an empty posguard/ would still import as a namespace package).
    old = {a.dest: a.sha256 for a in deploy.build("devkit-1s", out=tmp_path / "mpy")}
    p = deploy.plan(deploy.build("devkit-1s", frozen=True, out=tmp_path / "frozen"), old)
    assert "posguard/app.mpy" in p.remove
    script = deploy._switch_script(p)
    assert "'posguard'" in script and "os.rmdir(d)" in script
    assert deploy._emptied_dirs(p) == ["posguard"]
