"""The simulated printer's physics: peak current = dots heated at once x V / R_dot, the mechanism slows
as the supply falls, fewer heating dots print slower with a lower peak, paper runs out by length, and
its own brownout loses its modes."""

from __future__ import annotations

from typing import Any

import pytest
import sim_power
import sim_printer

from posguard import escpos, receipt
from posguard_tools.printer_world import PrinterWorld, standard_sale


def print_at(volts: float, heat: tuple[int, int, int] | None = None, **over: Any) -> tuple[Any, dict[str, Any]]:
    w = PrinterWorld("pos-2s", **over)
    w.power.set_source(sim_power.IdealSupply(volts))
    w.power.brownout_v = 3.0  # let the printer see a low rail without the ESP32 resetting first
    try:
        drv = w.driver()
        if heat:
            drv.set_heat(*heat)
        ops = receipt.layout(standard_sale(), 32, drv.enc.char_cols)
        res = w.run(drv.print_job(ops))
        w.clock.advance_ms(5000)
        return w.printer, res
    finally:
        w.close()


def test_peak_current_is_dots_times_volts_over_r() -> None:
    pr, res = print_at(8.0)
    assert res["result"] == "printed"
    assert abs(pr.peak_a - 64 * 8.0 / sim_printer.R_DOT_OHM) < 1e-6  # 64 dots: ESC 7 default
    pr2, _ = print_at(8.0, heat=(32, 800, 20))
    assert abs(pr2.peak_a - 32 * 8.0 / sim_printer.R_DOT_OHM) < 0.2  # density printer: speed level rounding
    assert pr2.busy_us > pr.busy_us  # fewer dots at once: more strobes per row


def test_mechanism_slows_as_the_supply_falls() -> None:
    hi, _ = print_at(8.4)
    lo, _ = print_at(5.0)  # 2S pack sagging under a dense line: heat time x (7.2/5)^2
    assert lo.busy_us > hi.busy_us * 1.05
    assert lo.peak_a < hi.peak_a


def test_paper_length_is_consumed_by_rows() -> None:
    pr, _ = print_at(8.0, paper_mm_left=1000.0)
    used = 1000.0 - pr.paper_mm_left
    assert abs(used - pr.rows / sim_printer.DOTS_PER_MM) < 1e-6
    assert 50 < used < 200  # a 30-line receipt is a hand's length of paper


def test_own_brownout_forgets_modes_and_prints_nothing() -> None:
    pr, _ = print_at(7.0, v_min=7.5)  # the printer's controller resets below 7.5 V here
    assert pr.resets >= 1
    assert not [r for r in pr.printed if r[0] == "text"]
    assert pr.cn  # back in its power-on Chinese mode


@pytest.mark.parametrize("text", ["\u1100" * 17, "\ufe50" * 17, "\uffe0" * 17])
def test_utf8_printer_draws_what_the_firmware_counts_as_wide(text: str) -> None:
    # The simulated printer's widths are the firmware's (escpos.is_wide): 17 wide glyphs are 34 columns,
    # more than a 58 mm line (32), so the printer wraps once. The simulator's old list of its own had no
    # Hangul Jamo, small forms or fullwidth signs and drew them narrow: no wrap.
    w = PrinterWorld("pos-2s", encoding="utf-8", rx_buffer=256)  # the whole line in the buffer at once
    try:
        assert escpos.Encoder("utf-8", 58, False).cols(text) == 34
        w.printer.receive(text.encode() + b"\n", w.clock.now_us())
        w.clock.advance_ms(5000)
        assert w.printer.dropped == 0 and len(w.printer.printed) == 2
        assert w.printer.auto_wraps == 1
    finally:
        w.close()
