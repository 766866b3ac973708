"""One implementation of the host link on the cashier's side (issue 15, section 4): posguard_client's
Terminal and the simulated cashier of `make sim` (sim_host.HostClient) both drive protocol.Session.

Terminal runs a scripted series of calls against the firmware's own host-link code (test_client's
FirmwareLink: replies lost, damaged, late, a request garbled on the way). The bytes the wire handed back
after each write are then replayed to HostClient making the same calls, on CPython and inside the unix
port: both must write byte-identical lines (retries included) and come to the same outcome at every
step, with the same retry and late-reply counts."""

from __future__ import annotations

import binascii
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_client import FirmwareLink

from posguard_client import LinkTimeout, Terminal, codes, errors, protocol
from posguard_tools import mpgate, paths

_REPLAY = paths.MPY_TESTS / "client_replay.py"  # MicroPython subset: runs on both runtimes (untyped)
_spec = importlib.util.spec_from_file_location("client_replay", _REPLAY)
assert _spec is not None and _spec.loader is not None
replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(replay)

ITEMS = [{"name": "拿铁 Latte", "price": 1800, "qty": 2}, {"name": 'Croissant "Paris"', "price": 1200}]
LAST_SEQ = 500
ATTEMPTS = 3

# (wire fault before the call, the call as Terminal's method and arguments)
SCRIPT: list[tuple[str, list[Any]]] = [
    ("", ["status"]),
    ("", ["open_sale", 1042, ITEMS, "2026-11-24 12:05"]),
    ("", ["open_sale", 1042, ITEMS[:1], "2026-11-24 12:05"]),  # another sale under the id: refused locally
    ("damage", ["pay", 1042, "card"]),  # the reply is damaged: not read, the line goes again
    ("hold", ["approve", 1042, "A1B2C3", "4242"]),  # the reply comes late, after the retry's
    ("", ["sale", 1042]),  # ...its second copy is a late reply here, dropped
    ("garble", ["open_sale", 1043, ITEMS[1:]]),  # the request is damaged on the way: BAD_CRC, sent again
    ("drop", ["pay", 1043, "qr"]),  # the reply is lost
    ("", ["void", 1043, "customer cancelled"]),
    ("", ["ack_reversal", 1043]),
    ("", ["open_sale", 1044, ITEMS]),
    ("", ["pay", 1044, "card"]),
    ("", ["decline", 1044, "insufficient funds"]),
    ("", ["reprint", 1042]),
    ("", ["reprint"]),
    ("", ["approve", 1044, "X"]),  # refused by the terminal: ILLEGAL_TRANSITION
    ("drop3", ["sale", 1044]),  # no reply at all: every attempt, then given up
    ("", ["sale", 1044]),
    ("hold3", ["sale", 1042]),  # every answer comes late: given up...
    ("", ["status"]),  # ...and the three arrive before this one's, dropped
]


def _terminal_outcome(pos: Terminal, call: list[Any]) -> list[Any]:
    try:
        r = getattr(pos, call[0])(*call[1:])
    except errors.Refused as e:
        return ["refused", e.code, e.reply.get("local") is True]
    except LinkTimeout:
        return ["timeout"]
    return ["ok", r.get("state") if isinstance(r, dict) else r.state]


def run_terminal(world: Any, crc: bool) -> tuple[FirmwareLink, dict[str, Any]]:
    link = FirmwareLink(world)
    pos = Terminal(link, clock=link.clock, sleep=link.sleep, first_seq=LAST_SEQ, attempts=ATTEMPTS, crc=crc)
    outcomes = []
    for fault, call in SCRIPT:
        if fault in ("drop3", "hold3"):
            setattr(link, fault[:4], ATTEMPTS)
        elif fault == "garble" and not crc:
            pass  # without a CRC the terminal cannot tell a damaged request
        elif fault:
            setattr(link, fault, 1)
        outcomes.append(_terminal_outcome(pos, call))
    return link, {"lines": link.lines, "outcomes": outcomes, "retries": pos.retries, "stale": pos.stale_replies}


def run_sim_cashier_on_the_unix_port(tmp: Path, chunks: list[bytes], crc: bool) -> dict[str, Any]:
    args = {
        "steps": [c for _f, c in SCRIPT],
        "chunks": [c.hex() for c in chunks],
        "crc": crc,
        "last_seq": LAST_SEQ,
        "attempts": ATTEMPTS,
    }
    (tmp / "in.json").write_text(json.dumps(args))
    r = subprocess.run(
        [paths.venv_bin("micropython"), "-X", "heapsize=2m", str(_REPLAY), str(tmp / "in.json"), str(tmp / "out.json")],
        capture_output=True,
        text=True,
        env=paths.micropython_env(),
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    got: dict[str, Any] = json.loads((tmp / "out.json").read_text())
    got["lines"] = [binascii.unhexlify(x) for x in got["lines"]]
    return got


@pytest.mark.parametrize("crc", [True, False], ids=["crc", "plain"])
def test_terminal_and_the_sim_cashier_write_the_same_bytes_and_read_replies_alike(
    world: Any, tmp_path: Path, crc: bool
) -> None:
    link, term = run_terminal(world, crc)
    # The script did what it says: every kind of reply the session judges came up.
    assert ["refused", "DUPLICATE_ID", True] in term["outcomes"]
    assert ["refused", "ILLEGAL_TRANSITION", False] in term["outcomes"] and term["outcomes"].count(["timeout"]) == 2
    assert term["retries"] == (8 if crc else 7) and term["stale"] == 4
    assert len(set(link.lines)) < len(link.lines)  # retries are the same line again
    steps = [c for _f, c in SCRIPT]
    sim = replay.run(steps, link.chunks, crc, LAST_SEQ, ATTEMPTS)
    assert sim == term
    assert run_sim_cashier_on_the_unix_port(tmp_path, link.chunks, crc) == term


def test_a_reply_line_is_judged_the_same_by_both() -> None:
    """The corners one by one, on the session both clients drive."""
    s = protocol.Session(41, crc=True)
    wire = s.start(*protocol.pay_request(7, "card"))
    assert wire == protocol.with_crc(b'{"op":"pay","id":7,"method":"card","seq":42}') + b"\n"
    ok = protocol.with_crc(b'{"ok":true,"seq":42,"id":7,"state":"PAYMENT_PENDING"}')
    assert s.judge(ok)[0] == protocol.MINE
    assert s.judge(ok[:-1] + b"0" if ok[-1:] != b"0" else ok[:-1] + b"1")[0] == protocol.JUNK  # damaged CRC
    assert s.judge(ok.split(b"*")[0])[0] == protocol.JUNK  # no CRC while CRCs are on
    assert s.judge(protocol.with_crc(b'{"ok":true,"seq":41}')) == (protocol.LATE, {"ok": True, "seq": 41})
    assert s.judge(protocol.with_crc(b'{"ok":false,"seq":null,"err":"BAD_JSON"}'))[0] == protocol.RESEND
    assert s.judge(protocol.with_crc(b'{"ok":false,"seq":42,"err":"BAD_CRC"}'))[0] == protocol.RESEND
    assert s.judge(protocol.with_crc(b'{"ok":false,"seq":null,"err":"BUSY"}'))[0] == protocol.LATE
    s.finish({"ok": True})
    assert s.judge(ok)[0] == protocol.LATE  # nothing in flight: a second answer is late
    assert s.stale_replies == 3


TRICKY = ['拿铁 "Latte"\\', "a\b\f\n\r\t\x01\x1f\x7f\x85", "😀 \u2028 /"]


def _tricky_requests() -> list[dict[str, Any]]:
    reqs: list[dict[str, Any]] = [
        {"op": "open", "id": 1, "items": [{"name": text, "qty": 1, "price": 5}], "seq": 2} for text in TRICKY
    ]
    return reqs + [{"op": "x", "a": [], "b": {}, "c": [None, True, False, -3]}]


def test_lines_are_the_json_cpython_writes() -> None:
    """Compact, UTF-8 as it is, CPython's escapes (MicroPython's json writes \\b as \\u0008): the same
    text whichever runtime encodes it (the unix port's in the test below)."""
    for req in _tricky_requests():
        assert protocol.encode(req) == json.dumps(req, ensure_ascii=False, separators=(",", ":"))
    assert protocol.encode({"seq": 1, "op": "status"}, 9) == '{"op":"status","seq":9}'


def test_every_code_maps_to_the_class_terminal_raises() -> None:
    for code, name, _kind, _todo in codes.TABLE:
        assert type(errors.from_reply({"ok": False, "err": code})).__name__ == name == protocol.error_class_name(code)
    assert type(errors.from_reply({"err": "NEW_CODE"})) is errors.Refused
    assert protocol.error_class_name("NEW_CODE") == "Refused"


def test_the_core_passes_the_micropython_gate(tmp_path: Path) -> None:
    """protocol.py and codes.py are MicroPython subset (the gate's mpy-cross), and the package imports on
    the unix port without its CPython-only modules (the replay above runs the core there)."""
    core = paths.ROOT / "tools" / "posguard_client"
    for name in ("protocol.py", "codes.py"):
        shutil.copy(core / name, tmp_path / name)
    assert mpgate.compile_errors(tmp_path) == []
    reqs = json.dumps(json.dumps(_tricky_requests(), ensure_ascii=False), ensure_ascii=False)
    script = (
        "import json, sim_host, sys\n"
        "from posguard_client import protocol\n"
        f"for req in json.loads({reqs}):\n"
        "    print(protocol.encode(req))\n"
        "print(sorted(sys.modules))\n"
    )
    r = subprocess.run(
        [paths.venv_bin("micropython"), "-c", script],
        capture_output=True,
        text=True,
        env=paths.micropython_env(),
        timeout=60,
    )
    assert r.returncode == 0 and "posguard_client.protocol" in r.stdout, r.stdout + r.stderr
    assert r.stdout.split("\n")[:-2] == [protocol.encode(q) for q in _tricky_requests()]  # (U+2028 is no newline)
    assert "posguard_client.terminal" not in r.stdout and "posguard_client.errors" not in r.stdout
