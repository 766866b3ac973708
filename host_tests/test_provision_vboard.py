"""`posguard provision` pointed at a virtual board, or at a port where no ROM bootloader answers: a sentence
a person can act on, not esptool's bare 'Invalid head of packet' (issue 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_vboard import start_vboard, stop_vboard

from posguard_tools import cmd_provision

# What esptool 5.6.0 printed for `esptool --port <vboard REPL pty> read-flash 0x8000 0xc00`.
_ESPTOOL_ON_A_REPL = (
    "ERROR: A fatal error occurred: Failed to connect to Espressif device: Invalid head of packet (0x08): "
    "Possible serial noise or corruption.\n"
)


def test_provision_on_a_virtual_board_says_it_is_provisioned_already(tmp_path: Path) -> None:
    vb = start_vboard(tmp_path, with_board=True)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "posguard_tools.cli", "provision", "--port", vb.port],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        stop_vboard(vb)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "virtual board" in r.stdout and "no ROM bootloader" in r.stdout and "provisioned already" in r.stdout
    assert "Invalid head of packet" not in r.stdout + r.stderr


def test_esptool_reaching_no_rom_bootloader_is_explained() -> None:
    r = subprocess.CompletedProcess(["esptool"], 2, "", _ESPTOOL_ON_A_REPL)
    msg = cmd_provision._esptool_error(r)
    assert "no ROM bootloader" in msg and "hold BOOT, tap EN" in msg and "provisioned already" in msg
    other = subprocess.CompletedProcess(["esptool"], 2, "", "A fatal error occurred: Could not open /dev/x\n")
    assert cmd_provision._esptool_error(other) == "A fatal error occurred: Could not open /dev/x"
