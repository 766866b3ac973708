"""The repository stands alone: no absolute machine path and no reference to a folder outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# An absolute path into a developer's machine, or the sibling folder the project was written next to. Spelled
# in parts, so that this file holds no such path itself and is checked like every other file.
_MACHINE_ROOTS = ("work", "root")
_SIBLING = "shared"
FORBIDDEN = re.compile(
    "/(?:" + "|".join(_MACHINE_ROOTS) + ")/"
    + "|/home/[a-z]"
    + r"|\.\./" + _SIBLING
    + r"|\b" + _SIBLING + r"/(?:reference|data)\b"
)


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = []
    for name in out.decode().split("\0"):
        p = ROOT / name
        if name and p.is_file() and p.suffix not in (".gz", ".png", ".bin"):
            files.append(p)
    return files


def test_no_path_outside_the_repository() -> None:
    hits = []
    for p in tracked_text_files():
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_the_pattern_catches_each_kind_of_outside_path() -> None:
    for root in _MACHINE_ROOTS:
        assert FORBIDDEN.search(f"/{root}/x/y.py")
    assert FORBIDDEN.search("/home" + "/dev/posguard")
    assert FORBIDDEN.search(f"see ../{_SIBLING}/data")
    assert FORBIDDEN.search(f"({_SIBLING}/reference/storage.md)")
    assert not FORBIDDEN.search("docs/reference/storage.md")


def test_reference_traces_are_committed() -> None:
    from posguard_tools import traces

    for name in traces.NAMES:
        with traces.open_text(name) as f:
            assert f.readline().strip().startswith("t_s,"), name
