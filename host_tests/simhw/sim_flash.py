# Simulated SPI NOR flash (MicroPython subset; never deployed). Models what a power-fail-safe journal
# has to survive, with the numbers of docs/reference/storage.md (Winbond W25Q32JV/W25Q64JV):
#   - erase sets a whole 4 KiB sector to 0xFF; program can only clear bits (1 -> 0);
#   - a program is split into 256-byte page programs (a page program wraps inside its page on the chip,
#     ESP-IDF's esp_flash_write splits at page boundaries, so we split the same way);
#   - timing: page program 0.4 ms typ / 3 ms max, sector erase 45 ms typ / 400 ms max; each operation
#     advances the simulated clock, so a power cut scheduled inside that window hits the operation;
#   - a cut program lands an arbitrary subset of the bits it meant to clear (PROGRAM_MODES: none, a
#     prefix, a suffix, bits spread over the page, all but one bit, all but the last bytes, all of
#     them, or the older "mix": a prefix and a chunk of random bits);
#   - a cut erase leaves whatever phase it was in (storage.md: pre-programming to 0, erase pulses, soft
#     programming, verify): ERASE_MODES unchanged, all 0x00, random, old content with bits set and
#     cleared, partly erased with weak bits that read 1 now and 0 later, fully erased but never
#     reported done; and, harsher than the physics, some pages erased and others intact;
#   - clock-timed cuts (brownouts) draw a mode at random from program_modes / erase_modes;
#   - bit rot: any bit may flip at any time (flip_bit, rot, flip_at);
#   - a page programmed twice between erases is undefined on the chip (storage.md): counted in
#     `reprograms` (or `reprograms_blank` when the only earlier program was cut before any bit
#     changed), and the cells get the AND of both writes plus random extra clears.
# Validity must come from a CRC, never from "looks erased" (storage.md).
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

TORN_CHUNK = 16  # bytes after the landed prefix that hold a random mix when a program is cut ("mix")
WEAK_PER_TORN_ERASE = 48  # bytes left weakly erased by an interrupted erase ("weak")
TORN_TAIL = 4  # "all_but_tail": the last bytes of the write (a record's CRC) never landed

# What a cut page program leaves: which of the intended 1 -> 0 transitions landed.
PROGRAM_MODES = ("none", "prefix", "suffix", "spread", "all_but_one", "all_but_tail", "all", "mix")
# What a cut sector erase leaves.
ERASE_MODES = ("unchanged", "zeros", "random", "pages", "bits", "weak", "all")

# ioctl operations of MicroPython's block device protocol, answered by BlockDevice here and by
# esp32.Partition (upstream micropython extmod/vfs.h:50-55 MP_BLOCKDEV_IOCTL_*, docs/library/vfs.rst:
# 277-285, ports/esp32/esp32_partition.c:254-264; docs/reference/storage.md).
IOCTL_INIT = 1
IOCTL_DEINIT = 2
IOCTL_SYNC = 3
IOCTL_BLOCK_COUNT = 4
IOCTL_BLOCK_SIZE = 5
IOCTL_BLOCK_ERASE = 6

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
_FF_PAGE = b"\xff" * PAGE
_FF_MV = memoryview(_FF)
_LANDED = 1  # _touched values: bits of a program landed on the page
_TORN_BLANK = 2  # a program was cut before any bit changed


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
        self._cut_mode = None
        self._touched = {}  # page number -> True: programmed (or left undefined) since its last erase
        self._flips = []  # [op index, addr, bit]: bit rot scheduled before a mutating operation
        # Modes drawn for cuts that land by the clock (brownouts): every mode unless a test narrows it.
        self.program_modes = PROGRAM_MODES
        self.erase_modes = ERASE_MODES
        self.last_cut_mode = None  # what the last cut left (for reports)
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
        self.reprograms = 0  # page programs into a page already programmed (or torn) since its erase
        # ...into a page whose only earlier program was cut with no visible change (reads as erased):
        # no firmware can see those; counted apart (docs/journal.md, limits)
        self.reprograms_blank = 0

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
            "reprograms": self.reprograms,
            "reprograms_blank": self.reprograms_blank,
        }

    # -- power-cut injection ------------------------------------------------------------------------
    def arm_cut(self, op_index, part=None, mode=None):
        """Cut the power at mutating operation number op_index (0-based count of self.ops).

        part None and mode None: the cut happens just before the operation (nothing changes).
        mode None, part 0.0..1.0: a program keeps int(part*len) bytes and a torn chunk after them
        ("mix"); an erase is left that far along with weak bits ("weak").
        mode one of PROGRAM_MODES / ERASE_MODES: that outcome, part its parameter (share of bytes,
        bits or pages that landed; 0.5 when None); a mode of the other kind (an erase mode on a
        program) cuts before the operation; "any": a mode drawn from program_modes / erase_modes.
        """
        self._cut_op = op_index
        self._cut_part = part
        self._cut_mode = mode

    def disarm(self):
        self._cut_op = None

    def _power_cut(self, reason):
        self.cuts += 1
        self._cut_op = None
        self._cut_mode = None
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
        self._touched = {}

    def _get(self, addr):
        b = self._data[addr // SECTOR]
        return 0xFF if b is None else b[addr % SECTOR]

    def read(self, addr, buf):
        """Read len(buf) bytes at addr into buf (bytearray or memoryview)."""
        n = len(buf)
        if addr < 0 or addr + n > self.size:
            self._check_range(addr, n)
        self.reads += 1
        self.bytes_read += n
        s = addr // SECTOR
        off = addr - s * SECTOR
        if off + n <= SECTOR:  # the usual case: inside one sector
            b = self._data[s]
            if b is None:
                buf[:] = _FF_MV[:n]
            else:
                buf[:] = memoryview(b)[off : off + n]
            if self._weak:
                self._apply_weak(addr, buf)
            return
        i = 0
        while i < n:
            s = (addr + i) // SECTOR
            off = (addr + i) % SECTOR
            m = min(n - i, SECTOR - off)
            b = self._data[s]
            if b is None:
                buf[i : i + m] = _FF_MV[:m]
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
        # Detect 0 -> 1 attempts before touching anything (whole page as one integer: fast on both
        # runtimes; the byte count only when there is something to report).
        cur = self._data[addr // SECTOR]
        bad = 0
        if cur is not None:
            base = addr % SECTOR
            if ~int.from_bytes(cur[base : base + n], "little") & int.from_bytes(chunk, "little"):
                for j in range(n):
                    if (~cur[base + j]) & chunk[j] & 0xFF:
                        bad += 1
        if bad:
            self.illegal_sets += 1
            if self.on_set_bit == "raise":
                raise NorViolation("program at 0x%x would set %d byte(s) from 0 to 1" % (addr, bad))
        index = self.ops
        self.ops += 1
        self._rot_due(index)
        if self.on_op is not None:
            self.on_op(OP_PROGRAM, index, addr)
        page = addr // PAGE
        again = page in self._touched
        if again:
            if self._touched[page] == _TORN_BLANK:
                self.reprograms_blank += 1
            else:
                self.reprograms += 1
        if self._cut_op == index:
            part, mode = self._cut_part, self._cut_mode
            if mode is None and part is not None:
                mode = "mix"
            elif mode == "any":
                mode = self.program_modes[self.rng.below(len(self.program_modes))]
            if mode is not None and mode in PROGRAM_MODES:
                self._torn_page(addr, chunk, mode, 0.5 if part is None else part)
            self._power_cut("cut during page program #%d at 0x%x" % (index, addr))
        dur = PROGRAM_US[self.timing]
        t0 = sim_clock.CLOCK.now_us()
        try:
            sim_clock.CLOCK.advance_us(dur)
        except sim_power.BoardReset:
            # The power died inside the program window (brownout or a scheduled pull): any subset of
            # the transitions landed; `done` is how far along the program was.
            done = sim_clock.CLOCK.now_us() - t0
            modes = self.program_modes
            self._torn_page(addr, chunk, modes[self.rng.below(len(modes))], done / dur)
            self.cuts += 1
            raise
        self._land(addr, chunk, n)
        if again:
            self._garble(addr, n)
        self._touched[page] = _LANDED
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
        m = min(k, n)
        if m > 0:
            landed = int.from_bytes(sb[base : base + m], "little") & int.from_bytes(chunk[:m], "little")
            sb[base : base + m] = landed.to_bytes(m, "little")
            if self._weak:
                for j in range(m):
                    self._clear_weak(addr + j, chunk[j])
        if k < n:
            for j in range(k, min(n, k + TORN_CHUNK)):
                mix = chunk[j] | self.rng.byte()
                sb[base + j] &= mix
                self._clear_weak(addr + j, mix)
        self._apply_stuck(s)

    def _torn_page(self, addr, chunk, mode, part):
        # A tear that changed nothing visible (mode "none", or no bit landed) leaves a page that reads
        # as before: nothing on the flash tells it apart from an untouched page (counted apart).
        page = addr // PAGE
        s = addr // SECTOR
        lo = (page * PAGE) % SECTOR
        b = self._data[s]
        before = _FF_PAGE if b is None else bytes(b[lo : lo + PAGE])
        self._tear(addr, chunk, mode, part)
        b = self._data[s]
        same = (_FF_PAGE if b is None else b[lo : lo + PAGE]) == before
        if not (same and self._touched.get(page, _TORN_BLANK) == _TORN_BLANK):
            self._touched[page] = _LANDED
        else:
            self._touched[page] = _TORN_BLANK

    def _tear(self, addr, chunk, mode, part):
        """A cut page program: `mode` says which of the intended 1 -> 0 transitions landed."""
        self.last_cut_mode = mode
        n = len(chunk)
        if mode == "mix":
            self._land(addr, chunk, int(part * n))
            return
        if mode == "none":
            return
        if mode == "all":
            self._land(addr, chunk, n)
            return
        sb = self._sector_buf(addr // SECTOR)
        base = addr % SECTOR
        r = self.rng
        k = int(max(0.0, min(1.0, part)) * n)
        skip = -1
        if mode == "all_but_one":
            # one intended transition (a random one) never landed
            total = 0
            for j in range(n):
                total += _popcount(sb[base + j] & ~chunk[j] & 0xFF)
            skip = r.below(total) if total else -1
        seen = 0
        share = int(max(0.0, min(1.0, part)) * 256)
        for j in range(n):
            old = sb[base + j]
            want = old & ~chunk[j] & 0xFF  # bits this program clears
            if not want:
                continue
            if mode == "prefix":
                land = want if j < k else 0
            elif mode == "suffix":
                land = want if j >= n - k else 0
            elif mode == "all_but_tail":
                land = want if j < n - TORN_TAIL else 0
            elif mode == "spread":
                land = 0
                for b in range(8):
                    if want & (1 << b) and r.below(256) < share:
                        land |= 1 << b
            else:  # all_but_one
                land = want
                c = _popcount(want)
                if seen <= skip < seen + c:
                    m = skip - seen
                    for b in range(8):
                        if want & (1 << b):
                            if m == 0:
                                land &= ~(1 << b) & 0xFF
                                break
                            m -= 1
                seen += c
            sb[base + j] = old & ~land & 0xFF
            self._clear_weak(addr + j, sb[base + j])
        self._apply_stuck(addr // SECTOR)

    def _garble(self, addr, n):
        # A page programmed twice between erases: the chip does not promise the AND of both writes
        # (storage.md: "undefined"); some cells of the written area are over-programmed to 0.
        sb = self._sector_buf(addr // SECTOR)
        base = addr % SECTOR
        r = self.rng
        for _ in range(4):
            j = r.below(n)
            sb[base + j] &= ~(1 << r.below(8)) & 0xFF

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
        self._rot_due(index)
        if self.on_op is not None:
            self.on_op(OP_ERASE, index, s * SECTOR)
        if self._cut_op == index:
            part, mode = self._cut_part, self._cut_mode
            if mode is None and part is not None:
                mode = "weak"
            elif mode == "any":
                mode = self.erase_modes[self.rng.below(len(self.erase_modes))]
            if mode is not None and mode in ERASE_MODES:
                self._torn_erase(s, 0.5 if part is None else part, mode)
            self._power_cut("cut during sector erase #%d of sector %d" % (index, s))
        dur = ERASE_US[self.timing]
        t0 = sim_clock.CLOCK.now_us()
        try:
            sim_clock.CLOCK.advance_us(dur)
        except sim_power.BoardReset:
            modes = self.erase_modes
            self._torn_erase(s, (sim_clock.CLOCK.now_us() - t0) / dur, modes[self.rng.below(len(modes))])
            self.cuts += 1
            raise
        self._free(s)
        self._drop_weak(s)
        self._untouch(s)
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

    def _untouch(self, s):
        for p in range(s * (SECTOR // PAGE), (s + 1) * (SECTOR // PAGE)):
            if p in self._touched:
                del self._touched[p]

    def _torn_erase(self, s, part, mode="weak"):
        """An erase stopped part-way (mode: see ERASE_MODES; part: how far along it was)."""
        self.last_cut_mode = mode
        if mode == "unchanged":
            return  # cut before the erase pulse began: every page as it was
        sb = self._sector_buf(s)
        self._drop_weak(s)
        lo = s * SECTOR
        r = self.rng
        frac = int(max(0.0, min(1.0, part)) * 256)
        if mode == "zeros":
            # Erase algorithms pre-program every cell to 0 before the erase pulse.
            for i in range(SECTOR):
                sb[i] = 0
        elif mode == "random":
            for i in range(SECTOR):
                sb[i] = r.byte()
        elif mode == "pages":
            # Some pages erased, the others intact (old records still valid, CRC and all).
            for p in range(SECTOR // PAGE):
                if r.below(256) < frac:
                    for i in range(p * PAGE, (p + 1) * PAGE):
                        sb[i] = 0xFF
        elif mode == "bits":
            # Old content with a few bits set and a few cleared per byte touched.
            for i in range(SECTOR):
                if r.below(4) == 0:
                    sb[i] = (sb[i] | (1 << r.below(8))) & ~(1 << r.below(8)) & 0xFF
        elif mode == "all":
            for i in range(SECTOR):
                sb[i] = 0xFF  # reads erased; the erase never reported done (not counted)
        else:  # "weak": each byte partly erased, some bits that read 1 flip back to 0 later
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
        # Pages not reading erased are undefined until the next full erase; "all" and "weak" leave
        # cells only partly erased: programming any page of them before an erase is undefined too.
        for p in range(SECTOR // PAGE):
            pg = s * (SECTOR // PAGE) + p
            if mode in ("all", "weak") or sb[p * PAGE : (p + 1) * PAGE] != _FF_PAGE:
                self._touched[pg] = _LANDED
            elif pg in self._touched:
                del self._touched[pg]

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
        self._check_range(addr, 1)
        sb = self._sector_buf(addr // SECTOR)
        sb[addr % SECTOR] ^= 1 << bit

    def rot(self, flips, seed=9, lo=0, hi=None):
        """A seeded bit-rot campaign: flip `flips` random bits in [lo, hi). Returns [(addr, bit)]."""
        r = Rng(seed)
        hi = self.size if hi is None else hi
        out = []
        for _ in range(flips):
            a = lo + r.below(hi - lo)
            b = r.below(8)
            self.flip_bit(a, b)
            out.append((a, b))
        return out

    def flip_at(self, op_index, addr, bit):
        """Bit rot at any time: flip (addr, bit) just before mutating operation number op_index."""
        self._flips.append([op_index, addr, bit])

    def _rot_due(self, index):
        if self._flips:
            for f in list(self._flips):
                if f[0] <= index:
                    self.flip_bit(f[1], f[2])
                    self._flips.remove(f)

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
    def history(self):
        """{page: how it was programmed since its erase}: for load_image on another flash."""
        return dict(self._touched)

    def touched_pages(self):
        """Page numbers programmed (or left undefined by a cut) since their last erase."""
        return list(self._touched.keys())

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

    def load_image(self, data, touched=None):
        """Replace the content; `touched` (history(), or a list from touched_pages()) keeps the record
        of which pages were programmed since their erase, so a copy is as unforgiving as the original."""
        if len(data) != self.size:
            raise ValueError("image is %d bytes, flash is %d" % (len(data), self.size))
        self._weak = {}
        self._touched = {}
        if isinstance(touched, dict):
            self._touched = dict(touched)
        elif touched is not None:
            for p in touched:
                self._touched[p] = _LANDED
        else:
            for p in range(self.size // PAGE):  # unknown history: every non-blank page was programmed
                sb = data[p * PAGE : (p + 1) * PAGE]
                if sb != _FF_PAGE:
                    self._touched[p] = _LANDED
        for s in range(self.sectors):
            chunk = data[s * SECTOR : (s + 1) * SECTOR]
            if chunk == _FF:
                self._free(s)
            else:
                self._sector_buf(s)[:] = chunk


def _popcount(x):
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n


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
        if op in (IOCTL_INIT, IOCTL_DEINIT, IOCTL_SYNC):
            return 0
        if op == IOCTL_BLOCK_COUNT:
            return self.flash.sectors
        if op == IOCTL_BLOCK_SIZE:
            return SECTOR
        if op == IOCTL_BLOCK_ERASE:
            self.flash.erase_sector(arg)
            return 0
        return None
