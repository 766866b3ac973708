"""Benchmark of the sale journal against the usual alternative (a JSON state file on littlefs).

Measured on the simulated NOR flash (docs/reference/storage.md timing: page program 0.4 ms typ / 3 ms
max, sector erase 45 ms typ / 400 ms max) for the same sale lifecycle:
- page programs and erases per committed state change (mean, max), commit path and housekeeping;
- modelled worst-case commit time (datasheet maxima);
- littlefs-python configured like MicroPython's VfsLfs2 on ESP32 (block 4096, read/prog 32, cache 128,
  lookahead 32, block_cycles 100) rewriting a JSON state file at every change, with the ratio;
- flash bytes read at mount at 10 %, 50 % and 100 % fill;
- the power-cut proof at full size: every cut point of the scripted session with every torn program
  and erase shape of the harsh NOR model, a seeded random soak, clock-timed brownouts;
- issue 16: the largest legal sale body repeated (refusals for space), cut chains of depth 8 with
  every torn shape, brownout storms, a single-bit-flip campaign (corrected / detected / lost), and
  page programs per commit with and without the app's idle rounds.
"""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

from littlefs import LittleFS, UserContext

from posguard_tools import legal_body, paths

PROGRAM_MAX_MS = 3.0  # worst-case page program (docs/reference/storage.md, W25Q64JV)
ERASE_MAX_MS = 400.0  # worst-case 4 KiB sector erase (same source)
SECTORS = 16  # the devkit-1s journal partition: 64 KiB
SOAK_CUTS = 10000
BIG_SOAK_SALES = 100000  # issue 16: the largest legal body, 100k times, never refused
CHAIN_SEEDS = 4  # cut chains: every operation of the scripted session x this many seeds
FLIPS = 4000  # single-bit-flip campaign size
STORM_CUTS = 3000


def _sim() -> tuple[Any, Any, Any]:
    paths.use_simulated_hardware()
    sim_flash = importlib.import_module("sim_flash")
    sales = importlib.import_module("posguard.sales")
    journal = importlib.import_module("posguard.journal")
    return sim_flash, sales, journal


def _body(k: int) -> dict[str, Any]:
    n = 1 + k % 4  # 1..4 items: a typical small-shop sale
    return {"items": [[f"item {k}-{i}", 1 + i % 3, 150 + 10 * i] for i in range(n)], "total": 150 * n}


def _lifecycle(k: int) -> list[tuple[str, tuple[Any, ...]]]:
    sid = k + 1
    return [
        ("open_sale", (sid, _body(k))),
        ("request_payment", (sid,)),
        ("payment_approved", (sid, f"AUTH{sid:04d}")),
        ("start_print", (sid,)),
        ("print_done", (sid,)),
        ("close", (sid,)),
    ]


def _stats(xs: list[float]) -> tuple[float, float]:
    return (sum(xs) / len(xs) if xs else 0.0, max(xs) if xs else 0.0)


def journal_costs(nsales: int) -> dict[str, Any]:
    """Per committed change on our journal: programs/erases on the commit path, housekeeping, time."""
    sim_flash, sales, journal = _sim()
    flash = sim_flash.NorFlash(SECTORS * 4096, timing="max")
    book = sales.SaleBook(journal.Journal(sim_flash.BlockDevice(flash)), keep_last=50)
    book.recover()
    book.maintenance_allowed = True
    progs: list[float] = []
    erases: list[float] = []
    busy: list[float] = []
    house_p = house_e = 0
    changes = 0
    for k in range(nsales):
        for name, args in _lifecycle(k):
            p0, e0, b0 = flash.programs, flash.erases, flash.busy_us
            getattr(book, name)(*args)
            progs.append(flash.programs - p0)
            erases.append(flash.erases - e0)
            busy.append((flash.busy_us - b0) / 1000)
            changes += 1
            # The app's idle time: housekeeping and (power policy permitting) maintenance.
            p1, e1 = flash.programs, flash.erases
            book.idle()
            for _ in range(8):
                if book.maintenance() is None:
                    break
            house_p += flash.programs - p1
            house_e += flash.erases - e1
    pm, px = _stats(progs)
    em, ex = _stats(erases)
    bm, bx = _stats(busy)
    return {
        "changes": changes,
        "programs_mean": pm,
        "programs_max": px,
        "erases_mean": em,
        "erases_max": ex,
        "commit_ms_mean_at_max_timing": bm,
        "commit_ms_worst": bx,
        "housekeeping_programs_per_change": house_p / changes,
        "maintenance_erases_per_change": house_e / changes,
        "erase_counts": list(flash.erase_counts),
    }


class _CountingContext(UserContext):
    """littlefs block device that counts what reaches the flash."""

    def __init__(self, size: int) -> None:
        super().__init__(buffsize=size)
        self.progs = 0
        self.prog_bytes = 0
        self.erases = 0
        self.read_bytes = 0

    def read(self, cfg: Any, block: int, off: int, size: int) -> bytearray:
        self.read_bytes += size
        return super().read(cfg, block, off, size)

    def prog(self, cfg: Any, block: int, off: int, data: bytes) -> int:
        self.progs += 1
        self.prog_bytes += len(data)
        return super().prog(cfg, block, off, data)

    def erase(self, cfg: Any, block: int) -> int:
        self.erases += 1
        return super().erase(cfg, block)


def _lfs(ctx: _CountingContext, mount: bool = True) -> LittleFS:
    # MicroPython's VfsLfs2 on ESP32: readsize=32, progsize=32, lookahead=32, cache 128 B (storage.md).
    return LittleFS(
        context=ctx,
        block_size=4096,
        block_count=SECTORS,
        read_size=32,
        prog_size=32,
        cache_size=128,
        lookahead_size=32,
        block_cycles=100,
        mount=mount,
    )


def littlefs_costs(nsales: int) -> dict[str, Any]:
    """The same lifecycle with the sale state kept in a JSON file rewritten at every change."""
    ctx = _CountingContext(SECTORS * 4096)
    fs = _lfs(ctx, mount=False)
    fs.format()
    fs.mount()
    progs: list[float] = []
    erases: list[float] = []
    worst: list[float] = []
    size = 0
    for k in range(nsales):
        state: dict[str, Any] = {}
        for name, args in _lifecycle(k):
            sid = args[0]
            state = {"id": sid, "state": name, **(state or {})}
            state["state"] = name
            if name == "open_sale":
                state.update(args[1])
            if name == "payment_approved":
                state["approval"] = args[1]
            data = json.dumps(state)
            size = max(size, len(data))
            p0, e0 = ctx.progs, ctx.erases
            with fs.open("sale.json", "w") as f:
                f.write(data)
            dp, de = ctx.progs - p0, ctx.erases - e0
            progs.append(dp)
            erases.append(de)
            worst.append(dp * PROGRAM_MAX_MS + de * ERASE_MAX_MS)
    pm, px = _stats(progs)
    em, ex = _stats(erases)
    _, wx = _stats(worst)
    ctx.read_bytes = 0
    _lfs(ctx, mount=True)
    return {
        "changes": len(progs),
        "programs_mean": pm,
        "programs_max": px,
        "erases_mean": em,
        "erases_max": ex,
        "commit_ms_worst": wx,
        "state_file_bytes_max": size,
        "mount_bytes_read": ctx.read_bytes,
    }


def mount_reads() -> dict[str, int]:
    """Flash bytes the journal reads at mount with the partition 10 %, 50 % and 100 % full."""
    sim_flash, sales, journal = _sim()
    out: dict[str, int] = {}
    flash = sim_flash.NorFlash(SECTORS * 4096)
    book = sales.SaleBook(journal.Journal(sim_flash.BlockDevice(flash)), keep_last=10000)
    book.recover()
    k = 0
    for target in (10, 50, 100):
        while book.stats()["fill_pct"] < target:
            try:
                for name, args in _lifecycle(k):
                    getattr(book, name)(*args)
            except Exception as e:  # the journal refused a new sale: it is as full as it gets
                if getattr(e, "code", None) not in ("needs_maintenance", "journal_full"):
                    raise
                break
            book.idle()
            k += 1
        fresh = sales.SaleBook(journal.Journal(sim_flash.BlockDevice(flash)), keep_last=10000)
        rep = fresh.recover()
        out[f"{target}%"] = rep["mount"]["mount_bytes_read"]
        out[f"{target}%_actual_fill"] = rep["mount"]["fill_pct"]
        # A sale id not in RAM (a repeated command for a finished sale, a new id) is looked up in
        # the whole journal: headers first, full pages only for that sale.
        before = fresh.j.bytes_read
        fresh.state(1)
        out[f"{target}%_lookup"] = fresh.j.bytes_read - before
        book = fresh
    return out


def power_cuts(quick: bool) -> dict[str, Any]:
    _sim()
    cuts: Any = importlib.import_module("sim_journal_cuts")
    t0 = time.perf_counter()
    if quick:
        ex = cuts.exhaustive(
            sectors=6,
            script=cuts.session(extra=2),
            program_cuts=cuts.QUICK_PROGRAM_CUTS,
            erase_cuts=cuts.QUICK_ERASE_CUTS,
        )
    else:
        ex = cuts.exhaustive(sectors=6, script=cuts.session(extra=16))
    t1 = time.perf_counter()
    soak = cuts.soak(500 if quick else SOAK_CUTS, sectors=8, seed=2026)
    t2 = time.perf_counter()
    brown = cuts.brownouts(40 if quick else 1000, seed=2026)
    t3 = time.perf_counter()
    return {
        "exhaustive": ex,
        "exhaustive_s": round(t1 - t0, 1),
        "soak": {k: v for k, v in soak.items() if k != "erase_counts"},
        "soak_s": round(t2 - t1, 1),
        "brownouts": brown,
        "brownouts_s": round(t3 - t2, 1),
    }


def _maint(book: Any) -> None:
    for _ in range(64):
        if book.maintenance() is None:
            break


def largest_body_soak(nsales: int) -> dict[str, Any]:
    """The largest body the host link accepts, sale after sale on devkit-1s (its keep_last), with the
    app's idle rounds and maintenance: how many sales the journal refused (must be 0)."""
    sim_flash, sales, journal = _sim()
    prof = legal_body.board("devkit-1s")
    body = legal_body.largest_body(prof)
    flash = sim_flash.NorFlash(prof["journal"]["size_kb"] * 1024)
    book = sales.SaleBook(journal.Journal(sim_flash.BlockDevice(flash)), keep_last=prof["journal"]["keep_last"])
    book.recover()
    book.maintenance_allowed = True
    refused: dict[str, int] = {}
    t0 = time.perf_counter()
    for k in range(nsales):
        sid = k + 1
        try:
            try:
                book.open_sale(sid, body)
            except Exception as e:
                if getattr(e, "code", None) != "needs_maintenance":
                    raise
                _maint(book)
                book.open_sale(sid, body)
        except Exception as e:
            code = str(getattr(e, "code", type(e).__name__))
            refused[code] = refused.get(code, 0) + 1
            continue
        for name, args in _lifecycle(k)[1:]:
            getattr(book, name)(*args)
        book.idle()
        _maint(book)
    ec = list(flash.erase_counts)
    return {
        "sales": nsales,
        "body_bytes": legal_body.device_size(body),
        "items": len(body["i"]),
        "refused": sum(refused.values()),
        "refused_by_code": refused,
        "keep_last": prof["journal"]["keep_last"],
        "wear_max_min": f"{max(ec)} / {min(ec)}",
        "reprograms": flash.reprograms,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def cut_chains(quick: bool) -> dict[str, Any]:
    """Chains of 8 cuts (the first at every operation of the session, the next ones a few operations
    into each reboot: inside mount, recovery, a format, a compaction), torn shapes from every mode."""
    _sim()
    cuts: Any = importlib.import_module("sim_journal_cuts")
    failures: list[str] = []
    chains = total = 0
    t0 = time.perf_counter()
    script = cuts.session(extra=2 if quick else 10)
    for seed in range(1, 2 if quick else CHAIN_SEEDS + 1):
        r = cuts.chains(depth=8, sectors=6, script=script, seed=seed, stride=3 if quick else 1, failures=failures)
        chains += r["chains"]
        total += r["cuts"]
    return {
        "chains": chains,
        "depth": 8,
        "cuts": total,
        "failures": len(failures),
        "first_failures": failures[:3],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def storms(quick: bool) -> dict[str, Any]:
    """Brownout storms (bursts of 10-150 cuts) on a 6-sector journal (keep_last 3) and on devkit-1s."""
    _sim()
    cuts: Any = importlib.import_module("sim_journal_cuts")
    t0 = time.perf_counter()
    out: dict[str, Any] = {"failures": 0, "first_failures": []}
    n = 300 if quick else STORM_CUTS
    keep_devkit = legal_body.board("devkit-1s")["journal"]["keep_last"]
    for label, sectors, keep in (("6 sectors", 6, 3), ("devkit-1s", SECTORS, keep_devkit)):
        try:
            r = cuts.storm(sectors=sectors, keep_last=keep, seed=2026, cuts=n, big=True)
            out[label] = r
        except AssertionError as e:
            out["failures"] += 1
            out["first_failures"].append(f"{label}: {e}")
            out[label] = {"cuts": 0, "sessions": 0}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def flip_campaign(flips: int, seed: int = 16, bits: int = 1) -> dict[str, Any]:
    """One bit (or `bits` bits in one page) flipped anywhere (mostly in programmed pages) of a journal
    holding a sale in every state, then a boot and a look at every sale. corrected: every sale reads
    as without the flip and the journal says it corrected something; detected: the journal reports a
    damaged record, no promise broken; harmless: nothing reported, every sale reads as without the
    flip (an unused bit); silent: nothing reported but something reads differently; lost: a promise
    broken (with bits > 1 a sale may read the state before its damaged record, nothing else)."""
    sim_flash, sales, journal = _sim()
    cuts: Any = importlib.import_module("sim_journal_cuts")
    cuts.LARGEST = legal_body.largest_body(legal_body.board("devkit-1s"))
    flash = sim_flash.NorFlash(SECTORS * 4096, seed=seed)
    script = cuts.held_state()
    book, host = cuts.play(flash, script, 50)
    sids = sorted(host.saw)
    flash_pages = flash.touched_pages()
    image, touched = flash.image(), flash.history()

    def booted(f: Any) -> tuple[Any, Any]:
        b, _ = cuts.boot(f, 50)
        return b, cuts.after_boot(b, sids)

    ref_flash = sim_flash.NorFlash(flash.size)
    ref_flash.load_image(image, touched)
    _, ref = booted(ref_flash)
    ref_flash.release()
    flash.release()
    rng = sim_flash.Rng(seed)
    counts = {"corrected": 0, "harmless": 0, "detected": 0, "silent": 0, "lost": 0}
    lost: list[str] = []
    pages = sorted(flash_pages)
    t0 = time.perf_counter()
    for _ in range(flips):
        if rng.below(10):
            addr = pages[rng.below(len(pages))] * sim_flash.PAGE + rng.below(sim_flash.PAGE)
        else:
            addr = rng.below(SECTORS * 4096)
        bit = rng.below(8)
        f = sim_flash.NorFlash(SECTORS * 4096)
        f.load_image(image, touched)
        f.flip_bit(addr, bit)
        page = addr - addr % sim_flash.PAGE
        done = {(addr, bit)}
        while len(done) < bits:  # more damage in the same page, every bit a different one
            a2, b2 = page + rng.below(sim_flash.PAGE), rng.below(8)
            if (a2, b2) not in done:
                done.add((a2, b2))
                f.flip_bit(a2, b2)
        try:
            b, got = booted(f)
            st = b.stats()
            broken = cuts.promises_kept(host, ref, got, one_record=bits > 1)
            if broken:
                counts["lost"] += 1
                lost.append(f"flip 0x{addr:x} bit {bit}: {broken}")
            elif got == ref and st.get("corrected", 0):
                counts["corrected"] += 1
            elif st.get("corrupt_skipped", 0):
                counts["detected"] += 1
            elif got == ref:
                counts["harmless"] += 1
            else:
                counts["silent"] += 1
                lost.append(f"flip 0x{addr:x} bit {bit}: unreported change {got} vs {ref}")
        except Exception as e:
            counts["lost"] += 1
            lost.append(f"flip 0x{addr:x} bit {bit}: boot raised {e!r}")
        f.release()
    return {
        "flips": flips,
        "bits": bits,
        **counts,
        "first_lost": lost[:3],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def programs_per_commit(nsales: int) -> dict[str, Any]:
    """Page programs of every commit (small inline bodies), once with the app's idle rounds (idle()
    and maintenance between commits) and once back to back (maintenance only when a new sale asks)."""
    sim_flash, sales, journal = _sim()
    out: dict[str, Any] = {}
    for label, idle in (("with_idle", True), ("without_idle", False)):
        flash = sim_flash.NorFlash(SECTORS * 4096)
        book = sales.SaleBook(journal.Journal(sim_flash.BlockDevice(flash)), keep_last=50)
        book.recover()
        book.maintenance_allowed = True
        worst = 0
        total = commits = erases = 0
        for k in range(nsales):
            for i, (name, args) in enumerate(_lifecycle(k)):
                if idle:
                    book.idle()
                    _maint(book)
                p0, e0 = flash.programs, flash.erases
                try:
                    getattr(book, name)(*args)
                except Exception as e:
                    if i or getattr(e, "code", None) != "needs_maintenance":
                        raise
                    _maint(book)  # the app runs what the journal asks for, then sends the sale again
                    p0, e0 = flash.programs, flash.erases
                    getattr(book, name)(*args)
                d = flash.programs - p0
                worst = max(worst, d)
                total += d
                erases += flash.erases - e0
                commits += 1
        out[label] = {"commits": commits, "max": worst, "mean": total / commits, "erases": erases}
    return out


def fmt(x: float) -> str:
    return f"{x:.2f}"


def _mean_max(d: dict[str, Any], key: str) -> str:
    return f"{d[key + '_mean']:.2f} / {d[key + '_max']:.0f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.0f}x" if b else "n/a"


def run(quick: bool) -> dict[str, Any]:
    nsales = 20 if quick else 200
    j = journal_costs(nsales)
    lf = littlefs_costs(nsales)
    m = mount_reads()
    pc = power_cuts(quick)
    big = largest_body_soak(300 if quick else BIG_SOAK_SALES)
    ch = cut_chains(quick)
    stm = storms(quick)
    fl = flip_campaign(150 if quick else FLIPS)
    fl2 = flip_campaign(100 if quick else FLIPS // 4, seed=17, bits=2)
    ppc = programs_per_commit(30 if quick else 400)
    rows = [
        ["journal: page programs per committed change (mean / max)", _mean_max(j, "programs"), "1"],
        ["journal: erases per committed change (mean / max)", _mean_max(j, "erases"), "0"],
        ["journal: modelled worst-case commit time", f"{j['commit_ms_worst']:.1f} ms", "<= 3 ms"],
        ["journal: idle housekeeping programs per change", fmt(j["housekeeping_programs_per_change"]), ""],
        ["journal: maintenance erases per change (when allowed)", f"{j['maintenance_erases_per_change']:.3f}", ""],
        ["littlefs JSON file: programs per change (mean / max)", _mean_max(lf, "programs"), ""],
        ["littlefs JSON file: erases per change (mean / max)", _mean_max(lf, "erases"), ""],
        ["littlefs JSON file: modelled worst-case save time", f"{lf['commit_ms_worst']:.1f} ms", ""],
        ["worst-case commit time ratio littlefs / journal", _ratio(lf["commit_ms_worst"], j["commit_ms_worst"]), ""],
        ["mount bytes read at 10 % fill", str(m["10%"]), "flat"],
        ["mount bytes read at 50 % fill", str(m["50%"]), "flat"],
        [f"mount bytes read at 100 % fill ({m['100%_actual_fill']} % reached)", str(m["100%"]), "flat"],
        [
            "bytes read to look up a finished sale at 10 / 50 / 100 % fill",
            f"{m['10%_lookup']} / {m['50%_lookup']} / {m['100%_lookup']}",
            "",
        ],
        [
            "power cuts: every cut point of the scripted session",
            f"{pc['exhaustive']['cut_points']} cuts / {pc['exhaustive']['ops']} ops, invariants held",
            "all",
        ],
        ["power cuts: seeded random soak", f"{pc['soak']['cuts']} cuts, invariants held", f">= {SOAK_CUTS}"],
        [
            "brownouts at random times (worst-case flash timing)",
            f"{pc['brownouts']['cuts']} cuts in {pc['brownouts']['sessions']} sessions, invariants held",
            "",
        ],
        [
            f"largest legal body ({big['items']} items, {big['body_bytes']} B) x {big['sales']}: refused",
            f"{big['refused']} (wear max/min {big['wear_max_min']})",
            "0",
        ],
        [
            f"cut chains of depth {ch['depth']}, every torn program/erase shape",
            f"{ch['chains']} chains, {ch['cuts']} cuts, failures {ch['failures']}",
            "failures 0",
        ],
        [
            "brownout storms (bursts of 10-150 cuts), 6 sectors and devkit-1s",
            f"{stm['6 sectors']['cuts']} + {stm['devkit-1s']['cuts']} cuts, failures {stm['failures']}",
            "failures 0",
        ],
        [
            "single-bit flips: count / corrected / detected / harmless / lost",
            f"{fl['flips']} / {fl['corrected']} / {fl['detected']} / {fl['harmless']} / {fl['lost'] + fl['silent']}",
            "lost 0",
        ],
        [
            "two bits in one page: count / detected / harmless / unreported / lost",
            f"{fl2['flips']} / {fl2['detected']} / {fl2['harmless']} / {fl2['silent']} / {fl2['lost']}",
            "lost 0",
        ],
        [
            "page programs per commit, max: with idle rounds / without",
            f"{ppc['with_idle']['max']} / {ppc['without_idle']['max']}",
            "1 / 1",
        ],
    ]
    return {
        "title": f"journal ({SECTORS * 4} KiB partition, {j['changes']} committed changes)",
        "rows": rows,
        "data": {
            "journal": j,
            "littlefs": lf,
            "mount_reads": m,
            "power_cuts": pc,
            "largest_body_soak": big,
            "cut_chains": ch,
            "storms": stm,
            "bit_flips": fl,
            "double_bit_flips": fl2,
            "programs_per_commit": ppc,
        },
    }
