"""Issue 13: what would break on a real ESP32, each against a simulator as strict as the port
(facts and upstream file:line in docs/reference/esp32-port.md). Items 1 and 11 also have unix-port
tests (test_frozen_layout.py, host_tests/mpy/mpy_test_esp32_float.py)."""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from posguard_tools import paths

paths.use_simulated_hardware()

sim_day = importlib.import_module("sim_day")  # simulator code (MicroPython subset, untyped)
sim_power = importlib.import_module("sim_power")
pins = importlib.import_module("posguard.pins")
profile = importlib.import_module("posguard.profile")


def _profile(board: str) -> dict[str, Any]:
    return json.loads(paths.board_profile(board).read_text())


class Counter:
    """A simulated board running the firmware through boot.py/main.py, a cashier app on the host link."""

    def __init__(self, tmp: Path, board: str = "devkit-1s", edit: Callable[[dict[str, Any]], None] | None = None):
        prof = _profile(board)
        if edit is not None:
            edit(prof)
        tmp.mkdir(parents=True, exist_ok=True)
        self.day = sim_day.Day(prof, str(tmp), str(paths.FIRMWARE), hours=1.0, seed=5)
        self.board = self.day.board
        self.replies: dict[int, dict[str, Any]] = {}
        self.day.peer.on_reply = lambda r: self.replies.__setitem__(r.get("seq", 0), r)
        self.seq = 0

    def at(self, t_s: float, req: dict[str, Any]) -> int:
        self.seq += 1
        r = dict(req, seq=self.seq)
        self.day.clock.call_at_us(int(t_s * 1e6), lambda: self.day.peer.send(r))
        return self.seq

    def sale(self, sid: int, t0: float) -> list[int]:
        items = [{"name": "拿铁", "qty": 1, "price": 1800}]
        return [self.at(t0, {"op": "open", "id": sid, "items": items, "time": "2026-11-24 09:00"}),
                self.at(t0 + 2, {"op": "pay", "id": sid, "method": "cash"}),
                self.at(t0 + 4, {"op": "approve", "id": sid, "auth": "A1"})]

    def run(self, until_s: float) -> dict[str, Any]:
        out: dict[str, Any] = self.board.run(int(until_s * 1000))
        return out

    def reset_names(self) -> list[str]:
        return [r[1] for r in self.board.resets]


# -- item 2: GPIO34-39 have no pull-ups ---------------------------------------------------------------
def test_profile_refuses_a_pulled_up_line_on_an_input_only_pin() -> None:
    prof = _profile("devkit-1s")
    prof["pins"]["external_pullups"] = []
    with pytest.raises(profile.ProfileError, match=r"pins.power_fail.*GPIO39.*no internal pull-up"):
        profile.validate(prof)
    prof["pins"]["external_pullups"] = [39]  # the board fits the resistor: fine
    profile.validate(prof)
    s3 = _profile("pos-2s")
    s3["pins"]["power_fail"] = 39  # every ESP32-S3 GPIO has a pull-up
    profile.validate(s3)


def test_simulated_input_only_pin_floats_despite_pull_up(world: Any) -> None:
    machine = importlib.import_module("machine")
    world.board.profile["pins"]["external_pullups"] = []
    assert machine.Pin(39, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0  # no pull-up there: floats
    assert machine.Pin(33, machine.Pin.IN, machine.Pin.PULL_UP).value() == 1
    world.board.profile["pins"]["external_pullups"] = [38]
    assert machine.Pin(38, machine.Pin.IN).value() == 1  # the board's resistor
    with pytest.raises(ValueError, match="only be input"):
        machine.Pin(36, machine.Pin.OUT)


def test_a_healthy_devkit_keeps_trading_with_its_power_fail_line_released(tmp_path: Path) -> None:
    # devkit-1s: the supervisor's open-drain power-fail output on GPIO39, released (healthy pack).
    c = Counter(tmp_path, "devkit-1s")
    seqs = c.sale(11, 10)
    c.run(60)
    assert "DeepSleep" not in c.reset_names(), c.board.resets
    assert [c.replies[s]["state"] for s in seqs] == ["OPEN", "PAYMENT_PENDING", "PAID"], c.replies


# -- item 3: console pins -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mcu", "pin"), [("esp32s3", 43), ("esp32s3", 44), ("esp32s3", 19), ("esp32", 1), ("esp32", 3)]
)
def test_profile_refuses_console_pins_per_chip(mcu: str, pin: int) -> None:
    prof = _profile("pos-2s")
    prof["mcu"] = mcu
    prof["host"]["tx"] = pin
    with pytest.raises(profile.ProfileError, match=f"host.tx.*GPIO{pin} is a console pin on {mcu}"):
        profile.validate(prof)


def test_shipped_profiles_keep_off_console_pins() -> None:
    for board in ("devkit-1s", "pos-2s"):
        prof = profile.validate(_profile(board))
        used = [prof["host"]["tx"], prof["host"]["rx"], prof["printer"]["tx"], prof["printer"]["rx"]]
        assert not set(used) & {43, 44, 19, 20} if prof["mcu"] == "esp32s3" else not set(used) & {1, 3}


def test_a_host_link_on_the_s3_console_pins_hears_the_rom_boot_log(tmp_path: Path) -> None:
    # The pins pos-2s used before: the app gets the ROM's boot text before any reply.
    def old_pins(p: dict[str, Any]) -> None:
        p["host"]["tx"], p["host"]["rx"] = 43, 44

    old = Counter(tmp_path / "old", "pos-2s", edit=old_pins)
    with pytest.raises(ValueError, match="console pin"):  # ProfileError (a reset re-imports the module)
        old.run(5)  # main.py stops at the profile check (a board prints the traceback at the REPL)
    assert old.day.peer.bad_replies > 0
    now = Counter(tmp_path / "now", "pos-2s")
    now.run(5)
    assert now.day.peer.bad_replies == 0


def test_ctrl_c_from_an_app_on_the_console_pins_interrupts_the_board(world: Any) -> None:
    # Until the firmware's UART takes GPIO3 (ESP32 console RX), what the app sends goes to the REPL.
    machine = importlib.import_module("machine")
    sim_uart = importlib.import_module("sim_uart")
    host = world.board.profile["host"]
    host["tx"], host["rx"] = 1, 3
    with pytest.raises(KeyboardInterrupt):
        sim_uart.send_to_board(world.board, host["uart_id"], b'{"op":"status"}\x03\n')
    machine.UART(host["uart_id"], 115200, tx=1, rx=3)  # Terminal.build() takes the pins
    sim_uart.send_to_board(world.board, host["uart_id"], b"\x03")  # now just a byte for the host link


# -- item 4: service entry ------------------------------------------------------------------------------
def test_gpio0_held_at_reset_is_rom_download_mode_not_service_mode(tmp_path: Path) -> None:
    c = Counter(tmp_path, "devkit-1s")
    c.board.drive_pin(0, 0)  # "hold BOOT, tap EN": the serial bootloader's entry
    out = c.run(30)
    assert out["outcome"].startswith("ROM download mode"), out
    assert c.board.boots == 1 and not c.replies  # MicroPython never ran


def test_service_long_press_restarts_into_service_mode_without_a_watchdog(tmp_path: Path) -> None:
    c = Counter(tmp_path, "devkit-1s")
    c.day.clock.call_at_us(10_000_000, lambda: c.board.drive_pin(0, 0))  # a 1 s touch: nothing happens
    c.day.clock.call_at_us(11_000_000, lambda: c.board.drive_pin(0, None))
    c.day.clock.call_at_us(20_000_000, lambda: c.board.drive_pin(0, 0))
    c.day.clock.call_at_us(23_500_000, lambda: c.board.drive_pin(0, None))  # released after 3.5 s
    out = c.run(60)
    assert out["outcome"] == "firmware returned to the REPL", out
    # Acted on after the release, at the next watchdog feed (every 2 s).
    assert c.reset_names() == ["ChipReset"] and 23_500 <= c.board.resets[0][0] <= 25_600, c.board.resets
    assert not c.board.watchdog_running()
    assert c.board.idle_at_repl(120_000) is None  # minutes at the REPL: nothing fires
    # Back to trading: maint.leave() (or a power cycle) restarts into the terminal.
    maint = importlib.import_module("posguard.maint")
    c.board.power.on = True
    with pytest.raises(sim_power.BoardReset) as e:
        maint.leave()
    c.board._after_reset(e.value)
    seqs = c.sale(12, c.day.clock.now_ms() / 1000 + 5)
    c.run(c.day.clock.now_ms() / 1000 + 30)
    assert c.replies[seqs[0]]["ok"], c.replies
    assert c.board.watchdog_running()


# -- item 5: the watchdog outlives Ctrl-C and soft reset --------------------------------------------------
def test_simulated_watchdog_survives_soft_reset_not_machine_reset(world: Any) -> None:
    machine = importlib.import_module("machine")
    machine.WDT(timeout=1000)
    with pytest.raises(sim_power.BoardReset) as e:
        machine.soft_reset()
    world.board._after_reset(e.value)
    assert world.board.watchdog_running()
    assert isinstance(world.board.idle_at_repl(2000), sim_power.WatchdogReset)
    machine.WDT(timeout=1000)
    with pytest.raises(sim_power.BoardReset) as e:
        machine.reset()
    assert e.value.cause == machine.HARD_RESET  # modmachine.c: ESP_RST_SW -> HARD_RESET
    world.board._after_reset(e.value)
    assert not world.board.watchdog_running()


def _ctrl_c(c: Counter, t_s: float) -> None:
    def fire() -> None:
        if c.board.power.on:  # only running code sees it (not a board asleep or in reset)
            raise KeyboardInterrupt  # what mpremote's Ctrl-C does to main.py

    c.day.clock.call_at_us(int(t_s * 1e6), fire)


def test_ctrl_c_on_a_running_terminal_ends_in_a_watchdog_reset(tmp_path: Path) -> None:
    c = Counter(tmp_path, "pos-2s")
    _ctrl_c(c, 20)
    c.run(40)
    wdt = [r for r in c.board.resets if r[1] == "WatchdogReset"]
    assert wdt and 20_000 < wdt[0][0] <= 28_020, c.board.resets  # fed at most 8 s before, then nothing


def test_maintenance_mode_after_ctrl_c_keeps_the_watchdog_from_firing(tmp_path: Path) -> None:
    # What deploy and journal dump --port do: Ctrl-C, then maint.enter() at once (inside the watchdog
    # timeout), then copy for as long as it takes, then maint.leave().
    c = Counter(tmp_path, "pos-2s")
    _ctrl_c(c, 20)
    c.board.boots = 0
    r = c.board.boot_once()
    assert r is None and c.board.watchdog_running()
    maint = importlib.import_module("posguard.maint")
    with pytest.raises(sim_power.BoardReset) as e:
        maint.enter()
    c.board._after_reset(e.value)
    assert c.board.boot_once() is None  # boot.py and main.py: service mode, back at the REPL
    assert not c.board.watchdog_running()
    assert c.board.idle_at_repl(300_000) is None  # a 5-minute copy: no reset


# -- item 7: pos-2s builds its printer with the BUSY pin ----------------------------------------------------
def test_pos2s_paper_out_is_reported_as_paper_out(tmp_path: Path) -> None:
    c = Counter(tmp_path, "pos-2s")
    c.day.clock.call_at_us(5_000_000, lambda: setattr(c.day.printer, "paper_mm_left", 0.0))
    seqs = c.sale(21, 10)
    st = c.at(80, {"op": "status"})
    nxt = c.at(82, {"op": "open", "id": 22, "items": [{"name": "Tea", "price": 500}]})
    c.run(90)
    assert c.replies[seqs[2]]["state"] == "PAID"
    assert c.replies[st]["printer"]["problem"] == "paper out", c.replies[st]
    assert c.replies[nxt]["err"] == "PAPER_OUT", c.replies[nxt]  # not PRINTER_FAULT "offline"


# -- item 8: UART.init() waits for TX -----------------------------------------------------------------------
def test_simulated_uart_init_waits_up_to_1s_for_a_held_fifo(world: Any) -> None:
    machine = importlib.import_module("machine")
    world.board.drive_pin(8, 1)  # CTS high: stop
    u = machine.UART(1, 9600, tx=17, rx=18, cts=8, flow=machine.UART.CTS)
    u.write(b"x" * 20)
    t0 = world.clock.now_us()
    u.init(flow=0)
    assert world.clock.now_us() - t0 == 1_000_000  # machine_uart.c:306, the whole loop frozen


def test_pos2s_status_queries_never_freeze_the_loop_in_uart_init(tmp_path: Path) -> None:
    c = Counter(tmp_path, "pos-2s")
    c.day.clock.call_at_us(13_000_000, lambda: setattr(c.day.printer, "paper_mm_left", 0.0))  # mid-receipt
    c.sale(31, 10)
    c.run(60)
    wire = importlib.import_module("sim_uart").wire_for(c.board, 1)
    assert wire.init_wait_max_us < 2000, wire.init_wait_max_us


@pytest.mark.parametrize("paper_mm", [24.0, 27.0, 30.0])
def test_paper_out_status_query_never_waits_in_uart_init(printer_worlds: Any, paper_mm: float) -> None:
    # The paper runs out mid-receipt: BUSY holds, the job asks the printer what is wrong (DLE EOT).
    # Nothing may block the event loop on the way: UART.init() on a held FIFO is a 1 s freeze.
    receipt = importlib.import_module("posguard.receipt")
    printer_world = importlib.import_module("posguard_tools.printer_world")
    w = printer_worlds("pos-2s", paper_mm_left=paper_mm)
    w.clock.call_later_ms(20_000, lambda: w.printer.load_paper())
    drv = w.driver()
    ops = receipt.layout(printer_world.standard_sale(), w.pcfg["columns"], drv.enc.char_cols)

    async def main() -> Any:
        await drv.start()
        return await drv.print_job(ops)

    res = w.run(main())
    wire = importlib.import_module("sim_uart").wire_for(w.board, w.pcfg["uart_id"])
    assert res["result"] == "printed" and res["pauses"] == 1, res
    assert wire.init_wait_max_us == 0, wire.init_wait_max_us
    assert w.printer.dropped == 0


# -- item 9: read_uv() without factory calibration -----------------------------------------------------------
def test_a_chip_without_adc_calibration_still_trades_and_says_so(tmp_path: Path) -> None:
    c = Counter(tmp_path, "devkit-1s")
    c.board.adc_efuse_cal = False  # read_uv() raises OSError (ports/esp32/adc.c:69)
    seqs = c.sale(41, 10)
    st = c.at(40, {"op": "status"})
    c.run(60)
    assert [c.replies[s]["state"] for s in seqs] == ["OPEN", "PAYMENT_PENDING", "PAID"], c.replies
    assert "uncalibrated" in c.replies[st].get("adc", ""), c.replies[st]


def test_uncalibrated_adc_falls_back_to_read_u16_within_the_vref_spread(world: Any) -> None:
    hw = importlib.import_module("posguard.hw")
    world.board.analog_sources[34] = lambda: 1.80
    world.board.adc_efuse_cal = False
    try:
        a = hw.adc(34)
        assert isinstance(a, hw.UncalibratedADC) and 34 in hw.uncalibrated_adcs
        uv = sum(a.read_uv() for _ in range(64)) // 64
        assert abs(uv - 1_800_000) < 0.12 * 1_800_000, uv  # +/-9 % Vref spread plus noise
        world.board.adc_efuse_cal = True
        assert not isinstance(hw.adc(35), hw.UncalibratedADC)
    finally:
        del hw.uncalibrated_adcs[:]  # module state: later tests in this process share the module


# -- item 10: first-boot format at datasheet worst-case flash timing ------------------------------------------
@pytest.mark.parametrize("board", ["devkit-1s", "pos-2s"])
def test_first_boot_format_and_a_sale_at_worst_case_flash_timing(tmp_path: Path, board: str) -> None:
    c = Counter(tmp_path, board)
    c.day.flash.timing = "max"  # 400 ms per sector erase, 3 ms per page program (storage.md)
    seqs = c.sale(51, 30)
    c.run(70)
    assert "WatchdogReset" not in c.reset_names(), c.board.resets
    assert c.day.flash.max_erase_us == 400_000 and c.day.flash.max_program_us == 3000
    assert [c.replies[s]["state"] for s in seqs] == ["OPEN", "PAYMENT_PENDING", "PAID"], c.replies


def test_terminal_maintenance_at_worst_case_erase_timing_keeps_the_watchdog_fed(world: Any) -> None:
    # The third flash path: journal maintenance (erase + compaction), run by the terminal itself with
    # its 8 s watchdog armed, every erase at the datasheet's 400 ms.
    sim_flash = importlib.import_module("sim_flash")
    app = importlib.import_module("posguard.app")
    records = importlib.import_module("posguard.records")
    flash = sim_flash.NorFlash(6 * 4096, label="journal", timing="max")
    world.board.partitions["journal"] = flash
    world.profile["journal"]["keep_last"] = 2
    t = app.Terminal(world.profile)
    t.build()  # formats the blank journal (6 x 400 ms) and arms the watchdog
    assert world.board.watchdog_running()
    book = t.book
    body = {"items": [["coffee", 2, 250]], "total": 500}
    sid = 1
    refused = False
    for _ in range(300):
        try:
            book.open_sale(sid, body)
            book.request_payment(sid)
            book.payment_approved(sid, "AUTH")
            book.start_print(sid)
            book.print_done(sid)
            book.close(sid)
        except records.JournalError as e:
            assert e.code == "needs_maintenance", e.code
            refused = True
            break
        t.wdt.feed()
        sid += 1
    assert refused
    erases = flash.erases
    for _ in range(10):  # what maintenance_loop does every 10 s, with time passing in between
        t.maintain(4)
        world.clock.advance_ms(2000)
        t.wdt.feed()
    assert flash.erases > erases and flash.max_erase_us == 400_000
    book.open_sale(sid, body)  # space again


# -- item 11: floats on timing paths under float32 ---------------------------------------------------------
def _f32_ms(t: float) -> int:
    return int(np.float32(np.float32(t) * np.float32(1000.0)))


def _sleep_args() -> list[tuple[str, float]]:
    """Every constant argument of asyncio.sleep(...) in the firmware, resolved through module constants."""
    found: list[tuple[str, float]] = []
    for path in sorted((paths.FIRMWARE / "posguard").glob("*.py")):
        tree = ast.parse(path.read_text())
        consts: dict[str, float] = {}
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                v = stmt.value
                if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const":
                    v = v.args[0]
                if isinstance(v, ast.Constant) and isinstance(v.value, (int, float)):
                    consts[stmt.targets[0].id] = v.value
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sleep":
                for arg in node.args:
                    for sub in ast.walk(arg):
                        if isinstance(sub, ast.Constant) and isinstance(sub.value, float):
                            found.append((f"{path.name}:{sub.lineno}", sub.value))
                        elif isinstance(sub, ast.Name) and sub.id in consts:
                            found.append((f"{path.name}:{sub.id}", float(consts[sub.id])))
    return found


def test_every_constant_float_sleep_survives_float32_rounding() -> None:
    args = _sleep_args()
    assert args, "the audit found no asyncio.sleep(...) constants"
    bad = [(where, t, _f32_ms(t)) for where, t in args if _f32_ms(t) != round(t * 1000)]
    assert not bad, f"asyncio.sleep arguments that lose a ms in float32: {bad}"


def test_printer_link_sleep_us_is_never_short_under_float32() -> None:
    # printer_link.sleep_us(us) promises at least ceil(us / 1000) ms. Under float32 asyncio.sleep that
    # only holds when no float is involved: check the arithmetic it hands to asyncio for 1-5000 ms.
    src = (paths.FIRMWARE / "posguard" / "printer_link.py").read_text()
    fn = src[src.index("def sleep_us(us):"):src.index("class Link:")]
    assert "asyncio.sleep(" not in fn and "sleep_ms(" in fn, fn
    short = [ms for ms in range(1, 5001) if _f32_ms(ms / 1000) < ms]
    assert len(short) == 45  # what a float path would lose (the count): the reason for sleep_ms
