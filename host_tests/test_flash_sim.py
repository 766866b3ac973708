"""The simulated NOR flash and esp32.Partition: NOR semantics, counters, timing, power-cut injection."""

from __future__ import annotations

import binascii
from typing import Any

import esp32
import pytest
import sim_flash
import sim_power
from sim_flash import NorFlash


def _read(f: NorFlash, addr: int, n: int) -> bytes:
    buf = bytearray(n)
    f.read(addr, buf)
    return bytes(buf)


def test_erased_flash_reads_ff_and_program_clears_bits(world: Any) -> None:
    f = NorFlash(8192)
    assert _read(f, 0, 16) == b"\xff" * 16
    f.program(10, b"\x0f\xf0")
    assert _read(f, 10, 2) == b"\x0f\xf0"
    f.program(10, b"\x0e\x00")  # clearing more bits is legal
    assert _read(f, 10, 2) == b"\x0e\x00"


def test_setting_a_zero_bit_to_one_is_detected(world: Any) -> None:
    f = NorFlash(8192)
    f.program(0, b"\x00")
    with pytest.raises(sim_flash.NorViolation):
        f.program(0, b"\x01")
    assert _read(f, 0, 1) == b"\x00"  # nothing changed
    assert f.illegal_sets == 1


def test_and_mode_behaves_like_the_chip_and_counts(world: Any) -> None:
    f = NorFlash(8192, on_set_bit="and")
    f.program(0, b"\xf0")
    f.program(0, b"\x0f")  # a real chip ANDs: the result is 0x00
    assert _read(f, 0, 1) == b"\x00"
    assert f.illegal_sets == 1


def test_erase_sets_sector_to_ff_only(world: Any) -> None:
    f = NorFlash(8192)
    f.program(4090, b"\x00" * 12)  # straddles sectors 0 and 1
    f.erase_sector(1)
    assert _read(f, 4090, 6) == b"\x00" * 6
    assert _read(f, 4096, 6) == b"\xff" * 6
    assert f.erase_counts == [0, 1]


def test_counters_and_page_split(world: Any) -> None:
    f = NorFlash(8192)
    f.program(200, bytes(100))  # crosses the page boundary at 256: two page programs
    assert f.programs == 2 and f.bytes_programmed == 100
    _read(f, 0, 300)
    assert f.reads == 1 and f.bytes_read == 300
    f.erase_sector(0)
    assert f.erases == 1 and f.ops == 3


def test_timing_model_advances_the_clock(world: Any) -> None:
    f = NorFlash(8192, timing="typ")
    t0 = world.clock.now_us()
    f.program(0, bytes(256))
    assert world.clock.now_us() - t0 == 400  # 0.4 ms typical page program (storage.md)
    f.erase_sector(1)
    assert world.clock.now_us() - t0 == 400 + 45000
    g = NorFlash(8192, timing="max")
    t1 = world.clock.now_us()
    g.program(0, bytes(256))
    g.erase_sector(1)
    assert world.clock.now_us() - t1 == 3000 + 400000
    assert g.max_program_us == 3000 and g.max_erase_us == 400000


def test_cut_before_an_operation_changes_nothing(world: Any) -> None:
    f = NorFlash(8192)
    f.arm_cut(0)
    with pytest.raises(sim_power.PowerLoss):
        f.program(0, bytes(16))
    assert _read(f, 0, 16) == b"\xff" * 16
    assert world.power.on is False


def test_torn_program_is_caught_by_crc(world: Any) -> None:
    rec = bytes(range(200))
    rec += binascii.crc32(rec).to_bytes(4, "little")
    f = NorFlash(8192, seed=3)
    f.arm_cut(0, part=0.5)
    with pytest.raises(sim_power.PowerLoss):
        f.program(256, rec)
    got = _read(f, 256, len(rec))
    assert got[:102] == rec[:102]  # the first half landed
    assert got[-4:] == b"\xff" * 4  # the tail never did
    assert binascii.crc32(got[:-4]) != int.from_bytes(got[-4:], "little")


def test_torn_chunk_is_a_mix_of_old_and_new_bits(world: Any) -> None:
    f = NorFlash(8192, seed=11)
    f.arm_cut(0, part=0.0)
    with pytest.raises(sim_power.PowerLoss):
        f.program(0, bytes(64))
    got = _read(f, 0, 64)
    torn = got[: sim_flash.TORN_CHUNK]
    assert any(b not in (0x00, 0xFF) for b in torn)  # neither old nor new
    assert got[sim_flash.TORN_CHUNK :] == b"\xff" * (64 - sim_flash.TORN_CHUNK)


def test_cut_scheduled_inside_a_program_window_tears_it(world: Any) -> None:
    f = NorFlash(8192, timing="max")
    f.program_modes = ("prefix",)  # a clock cut draws any torn mode; this test pins one
    world.power.pull_at_ms(1.5)  # halfway through a 3 ms worst-case page program
    with pytest.raises(sim_power.PowerLoss):
        f.program(0, bytes(256))
    got = _read(f, 0, 256)
    assert got[:100] == bytes(100)
    assert got[200:] == b"\xff" * 56
    assert f.programs == 0 and f.cuts == 1


def test_interrupted_erase_leaves_undefined_and_weak_bits(world: Any) -> None:
    f = NorFlash(8192, seed=5)
    f.program(0, bytes(4096))
    f.arm_cut(f.ops, part=0.6)
    with pytest.raises(sim_power.PowerLoss):
        f.erase_sector(0)
    first = _read(f, 0, 4096)
    assert first != b"\xff" * 4096 and first != bytes(4096)
    f.settle()
    later = _read(f, 0, 4096)
    assert later != first  # weak bits flipped back to 0 after the fact
    assert all((a & b) == b for a, b in zip(first, later, strict=True))  # flips only go 1 -> 0
    assert f.erase_counts[0] == 0  # an aborted erase is not a completed cycle


def test_stuck_bits_survive_erase(world: Any) -> None:
    f = NorFlash(8192)
    f.stick_bits(5, 0x10)
    f.erase_sector(0)
    assert _read(f, 5, 1) == bytes([0xEF])


def test_partition_block_protocol(world: Any) -> None:
    world.board.partitions["journal"] = NorFlash(65536)
    (p,) = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")
    assert p.ioctl(4, 0) == 16 and p.ioctl(5, 0) == 4096
    p.writeblocks(1, b"\x00\x01", 10)  # extended form: program, no erase
    buf = bytearray(2)
    p.readblocks(1, buf, 10)
    assert buf == b"\x00\x01"
    f = world.board.partitions["journal"]
    assert f.erases == 0
    with pytest.raises(sim_flash.NorViolation):
        p.writeblocks(1, b"\xff\xff", 10)
    p.writeblocks(1, bytes(4096))  # simple form erases first
    assert f.erases == 1
    assert p.ioctl(6, 1) == 0 and f.erases == 2
    info = p.info()
    assert info[0] == esp32.Partition.TYPE_DATA and info[3] == 65536 and info[4] == "journal"
    assert esp32.Partition.find(esp32.Partition.TYPE_DATA, label="nope") == []
    small = esp32.Partition("journal", block_size=512)
    assert small.ioctl(4, 0) == 128 and small.ioctl(6, 0) == -22


def test_running_partition_and_misc(world: Any) -> None:
    r = esp32.Partition(esp32.Partition.RUNNING)
    assert r.info()[0] == esp32.Partition.TYPE_APP
    assert esp32.raw_temperature() == 128  # an uncalibrated register on the ESP32 (test_battery_sense.py)
    esp32.wake_on_ext0(35, esp32.WAKEUP_ALL_LOW)
    assert world.board.wake_ext0 == (35, 0)


def test_provision_uses_the_profile(world: Any) -> None:
    f = sim_flash.provision(world.board)
    assert f.size == world.profile["journal"]["size_kb"] * 1024
    assert sim_flash.provision(world.board) is f


def test_image_round_trip(world: Any) -> None:
    f = NorFlash(8192)
    f.program(300, b"abc")
    g = NorFlash(8192)
    g.load_image(f.image())
    assert _read(g, 300, 3) == b"abc"


def test_small_block_writeblocks_reads_erases_and_rewrites_the_sector(world: Any) -> None:
    f = NorFlash(8192)
    world.board.partitions["data"] = f
    p = esp32.Partition("data", block_size=512)
    p.writeblocks(0, b"\x11" * 512)  # no offset: the whole 4 KiB sector is erased and rewritten
    p.writeblocks(3, b"\x22" * 512)
    buf = bytearray(512)
    p.readblocks(0, buf)
    assert buf == b"\x11" * 512  # block 0 survived the rewrite of block 3
    p.readblocks(3, buf)
    assert buf == b"\x22" * 512
    assert f.erases == 2


def _rec(n: int = 200) -> bytes:
    body = bytes((7 * i + 1) & 0x7F for i in range(n))
    return body + binascii.crc32(body).to_bytes(4, "little")


def _torn(mode: str, part: float = 0.5, seed: int = 3) -> tuple[bytes, bytes, NorFlash]:
    f = NorFlash(8192, seed=seed)
    rec = _rec()
    f.arm_cut(0, part=part, mode=mode)
    with pytest.raises(sim_power.PowerLoss):
        f.program(256, rec)
    return rec, _read(f, 256, len(rec)), f


def _landed_subset(rec: bytes, got: bytes) -> bool:
    # Every bit that is 0 now was meant to be 0: only intended 1 -> 0 transitions landed.
    return all((g | r) == g for g, r in zip(got, rec, strict=True)) and all(
        (~g & 0xFF) & r == 0 for g, r in zip(got, rec, strict=True)
    )


def test_torn_program_modes_land_a_subset_of_the_intended_transitions(world: Any) -> None:
    for mode in ("prefix", "suffix", "spread", "all_but_one", "all_but_tail"):
        rec, got, f = _torn(mode)
        assert _landed_subset(rec, got), mode
        assert got != rec, mode  # something is missing: the CRC must reject it
        assert binascii.crc32(got[:-4]) != int.from_bytes(got[-4:], "little"), mode
        assert f.last_cut_mode == mode


def test_torn_program_shapes(world: Any) -> None:
    rec, got, _ = _torn("none")
    assert got == b"\xff" * len(rec)  # a page that reads blank but was (partly) programmed
    rec, got, _ = _torn("all")
    assert got == rec  # everything landed, the firmware never heard back
    rec, got, _ = _torn("prefix", 0.5)
    assert got[:102] == rec[:102] and got[102:] == b"\xff" * (len(rec) - 102)
    rec, got, _ = _torn("suffix", 0.5)
    assert got[:102] == b"\xff" * 102 and got[102:] == rec[102:]
    rec, got, _ = _torn("all_but_tail")
    assert got[:-4] == rec[:-4] and got[-4:] == b"\xff" * 4
    rec, got, _ = _torn("all_but_one")
    diff = sum(bin(a ^ b).count("1") for a, b in zip(rec, got, strict=True))
    assert diff == 1
    rec, got, _ = _torn("spread", 0.5)
    landed = [i for i in range(len(rec)) if got[i] == rec[i] and rec[i] != 0xFF]
    assert landed and max(landed) > len(rec) // 2 and min(landed) < len(rec) // 2  # spread over the page


def _torn_erase(mode: str, part: float = 0.5) -> tuple[bytes, bytes, NorFlash]:
    f = NorFlash(8192, seed=5)
    old = bytes(_rec(4092))
    f.program(0, old)
    f.arm_cut(f.ops, part=part, mode=mode)
    with pytest.raises(sim_power.PowerLoss):
        f.erase_sector(0)
    return old, _read(f, 0, 4096), f


def test_torn_erase_modes(world: Any) -> None:
    old, got, f = _torn_erase("unchanged")
    assert got == old
    _, got, f = _torn_erase("zeros")
    assert got == bytes(4096)
    _, got, f = _torn_erase("random")
    assert got not in (old, bytes(4096), b"\xff" * 4096)
    old, got, f = _torn_erase("pages", 0.5)
    pages = [got[p * 256 : (p + 1) * 256] for p in range(16)]
    erased = [p for p in range(16) if pages[p] == b"\xff" * 256]
    intact = [p for p in range(16) if pages[p] == old[p * 256 : (p + 1) * 256]]
    assert erased and intact and len(erased) + len(intact) == 16  # old pages left whole, CRC and all
    old, got, f = _torn_erase("bits")
    assert any(g & ~o & 0xFF for g, o in zip(got, old, strict=True))  # bits set
    assert any(o & ~g & 0xFF for g, o in zip(got, old, strict=True))  # and bits cleared
    _, got, f = _torn_erase("all")
    assert got == b"\xff" * 4096 and f.erase_counts[0] == 0
    assert f.touched_pages()  # looks erased, is not: programming it before an erase is undefined


def test_reprogramming_a_page_is_counted_and_not_kind(world: Any) -> None:
    f = NorFlash(8192, seed=2, on_set_bit="and")
    f.arm_cut(0, mode="none")
    with pytest.raises(sim_power.PowerLoss):
        f.program(0, _rec())
    assert _read(f, 0, 16) == b"\xff" * 16  # the torn page reads blank
    f.program(0, _rec())
    assert (f.reprograms, f.reprograms_blank) == (0, 1)  # counted apart: it read as erased
    assert _read(f, 0, 204) != _rec()  # undefined result: some cells over-programmed
    f.program(0, _rec())
    assert (f.reprograms, f.reprograms_blank) == (1, 1)
    f.erase_sector(0)
    f.program(0, _rec())
    assert f.reprograms == 1 and _read(f, 0, 204) == _rec()  # after an erase it is a fresh page
    g = NorFlash(8192, seed=2, on_set_bit="and")
    g.arm_cut(0, 0.5, mode="prefix")
    with pytest.raises(sim_power.PowerLoss):
        g.program(0, _rec())
    g.program(0, _rec())
    assert (g.reprograms, g.reprograms_blank) == (1, 0)  # bits had landed: a plain reprogram
    h = NorFlash(8192, on_set_bit="and")
    h.load_image(g.image(), g.history())
    h.program(0, _rec())
    assert h.reprograms == 1  # a copy keeps the program history


def test_clock_cuts_draw_every_torn_mode(world: Any) -> None:
    seen = set()
    for seed in range(60):
        f = NorFlash(8192, timing="max", seed=seed + 1)
        world.power.on = True
        world.power.pull_at_ms(world.clock.now_ms() + 1.5)
        with pytest.raises(sim_power.PowerLoss):
            f.program(0, _rec())
        seen.add(f.last_cut_mode)
        f.release()
    assert seen == set(sim_flash.PROGRAM_MODES)


def test_bit_rot_api(world: Any) -> None:
    f = NorFlash(8192)
    f.program(0, bytes(16))
    f.flip_bit(3, 2)
    assert _read(f, 3, 1) == bytes([4])
    flips = f.rot(5, seed=4)
    assert len(flips) == 5 and all(0 <= a < 8192 and 0 <= b < 8 for a, b in flips)
    g = NorFlash(8192)
    g.flip_at(1, 100, 0)
    g.program(0, b"\x00")
    assert _read(g, 100, 1) == b"\xff"  # not yet: due before operation 1
    g.program(1, b"\x00")
    assert _read(g, 100, 1) == b"\xfe"
    with pytest.raises(OSError):
        g.flip_bit(8192, 0)
