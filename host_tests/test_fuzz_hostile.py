"""Issue 12 acceptance: a seeded, bounded property-based attack on the host link and the profile loader.

Whatever the cashier's side sends (valid requests, card numbers written every way we know, overlong
UTF-8, fragments, splices, nesting, floods), the terminal: answers every whole line and never raises
anything but a protocol refusal, never resets, never lets a full card number reach the journal's flash,
the crash log, a reply or paper, and never holds a paid sale whose receipt is neither owed nor printed.
Whatever a board profile says, the loader accepts it or names the key: no other exception."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import esp32
import sim_flash
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from posguard import app, commands, crashlog, printjobs, profile, validate
from posguard import sales as S
from posguard.hostlink import HostLink
from posguard.journal import Journal
from posguard_tools import paths

PANS = ["4111111111111111", "5555555555554444", "378282246310005", "6200000000000005", "3530111333300000"]
LIM = validate.Limits({"line_max": 2048, "items_max": 20, "name_max": 32, "amount_max": 10_000_000})
PROFILE = {"printer": {"columns": 32}, "host": {"currency": "CNY"}, "name": "fuzz"}


def _fullwidth(s: str) -> str:
    return "".join(chr(0xFF10 + ord(c) - 48) for c in s)


def _overlong(s: str) -> bytes:
    return b"".join(bytes([0xC0 | (c >> 6), 0x80 | (c & 0x3F)]) for c in s.encode())


# A card number, written one of the ways the attack run used.
pan_text = st.builds(
    lambda p, how, sep: {
        "plain": p,
        "groups": sep.join(p[i:i + 4] for i in range(0, len(p), 4)),
        "fullwidth": _fullwidth(p),
        "mixed": p[:4] + _fullwidth(p[4:8]) + sep + p[8:],
    }[how],
    st.sampled_from(PANS), st.sampled_from(["plain", "groups", "fullwidth", "mixed"]),
    st.sampled_from([" ", "-", "/", ".", "_", ",", "\u00a0", "\u3000", "\u200b", " / "]),
)
text = st.one_of(st.text(max_size=24), pan_text, st.sampled_from(["Tea", "拿铁", "0" * 16, "\x1b@"]))
ids = st.integers(1, 5)
number = st.one_of(st.integers(-5, 30_000_000), st.sampled_from([int(p) for p in PANS] + [-int(PANS[0])]),
                   st.floats(allow_nan=False, allow_infinity=False))
item = st.fixed_dictionaries({"name": text, "price": number}, optional={"qty": st.integers(-1, 1000)})
request = st.one_of(
    st.fixed_dictionaries({"op": st.just("open"), "id": ids, "items": st.lists(item, min_size=1, max_size=3)},
                          optional={"time": st.one_of(text, st.just("2026-11-24 21:58"))}),
    st.fixed_dictionaries({"op": st.just("pay"), "id": ids, "method": st.sampled_from(["card", "cash", "qr"])}),
    st.fixed_dictionaries({"op": st.just("approve"), "id": ids, "auth": st.sampled_from(["A1", "Z9", "ok"])},
                          optional={"last4": st.one_of(st.just("4242"), text)}),
    st.fixed_dictionaries({"op": st.sampled_from(["decline", "void", "ack_reversal", "sale", "reprint"]), "id": ids},
                          optional={"reason": text}),
    st.fixed_dictionaries({"op": st.sampled_from(["status", "export"])}, optional={"seq": number, "x": text}),
)


def _line(req: Any) -> bytes:
    return json.dumps(req, ensure_ascii=False).encode()


raw_line = st.one_of(
    request.map(_line),
    request.map(_line),
    request.map(_line),
    st.sampled_from(PANS).map(lambda p: b'{"op":"void","id":1,"reason":"' + _overlong(p) + b'"}'),
    st.integers(1, 70).map(lambda n: b'{"op":"status","x":' + b"[" * n + b"]" * n + b"}"),
    st.binary(max_size=60),
    st.just(b"0" * 3000),  # over the cap
)
# What arrives on the wire: lines, or a fragment that never gets its newline (then an idle gap).
wire = st.lists(st.tuples(raw_line, st.booleans()), min_size=1, max_size=25)


class Uart:
    def __init__(self) -> None:
        self.rx = bytearray()
        self.tx = bytearray()

    def any(self) -> int:
        return len(self.rx)

    def readinto(self, buf: memoryview) -> int | None:
        n = min(len(buf), len(self.rx))
        if n == 0:
            return None
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n

    def write(self, data: memoryview) -> int:
        self.tx += bytes(data)
        return len(data)


class Paper:
    """The printer: what it was asked to print, as text."""

    def __init__(self) -> None:
        from posguard import escpos

        self.enc = escpos.Encoder("utf-8")
        self.cfg = {"answers_status": True}
        self.text: list[str] = []

    async def status(self) -> dict[str, Any]:
        return {"answered": True, "online": True}

    async def print_job(self, ops: list[Any]) -> dict[str, Any]:
        self.text += [op[1] for op in ops if op[0] == "text"]
        return {"result": "printed", "reason": "", "line": 0}


def _has_pan(blob: str) -> bool:
    return any(p in blob or _fullwidth(p) in blob for p in PANS) or validate.contains_pan(blob)


@seed(12)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wire)
def test_no_input_crashes_resets_leaks_a_card_number_or_drops_a_receipt(world: Any, tmp_path: Path,
                                                                        monkeypatch: Any, chunks: list[Any]) -> None:
    monkeypatch.chdir(tmp_path)
    world.board.partitions["journal"] = sim_flash.NorFlash(16 * 4096, label="journal")
    (part,) = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")
    book = S.SaleBook(Journal(part), keep_last=5)
    book.recover()
    paper = Paper()
    jobs = printjobs.PrintJobs(book, paper, None, PROFILE)
    term = app.Terminal.__new__(app.Terminal)
    term.lim = LIM
    term.crash = crashlog.CrashLog()
    term.cmds = commands.Commands(book, jobs, None)
    uart = Uart()
    clock = [0]
    link = HostLink(uart, LIM.line_max, now_ms=lambda: clock[0])
    replies: list[dict[str, Any]] = []

    def serve() -> None:
        for _ in range(50):  # what host_loop does for each line (it catches everything; here nothing may escape)
            try:
                line = link.poll()
                if line is None:
                    return
                body, _crc = link.unwrap(line)
                replies.append(term.handle_line(bytes(body)))
            except validate.HostError as e:
                replies.append(commands.error_reply(None, e))

    for data, whole in chunks:
        uart.rx += data + (b"\n" if whole else b"")
        serve()
        if not whole:
            clock[0] += 1500  # the sender went quiet: the fragment is dropped
            serve()
        # The printer worker: print what is queued.
        for _ in range(10):
            if not jobs._q:
                break
            job = jobs._q[0]
            if asyncio.run(jobs._one(job)):
                jobs._q.pop(0)
        # Nothing paid without its receipt owed or printed.
        for sid in book.open_sales():
            if book.state(sid) in ("PAID", "PRINTING"):
                assert jobs.queued(sid), f"paid sale {sid} has no receipt owed"

    for r in replies:
        assert isinstance(r.get("ok"), bool)
        assert r["ok"] or r["err"] != "INTERNAL", r
        assert not _has_pan(json.dumps(r, ensure_ascii=False)), r
    flash = bytes(world.board.partitions["journal"].image())
    for p in PANS:
        assert p.encode() not in flash and _fullwidth(p).encode() not in flash
    log = tmp_path / "crash.log"
    assert not log.exists() or not _has_pan(log.read_text())
    assert not _has_pan("\n".join(paper.text))
    assert jobs.owed() >= sum(1 for sid in book.open_sales() if book.state(sid) in ("PAID", "PRINTING"))


# -- the profile loader -----------------------------------------------------------------------------
def _paths(d: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _paths(v, prefix + k + ".")
        else:
            out.append(prefix + k)
    return out


BASE = json.loads(paths.board_profile("devkit-1s").read_text())
KEYS = _paths(BASE)
values = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True),
                   st.text(max_size=300), pan_text, st.lists(st.integers(), max_size=3), st.just({}))


@seed(7)
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=4), st.booleans())
def test_profile_loader_accepts_or_names_the_key(changes: list[tuple[str, Any]], drop: bool) -> None:
    d = copy.deepcopy(BASE)
    for key, v in changes:
        *head, last = key.split(".")
        sec = d
        for k in head:
            sec = sec[k]
        if drop:
            del sec[last]
            break
        sec[last] = v
    try:
        ok = profile.validate(d)
    except profile.ProfileError as e:
        assert "profile key" in str(e)
        assert not _has_pan(str(e)), "the error message echoed a card number"
        return
    # Accepted: its header name is no card number, and every sale its caps admit lays out.
    assert not validate.contains_pan(ok["name"])
    assert profile._COLUMNS[ok["printer"]["paper_mm"]].count(ok["printer"]["columns"]) == 1
