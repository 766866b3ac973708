"""A simulated board with a printer on its UART, for the receipt command, the bench and the tests.

Runs the firmware's own driver (posguard.printer) against host_tests/simhw/sim_printer.py on the
virtual clock, under CPython.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from typing import Any

from posguard_tools import paths

paths.use_simulated_hardware()

import sim_battery  # noqa: E402
import sim_clock  # noqa: E402
import sim_world  # noqa: E402


class PrinterWorld(sim_world.World):
    """sim_world.World with a simulated printer (power on, a fresh filesystem unless fs_dir is given; a
    pack at `soc` instead of the bench supply when soc is given); `driver()` builds the firmware's Printer."""

    def __init__(
        self,
        profile_name: str = "pos-2s",
        fs_dir: str | None = None,
        pcfg: dict[str, Any] | None = None,
        soc: float | None = None,
        **printer_overrides: Any,
    ) -> None:
        sim_clock.install()
        profile: dict[str, Any] = json.loads(paths.board_profile(profile_name).read_text())
        self.pcfg: dict[str, Any] = profile["printer"]
        for k, v in (pcfg or {}).items():
            if k not in self.pcfg:
                raise KeyError(f"no printer profile key {k!r}")
            self.pcfg[k] = v
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if fs_dir is None:
            self._tmp = tempfile.TemporaryDirectory()
            fs_dir = self._tmp.name
        super().__init__(profile, fs_dir, str(paths.FIRMWARE))
        if soc is not None:
            self.add_pack(sim_battery.Battery(cells=profile["battery"]["cells_series"], soc=soc))
        self.power.on = True
        self.add_printer(**printer_overrides)

    def driver(self, on_event: Callable[[str, str], None] | None = None, **kw: Any) -> Any:
        from posguard import hw, printer

        uart = hw.uart(**printer.uart_args(self.pcfg))
        busy = hw.pin_in(self.pcfg["busy"]) if self.pcfg["flow"] == "cts" else None
        return printer.Printer(uart, self.pcfg, on_event=on_event, busy=busy, **kw)

    def run(self, coro: Any) -> Any:
        return asyncio.run(coro)

    def close(self) -> None:
        super().close()
        if self._tmp is not None:
            self._tmp.cleanup()


def standard_sale(items: int = 13, lang: str = "en") -> dict[str, Any]:
    """The bench's standard receipt: 13 one-line items lay out as 30 line ops on 32 columns."""
    names_en = ["Latte", "Bagel", "Green tea", "Croissant", "Orange juice", "Muffin", "Espresso"]
    names_zh = ["\u62ff\u94c1", "\u8d1d\u679c", "\u7eff\u8336", "\u725b\u89d2\u5305", "\u6a59\u6c41"]
    names = names_zh if lang == "zh" else names_en
    its: list[dict[str, Any]] = []
    for i in range(items):
        unit = 300 + 50 * (i % 7)
        its.append({"name": f"{names[i % len(names)]} {i + 1}", "qty": 1, "unit": unit, "amount": unit})
    sub = sum(int(it["amount"]) for it in its)
    tax = sub * 13 // 100
    return {
        "id": "S-000042",
        "time": "2026-11-24 21:58",
        "lang": lang,
        "currency": "CNY",
        "header": ["Posguard Cafe", "1 Example Road"],
        "items": its,
        "subtotal": sub,
        "tax": tax,
        "tax_label": "VAT 13%",
        "total": sub + tax,
        "payment": "card",
        "card_last4": "4242",
        "url": "https://r.example.com/S-000042",
    }


def printed_text(printer: Any, encoding: str = "gb18030") -> list[str]:
    """The text lines the simulated printer printed, decoded on the host."""
    out = []
    for rec in printer.printed:
        if rec[0] == "text":
            out.append("".join(seg.decode(encoding if key[0] else "latin-1") for seg, key in rec[2]))
    return out
