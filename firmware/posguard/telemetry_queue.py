# Events waiting for the broker, on flash: a fixed-size file of `slots` slots (preallocated, so it never
# grows), a ring keyed by a sequence number. When it is full the oldest event is overwritten and counted
# as dropped (the count is kept in the file's header, so it survives a reboot). Events are rare (a paper
# roll, a battery level, a power loss), so one small write per event is cheap on flash.
#
# File: header "PGQ1" + dropped (u32) + next seq (u32); then slots of SLOT bytes:
#   seq (u32, 0 = empty) + length (u16) + payload (at most SLOT - 6 bytes).
import struct

from micropython import const

SLOT = const(192)
PAYLOAD_MAX = const(186)
_HDR = const(12)
_MAGIC = b"PGQ1"


class EventQueue:
    def __init__(self, path, slots):
        self.path = path
        self.slots = slots
        self.dropped = 0
        self.next_seq = 1
        self.head = 1  # oldest seq not yet delivered
        self._buf = bytearray(SLOT)
        try:
            self._load()
        except (OSError, ValueError):
            self._format()

    def _format(self):
        with open(self.path, "wb") as f:
            f.write(_MAGIC + struct.pack("<II", 0, 1))
            zero = bytes(SLOT)
            for _ in range(self.slots):
                f.write(zero)
        self.dropped = 0
        self.next_seq = 1
        self.head = 1

    def _load(self):
        with open(self.path, "rb") as f:
            hdr = f.read(_HDR)
            if len(hdr) != _HDR or hdr[:4] != _MAGIC:
                raise ValueError("queue header")
            self.dropped, self.next_seq = struct.unpack("<II", hdr[4:])
            lowest = 0
            top = 0
            n = 0
            for i in range(self.slots):
                f.seek(_HDR + i * SLOT)
                b = f.read(4)
                if len(b) != 4:
                    raise ValueError("queue size")  # a queue of another size: start a fresh one
                seq = struct.unpack("<I", b)[0]
                if seq:
                    n += 1
                    lowest = seq if lowest == 0 or seq < lowest else lowest
                    top = seq if seq > top else top
            f.seek(0, 2)
            if f.tell() != _HDR + self.slots * SLOT:
                raise ValueError("queue size")
        # The header's next seq may lag one event behind a cut between the slot and the header write.
        if top >= self.next_seq:
            self.next_seq = top + 1
        self.head = lowest if n else self.next_seq

    def __len__(self):
        return self.next_seq - self.head

    def push(self, payload):
        """Store one event (bytes, at most PAYLOAD_MAX). Full: the oldest is overwritten and counted."""
        n = len(payload)
        if n > PAYLOAD_MAX:
            raise ValueError("event too large")
        seq = self.next_seq
        if len(self) >= self.slots:
            self.head += 1
            self.dropped += 1
        buf = self._buf
        struct.pack_into("<IH", buf, 0, seq, n)
        buf[6 : 6 + n] = payload
        with open(self.path, "r+b") as f:
            f.seek(_HDR + (seq % self.slots) * SLOT)
            f.write(memoryview(buf)[: 6 + n])
            self.next_seq = seq + 1
            f.seek(4)
            f.write(struct.pack("<II", self.dropped, self.next_seq))
        return seq

    def peek(self):
        """(seq, payload bytes) of the oldest event, or None."""
        if not len(self):
            return None
        seq = self.head
        with open(self.path, "rb") as f:
            f.seek(_HDR + (seq % self.slots) * SLOT)
            hdr = f.read(6)
            got, n = struct.unpack("<IH", hdr)
            if got != seq or n > PAYLOAD_MAX:
                return None
            return seq, f.read(n)

    def pop(self, seq):
        """The event `seq` was delivered: free its slot."""
        if seq != self.head:
            return
        with open(self.path, "r+b") as f:
            f.seek(_HDR + (seq % self.slots) * SLOT)
            f.write(b"\0\0\0\0")
        self.head = seq + 1

    def skip_broken(self):
        """The head slot holds no readable event (a cut mid-write): count it as dropped and move on."""
        if len(self):
            self.head += 1
            self.dropped += 1
