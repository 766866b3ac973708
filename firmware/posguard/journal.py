# The journal's flash layout: an append-only log of one-page records on a raw partition reached only
# through the block protocol (readblocks / writeblocks(n, buf, offset) / ioctl), so the same code runs
# on esp32.Partition and on the simulated NOR flash.
#
# Sector layout (4 KiB erase unit, 256-byte pages; docs/reference/storage.md):
#   page 0    T_ERASED header: written right after a verified erase (erase count, highest count known,
#             seq floor, format generation)
#   page 1..  one record per page, appended in sequence order. A CHECKPOINT (the unfinished sales and
#             the floor) is an ordinary record: idle() writes one into a sector that has none, and
#             compaction writes one before it erases. A commit never writes one.
# Why: a commit is one page program into pre-erased space (never an erase, never a second program:
# a commit that finds the active sector full lands in the least-worn spare), and mount reads the
# first pages of every sector plus the sectors from the newest checkpoint on.
# Every record carries its sequence number, so a sector's age never hinges on one page, and the seq
# floor (every record below it was reclaimed) keeps records a torn erase left readable dead.
import struct

from micropython import const

from posguard import records as R

SECTOR = const(4096)
PAGES = const(16)  # pages per sector
FIRST_REC = const(1)  # first record page of a sector
REC_PAGES = const(15)  # record pages per sector
NONE_PG = const(0xFFFF)

# Sector kinds (RAM only: rebuilt at mount)
K_DIRTY = const(0)  # must be erased before use (interrupted erase, stale records, old generation)
K_SPARE = const(1)  # verified erased, header written, no record yet
K_USED = const(2)  # holds records (the active one and older ones)
K_RETIRED = const(3)  # failed its post-erase verify: never used again

_MAX_APPEND_TRIES = const(3)  # pages skipped after a failed read-back before giving up
_HDR_PAYLOAD = "<II"  # T_ERASED payload: highest erase count known, seq floor
_CK_FMT = "<II"  # CHECKPOINT payload head: seq floor, highest erase count known; then the sale entries
_CK_HEAD = const(8)
_SCAN_OURS = const(1)  # _classify_sector: the sector has a valid erase header (ours, maybe retired)
_SCAN_BLANK = const(2)  # _classify_sector: the sector was never written

# ioctl operations of MicroPython's block device protocol (docs/reference/storage.md; upstream
# micropython docs/library/vfs.rst:280-285 "Block devices", os.rst in older releases; extmod/vfs.h:53-55
# MP_BLOCKDEV_IOCTL_BLOCK_*; answered by esp32.Partition in ports/esp32/esp32_partition.c:260-264).
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)


class Journal:
    def __init__(self, part):
        self.part = part
        bs = part.ioctl(_IOCTL_BLOCK_SIZE, 0)
        if bs != SECTOR:
            raise R.JournalError("corrupt", "journal partition needs block_size 4096, has %s" % bs)
        self.nsec = part.ioctl(_IOCTL_BLOCK_COUNT, 0)
        if self.nsec < 4 or self.nsec * PAGES > NONE_PG:
            raise R.JournalError("corrupt", "journal partition must have 4..4095 sectors, has %d" % self.nsec)
        self.wbuf = bytearray(R.PAGE)  # records are built here (preallocated: no allocation per commit)
        self.wmv = memoryview(self.wbuf)
        self.rbuf = bytearray(R.PAGE)  # every read lands here; callers copy what they keep
        self.rmv = memoryview(self.rbuf)
        self.kind = bytearray(self.nsec)
        self.start = bytearray(self.nsec)  # first page a spare may take (2 after a mount: 1 is suspect)
        self.erase_counts = [0] * self.nsec  # never lowered: a lost header keeps the highest known
        self.sseq = [0] * self.nsec  # sequence number of a used sector's first valid record: age order
        self.bad = bytearray((self.nsec * PAGES + 7) // 8)  # pages found torn or damaged (counted once)
        self.fixd = bytearray((self.nsec * PAGES + 7) // 8)  # pages whose flipped bit was corrected
        self.active = -1
        self.next_page = PAGES
        self.ck_active = False  # the active sector holds a checkpoint (else idle() writes one)
        self.seq = 0
        self.floor = 0  # every record with a lower sequence number was reclaimed (dead if read again)
        self.count_known = 0  # highest erase count written down (headers, checkpoints): a lost one is not lower
        self.gen = 0
        self.max_gen = 0
        self.corrupt = 0  # distinct pages found torn or damaged beyond repair
        self.corrected = 0  # distinct pages read with one flipped bit, corrected
        self.bytes_read = 0
        self.mount_bytes_read = 0
        self.mounted = False
        self.state = "unmounted"  # after mount: ok | blank | not_formatted | corrupt
        self.checkpoint_fn = None  # () -> bytes: the sale entries of the next checkpoint (the sale book)
        self.maint = False  # True while maintenance runs: only then may a program take the last spare
        self.skip_due = False  # after a mount: the page after the last written one is never programmed

    # -- raw access -----------------------------------------------------------------------------
    def _read(self, pg, n=R.PAGE):
        self.part.readblocks(pg // PAGES, self.rmv[:n], (pg % PAGES) * R.PAGE)
        self.bytes_read += n

    def _mark(self, bits, pg):
        m = 1 << (pg & 7)
        if bits[pg >> 3] & m:
            return False
        bits[pg >> 3] |= m
        return True

    def _decode(self, pg):
        """Decode rbuf (page pg, read whole); counts a corrected bit or a damaged page once."""
        h = R.decode(self.rbuf)
        if h is None:
            if not R.is_blank(self.rbuf) and self._mark(self.bad, pg):
                self.corrupt += 1
        elif h[R.H_FIXED] and self._mark(self.fixd, pg):
            self.corrected += 1
        return h

    def read_record(self, pg, header_ok=False):
        """Decode the record at page pg into rbuf; returns the header tuple or None (blank/torn).
        header_ok: a page damaged beyond correction whose header still checks gives its header
        (h[R.H_FIXED] == R.PAYLOAD_LOST: the payload is lost)."""
        self._read(pg)
        h = self._decode(pg)
        if h is None and header_ok:
            h = R.decode_header(self.rbuf)
        if h is not None and (h[R.H_GEN] != self.gen & 0xFFFF or h[R.H_SEQ] < self.floor
                              or h[R.H_TYPE] < R.T_CHECKPOINT):
            return None
        return h

    def read_header(self, pg):
        """(type, sale_id) from the first 16 bytes of a page without validating it, or None."""
        self._read(pg, R.HDR)
        b = self.rbuf
        if b[0] != R.MAGIC:
            return None if b[0] == 0xFF else (0, 0)  # (0, 0): not plausible, read the whole page
        return (b[1], b[8] | (b[9] << 8) | (b[10] << 16) | (b[11] << 24))

    def payload(self, h):
        """The payload of the record last read (a memoryview into rbuf: copy it to keep it)."""
        return self.rmv[R.PAYLOAD_AT : R.PAYLOAD_AT + h[R.H_LEN]]

    def _program(self, pg, n):
        try:
            self.part.writeblocks(pg // PAGES, self.wmv[:n], (pg % PAGES) * R.PAGE)
        except OSError as e:  # the flash driver refused: report it like any journal error
            raise R.JournalError("flash_fault", "page program at page %d failed: %s" % (pg, e))

    # -- mount ------------------------------------------------------------------------------------
    # mount() runs five bounded steps; each one owns one kind of damage (docs/journal.md, "Mount"):
    #   _scan_sectors       pages 0-2 of every sector: kind, age and generation (bad headers, torn or
    #                       damaged first records, lost erase counts)
    #   _choose_generation  the used sectors of the newest generation above the floor, oldest first
    #                       (stale generations, a format that was cut, foreign content)
    #   _find_checkpoint    the newest readable checkpoint, walking back (a damaged one costs a sector)
    #   _replay_records     the checkpoint and every later record, in order (damaged pages reported)
    #   _close_tail         the active sector, the torn tail and the sectors the replayed floor reclaimed
    def mount(self, replay):
        """Find the active sector and replay the newest checkpoint and every later record through
        replay(pg, h, payload) (h None: a damaged page; payload is then the sale id it probably named).

        Reads pages 0-2 of every sector, the whole of a sector whose first record pages are damaged,
        the record headers walked back to the newest checkpoint, and every sector from that checkpoint
        on: one sector when idle() ran since the last sector change. Never raises for torn or corrupt
        content. Sets self.state; returns it.
        """
        start = self.bytes_read
        self._begin_mount()
        gens = [0] * self.nsec  # per sector: generation of its first record (of its header, for a spare)
        ours, blank, torn_seq = self._scan_sectors(gens)
        order = self._choose_generation(gens, ours, blank)
        if order:
            last_nb = self._replay_records(order, self._find_checkpoint(order), replay)
            if last_nb >= 0:
                self._close_tail(order[-1], last_nb, torn_seq)
        self.mount_bytes_read = self.bytes_read - start
        return self.state

    def _begin_mount(self):
        # Damage counts and marks describe what this mount reads, nothing older.
        self.mounted = False
        self.active = -1
        self.corrupt = 0
        self.corrected = 0
        for i in range(len(self.bad)):
            self.bad[i] = 0
            self.fixd[i] = 0

    def _scan_sectors(self, gens):
        """Step 1: classify every sector (one pass, pages 0-2 each: the same reads whatever the fill).
        Sets kind, sseq, start, gens, the erase counts, floor, count_known and max_gen. Returns
        (ours, blank, torn_seq): sectors with a valid erase header, sectors never written, and the
        highest sequence number in the intact header of a torn page."""
        self.floor = 0  # raised by the erase headers only (a checkpoint's floor comes with the replay)
        self.count_known = 0
        self.max_gen = 0
        ours = 0
        blank = 0
        torn_seq = 0
        for s in range(self.nsec):  # bounded: one pass over the sectors
            found, torn_seq = self._classify_sector(s, gens, torn_seq)
            if found == _SCAN_OURS:
                ours += 1
            elif found == _SCAN_BLANK:
                blank += 1
        for s in range(self.nsec):  # a lost header: the highest count known, never lower than before
            if self.kind[s] == K_DIRTY and self.erase_counts[s] < self.count_known:
                self.erase_counts[s] = self.count_known
        self.seq = max(self.seq, self.floor - 1)
        return ours, blank, torn_seq

    def _classify_sector(self, s, gens, torn_seq):
        """Kind, age and generation of sector s from its pages 0-2 (the whole sector only when its
        first record pages are damaged). Returns (found, torn_seq): found is _SCAN_OURS (a valid erase
        header), _SCAN_BLANK (never written) or 0; torn_seq is raised by a torn page 1 or 2."""
        pg0 = s * PAGES
        self._read(pg0)
        h0 = self._decode(pg0)
        b0 = h0 is None and R.is_blank(self.rbuf)
        hgen = -1
        found = 0
        if h0 is not None and (h0[R.H_TYPE] == R.T_ERASED or h0[R.H_TYPE] == R.T_RETIRED):
            found = _SCAN_OURS
            hgen = h0[R.H_GEN]
            self._note_erase_header(s, h0)
            if h0[R.H_TYPE] == R.T_RETIRED:
                self.kind[s] = K_RETIRED
                return found, torn_seq
        self.kind[s] = K_DIRTY
        self.start[s] = PAGES
        # Pages 1 and 2 of every sector (a spare taken after a mount starts at page 2): the same
        # reads whatever the fill.
        self._read(pg0 + 1)
        h1 = self._decode(pg0 + 1)
        b1 = h1 is None and R.is_blank(self.rbuf)
        t1 = -1  # page 1's record type, sequence and generation (rbuf is read again below)
        seq1 = gen1 = 0
        if h1 is not None:
            t1, seq1, gen1 = h1[R.H_TYPE], h1[R.H_SEQ], h1[R.H_GEN]
        elif not b1:
            torn_seq = self._torn_seq(torn_seq)
        self._read(pg0 + 2)
        h2 = self._decode(pg0 + 2)
        b2 = h2 is None and R.is_blank(self.rbuf)
        if h2 is None and not b2:
            torn_seq = self._torn_seq(torn_seq)
        seq = -1
        gen = 0
        last = 0 if b1 else 1
        if t1 >= R.T_CHECKPOINT:
            seq, gen = seq1, gen1
        elif h2 is not None and h2[R.H_TYPE] >= R.T_CHECKPOINT:
            seq, gen = h2[R.H_SEQ], h2[R.H_GEN]
        elif b1 and b2:
            if b0:
                return _SCAN_BLANK, torn_seq
        else:
            # The first record pages are damaged: the sector's age never hinges on them.
            seq, gen, last = self._first_valid(s, 3)
            if last < 3:
                last = 1 if b2 else 2
        if seq >= 0:
            self.kind[s] = K_USED
            self.sseq[s] = seq
            gens[s] = gen
        elif hgen >= 0 and h0[R.H_TYPE] == R.T_ERASED and last + 2 < PAGES:
            self.kind[s] = K_SPARE  # page last + 1 may hold a program cut blank: never reused
            self.start[s] = last + 2
            gens[s] = hgen
        return found, torn_seq

    def _note_erase_header(self, s, h0):
        # An erase header (rbuf) carries the sector's erase count, the highest count and the floor
        # known when it was written, and the format generation it was erased into.
        self.max_gen = max(self.max_gen, h0[R.H_GEN])
        if self.erase_counts[s] < h0[R.H_SID]:
            self.erase_counts[s] = h0[R.H_SID]
        self.count_known = max(self.count_known, h0[R.H_SID])
        if h0[R.H_LEN] >= 8:
            known, hfloor = struct.unpack_from(_HDR_PAYLOAD, self.rbuf, R.PAYLOAD_AT)
            self.count_known = max(self.count_known, known)
            self.floor = max(self.floor, hfloor)

    def _torn_seq(self, best):
        """max(best, the sequence in rbuf's header when only the header of the page still checks)."""
        hh = R.decode_header(self.rbuf)
        return hh[R.H_SEQ] if hh is not None and hh[R.H_SEQ] > best else best

    def _first_valid(self, s, p0):
        """(seq, gen, last non-blank page) of sector s from page p0 on; seq -1 if no valid record.
        Bounded: the sector's pages. Only for sectors whose first record page is damaged."""
        seq = -1
        gen = 0
        last = p0 - 1
        for p in range(p0, PAGES):
            pg = s * PAGES + p
            self._read(pg)
            h = self._decode(pg)
            if h is None:
                if not R.is_blank(self.rbuf):
                    last = p
                continue
            last = p
            if h[R.H_TYPE] >= R.T_CHECKPOINT and seq < 0:
                seq = h[R.H_SEQ]
                gen = h[R.H_GEN]
        return seq, gen, last

    def _choose_generation(self, gens, ours, blank):
        """Step 2: the used sectors to replay, oldest first: those above the floor of the newest
        generation that holds a record. Anything else becomes dirty. None (self.state says why)
        when there is nothing to replay: blank, a format that was cut, or foreign content."""
        rec_gen = 0
        for s in range(self.nsec):
            if self.kind[s] == K_USED:
                if self.sseq[s] < self.floor:
                    self.kind[s] = K_DIRTY  # reclaimed: an erase that was cut left it readable
                else:
                    rec_gen = max(rec_gen, gens[s])
        order = self._used_of_gen(rec_gen, gens) if rec_gen else []
        if not order:
            if blank == self.nsec:
                self.state = "blank"
            elif ours or blank >= self.nsec - 1:
                # Our erase headers and no live record anywhere (every sector with a non-blank record
                # page was read through): a format that was cut. Foreign content is never formatted.
                self.state = "not_formatted"
            else:
                self.state = "corrupt"
            return None
        self.gen = rec_gen
        if self.max_gen > rec_gen:
            self.state = "not_formatted"  # a newer format began and did not finish
            return None
        for s in range(self.nsec):  # anything of another generation is stale
            if self.kind[s] == K_SPARE and gens[s] != rec_gen:
                self.kind[s] = K_DIRTY
        return order

    def _used_of_gen(self, gen, gens):
        out = []
        for s in range(self.nsec):
            if self.kind[s] == K_USED:
                if gens[s] == gen:
                    out.append(s)
                else:
                    self.kind[s] = K_DIRTY
        out.sort(key=lambda s: self.sseq[s])
        return out

    def _find_checkpoint(self, order):
        """Step 3: page of the newest readable checkpoint, walking back from the newest sector
        (bounded: the used sectors, 16-byte headers); -1 when none is readable (then every used
        sector is replayed from an empty state). A checkpoint damaged beyond correction is passed by."""
        ck = -1
        i = len(order) - 1
        while i >= 0 and ck < 0:
            s = order[i]
            for p in range(FIRST_REC, PAGES):  # bounded: 15 headers (all of them: flat in fill)
                hh = self.read_header(s * PAGES + p)
                if hh is not None and hh[R.H_TYPE] == R.T_CHECKPOINT or hh == (0, 0):
                    h = self.read_record(s * PAGES + p)
                    if h is not None and h[R.H_TYPE] == R.T_CHECKPOINT:
                        ck = s * PAGES + p
            i -= 1
        self.ck_active = ck >= 0 and ck // PAGES == order[-1]
        return ck

    def _replay_records(self, order, ck, replay):
        """Step 4: replay the checkpoint at page ck and every later record, in sequence order, through
        replay(). A damaged page is reported (its probable sale id), never trusted; a record not newer
        than the one before is skipped. Returns the last non-blank page of the newest sector, or -1
        when a FORMAT record says the journal is not formatted (self.state set)."""
        first = order.index(ck // PAGES) if ck >= 0 else 0
        last_seq = -1
        last_nb = 0
        for i in range(first, len(order)):  # bounded: the sectors from the newest checkpoint on
            s = order[i]
            last_nb = 0
            p0 = FIRST_REC if ck < 0 or i != first else ck % PAGES
            for p in range(FIRST_REC, PAGES):  # the whole sector: its last written page is needed
                pg = s * PAGES + p
                h = self.read_record(pg, True)
                if p < p0:
                    if h is not None or not R.is_blank(self.rbuf):
                        last_nb = p
                    continue
                if (h is not None and h[R.H_FIXED] == R.PAYLOAD_LOST
                        and (h[R.H_TYPE] == R.T_CHECKPOINT or h[R.H_TYPE] == R.T_FORMAT)):
                    h = None  # a checkpoint needs its payload; a FORMAT is never taken on a header alone
                if h is None:
                    if not R.is_blank(self.rbuf):
                        last_nb = p
                        replay(pg, None, R.raw_sale_id(self.rbuf))
                    continue
                last_nb = p
                if h[R.H_SEQ] <= last_seq:
                    continue  # not newer than what was replayed: never trusted
                last_seq = h[R.H_SEQ]
                if h[R.H_SEQ] > self.seq:
                    self.seq = h[R.H_SEQ]
                if h[R.H_TYPE] == R.T_FORMAT:
                    self.state = "not_formatted"
                    return -1
                if h[R.H_TYPE] == R.T_CHECKPOINT and h[R.H_LEN] >= _CK_HEAD:
                    f, c = struct.unpack_from(_CK_FMT, self.rbuf, R.PAYLOAD_AT)
                    self.floor = max(self.floor, f)
                    self.count_known = max(self.count_known, c)
                if h[R.H_FIXED] == R.PAYLOAD_LOST:
                    replay(pg, h, None)  # the header checks, the payload is lost: the state still counts
                    continue
                replay(pg, h, self.payload(h)[_CK_HEAD:] if h[R.H_TYPE] == R.T_CHECKPOINT else self.payload(h))
        return last_nb

    def _close_tail(self, active, last_nb, torn_seq):
        """Step 5: make the newest sector the active one, keep clear of what a cut may have left at the
        tail, and drop the sectors the replayed floor says were reclaimed. The journal is mounted."""
        self.active = active
        # A torn page outside the replayed sectors (the first page of a spare a commit had just
        # taken) may hold a sequence number in its intact header: never hand that number out again,
        # or the next record there would be skipped as not newer.
        if torn_seq > self.seq:
            self.seq = torn_seq
        # The page after the last written one may hold a program a cut left blank: the first program
        # of this boot skips it (a boot that programs nothing wastes nothing).
        self.next_page = min(PAGES, last_nb + 1)
        self.skip_due = True
        for s in range(self.nsec):  # sectors a checkpoint's floor says were reclaimed
            if self.kind[s] == K_USED and self.sseq[s] < self.floor and s != active:
                self.kind[s] = K_DIRTY
            if self.kind[s] == K_DIRTY and self.erase_counts[s] < self.count_known:
                self.erase_counts[s] = self.count_known  # its header is lost: never count it lower
        self.mounted = True
        self.state = "ok"

    # -- append -----------------------------------------------------------------------------------
    def append(self, rtype, state, flags, sale_id, payload):
        """Commit one record: one page program into erased space. Returns its page index.

        When the active sector is full the record lands in the least-worn spare (checked blank by
        reads): still one program. idle() writes that sector's checkpoint later."""
        self._need_mounted()
        if self.skip_due:
            self.skip_due = False
            if self.next_page < PAGES:
                self.next_page += 1
        for _ in range(_MAX_APPEND_TRIES):
            if self.next_page >= PAGES:
                self._take_spare()
            pg = self.active * PAGES + self.next_page
            seq = self.seq + 1
            n = R.encode(self.wbuf, rtype, state, flags, seq, sale_id, self.gen, payload)
            self.next_page += 1  # a failed or torn page is never programmed again
            self.seq = seq
            self._program(pg, n)
            h = self.read_record(pg)
            if h is not None and h[R.H_SEQ] == seq:
                return pg
        raise R.JournalError("flash_fault", "record did not verify after %d tries" % _MAX_APPEND_TRIES)

    def write_checkpoint(self, floor=-1):
        """Append a checkpoint (floor u32 + the sale book's entries). Maintenance / idle only."""
        if floor > self.floor:
            self.floor = floor
        entries = self.checkpoint_fn() if self.checkpoint_fn is not None else b""
        payload = bytearray(_CK_HEAD + len(entries))
        known = max(self.count_known, max(self.erase_counts))
        struct.pack_into(_CK_FMT, payload, 0, self.floor, known)
        payload[_CK_HEAD:] = entries
        pg = self.append(R.T_CHECKPOINT, 0, 0, 0, payload)
        self.count_known = known
        self.ck_active = True
        return pg

    def roll(self):
        """Start a new active sector now and write its checkpoint (maintenance and tests only: two
        programs; a commit never calls this)."""
        self._need_mounted()
        self._take_spare()
        return self.write_checkpoint()

    def _take_spare(self):
        """The least-worn spare becomes the active sector (reads only: its free pages must be blank).
        The last spare is compaction's: only maintenance takes it (then it can always move a tail)."""
        for _ in range(self.nsec):  # bounded: each try uses up or rejects one spare
            s = self._pick_spare()
            if s >= 0 and not self.maint and self.spare_count() <= 1:
                raise R.JournalError("needs_maintenance", "the last erased sector is kept for maintenance")
            if s < 0:
                raise R.JournalError(
                    "needs_maintenance" if self.dirty_count() or self.used_count() > 1 else "journal_full",
                    "no erased sector left: run maintenance",
                )
            ok = True
            for p in range(self.start[s], PAGES):
                self._read(s * PAGES + p)
                if not R.is_blank(self.rbuf):
                    ok = False
                    break
            if not ok:
                self.kind[s] = K_DIRTY
                continue
            self.kind[s] = K_USED
            self.sseq[s] = self.seq + 1
            self.active = s
            self.next_page = self.start[s]
            self.ck_active = False
            self.skip_due = False  # the suspect page was in the sector left behind
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
        self.kind[s] = K_DIRTY  # from here on never the target of a program
        if count > self.count_known and self.mounted and self.active >= 0:
            # The new count is the highest: write it down elsewhere first, or an erase that is cut
            # (the header gone) would leave it counted lower than the flash wore.
            self.erase_counts[s] = count
            try:
                self.write_checkpoint()
            except R.JournalError:
                pass  # no room: the count of a lost header is then the highest written down
            self.erase_counts[s] = count - 1
        try:
            self.part.ioctl(_IOCTL_BLOCK_ERASE, s)
        except OSError as e:
            raise R.JournalError("flash_fault", "erase of sector %d failed: %s" % (s, e))
        self.erase_counts[s] = count
        for p in range(PAGES):  # a new erase: the sector's damage marks no longer apply
            pg = s * PAGES + p
            self.bad[pg >> 3] &= ~(1 << (pg & 7))
            self.fixd[pg >> 3] &= ~(1 << (pg & 7))
        self.count_known = max(self.count_known, count)
        hp = struct.pack(_HDR_PAYLOAD, self.count_known, self.floor)
        for p in range(PAGES):
            self._read(s * PAGES + p)
            if not R.is_blank(self.rbuf):
                # Post-erase verify failed: retire the sector (mark it if the header page allows).
                self.kind[s] = K_RETIRED
                if p != 0:
                    n = R.encode(self.wbuf, R.T_RETIRED, 0, 0, 0, count, gen, hp)
                    self._program(s * PAGES, n)
                return False
        n = R.encode(self.wbuf, R.T_ERASED, 0, 0, 0, count, gen, hp)
        self._program(s * PAGES, n)
        self._read(s * PAGES)
        if R.decode(self.rbuf) is None:
            return False  # stays dirty: erased again next time
        self.kind[s] = K_SPARE
        self.start[s] = FIRST_REC
        return True

    def erase_one_dirty(self):
        for s in range(self.nsec):
            if self.kind[s] == K_DIRTY and s != self.active:
                self.erase(s)
                return s
        return -1

    def format(self):
        """Erase every sector into a new generation and start an empty journal. Seconds, not ms.

        A format that was cut is finished, not restarted: sectors already erased into its generation
        (and still blank) are kept, so repeated power cuts during a format still make progress.
        """
        resume = not self.mounted and self.max_gen > self.gen
        if resume:
            new_gen = self.max_gen  # erase headers newer than every record: an unfinished format
        else:
            new_gen = (max(self.gen, self.max_gen) + 1) & 0xFFFF or 1
        if self.mounted:
            try:
                self.append(R.T_FORMAT, 0, 0, 0, b"")  # mount refuses this journal from now on
            except R.JournalError:
                pass
        self.floor = self.seq + 1  # every record written so far is dead from the first new header on
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
        self.next_page = PAGES
        self.write_checkpoint()

    def _is_clean(self, s, gen):
        """Sector s already erased into generation gen and still blank: mark it spare."""
        self._read(s * PAGES)
        h = R.decode(self.rbuf)
        if h is None or h[R.H_TYPE] != R.T_ERASED or h[R.H_GEN] != gen:
            return False
        for p in range(1, PAGES):
            self._read(s * PAGES + p)
            if not R.is_blank(self.rbuf):
                return False
        # an erase marker carries the sector's erase count in the sale-id field
        if self.erase_counts[s] < h[R.H_SID]:
            self.erase_counts[s] = h[R.H_SID]
        self.kind[s] = K_SPARE
        self.start[s] = FIRST_REC + 1  # the cut may have been a program of page 1 that left it blank
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

    def free_pages(self, maint=True):
        """Record pages that can be written without an erase (maint False: not counting the last
        spare, which only maintenance takes)."""
        n = PAGES - self.next_page - (1 if self.skip_due else 0) if self.active >= 0 else 0
        n = max(0, n)
        most = 0
        for s in range(self.nsec):
            if self.kind[s] == K_SPARE:
                n += PAGES - self.start[s]
                most = max(most, PAGES - self.start[s])
        return n if maint else n - most

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
            "corrected": self.corrected,
            "seq": self.seq,
            "floor": self.floor,
            "generation": self.gen,
            "mount_bytes_read": self.mount_bytes_read,
        }
