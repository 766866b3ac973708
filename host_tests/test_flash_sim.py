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
