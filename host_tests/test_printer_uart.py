"""The simulated UART: baud-rate timing, the TX ring that blocks like the ESP32 driver, CTS, RX FIFO."""

from __future__ import annotations

from typing import Any

import machine
import pytest
import sim_clock
import sim_power
import sim_uart


class RecordingPeer:
    """A far end that records what arrives and when, and drives a BUSY pin into CTS on demand."""

    def __init__(self) -> None:
        self.got = bytearray()
        self.times: list[int] = []

    def receive(self, data: bytes, t_us: int) -> None:
        self.got.extend(data)
        self.times.append(t_us)


def _uart(world: Any, **kw: Any) -> Any:
    peer = RecordingPeer()
    world.board.uart_peers[1] = peer
    return machine.UART(1, **kw), peer


def test_bytes_leave_at_the_baud_rate(world: Any) -> None:
    u, peer = _uart(world, baudrate=9600)
    assert u.write(b"0123456789") == 10
    assert not u.txdone()
    world.clock.advance_us(5000)
    assert len(peer.got) == 4  # 10 bits a frame at 9600 baud: 1041.7 us each
    world.clock.advance_us(10000)
    assert bytes(peer.got) == b"0123456789"
    assert abs(peer.times[-1] - 10 * 1041.67) < 2
    assert u.txdone()


def test_frame_length_follows_bits_parity_stop(world: Any) -> None:
    u, peer = _uart(world, baudrate=115200, bits=8, parity=0, stop=2)
    u.write(b"x" * 100)
    world.clock.advance_us(100 * 12 * 1_000_000 // 115200 + 5)
    assert len(peer.got) == 100
    u2, peer2 = _uart(world, baudrate=115200)
    u2.write(b"x" * 100)
    world.clock.advance_us(100 * 12 * 1_000_000 // 115200 + 5)
    assert len(peer2.got) == 100  # 10-bit frames are quicker: all there well before


def test_write_blocks_while_the_fifo_and_ring_are_full(world: Any) -> None:
    u, peer = _uart(world, baudrate=9600, txbuf=256)
    t0 = world.clock.now_us()
    u.write(b"a" * 384)  # exactly the 128-byte hardware FIFO + 256-byte ring: no wait
    assert world.clock.now_us() == t0
    u.write(b"b" * 100)  # 100 more: must wait for 100 frames to leave
    waited = world.clock.now_us() - t0
    assert 100 * 1041 <= waited <= 102 * 1042
    assert len(peer.got) >= 100


def test_cts_stops_the_wire_and_active_low_is_clear(world: Any) -> None:
    u, peer = _uart(world, baudrate=9600, cts=8, flow=machine.UART.CTS)
    world.board.drive_pin(8, 1)  # BUSY high = CTS deasserted
    u.write(b"hello")
    world.clock.advance_ms(100)
    assert bytes(peer.got) == b""
    world.board.drive_pin(8, 0)
    world.clock.advance_ms(10)
    assert bytes(peer.got) == b"hello"


def test_inverted_cts(world: Any) -> None:
    u, peer = _uart(world, baudrate=9600, cts=8, flow=machine.UART.CTS, invert=machine.UART.INV_CTS)
    world.board.drive_pin(8, 0)  # active-low BUSY board: low = busy
    u.write(b"hi")
    world.clock.advance_ms(50)
    assert bytes(peer.got) == b""
    world.board.drive_pin(8, 1)
    world.clock.advance_ms(5)
    assert bytes(peer.got) == b"hi"


def test_cts_pin_without_flow_is_ignored(world: Any) -> None:
    u, peer = _uart(world, baudrate=9600, cts=8)
    world.board.drive_pin(8, 1)
    u.write(b"hi")
    world.clock.advance_ms(5)
    assert bytes(peer.got) == b"hi"


def test_stuck_cts_write_trips_the_watchdog(world: Any) -> None:
    u, peer = _uart(world, baudrate=9600, cts=8, flow=machine.UART.CTS)
    world.board.drive_pin(8, 1)
    machine.WDT(timeout=5000)
    with pytest.raises(sim_power.WatchdogReset):
        u.write(b"z" * 1000)  # more than the 128-byte FIFO: blocks forever on a real ESP32
    assert 5.0 <= world.clock.now_us() / 1e6 <= 5.1


def test_stuck_write_without_watchdog_is_reported_as_a_hang(world: Any) -> None:
    u, _ = _uart(world, baudrate=115200, cts=8, flow=machine.UART.CTS)
    world.board.drive_pin(8, 1)
    with pytest.raises(sim_clock.Deadlock):
        u.write(b"z" * 200)


def test_flush_times_out_when_cts_is_held(world: Any) -> None:
    u, _ = _uart(world, baudrate=9600, cts=8, flow=machine.UART.CTS)
    world.board.drive_pin(8, 1)
    u.write(b"abc")
    with pytest.raises(OSError):
        u.flush()
    world.board.drive_pin(8, 0)
    u.flush()
    assert u.txdone()


def test_rx_arrives_frame_by_frame_and_overflows_are_counted(world: Any) -> None:
    u, _ = _uart(world, baudrate=9600, rxbuf=200, timeout=0)
    assert u.read() is None
    sim_uart.send_to_board(world.board, 1, b"\x12\x34")
    assert u.any() == 0
    world.clock.advance_us(1100)
    assert u.any() == 1
    world.clock.advance_us(1100)
    assert u.read() == b"\x12\x34"
    sim_uart.send_to_board(world.board, 1, bytes(300))
    world.clock.advance_ms(400)
    assert u.any() == 200
    wire = sim_uart.wire_for(world.board, 1)
    assert wire.rx_dropped == 100


def test_read_waits_for_the_timeout(world: Any) -> None:
    u, _ = _uart(world, baudrate=9600, timeout=50)
    t0 = world.clock.now_us()
    assert u.read(1) is None
    assert world.clock.now_us() - t0 >= 50_000
    sim_uart.send_to_board(world.board, 1, b"ok\n")
    assert u.readline() == b"ok\n"
    buf = bytearray(4)
    sim_uart.send_to_board(world.board, 1, b"abcd")
    assert u.readinto(buf) == 4 and bytes(buf) == b"abcd"


def test_reset_drops_the_driver_buffers(world: Any) -> None:
    u, peer = _uart(world, baudrate=9600)
    u.write(b"x" * 100)
    world.clock.advance_ms(10)
    world.board._drop_ram(False)  # what a reset does to RAM
    world.clock.advance_ms(200)
    assert len(peer.got) < 20
    with pytest.raises(OSError):
        u.write(b"late")


def test_inverted_tx_gives_garbage(world: Any) -> None:
    u, peer = _uart(world, baudrate=9600, invert=machine.UART.INV_TX)
    u.write(b"A")
    world.clock.advance_ms(5)
    assert bytes(peer.got) == bytes([ord("A") ^ 0xFF])
