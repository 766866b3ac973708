"""The MicroPython gate catches what CPython forgives, and the shipped firmware passes it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from posguard_tools import mpgate, paths


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "fw"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_cpython_only_import_is_rejected_on_the_unix_port(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "probe_pkg/__init__.py": "",
            "probe_pkg/good.py": "from micropython import const\nX = const(3)\n",
            "probe_pkg/bad.py": "import dataclasses\n\n@dataclasses.dataclass\nclass Sale:\n    id: str\n",
        },
    )
    assert mpgate.compile_errors(root) == []  # it is valid syntax: only the real VM notices
    errors = mpgate.import_errors(root)
    assert len(errors) == 1 and errors[0].startswith("probe_pkg.bad") and "dataclasses" in errors[0]


def test_syntax_micropython_lacks_is_rejected_by_mpy_cross(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "probe_pkg/__init__.py": "",
            "probe_pkg/m.py": "def f(x):\n    match x:\n        case 1:\n            return 2\n",
        },
    )
    errors = mpgate.compile_errors(root)
    assert len(errors) == 1 and errors[0].startswith("probe_pkg/m.py")


def test_the_firmware_heap_budget_bites_on_the_unix_port(tmp_path: Path) -> None:
    # 200 KB of working data fits CPython and a desktop MicroPython, not an ESP32 without PSRAM: with the
    # budget pinned (as every unix-port run does), the VM refuses it; 50 KB is fine.
    root = _tree(
        tmp_path,
        {"probe_pkg/__init__.py": "", "probe_pkg/big.py": "def start(kb):\n    return bytearray(kb * 1024)\n"},
    )
    script = (
        "import sim_heap\nsim_heap.pin_firmware_budget(preload=False)\nimport probe_pkg.big as b\n"
        "b.start(50)\nprint('50 KB ok')\n"
        "try:\n    b.start(200)\n    print('200 KB ok')\nexcept MemoryError:\n    print('200 KB refused')\n"
    )
    r = subprocess.run(
        [paths.venv_bin("micropython"), "-X", f"heapsize={paths.VM_HEAPSIZE}", "-c", script],
        capture_output=True,
        text=True,
        env=paths.micropython_env([root]),
        timeout=60,
    )
    assert r.stdout.split() == ["50", "KB", "ok", "200", "KB", "refused"], r.stdout + r.stderr


def test_shipped_firmware_passes_the_gate() -> None:
    assert mpgate.compile_errors(paths.FIRMWARE) == []
    assert mpgate.import_errors(paths.FIRMWARE) == []


def test_command_line_is_parsed_by_argparse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mpgate.build_parser().parse_args([]).root == paths.FIRMWARE
    assert mpgate.build_parser().parse_args([str(tmp_path)]).root == tmp_path
    with pytest.raises(SystemExit) as e:
        mpgate.main([str(tmp_path), "extra"])  # was ignored by the hand-written parser
    assert e.value.code == 2 and "unrecognized arguments: extra" in capsys.readouterr().err
    # A tree that is not there is an error, not "0/0 firmware files compile".
    assert mpgate.main([str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
