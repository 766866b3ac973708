# The journal's flash layout: an append-only log of one-page records on a raw partition reached only
# through the block protocol (readblocks / writeblocks(n, buf, offset) / ioctl), so the same code runs
# on esp32.Partition and on the simulated NOR flash.
#
# Sector layout (4 KiB erase unit, 256-byte pages; docs/reference/storage.md):
#   page 0   T_ERASED header: written right after a verified erase (erase count, format generation)
#   page 1   T_CHECKPOINT: written when the sector becomes the active one; lists every unfinished sale
#   page 2.. one record per page, appended in order
# Why: a commit is one page program into pre-erased space (never an erase: 400 ms worst case could
# not be held up by the supply), and mount reads two pages per sector plus the active sector only.
from micropython import const

from posguard import records as R

SECTOR = const(4096)
PAGES = const(16)  # pages per sector
FIRST_REC = const(2)  # first record page of a sector
REC_PAGES = const(14)  # record pages per sector
NONE_PG = const(0xFFFF)

# Sector kinds (RAM only: rebuilt at mount from the two header pages)
K_DIRTY = const(0)  # must be erased before use (interrupted erase, torn checkpoint, old generation)
K_SPARE = const(1)  # verified erased, header written, ready to become active
K_USED = const(2)  # holds records (the active one and older ones)
K_RETIRED = const(3)  # failed its post-erase verify: never used again

_MAX_APPEND_TRIES = const(3)  # pages skipped after a failed read-back before giving up


class Journal:
    def __init__(self, part):
        self.part = part
        bs = part.ioctl(5, 0)
        if bs != SECTOR:
            raise R.JournalError("corrupt", "journal partition needs block_size 4096, has %s" % bs)
        self.nsec = part.ioctl(4, 0)
        if self.nsec < 4 or self.nsec * PAGES > NONE_PG:
            raise R.JournalError("corrupt", "journal partition must have 4..4095 sectors, has %d" % self.nsec)
        self.wbuf = bytearray(R.PAGE)  # records are built here (preallocated: no allocation per commit)
        self.wmv = memoryview(self.wbuf)
        self.rbuf = bytearray(R.PAGE)  # every read lands here; callers copy what they keep
        self.rmv = memoryview(self.rbuf)
        self.kind = bytearray(self.nsec)
        self.erase_counts = [0] * self.nsec
        self.sseq = [0] * self.nsec  # checkpoint sequence of used sectors: their age order
        self.active = -1
        self.next_page = PAGES
        self.seq = 0
        self.gen = 0
        self.max_gen = 0
        self.max_ckpt_gen = 0  # newest generation that has a checkpoint (tells a cut format apart)
        self.corrupt = 0  # records found torn or corrupt (skipped)
        self.bytes_read = 0
        self.mount_bytes_read = 0
        self.mounted = False
        self.state = "unmounted"  # after mount: ok | blank | not_formatted | corrupt
        self.checkpoint_fn = None  # () -> bytes: the payload of the next checkpoint (the sale book)

    # -- raw access -----------------------------------------------------------------------------
    def _read(self, pg, n=R.PAGE):
        self.part.readblocks(pg // PAGES, self.rmv[:n], (pg % PAGES) * R.PAGE)
        self.bytes_read += n

    def read_record(self, pg):
        """Decode the record at page pg into rbuf; returns the header tuple or None (blank/torn)."""
        self._read(pg)
        h = R.decode(self.rbuf)
        if h is not None and h[6] != self.gen & 0xFFFF:
            return None
        return h

    def read_header(self, pg):
        """(type, sale_id) from the first 16 bytes of a page without validating it, or None."""
        self._read(pg, R.HDR)
        b = self.rbuf
        if b[0] != R.MAGIC:
            return None
        return (b[1], b[8] | (b[9] << 8) | (b[10] << 16) | (b[11] << 24))

    def payload(self, h):
        """The payload of the record last read (a memoryview into rbuf: copy it to keep it)."""
        return self.rmv[R.HDR : R.HDR + h[5]]

    def _program(self, pg, n):
        try:
            self.part.writeblocks(pg // PAGES, self.wmv[:n], (pg % PAGES) * R.PAGE)
        except OSError as e:  # the flash driver refused: report it like any journal error
            raise R.JournalError("flash_fault", "page program at page %d failed: %s" % (pg, e))

    # -- mount ------------------------------------------------------------------------------------
    def mount(self, replay):
        """Find the active sector and replay its checkpoint and records through replay(pg, h, payload).

        Reads page 0 (20 bytes) and page 1 of every sector, then the active sector's record pages:
        the cost depends on the partition size, never on how full the journal is.
        Sets self.state; returns it. Never raises for torn or corrupt content.
        """
        start = self.bytes_read
        self.mounted = False
        self.corrupt = 0
        self.active = -1
        best = -1
        best_seq = -1
        maxgen = 0
        ckgen = 0
        blank = 0
        ours = 0
        gens = [0] * self.nsec
        p1b = bytearray(self.nsec)  # page 1 blank, per sector
        for s in range(self.nsec):  # bounded: one pass over the sectors
            pg0 = s * PAGES
            self._read(pg0, R.HDR + R.CRC)
            h0 = None
            if self.rbuf[12] == 0 and self.rbuf[13] == 0:
                h0 = R.decode(self.rbuf)
            b0 = R.is_blank(self.rbuf, R.HDR + R.CRC)
            self._read(pg0 + 1)
            h1 = R.decode(self.rbuf)
            b1 = R.is_blank(self.rbuf)
            if b1:
                p1b[s] = 1
            self.kind[s] = K_DIRTY
            if h0 is not None and h0[0] in (R.T_ERASED, R.T_RETIRED):
                ours += 1
                self.erase_counts[s] = h0[4]
                gens[s] = h0[6]
                maxgen = max(maxgen, h0[6])
                if h0[0] == R.T_RETIRED:
                    self.kind[s] = K_RETIRED
                    continue
                if b1:
                    self.kind[s] = K_SPARE
            elif b0 and b1:
                blank += 1
            if h1 is not None and h1[0] == R.T_CHECKPOINT:
                self.kind[s] = K_USED
                self.sseq[s] = h1[3]
                gens[s] = h1[6]
                maxgen = max(maxgen, h1[6])
                ckgen = max(ckgen, h1[6])
                if h1[3] > best_seq:
                    best_seq = h1[3]
                    best = s
        known = [self.erase_counts[s] for s in range(self.nsec) if self.kind[s] != K_DIRTY]
        top = max(known) if known else 0
        for s in range(self.nsec):
            if self.kind[s] == K_DIRTY:
                self.erase_counts[s] = max(self.erase_counts[s], top)  # lost with its header
        self.max_gen = maxgen
        self.max_ckpt_gen = ckgen
        self.mount_bytes_read = self.bytes_read - start
        if best < 0:
            if blank == self.nsec:
                self.state = "blank"
            elif (ours or blank >= self.nsec - 1) and not self._any_records(p1b):
                # Our erase headers (CRC-checked: foreign data does not have them) and no record
                # anywhere, or a blank partition with one torn sector: a format that was cut (maybe
                # several times). Anything else is foreign, or records behind broken checkpoints:
                # never formatted away automatically.
                self.state = "not_formatted"
            else:
                self.state = "corrupt"  # foreign content, or our checkpoints all destroyed
            return self.state
        self.gen = gens[best]
        if self.gen != maxgen:
            self.state = "not_formatted"  # a newer format began and did not finish
            return self.state
        for s in range(self.nsec):  # anything of another generation is stale
            if self.kind[s] in (K_USED, K_SPARE) and gens[s] != self.gen:
                self.kind[s] = K_DIRTY
        self.seq = best_seq
        # A sector whose checkpoint page is unreadable (a flipped bit) but whose first record page
        # is valid still holds records: keep it, and replay it if it is newer than the checkpoint.
        chain = [best]
        for s in range(self.nsec):
            if self.kind[s] == K_DIRTY and not p1b[s]:
                self._read(s * PAGES + FIRST_REC)
                h = R.decode(self.rbuf)
                if h is not None and h[6] == self.gen and h[0] >= R.T_DATA:
                    self.kind[s] = K_USED
                    self.sseq[s] = h[3] - 1
                    if h[3] > best_seq:
                        chain.append(s)
        if len(chain) > 2:
            tail = chain[1:]
            tail.sort(key=lambda s: self.sseq[s])
            chain = [best] + tail
        h = self.read_record(best * PAGES + 1)
        replay(best * PAGES + 1, h, self.payload(h))
        last = FIRST_REC - 1
        for s in chain:  # bounded: the active sector (and, after damage, the few sectors after it)
            last = FIRST_REC - 1
            for p in range(FIRST_REC, PAGES):  # bounded: 14 record pages
                pg = s * PAGES + p
                h = self.read_record(pg)
                if h is None:
                    if not R.is_blank(self.rbuf):
                        self.corrupt += 1  # torn or corrupt: skipped, and never written over
                        last = p
                    continue
                last = p
                if h[3] > self.seq:
                    self.seq = h[3]
                if h[0] == R.T_FORMAT:
                    self.state = "not_formatted"
                    return self.state
                replay(pg, h, self.payload(h))
        self.active = chain[-1]
        self.next_page = last + 1
        self.mount_bytes_read = self.bytes_read - start
        self.mounted = True
        self.state = "ok"
        return self.state

    def _any_records(self, p1b):
        for s in range(self.nsec):  # bounded: one page per sector whose page 1 is not blank
            if not p1b[s]:
                self._read(s * PAGES + FIRST_REC)
                h = R.decode(self.rbuf)
                if h is not None and h[0] >= R.T_DATA:
                    return True
        return False

    # -- append -----------------------------------------------------------------------------------
    def append(self, rtype, state, flags, sale_id, payload):
        """Commit one record: one page program into erased space. Returns its page index."""
        self._need_mounted()
        for _ in range(_MAX_APPEND_TRIES):
            if self.next_page >= PAGES:
                self.roll()
            pg = self.active * PAGES + self.next_page
            seq = self.seq + 1
            n = R.encode(self.wbuf, rtype, state, flags, seq, sale_id, self.gen, payload)
            self.next_page += 1  # a failed or torn page is never programmed again
            self.seq = seq
            self._program(pg, n)
            h = self.read_record(pg)
            if h is not None and h[3] == seq:
                return pg
            self.corrupt += 1  # read-back failed (a weak or stuck bit): skip the page, write again
        raise R.JournalError("flash_fault", "record did not verify after %d tries" % _MAX_APPEND_TRIES)

    def ensure_room(self, n):
        """Make sure the next n records land in one sector (a sale body never spans sectors)."""
        self._need_mounted()
        if self.next_page + n > PAGES:
            self.roll()

    def roll(self):
        """Start a new active sector: pick the least-worn spare, check it is blank, write its checkpoint."""
        self._need_mounted()
        for _ in range(self.nsec):  # bounded: each try uses up or rejects one spare
            s = self._pick_spare()
            if s < 0:
                raise R.JournalError(
                    "needs_maintenance" if self.dirty_count() or self.used_count() > 1 else "journal_full",
                    "no erased sector left: run maintenance",
                )
            ok = True
            for p in range(1, PAGES):
                self._read(s * PAGES + p)
                if not R.is_blank(self.rbuf):
                    ok = False
                    break
            if not ok:
                self.kind[s] = K_DIRTY
                continue
            payload = self.checkpoint_fn() if self.checkpoint_fn is not None else b""
            seq = self.seq + 1
            n = R.encode(self.wbuf, R.T_CHECKPOINT, 0, 0, seq, 0, self.gen, payload)
            self.seq = seq
            self.kind[s] = K_DIRTY  # until the checkpoint verifies
            self._program(s * PAGES + 1, n)
            h = self.read_record(s * PAGES + 1)
            if h is None or h[3] != seq:
                self.corrupt += 1
                continue
            self.kind[s] = K_USED
            self.sseq[s] = seq
            self.active = s
            self.next_page = FIRST_REC
            return s
        raise R.JournalError("journal_full", "no usable sector")

    def _pick_spare(self):
        # Wear spreading: the spare with the fewest erases becomes the next active sector.
        best = -1
        for s in range(self.nsec):
            if self.kind[s] == K_SPARE and (best < 0 or self.erase_counts[s] < self.erase_counts[best]):
                best = s
        return best

    # -- erase (maintenance only) -----------------------------------------------------------------
    def erase(self, s, gen=None):
        """Erase sector s, verify it reads all 0xFF, write its T_ERASED header. Up to 400 ms."""
        if s == self.active:
            raise R.JournalError("illegal_transition", "the active sector cannot be erased")
        count = self.erase_counts[s] + 1
        gen = self.gen if gen is None else gen
        self.kind[s] = K_DIRTY
        try:
            self.part.ioctl(6, s)
        except OSError as e:
            raise R.JournalError("flash_fault", "erase of sector %d failed: %s" % (s, e))
        self.erase_counts[s] = count
        for p in range(PAGES):
            self._read(s * PAGES + p)
            if not R.is_blank(self.rbuf):
                # Post-erase verify failed: retire the sector (mark it if the header page allows).
                self.kind[s] = K_RETIRED
                if p != 0:
                    n = R.encode(self.wbuf, R.T_RETIRED, 0, 0, 0, count, gen, b"")
                    self._program(s * PAGES, n)
                return False
        n = R.encode(self.wbuf, R.T_ERASED, 0, 0, 0, count, gen, b"")
        self._program(s * PAGES, n)
        self._read(s * PAGES, R.HDR + R.CRC)
        if R.decode(self.rbuf) is None:
            self.corrupt += 1
            return False  # stays dirty: erased again next time
        self.kind[s] = K_SPARE
        return True

    def erase_one_dirty(self):
        for s in range(self.nsec):
            if self.kind[s] == K_DIRTY and s != self.active:
                first = self._first_record_seq(s)
                if first >= 0:
                    # Valid records behind a damaged header: keep the sector as used (compaction
                    # will move what matters out of it), never erase data because a header broke.
                    self.kind[s] = K_USED
                    self.sseq[s] = first - 1
                    continue
                self.erase(s)
                return s
        return -1

    def _first_record_seq(self, s):
        for p in range(FIRST_REC, PAGES):
            h = self.read_record(s * PAGES + p)
            if h is not None and h[0] >= R.T_DATA:
                return h[3]
        return -1

    def format(self):
        """Erase every sector into a new generation and start an empty journal. Seconds, not ms.

        A format that was cut is finished, not restarted: sectors already erased into its generation
        (and still blank) are kept, so repeated power cuts during a format still make progress.
        """
        resume = not self.mounted and self.max_gen > self.max_ckpt_gen
        if resume:
            new_gen = self.max_gen  # erase headers newer than every checkpoint: an unfinished format
        else:
            new_gen = (max(self.gen, self.max_gen) + 1) & 0xFFFF or 1
        if self.mounted:
            try:
                self.append(R.T_FORMAT, 0, 0, 0, b"")  # mount refuses this journal from now on
            except R.JournalError:
                pass
        old_active = self.active
        self.active = -1
        self.mounted = False
        for s in range(self.nsec):
            if s != old_active and not (resume and self._is_clean(s, new_gen)):
                self.erase(s, new_gen)
        if old_active >= 0:
            self.erase(old_active, new_gen)
        self.gen = new_gen
        self.max_gen = new_gen
        self.mounted = True
        self.state = "ok"
        self.roll()

    def _is_clean(self, s, gen):
        """Sector s already erased into generation gen and still blank: mark it spare."""
        self._read(s * PAGES, R.HDR + R.CRC)
        h = R.decode(self.rbuf) if self.rbuf[12] == 0 and self.rbuf[13] == 0 else None
        if h is None or h[0] != R.T_ERASED or h[6] != gen:
            return False
        for p in range(1, PAGES):
            self._read(s * PAGES + p)
            if not R.is_blank(self.rbuf):
                return False
        self.erase_counts[s] = h[4]
        self.kind[s] = K_SPARE
        return True

    # -- sectors ----------------------------------------------------------------------------------
    def used_in_order(self):
        """Used sectors, oldest first (the tail is [0], the active sector is last)."""
        out = [s for s in range(self.nsec) if self.kind[s] == K_USED]
        out.sort(key=lambda s: self.sseq[s])
        return out

    def count(self, k):
        n = 0
        for s in range(self.nsec):
            if self.kind[s] == k:
                n += 1
        return n

    def spare_count(self):
        return self.count(K_SPARE)

    def dirty_count(self):
        return self.count(K_DIRTY)

    def used_count(self):
        return self.count(K_USED)

    def free_pages(self, reserve_spares=0):
        """Record pages that can be written without an erase, keeping reserve_spares sectors aside."""
        active_free = PAGES - self.next_page if self.active >= 0 else 0
        return active_free + REC_PAGES * max(0, self.spare_count() - reserve_spares)

    def _need_mounted(self):
        if not self.mounted:
            raise R.JournalError("not_formatted", "journal is not mounted (state %s)" % self.state)

    def stats(self):
        usable = (self.nsec - self.count(K_RETIRED)) * REC_PAGES
        free = self.free_pages()
        return {
            "state": self.state,
            "sectors": self.nsec,
            "spare": self.spare_count(),
            "dirty": self.dirty_count(),
            "retired": self.count(K_RETIRED),
            "used": self.used_count(),
            "free_pages": free,
            "fill_pct": (100 * (usable - free) // usable) if usable else 100,
            "erase_counts": list(self.erase_counts),
            "corrupt_skipped": self.corrupt,
            "seq": self.seq,
            "generation": self.gen,
            "mount_bytes_read": self.mount_bytes_read,
        }
