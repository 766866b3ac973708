"""Host-link framing: lines split anywhere still come out whole, an over-long line is dropped and
answered once, and the framing keeps working afterwards."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from posguard.hostlink import HostLink
from posguard.validate import HostError


class FakeUart:
    """A UART whose RX hands out at most `chunk` bytes per read (bytes arrive in bursts)."""

    def __init__(self, chunks: list[int] | None = None, tx_room: int = 1 << 20) -> None:
        self.rx = bytearray()
        self.tx = bytearray()
        self.chunks = chunks or [1 << 20]
        self.k = 0
        self.tx_room = tx_room

    def any(self) -> int:
        return len(self.rx)

    def readinto(self, buf: memoryview) -> int | None:
        n = min(len(buf), len(self.rx), self.chunks[self.k % len(self.chunks)])
        self.k += 1
        if n == 0:
            return None
        buf[:n] = self.rx[:n]
        del self.rx[:n]
        return n

    def write(self, data: memoryview) -> int | None:
        n = min(len(data), self.tx_room)
        self.tx += bytes(data[:n])
        return n or None


def drain(link: HostLink, max_polls: int = 10_000) -> list[bytes | str]:
    out: list[bytes | str] = []
    for _ in range(max_polls):
        try:
            line = link.poll()
            if line is not None:
                line = link.unwrap(line)[0]
        except HostError as e:
            out.append(e.code)
            continue
        if line is None:
            if not link._uart.any():
                break
            continue
        out.append(bytes(line))
    return out


def test_lines_come_out_whole_and_crlf_is_stripped() -> None:
    u = FakeUart([3])
    link = HostLink(u, 64)
    u.rx += b'{"op":"status"}\r\n\n{"op":"sale","id":"a"}\n{"op":'
    assert drain(link) == [b'{"op":"status"}', b'{"op":"sale","id":"a"}']
    u.rx += b'"status"}\n'
    assert drain(link) == [b'{"op":"status"}']


def test_over_long_line_is_refused_once_and_framing_recovers() -> None:
    u = FakeUart([7])
    link = HostLink(u, 32)
    u.rx += b"a" * 100 + b"\n" + b"ok\n" + b"b" * 33 + b"\n" + b"c" * 32 + b"\n"
    assert drain(link) == ["LINE_TOO_LONG", b"ok", "LINE_TOO_LONG", b"c" * 32]
    assert link.too_long == 2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=0, max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    st.lists(st.integers(1, 50), min_size=1, max_size=5),
)
def test_any_split_gives_the_same_lines(lines: list[bytes], chunks: list[int]) -> None:
    cap = 40
    u = FakeUart(chunks)
    link = HostLink(u, cap)
    for line in lines:
        u.rx += line + b"\n"
    got = drain(link)
    want: list[bytes | str] = []
    for line in lines:
        body = line[:-1] if line.endswith(b"\r") else line
        if len(body) > cap:
            want.append("LINE_TOO_LONG")
        elif body:
            want.append(body)
    assert got == want


def test_send_writes_one_json_line_even_when_the_uart_takes_little() -> None:
    u = FakeUart(tx_room=5)
    link = HostLink(u, 64)
    reply = {"ok": True, "seq": 3, "name": "拿铁"}
    assert asyncio.run(link.send(reply))
    assert u.tx.endswith(b"\n") and json.loads(u.tx) == reply


def test_send_gives_up_when_the_host_never_reads() -> None:
    u = FakeUart(tx_room=0)
    link = HostLink(u, 64)
    assert asyncio.run(link.send({"ok": True})) is False
    assert link.replies_dropped == 1


# -- issue 12, item 9: resynchronisation ----------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


def test_fragment_without_newline_is_dropped_at_an_idle_gap() -> None:
    u = FakeUart()
    clk = Clock()
    link = HostLink(u, 64, now_ms=clk)
    u.rx += b'{"op":"void","id":5,"se'  # the app crashed mid-line
    assert drain(link) == []
    clk.ms += 1500  # nothing more for 1.5 s
    assert link.poll() is None and link.fragments == 1
    u.rx += b'{"op":"status","seq":1}\n'
    assert drain(link) == [b'{"op":"status","seq":1}']  # not spliced onto the fragment


def test_a_slow_line_that_keeps_arriving_is_not_cut() -> None:
    u = FakeUart()
    clk = Clock()
    link = HostLink(u, 64, now_ms=clk)
    for ch in b'{"op":"status"}':
        u.rx.append(ch)
        assert drain(link) == []
        clk.ms += 900  # 9600 baud with a busy firmware: bytes keep coming, never a full gap
    u.rx += b"\n"
    assert drain(link) == [b'{"op":"status"}'] and link.fragments == 0


def test_over_long_line_whose_newline_was_lost_ends_at_the_gap() -> None:
    u = FakeUart([100])
    clk = Clock()
    link = HostLink(u, 32, now_ms=clk)
    u.rx += b"x" * 5000  # overflowed: its newline never arrived
    assert drain(link) == []
    clk.ms += 1500
    try:
        link.poll()
        raise AssertionError("the gap must answer the over-long line")
    except HostError as e:
        assert e.code == "LINE_TOO_LONG"
    u.rx += b'{"op":"status"}\n'
    assert drain(link) == [b'{"op":"status"}']  # the next request is not swallowed


def crc_line(body: bytes) -> bytes:
    import binascii

    return body + b"*%08x" % binascii.crc32(body)


def test_crc_opt_in_refuses_spliced_and_unchecked_lines() -> None:
    u = FakeUart()
    link = HostLink(u, 64)
    good = b'{"op":"sale","id":3,"seq":7}'
    u.rx += crc_line(good) + b"\n"
    assert drain(link) == [good] and link.crc_required
    # A fragment of one line spliced onto the next (an RX overflow in a flood): the CRC cannot match.
    spliced = crc_line(b'{"op":"void","id":3,"seq":8}')[:14] + crc_line(b'{"op":"sale","id":4,"seq":9}')[14:]
    upper_hex = b'{"op":"status"}' + crc_line(b'{"op":"status"}')[15:].upper()
    u.rx += spliced + b"\n" + b'{"op":"void","id":3}\n' + upper_hex + b"\n"
    assert drain(link) == ["BAD_CRC", "BAD_CRC", b'{"op":"status"}']
    assert link.bad_crc == 2


def test_reply_carries_a_crc_when_the_request_did() -> None:
    import binascii

    u = FakeUart()
    link = HostLink(u, 64)
    assert asyncio.run(link.send({"ok": True, "seq": 1}, True))
    body, crc = bytes(u.tx).rstrip(b"\n").rsplit(b"*", 1)
    assert int(crc, 16) == binascii.crc32(body) and json.loads(body) == {"ok": True, "seq": 1}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=50).map(lambda b: b.replace(b"\n", b"")),
                          st.booleans()), max_size=10),
       st.lists(st.integers(1, 30), min_size=1, max_size=4))
def test_with_crcs_only_lines_sent_whole_are_ever_returned(parts: list[tuple[bytes, bool]], chunks: list[int]) -> None:
    """Fragments (no newline, then a gap) mixed with whole CRC lines: every line returned is one that
    was sent whole, never a splice."""
    u = FakeUart(chunks)
    clk = Clock()
    link = HostLink(u, 80, now_ms=clk)
    sent = set()
    got: list[bytes | str] = []
    for body, whole in parts:
        line = crc_line(body.replace(b"*", b"+").replace(b"\r", b"."))
        if whole:
            sent.add(bytes(line[:-9]))
            u.rx += line + b"\n"
        else:
            u.rx += line[: len(line) // 2]
        got += drain(link)
        if not whole:
            clk.ms += 2000
            got += drain(link)
            link.poll()
    for g in got:
        assert g in sent or g in ("LINE_TOO_LONG", "BAD_CRC"), g


# -- issue 12, item 7: the host task never dies ------------------------------------------------------
class _Stop(BaseException):
    pass


def test_host_task_answers_any_exception_and_keeps_reading() -> None:
    from posguard import app

    class Link:
        def __init__(self) -> None:
            self.lines = [b'{"op":"status","seq":1}', b'{"op":"status","seq":2}']
            self.sent: list[dict[str, Any]] = []

        def poll(self) -> bytes:
            if not self.lines:
                raise _Stop()
            return self.lines.pop(0)

        def unwrap(self, line: bytes) -> tuple[bytes, bool]:
            return line, False

        async def send(self, reply: dict[str, Any], crc: bool = False) -> bool:
            self.sent.append(reply)
            return True

    class Crash:
        def __init__(self) -> None:
            self.logged: list[str] = []

        def record(self, name: str, e: BaseException) -> None:
            self.logged.append(name)

    class Fake:
        def __init__(self) -> None:
            self.link = Link()
            self.crash = Crash()
            self.last_host_ms = 0

        def handle_line(self, line: bytes) -> dict[str, Any]:
            raise RuntimeError("maximum recursion depth exceeded")

    f = Fake()
    try:
        asyncio.run(app.Terminal.host_loop(f))
    except _Stop:
        pass
    assert [r["err"] for r in f.link.sent] == ["INTERNAL", "INTERNAL"]
    assert f.crash.logged == ["host", "host"]


def test_handle_line_answers_a_validator_crash(monkeypatch: Any) -> None:
    from posguard import app, validate

    def boom(line: bytes, lim: Any) -> dict[str, Any]:
        raise RuntimeError("maximum recursion depth exceeded")

    monkeypatch.setattr(validate, "validate_line", boom)

    class Crash:
        def record(self, name: str, e: BaseException) -> None:
            self.name = name

    class Fake:
        lim = None
        crash = Crash()

    r = app.Terminal.handle_line(Fake(), b"{}")
    assert r["ok"] is False and r["err"] == "INTERNAL"


def test_a_flood_that_overflows_the_rx_fifo_does_not_swallow_the_next_request(world: Any) -> None:
    """Item 9 on the simulated ESP32 UART (RX FIFO of line_max + 64 bytes, bytes beyond it dropped): a
    100 KB line whose newline may be lost, then the app's next request after its 2.5 s reply timeout.
    The firmware polls at its idle cadence (0.4 s), so the FIFO overflows."""
    import machine
    import sim_host

    h = world.profile["host"]
    uart = machine.UART(h["uart_id"], h["baud"], tx=h["tx"], rx=h["rx"], txbuf=512, rxbuf=h["line_max"] + 64)
    link = HostLink(uart, h["line_max"])
    peer = sim_host.HostPeer(world.board)
    got: list[bytes | str] = []
    flood = b"x" * 99_999 + b"\n"
    per_step = h["baud"] // 10 * 400 // 1000  # what the wire carries in 0.4 s (8N1)
    t_flood_end = len(flood) * 10_000 // h["baud"] + 1
    sent = False
    for _ in range(int((t_flood_end + 6000) / 400)):
        if flood:
            peer.send_raw(flood[:per_step])  # handed over as the wire takes it (bounded simulator events)
            flood = flood[per_step:]
        world.clock.advance_ms(400)
        if not sent and world.clock.now_ms() >= t_flood_end + 2500:
            peer.send_raw(b'{"op":"status","seq":5}\n')
            sent = True
        for _ in range(4):
            try:
                line = link.poll()
                if line is None:
                    break
                unwrap = getattr(link, "unwrap", None)
                got.append(bytes(unwrap(line)[0] if unwrap else line))
            except HostError as e:
                got.append(e.code)
    assert sent and got[-1] == b'{"op":"status","seq":5}', got
    assert got.count(b'{"op":"status","seq":5}') == 1
