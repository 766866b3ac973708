"""The repository stands alone: no absolute machine path and no reference to a folder outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# An absolute path into a developer's machine, or the sibling folder the project was written next to.
FORBIDDEN = re.compile(r"(/work/|/home/[a-z]|/root/|\.\./shared|\bshared/(reference|data)\b)")


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
        if p.name == Path(__file__).name:
            continue
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_reference_traces_are_committed() -> None:
    from posguard_tools import traces

    for name in traces.NAMES:
        with traces.open_text(name) as f:
            assert f.readline().strip().startswith("t_s,"), name
