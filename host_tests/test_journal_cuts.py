"""Power cut at every flash operation of a scripted session (before it, and with every torn shape of
the harsh NOR model: programs landing none, a prefix, a suffix, spread bits, all but one bit, all but
the last bytes, all; erases leaving the old content, zeros, random bits, some pages intact, bits set
and cleared, weak bits, a sector that only looks erased), chains of 8 cuts (inside recovery, formats
and compaction) and brownout storms; then reboot, recover, finish and check the invariants: no PAID
sale lost, originals printed at most once and every PAID sale printed, no sale both PAID and VOIDED,
no sale back from a state the host saw, no page programmed twice, the journal always mounts,
sequence numbers increase. `make bench` runs the full size (bench_journal.py)."""

from __future__ import annotations

import importlib
from typing import Any

import sim_flash

# The harness is simulator code (MicroPython subset, untyped): seen as Any by mypy.
C: Any = importlib.import_module("sim_journal_cuts")


def test_every_cut_point_of_the_scripted_session(world: Any) -> None:
    r = C.exhaustive(sectors=6, script=C.session(extra=6))
    print(f"\njournal exhaustive cut test: {r['cut_points']} cut points over {r['ops']} flash operations")
    assert r["ops"] > 90  # format, every sale path, data pages, compaction erases
    assert r["cut_points"] >= len(C.ERASE_CUTS) * r["ops"]  # every torn shape at every operation


def test_every_torn_shape_is_tried() -> None:
    assert {m for m, _ in C.PROGRAM_CUTS} == {None, *sim_flash.PROGRAM_MODES}
    assert {m for m, _ in C.ERASE_CUTS} == {None, *sim_flash.ERASE_MODES}


def test_cut_chains_of_depth_8(world: Any) -> None:
    r = C.chains(depth=8, sectors=6, script=C.session(extra=2), seed=16, stride=2)
    print(f"\njournal cut chains: {r['chains']} chains of depth 8, {r['cuts']} cuts")
    assert r["chains"] >= 40 and r["cuts"] >= 5 * r["chains"]  # most chains are cut 8 times


def test_brownout_storm_quick(world: Any) -> None:
    r = C.storm(sectors=8, keep_last=4, seed=16, cuts=200)
    assert r["cuts"] >= 200


def test_the_session_compacts_in_the_middle(world: Any, monkeypatch: Any) -> None:
    # Spy on the compaction module the harness really calls: sales imports it on demand from
    # sys.modules at each maintenance step (a simulated reboot in an earlier test may have dropped
    # posguard.* from sys.modules, so take the module that is current now, not a stale reference).
    compaction_globals = vars(importlib.import_module("posguard.compaction"))
    carried: list[tuple[int, int]] = []
    orig = compaction_globals["_carry"]

    def spy(j: Any, sid: int, state: int, *rest: Any) -> int:
        carried.append((sid, state))
        return int(orig(j, sid, state, *rest))

    monkeypatch.setitem(compaction_globals, "_carry", spy)
    kinds = C.count_ops(6, C.session(extra=6))
    assert kinds[6:].count(sim_flash.OP_ERASE) >= 2  # erases after the initial format
    states = {st for _, st in carried}
    assert 3 in states and 9 in states  # a PAID sale (large body) and an owed reversal were moved
    assert 6 in states  # and a closed sale kept for keep_last


def test_random_soak_quick(world: Any) -> None:
    r = C.soak(400, sectors=8, seed=11)
    print(f"\njournal soak: {r['cuts']} random cuts over {r['sessions']} sessions")
    assert r["cuts"] >= 400


def test_the_checker_catches_a_broken_journal(world: Any) -> None:
    # The invariant check must be able to fail: replay the session, then forge an unmarked second
    # print of a sale and a lost PAID sale.
    flash = sim_flash.NorFlash(6 * 4096)
    script = C.session()
    book, host, _ = C.run(flash, script)
    C.check(book, host, script)
    host.prints.append((1, False))
    try:
        C.check(book, host, script)
    except AssertionError as e:
        assert "printed 2 times unmarked" in str(e)
    else:
        raise AssertionError("duplicate original print went unnoticed")
    host.prints.pop()
    host.confirmed.append(2)  # sale 2 was declined: claiming it was PAID must fail the check
    try:
        C.check(book, host, script)
    except AssertionError as e:
        assert "sale 2" in str(e)
    else:
        raise AssertionError("lost PAID sale went unnoticed")


def test_brownouts_at_random_times_inside_flash_operations(world: Any) -> None:
    # Power pulled by the world's clock (not by operation count): with datasheet worst-case timing the
    # cut lands inside whatever page program or sector erase is running at that moment.
    r = C.brownouts(40, seed=77)
    assert r["cuts"] >= 40  # the cuts really hit flash operations


def test_random_time_cuts_land_even_after_another_world(world: Any) -> None:
    # An earlier simulation (a bench section, another test) can leave sim_power.POWER bound to a clock
    # that no longer moves; the random-time cuts must still land on the flash's clock.
    import sim_clock
    import sim_power

    stale = sim_clock.CLOCK
    sim_power.POWER = sim_power.PowerDomain(stale, 3.0)
    sim_clock.reset(0)
    r = C.brownouts(20)
    assert r["cuts"] > 0
