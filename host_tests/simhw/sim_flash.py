# Simulated SPI NOR flash (MicroPython subset; never deployed). Models what a power-fail-safe journal
# has to survive, with the numbers of docs/reference/storage.md (Winbond W25Q32JV/W25Q64JV):
#   - erase sets a whole 4 KiB sector to 0xFF; program can only clear bits (1 -> 0);
#   - a program is split into 256-byte page programs (a page program wraps inside its page on the chip,
#     ESP-IDF's esp_flash_write splits at page boundaries, so we split the same way);
#   - timing: page program 0.4 ms typ / 3 ms max, sector erase 45 ms typ / 400 ms max; each operation
#     advances the simulated clock, so a power cut scheduled inside that window hits the operation;
#   - a cut during a program leaves the first k bytes programmed and the next chunk an arbitrary mix
#     of old and new bits; a cut during an erase leaves bits undefined, some "weakly erased": they read
#     1 now and may read 0 later. Validity must come from a CRC, never from "looks erased".
# Storage is sparse (an erased sector holds no RAM) so a 2 MiB partition fits the unix port's heap.
import sys

import sim_clock
import sim_power
from sim_rng import Rng  # noqa: F401  (sim_flash.Rng: the harnesses' random source)

SECTOR = 4096  # erase unit (storage.md)
PAGE = 256  # program unit (storage.md)

# Operation durations in microseconds (docs/reference/storage.md, W25Q64JV datasheet).
PROGRAM_US = {"typ": 400, "max": 3000}
ERASE_US = {"typ": 45000, "max": 400000}

TORN_CHUNK = 16  # bytes after the landed prefix that hold a random mix when a program is cut
WEAK_PER_TORN_ERASE = 48  # bytes left weakly erased by an interrupted erase

OP_PROGRAM = "program"
OP_ERASE = "erase"

# Sector buffers are simulator memory, not firmware heap: on the unix port a pool is allocated when
# this module loads (before sim_heap pins the firmware's 110 KB budget) and reused by every NorFlash
# (release() gives buffers back), so simulated flash content never eats the firmware's heap.
# POSGUARD_FLASH_POOL overrides the pool size (sectors) for worlds with bigger journals.
_POOL_SECTORS = 0
if sys.implementation.name == "micropython":
    import os

    _POOL_SECTORS = int(os.getenv("POSGUARD_FLASH_POOL") or 8)
_pool = [bytearray(SECTOR) for _ in range(_POOL_SECTORS)]
_FF = b"\xff" * SECTOR


class NorViolation(OSError):
    """The firmware tried to program a 0 bit back to 1 (only an erase can do that)."""


class NorFlash:
    def __init__(self, size, seed=1, on_set_bit="raise", timing="typ", label="journal", ptype=1, subtype=0x40):
        if size <= 0 or size % SECTOR:
            raise ValueError("flash size must be a positive multiple of 4096")
        if on_set_bit not in ("raise", "and"):
            raise ValueError("on_set_bit must be 'raise' or 'and'")
        self.size = size
        self.sectors = size // SECTOR
        self.label = label
        self.ptype = ptype  # esp32.Partition.TYPE_DATA
        self.subtype = subtype  # 0x40..0xFE: application-defined data subtypes in ESP-IDF
        self._data = [None] * self.sectors  # None: sector fully erased (0xFF); else bytearray(4096)
        self._weak = {}  # address -> [mask of bits that read 1 now but will flip to 0, reads left]
        self._stuck = {}  # address -> mask of bits stuck at 0 (a worn cell: erase cannot set them)
        self.on_set_bit = on_set_bit
        self.timing = timing
        self.rng = Rng(seed)
        self.erase_counts = [0] * self.sectors
        self.reset_counters()
        self._cut_op = None
        self._cut_part = None
        self.on_op = None  # hook fn(kind, index, addr) called before each mutating operation

    # -- counters ---------------------------------------------------------------------------------
    def reset_counters(self):
        self.reads = 0
        self.bytes_read = 0
        self.programs = 0  # page programs
        self.bytes_programmed = 0
        self.erases = 0
        self.ops = 0  # mutating operations (page programs + sector erases): the cut index
        self.illegal_sets = 0  # 0 -> 1 attempts (counted in 'and' mode, raised in 'raise' mode)
        self.busy_us = 0  # modelled time spent programming/erasing
        self.max_program_us = 0
        self.max_erase_us = 0
        self.cuts = 0

    def counters(self):
        return {
            "reads": self.reads,
            "bytes_read": self.bytes_read,
            "programs": self.programs,
            "bytes_programmed": self.bytes_programmed,
            "erases": self.erases,
            "ops": self.ops,
            "illegal_sets": self.illegal_sets,
            "busy_us": self.busy_us,
        }

    # -- power-cut injection ------------------------------------------------------------------------
    def arm_cut(self, op_index, part=None):
        """Cut the power at mutating operation number op_index (0-based count of self.ops).

        part None: the cut happens just before the operation (nothing changes).
        part 0.0..1.0: the cut lands part-way: a program keeps int(part*len) bytes and a torn chunk
        after them; an erase is left that far along (bits undefined, some weakly erased).
        """
        self._cut_op = op_index
        self._cut_part = part

    def disarm(self):
        self._cut_op = None

    def _power_cut(self, reason):
        self.cuts += 1
        self._cut_op = None
        p = sim_power.POWER
        if p is not None and p.on:
            p.cut(reason)  # raises PowerLoss
        raise sim_power.PowerLoss(reason)

    # -- byte access ------------------------------------------------------------------------------
    def _sector_buf(self, s):
        b = self._data[s]
        if b is None:
            if _pool:
                b = _pool.pop()
                b[:] = _FF
            else:
                b = bytearray(_FF)
            self._data[s] = b
        return b

    def _free(self, s):
        b = self._data[s]
        if b is not None:
            self._data[s] = None
            if len(_pool) < _POOL_SECTORS:
                _pool.append(b)

    def release(self):
        """Give the sector buffers back to the simulator's pool (the flash reads erased after this)."""
        for s in range(self.sectors):
            self._free(s)
        self._weak = {}

    def _get(self, addr):
        b = self._data[addr // SECTOR]
        return 0xFF if b is None else b[addr % SECTOR]

    def read(self, addr, buf):
        """Read len(buf) bytes at addr into buf (bytearray or memoryview)."""
        n = len(buf)
        self._check_range(addr, n)
        self.reads += 1
        self.bytes_read += n
        i = 0
        while i < n:
            s = (addr + i) // SECTOR
            off = (addr + i) % SECTOR
            m = min(n - i, SECTOR - off)
            b = self._data[s]
            if b is None:
                for j in range(i, i + m):
                    buf[j] = 0xFF
            else:
                buf[i : i + m] = b[off : off + m]
            i += m
        if self._weak:
            self._apply_weak(addr, buf)

    def _apply_weak(self, addr, buf):
        # Weakly erased bits read as 1 for a few reads, then settle at 0 (storage.md: "bits that
        # read as 1 now and flip later").
        for a in list(self._weak.keys()):
            if addr <= a < addr + len(buf):
                w = self._weak[a]
                w[1] -= 1
                if w[1] <= 0:
                    sb = self._sector_buf(a // SECTOR)
                    sb[a % SECTOR] &= ~w[0] & 0xFF
                    del self._weak[a]
                    buf[a - addr] = sb[a % SECTOR]

    def settle(self):
        """Let every weakly erased bit flip now (what time and temperature do to a weak cell)."""
        for a in list(self._weak.keys()):
            sb = self._sector_buf(a // SECTOR)
            sb[a % SECTOR] &= ~self._weak[a][0] & 0xFF
        self._weak = {}

    def _check_range(self, addr, n):
        if addr < 0 or n < 0 or addr + n > self.size:
            raise OSError("flash access 0x%x+%d outside 0..0x%x" % (addr, n, self.size))

    # -- program ----------------------------------------------------------------------------------
    def program(self, addr, data):
        """Program bytes (clears bits only), split at 256-byte page boundaries like esp_flash_write."""
        n = len(data)
        self._check_range(addr, n)
        mv = memoryview(data)
        i = 0
        while i < n:
            m = min(n - i, PAGE - (addr + i) % PAGE)
            self._program_page(addr + i, mv[i : i + m])
            i += m

    def _program_page(self, addr, chunk):
        n = len(chunk)
        # Detect 0 -> 1 attempts before touching anything.
        bad = 0
        for j in range(n):
            if (~self._get(addr + j)) & chunk[j] & 0xFF:
                bad += 1
        if bad:
            self.illegal_sets += 1
            if self.on_set_bit == "raise":
                raise NorViolation("program at 0x%x would set %d byte(s) from 0 to 1" % (addr, bad))
        index = self.ops
        self.ops += 1
        if self.on_op is not None:
            self.on_op(OP_PROGRAM, index, addr)
        if self._cut_op == index:
            part = self._cut_part
            if part is not None:
                self._land(addr, chunk, int(part * n))
            self._power_cut("cut during page program #%d at 0x%x" % (index, addr))
        dur = PROGRAM_US[self.timing]
        t0 = sim_clock.CLOCK.now_us()
        try:
            sim_clock.CLOCK.advance_us(dur)
        except sim_power.BoardReset:
            # The power died inside the program window (brownout or a scheduled pull).
            done = sim_clock.CLOCK.now_us() - t0
            self._land(addr, chunk, n * done // dur)
            self.cuts += 1
            raise
        self._land(addr, chunk, n)
        self.programs += 1
        self.bytes_programmed += n
        self.busy_us += dur
        if dur > self.max_program_us:
            self.max_program_us = dur

    def _land(self, addr, chunk, k):
        """The first k bytes are programmed; a torn chunk after them gets a random subset of the
        bits that should have cleared (an arbitrary mix of old and new bits)."""
        n = len(chunk)
        s = addr // SECTOR
        sb = self._sector_buf(s)
        base = addr % SECTOR
        for j in range(min(k, n)):
            sb[base + j] &= chunk[j]
            self._clear_weak(addr + j, chunk[j])
        if k < n:
            for j in range(k, min(n, k + TORN_CHUNK)):
                mix = chunk[j] | self.rng.byte()
                sb[base + j] &= mix
                self._clear_weak(addr + j, mix)
        self._apply_stuck(s)

    def _clear_weak(self, a, value):
        w = self._weak.get(a)
        if w is not None:
            w[0] &= value  # bits now programmed to 0 are no longer "weak 1"s
            if not w[0]:
                del self._weak[a]

    # -- erase ------------------------------------------------------------------------------------
    def erase_sector(self, s):
        if not 0 <= s < self.sectors:
            raise OSError("erase of sector %d outside 0..%d" % (s, self.sectors - 1))
        index = self.ops
        self.ops += 1
        if self.on_op is not None:
            self.on_op(OP_ERASE, index, s * SECTOR)
        if self._cut_op == index:
            part = self._cut_part
            if part is not None:
                self._torn_erase(s, part)
            self._power_cut("cut during sector erase #%d of sector %d" % (index, s))
        dur = ERASE_US[self.timing]
        t0 = sim_clock.CLOCK.now_us()
        try:
            sim_clock.CLOCK.advance_us(dur)
        except sim_power.BoardReset:
            self._torn_erase(s, (sim_clock.CLOCK.now_us() - t0) / dur)
            self.cuts += 1
            raise
        self._free(s)
        self._drop_weak(s)
        self._apply_stuck(s)
        self.erases += 1
        self.erase_counts[s] += 1
        self.busy_us += dur
        if dur > self.max_erase_us:
            self.max_erase_us = dur

    def _drop_weak(self, s):
        lo = s * SECTOR
        for a in list(self._weak.keys()):
            if lo <= a < lo + SECTOR:
                del self._weak[a]

    def _torn_erase(self, s, part):
        """An erase stopped part-way: each byte is partly erased (bits undefined), and some of the
        bits that read 1 are weak: they flip back to 0 after a few reads."""
        sb = self._sector_buf(s)
        self._drop_weak(s)
        lo = s * SECTOR
        r = self.rng
        frac = int(max(0.0, min(1.0, part)) * 256)
        for i in range(SECTOR):
            if r.below(256) < frac:
                sb[i] = 0xFF
            else:
                sb[i] |= r.byte()
        # A bounded number of weak bytes (simulator memory stays small on the unix port).
        for _ in range(WEAK_PER_TORN_ERASE):
            i = r.below(SECTOR)
            weak = sb[i] & r.byte()
            if weak:
                self._weak[lo + i] = [weak, 1 + r.below(4)]
        self._apply_stuck(s)

    # -- faults a test can inject -----------------------------------------------------------------
    def stick_bits(self, addr, mask):
        """Make bits stuck at 0 (a worn-out cell): an erase no longer sets them."""
        self._stuck[addr] = self._stuck.get(addr, 0) | mask
        self._apply_stuck(addr // SECTOR)

    def _apply_stuck(self, s):
        if not self._stuck:
            return
        lo = s * SECTOR
        for a, mask in self._stuck.items():
            if lo <= a < lo + SECTOR:
                self._sector_buf(s)[a - lo] &= ~mask & 0xFF

    def flip_bit(self, addr, bit):
        """Corrupt one stored bit (either direction): retention loss, a cosmic ray, a bad copy."""
        sb = self._sector_buf(addr // SECTOR)
        sb[addr % SECTOR] ^= 1 << bit

    def fill_garbage(self, s, seed=7):
        r = Rng(seed)
        sb = self._sector_buf(s)
        for i in range(SECTOR):
            sb[i] = r.byte()

    def weaken(self, s, seed=5, share=8, reads=None):
        """Leave roughly 1/share of the erased bytes of sector s weakly erased (read 1, flip later:
        after `reads` reads, or 1..4 reads when None)."""
        r = Rng(seed)
        lo = s * SECTOR
        for i in range(SECTOR):
            if self._get(lo + i) == 0xFF and r.below(share) == 0:
                self._weak[lo + i] = [1 << r.below(8), reads or 1 + r.below(4)]

    # -- images -----------------------------------------------------------------------------------
    def image(self):
        """The whole flash content as bytes (weak bits read as they would now)."""
        out = bytearray(self.size)
        for s in range(self.sectors):
            b = self._data[s]
            if b is None:
                out[s * SECTOR : (s + 1) * SECTOR] = _FF
            else:
                out[s * SECTOR : (s + 1) * SECTOR] = b
        return bytes(out)

    def load_image(self, data):
        if len(data) != self.size:
            raise ValueError("image is %d bytes, flash is %d" % (len(data), self.size))
        self._weak = {}
        for s in range(self.sectors):
            chunk = data[s * SECTOR : (s + 1) * SECTOR]
            if chunk == _FF:
                self._free(s)
            else:
                self._sector_buf(s)[:] = chunk


def provision(board, label=None, size=None, seed=1):
    """Give a simulated board the journal partition its profile names (idempotent)."""
    j = board.profile["journal"]
    label = label or j["label"]
    if label not in board.partitions:
        board.partitions[label] = NorFlash(size or j["size_kb"] * 1024, seed=seed, label=label)
    return board.partitions[label]


class BlockDevice:
    """The block protocol of esp32.Partition (block_size 4096) straight on a NorFlash, for tests and
    benchmarks that run without a simulated board."""

    def __init__(self, flash):
        self.flash = flash

    def readblocks(self, n, buf, offset=0):
        self.flash.read(n * SECTOR + offset, buf)

    def writeblocks(self, n, buf, offset=None):
        if offset is None:
            self.flash.erase_sector(n)
            offset = 0
        self.flash.program(n * SECTOR + offset, buf)

    def ioctl(self, op, arg):
        if op in (1, 2, 3):
            return 0
        if op == 4:
            return self.flash.sectors
        if op == 5:
            return SECTOR
        if op == 6:
            self.flash.erase_sector(arg)
            return 0
        return None
