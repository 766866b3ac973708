"""MicroPython libraries the firmware declares (firmware/package.json "deps", manifest.py `require`) for
the unix port and CPython tests: installed from PyPI into `.venv/mpy-lib/`, pinned by version and hash.

micropython-lib's packages on PyPI (e.g. `micropython-umqtt.simple`) are source archives in the old
`upip` layout, without a setup.py, so pip refuses them ("does not appear to be a Python project"). This
reads the same PEP 503 simple index pip reads (PIP_INDEX_URL if set), downloads the pinned archive,
checks its SHA-256 and copies the library's .py files out, as upip did on a board.

    python -m posguard_tools.mpylib          # install (idempotent); prints the directory

The same pinned files also make a local mip index (`mip_index()`): `mpremote mip install --index DIR
--no-mpy firmware/package.json` then resolves package.json's deps from this machine, never the internet
(test_deploy.py does that; docs/fleet.md "umqtt.simple on a board"). `posguard deploy` compiles the
same pinned files to lib/*.mpy for a board whose profile needs them (`deps_for`, NEEDED_BY).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

from posguard_tools import paths

LIB_DIR = paths.ROOT / ".venv" / "mpy-lib"
# (PyPI project, version, sha256 of its sdist, module files inside it)
PINNED = (
    (
        "micropython-umqtt.simple",
        "1.3.4",
        "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f",
        ("umqtt/simple.py",),
    ),
)


# firmware/package.json "deps" (mip's [package, version]): the micropython-lib names and versions of PINNED.
MIP_DEPS = tuple((project.removeprefix("micropython-"), version) for project, version, _h, _f in PINNED)
# The board-profile section whose firmware code imports each of MIP_DEPS: `posguard deploy` copies a
# dependency, compiled, to a .mpy board only when its profile has that section (umqtt.simple: telemetry,
# posguard/mqtt_link.py, started by posguard/app.py when "network" is not null).
NEEDED_BY = {"umqtt.simple": "network"}


def _index() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _url(project: str, version: str, sha256: str) -> str:
    norm = re.sub(r"[-_.]+", "-", project).lower()
    with urllib.request.urlopen(f"{_index()}/{norm}/", timeout=60) as r:
        page = r.read().decode()
    for href in re.findall(r'href="([^"]+)"', page):
        if f"-{version}.tar.gz" in href and sha256 in href:
            return href.split("#", 1)[0]
    raise RuntimeError(f"{project}=={version} (sha256 {sha256[:12]}...) is not on {_index()}")


def installed() -> bool:
    return all((LIB_DIR / f).exists() for _p, _v, _h, files in PINNED for f in files)


def install(force: bool = False) -> Path:
    if installed() and not force:
        return LIB_DIR
    for project, version, sha256, files in PINNED:
        with urllib.request.urlopen(_url(project, version, sha256), timeout=60) as r:
            data = r.read()
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise RuntimeError(f"{project}=={version}: sha256 {got} is not the pinned {sha256}")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                rel = member.name.split("/", 1)[-1]
                if rel in files:
                    src = tar.extractfile(member)
                    assert src is not None
                    dest = LIB_DIR / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(src.read())
    if not installed():
        raise RuntimeError(f"the pinned archives lack some of {[f for *_x, fs in PINNED for f in fs]}")
    return LIB_DIR


def _deps() -> list[tuple[str, str, tuple[str, ...]]]:
    """MIP_DEPS with the files of their PINNED archives: (mip name, version, module files)."""
    return [(project.removeprefix("micropython-"), version, files) for project, version, _h, files in PINNED]


def deps_for(profile: dict[str, Any]) -> list[tuple[str, Path]]:
    """The dependency files a board running this profile imports, as (path under the board's lib/, the
    pinned source file in LIB_DIR), installing the pinned copy first if `make setup` has not."""
    needed: list[str] = []
    for name, _version, files in _deps():
        if profile.get(NEEDED_BY[name]) is not None:
            needed += list(files)
    if not needed:
        return []
    lib = install()
    return [(rel, lib / rel) for rel in needed]


def mip_index(dest: Path) -> Path:
    """A mip package index in `dest` with MIP_DEPS as source (mip's "py" flavour, the layout of
    micropython-lib's tools/build.py: package/py/NAME/VERSION.json listing [path, sha256[:8]], the files
    under file/HH/HASH), from the pinned local install. Returns dest (mpremote's --index)."""
    lib = install()
    for name, version, files in _deps():
        hashes = []
        for rel in files:
            data = (lib / rel).read_bytes()
            short = hashlib.sha256(data).hexdigest()[:8]
            out = dest / "file" / short[:2] / short
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            hashes.append([rel, short])
        pkg = dest / "package" / "py" / name
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / f"{version}.json").write_text(json.dumps({"hashes": hashes, "deps": [], "version": version}))
    return dest


def main() -> int:
    try:
        print(install(force="--force" in sys.argv))
    except (OSError, RuntimeError) as e:
        print(f"posguard mpylib: cannot install the MicroPython libraries: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
