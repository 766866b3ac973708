# Host-link framing and request validation on the real MicroPython VM (110 KB heap): the same
# refusals as on CPython, card numbers caught, deep nesting refused before json.loads can exhaust
# the heap, and lines split anywhere by the UART still framed whole.
import json

import mpy_runner

from posguard import validate
from posguard.hostlink import HostLink
from posguard.validate import HostError, Limits

LIM = Limits({"line_max": 2048, "items_max": 20, "name_max": 32, "amount_max": 10000000})


class FakeUart:
    def __init__(self, chunk):
        self.rx = bytearray()
        self.chunk = chunk

    def any(self):
        return len(self.rx)

    def readinto(self, buf):
        n = min(len(buf), len(self.rx), self.chunk)
        if n == 0:
            return None
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n


def code(line):
    try:
        validate.validate_line(line, LIM)
    except HostError as e:
        return e.code
    return "OK"


def test_valid_open_passes():
    req = validate.validate_line(
        json.dumps({"op": "open", "id": 7, "items": [{"name": "拿铁 Latte", "qty": 2, "price": 1800}]}).encode(), LIM
    )
    assert req["items"] == [("拿铁 Latte", 2, 1800)], req


def test_refusals_match_cpython():
    cases = [
        (b"{nope", "BAD_JSON"),
        (b"\xff\xfe", "BAD_JSON"),
        (b'{"op":"fly"}', "UNKNOWN_OP"),
        (b'{"op":"sale","id":"7"}', "BAD_ID"),
        (b'{"op":"open","id":1,"items":[{"name":"T","price":1.5}]}', "BAD_AMOUNT"),
        (b'{"op":"open","id":1,"items":[{"name":"T\\u001b@","price":1}]}', "BAD_NAME"),
        (b'{"op":"void","id":1,"reason":"4111 1111 1111 1111"}', "CARD_NUMBER"),
        (b'{"op":"status","seq":4111111111111111}', "CARD_NUMBER"),
        (b'{"op":"approve","id":1,"auth":"A1","last4":"4242"}', "OK"),
    ]
    for line, want in cases:
        got = code(line)
        assert got == want, (line, got, want)


def test_deep_nesting_is_refused_without_running_out_of_heap():
    assert code(b"[" * 2000 + b"]" * 40) == "BAD_JSON"
    assert code(b'{"op":"status","x":' + b"[" * 100 + b"]" * 100 + b"}") == "BAD_JSON"


def test_random_bytes_never_crash():
    seed = 12345
    for n in range(300):
        buf = bytearray(1 + n % 97)
        for i in range(len(buf)):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            buf[i] = (seed >> 16) & 0xFF
        code(bytes(buf))  # any HostError is fine; any other exception fails the test


def test_framing_splits_and_over_long_lines():
    u = FakeUart(5)
    link = HostLink(u, 32)
    u.rx += b'{"op":"status"}\r\n\n' + b"x" * 80 + b'\n{"op":"sale","id":3}\n'
    got = []
    for _ in range(200):
        try:
            line = link.poll()
        except HostError as e:
            got.append(e.code)
            continue
        if line is None:
            if not u.any():
                break
            continue
        got.append(bytes(line))
    assert got == [b'{"op":"status"}', "LINE_TOO_LONG", b'{"op":"sale","id":3}'], got


if __name__ == "__main__":
    mpy_runner.main(globals())
