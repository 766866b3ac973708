"""Bench section "hostlink": what validating one host-link line costs on the MicroPython unix port, for a
normal request and for the worst lines the link accepts (issue 12, item 8: the card-number scan must be
linear with a small constant). Timed inside the VM with time.ticks_us (the real clock: the simulated
hardware is left off MICROPYPATH), best of N runs per line."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from posguard_tools import paths

# Run inside the unix port: prints one JSON object {label: [best_us, bytes, code]}.
_SCRIPT = r"""
import json, time
from posguard import validate
LIM = validate.Limits({"line_max": 2048, "items_max": 20, "name_max": 32, "amount_max": 10000000})
N = %d
def fit(line):
    return line[:2048]
def items(name, n):
    return ",".join('{"name":"%%s","qty":999,"price":1}' %% name for _ in range(n))
lines = [
    ("normal sale (open, 2 items)", b'{"op":"open","id":1042,"seq":1,"time":"2026-11-24 12:05","items":['
     b'{"name":"\xe6\x8b\xbf\xe9\x93\x81 Latte","qty":2,"price":1800},{"name":"Croissant","price":1200}]}'),
    ("status", b'{"op":"status","seq":8}'),
    ("2 KB run of zeros (every window Luhn-valid)", b'{"op":"status","x":"' + b"0" * 2020 + b'"}'),
    ("2 KB of digits (1234567890 repeated: a card number early)",
     b'{"op":"status","x":"' + b"1234567890" * 202 + b'"}'),
    ("2 KB of full-width zeros", ('{"op":"status","x":"' + "\uff10" * 670 + '"}').encode()),
    ("2 KB of digit groups with separators", b'{"op":"status","x":"' + b"0000 " * 404 + b'"}'),
    ("open, 20 items of 32 zeros", ('{"op":"open","id":1,"items":[%%s]}' %% items("0" * 32, 20)).encode()),
    ("open, 13 items of 32 CJK characters",
     ('{"op":"open","id":1,"items":[%%s]}' %% items("\u62ff" * 32, 13)).encode()),
    ("256 values", b'{"op":"status","x":[' + b",".join([b"0"] * 250) + b"]}"),
    ("63 nested brackets (146 bytes)", b'{"op":"status","x":' + b"[" * 63 + b"]" * 63 + b"}"),
]
out = {}
for label, line in lines:
    line = fit(line)
    best = 1 << 30
    code = "OK"
    for _ in range(N):
        t0 = time.ticks_us()
        try:
            validate.validate_line(line, LIM)
        except validate.HostError as e:
            code = e.code
        dt = time.ticks_diff(time.ticks_us(), t0)
        if dt < best:
            best = dt
    out[label] = [best, len(line), code]
print(json.dumps(out))
"""


def measure(runs: int) -> dict[str, list[Any]]:
    env = paths.micropython_env()
    env["MICROPYPATH"] = ":".join([str(paths.FIRMWARE), ".frozen"])  # the real time module, not the sim clock
    r = subprocess.run([paths.venv_bin("micropython"), "-X", "heapsize=110k", "-c", _SCRIPT % runs],
                       capture_output=True, text=True, timeout=300, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    got: dict[str, list[Any]] = json.loads(r.stdout.strip().splitlines()[-1])
    return got


def run(quick: bool) -> dict[str, Any]:
    got = measure(5 if quick else 50)
    normal = got["normal sale (open, 2 items)"][0]
    worst_label = max(got, key=lambda k: got[k][0])
    rows: list[list[Any]] = []
    for label, (us, size, code) in got.items():
        rows.append([f"{label} ({size} B, {code})", f"{us} us", ""])
    worst = got[worst_label][0]
    rows.append([f"worst line / normal sale ({worst_label})", f"{worst / max(1, normal):.0f}x",
                 "linear scan; was 400x (22-25 ms) before issue 12"])
    return {"title": f"Host-link validation on the unix port (best of {5 if quick else 50})", "rows": rows,
            "data": {"lines": got, "worst": worst_label, "worst_us": worst, "normal_us": normal}}
