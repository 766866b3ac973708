"""Benchmark of the sale journal against the usual alternative (a JSON state file on littlefs).

Measured on the simulated NOR flash (docs/reference/storage.md timing: page program 0.4 ms typ / 3 ms
max, sector erase 45 ms typ / 400 ms max) for the same sale lifecycle:
- page programs and erases per committed state change (mean, max), commit path and housekeeping;
- modelled worst-case commit time (datasheet maxima);
- littlefs-python configured like MicroPython's VfsLfs2 on ESP32 (block 4096, read/prog 32, cache 128,
  lookahead 32, block_cycles 100) rewriting a JSON state file at every change, with the ratio;
- flash bytes read at mount at 10 %, 50 % and 100 % fill;
- the power-cut proof at full size: every cut point of the scripted session, and a seeded random soak.
"""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

from littlefs import LittleFS, UserContext

from posguard_tools import paths

PROGRAM_MAX_MS = 3.0  # worst-case page program (docs/reference/storage.md, W25Q64JV)
ERASE_MAX_MS = 400.0  # worst-case 4 KiB sector erase (same source)
SECTORS = 16  # the devkit-1s journal partition: 64 KiB
SOAK_CUTS = 10000


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
    cuts = importlib.import_module("sim_journal_cuts")
    t0 = time.perf_counter()
    if quick:
        ex = cuts.exhaustive(sectors=6, script=cuts.session(extra=2), program_parts=(None, 0.5))
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
    ]
    return {
        "title": f"journal ({SECTORS * 4} KiB partition, {j['changes']} committed changes)",
        "rows": rows,
        "data": {"journal": j, "littlefs": lf, "mount_reads": m, "power_cuts": pc},
    }
