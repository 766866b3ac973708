"""The back office's MQTT 3.1.1 client (host side, blocking sockets, typed): connect, subscribe, receive
publishes (PUBACK for QoS 1), publish. Just what `posguard fleet` and the tests need; the wire format is
OASIS MQTT 3.1.1 (fixed header, remaining length, CONNECT/CONNACK/SUBSCRIBE/SUBACK/PUBLISH/PUBACK)."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass


class MqttError(OSError):
    pass


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    at: float  # time.monotonic() when it arrived


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class Client:
    def __init__(self, host: str, port: int, client_id: str, timeout_s: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self._buf = b""
        self._pid = 0
        self._early: list[Message] = []  # publishes that came before a SUBACK
        body = _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + _str(client_id)
        self.sock.sendall(b"\x10" + _remaining(len(body)) + body)
        got = self._packet(timeout_s)
        if got is None:
            raise MqttError("no CONNACK from the broker")
        kind, data = got
        if kind != 0x20 or len(data) != 2 or data[1] != 0:
            raise MqttError(f"broker refused the connection: {kind:#x} {data!r}")

    @classmethod
    def from_url(cls, url: str, client_id: str, timeout_s: float = 5.0) -> Client:
        if not url.startswith("mqtt://"):
            raise ValueError(f"broker URL must be mqtt://host[:port], got {url!r}")
        host, _, port = url[7:].partition(":")
        return cls(host, int(port or 1883), client_id, timeout_s)

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.sock.close()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._pid = self._pid % 65535 + 1
        body = struct.pack("!H", self._pid) + _str(topic) + bytes([qos])
        self.sock.sendall(b"\x82" + _remaining(len(body)) + body)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            got = self._packet(deadline - time.monotonic())
            if got is not None and got[0] == 0x90:
                return
            if got is not None and got[0] == 0x30:
                self._early.append(self._publish(got))
        raise MqttError("no SUBACK")

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        head = 0x30 | (qos << 1) | int(retain)
        body = _str(topic)
        if qos:
            self._pid = self._pid % 65535 + 1
            body += struct.pack("!H", self._pid)
        body += payload
        self.sock.sendall(bytes([head]) + _remaining(len(body)) + body)

    def receive(self, timeout_s: float) -> Message | None:
        """The next PUBLISH (acknowledged if QoS 1), or None after timeout_s."""
        if self._early:
            return self._early.pop(0)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            got = self._packet(left)
            if got is None:
                return None
            if got[0] == 0x30:
                return self._publish(got)

    def _publish(self, got: tuple[int, bytes]) -> Message:
        flags, data = got[1][0], got[1][1:]
        n = struct.unpack("!H", data[:2])[0]
        topic = data[2 : 2 + n].decode()
        rest = data[2 + n :]
        qos = (flags >> 1) & 3
        if qos:
            pid = rest[:2]
            rest = rest[2:]
            self.sock.sendall(b"\x40\x02" + pid)
        return Message(topic, bytes(rest), qos, bool(flags & 1), time.monotonic())

    def _read(self, n: int, deadline: float) -> bytes | None:
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise MqttError("the broker closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _packet(self, timeout_s: float) -> tuple[int, bytes] | None:
        """(packet type, flags byte + body) — the type in the high nibble, PUBLISH as 0x30."""
        deadline = time.monotonic() + timeout_s
        if not self._buf:
            got = self._read(1, deadline)
            if got is None:
                return None
            self._buf = got + self._buf
        deadline = max(deadline, time.monotonic() + 5)  # a packet that has started arrives whole
        first = self._read(1, deadline)
        assert first is not None
        n = 0
        shift = 0
        while True:
            b = self._read(1, deadline)
            if b is None:
                raise MqttError("truncated packet")
            n |= (b[0] & 0x7F) << shift
            shift += 7
            if not b[0] & 0x80:
                break
        body = self._read(n, deadline) if n else b""
        if body is None:
            raise MqttError("truncated packet")
        kind = first[0] & 0xF0
        if kind == 0x30:
            return 0x30, bytes([first[0] & 0x0F]) + body
        return kind, body


def retained(host: str, port: int, topic: str, timeout_s: float = 5.0, tries: int = 3) -> Message | None:
    """The retained message on `topic` as a new subscriber gets it (None if there is none). A broker that
    drops a fresh connection under load is asked again."""
    for attempt in range(tries):
        try:
            c = Client(host, port, f"retained-{attempt}", timeout_s)
            try:
                c.subscribe(topic)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    m = c.receive(deadline - time.monotonic())
                    if m is None or m.topic == topic:  # amqtt also hands out other retained topics
                        return m
                return None
            finally:
                c.close()
        except MqttError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2)
    return None
