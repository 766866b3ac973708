"""Host-link framing: lines split anywhere still come out whole, an over-long line is dropped and
answered once, and the framing keeps working afterwards."""

from __future__ import annotations

import asyncio
import json

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
