"""Bench: the standard 30-line receipt through the firmware's printer driver and the simulated printer.

- Bytes on the wire and print time at 9600 and 115200 baud with each flow-control mode, as a share of
  the limit max(wire time, mechanism time) (target >= 95 %), and the same for timing-only pacing, ours
  and Adafruit_Thermal's constants (30 ms per printed dot row, battery-and-printer.md).
- Peak and mean pack current per receipt at full and low battery, power-aware heating on and off.
"""

from __future__ import annotations

from typing import Any

from posguard_tools.printer_world import PrinterWorld, standard_sale

TARGET_SHARE = 0.95
PEAK_BUDGET_A = 2.0  # [EST] the pack-side printer peak the power-aware setting aims at (Adafruit: "2A supply")
R_DOT_OHM = 176.0  # Seiko LTP02-245: 162-198 Ohm (battery-and-printer.md)
BOOST_EFF = 0.9  # same assumption as sim_printer


def _job(w: PrinterWorld, heat: tuple[int, int, int] | None = None, **drv_kw: Any) -> dict[str, Any]:
    from posguard import receipt

    drv = w.driver(**drv_kw)
    if heat is not None:
        drv.set_heat(*heat)
    ops = receipt.layout(standard_sale(), w.pcfg["columns"], drv.enc.char_cols)
    pr = w.printer

    marks: dict[str, float] = {}

    async def main() -> dict[str, Any]:
        await drv.start()  # once at boot, not per receipt: measured from the job's first byte
        marks["t0"] = w.clock.now_us()
        marks["recv0"] = pr.received
        marks["busy0"] = pr.busy_us
        marks["charge0"] = pr.charge_as
        r: dict[str, Any] = await drv.print_job(ops)
        return r

    res = w.run(main())
    t0, recv0, busy0, charge0 = marks["t0"], marks["recv0"], marks["busy0"], marks["charge0"]
    w.clock.advance_ms(5000)
    wire = int(pr.received - recv0)
    frame_us = 10_000_000 / w.pcfg["baud"]
    elapsed = pr.last_end_us - t0  # the paper is out when the mechanism stops
    limit = max(wire * frame_us, pr.busy_us - busy0)
    return {
        "result": res["result"],
        "lines": res["lines"],
        "wire_bytes": wire,
        "print_s": elapsed / 1e6,
        "limit_s": limit / 1e6,
        "share": limit / elapsed if elapsed else 0.0,
        "dropped": pr.dropped,
        "peak_a": pr.peak_a,
        "mean_a": (pr.charge_as - charge0) / ((pr.busy_us - busy0) / 1e6) if pr.busy_us > busy0 else 0.0,
        "min_rail_v": w.power.min_v,
    }


def _flow_rows(quick: bool) -> tuple[list[list[Any]], dict[str, Any]]:
    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    modes = [
        ("cts", "BUSY on CTS"),
        ("xon", "XON/XOFF"),
        ("pacing", "pacing (ours)"),
        ("adafruit", "pacing (Adafruit)"),
    ]
    for baud in (9600, 115200):
        for mode, label in modes:
            flow = "pacing" if mode == "adafruit" else mode
            w = PrinterWorld("pos-2s", pcfg={"flow": flow, "baud": baud, "rx_buffer": 45})
            try:
                r = _job(w, adafruit_pacing=(mode == "adafruit"))
            finally:
                w.close()
            data[f"{mode}@{baud}"] = r
            target = f">= {TARGET_SHARE:.0%}" if mode in ("cts", "xon") else "(reported)"
            rows.append(
                [
                    f"{label} @ {baud}: 30-line receipt",
                    f"{r['wire_bytes']} B, {r['print_s']:.2f} s, {r['share']:.1%} of limit, {r['dropped']} dropped",
                    target,
                ]
            )
    return rows, data


def _aware_heat(profile: dict[str, Any], rail_v: float) -> tuple[int, int, int]:
    """Heating dots that keep the pack-side peak under PEAK_BUDGET_A at this pack voltage."""
    from posguard import printer

    if profile["power"]["boost_converter"]:
        printer_amps = PEAK_BUDGET_A * rail_v * BOOST_EFF / 5.0  # 5 V boost rail, as sim_printer
        dots = printer.heat_for_supply(5.0, printer_amps, R_DOT_OHM)
    else:
        dots = printer.heat_for_supply(rail_v, PEAK_BUDGET_A, R_DOT_OHM)
    return dots, 800, 20


def _power_rows(quick: bool) -> tuple[list[list[Any]], dict[str, Any]]:
    import sim_power

    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    boards = ["pos-2s"] if quick else ["pos-2s", "devkit-1s"]
    for board in boards:
        for soc, soc_label in ((1.0, "full"), (0.1, "10 %")):
            for aware in (False, True):
                w = PrinterWorld(board, soc=soc)
                heat = _aware_heat(w.profile, w.power.rail_v()) if aware else None
                key = f"{board}/{soc_label}/{'aware' if aware else 'default'}"
                try:
                    r = _job(w, heat=heat)
                except sim_power.PowerLoss as e:
                    r = {
                        "result": f"brownout: {e}",
                        "peak_a": w.printer.peak_a,
                        "mean_a": 0.0,
                        "min_rail_v": 0.0,
                        "print_s": 0.0,
                    }
                finally:
                    w.close()
                r["heat_dots"] = heat[0] if heat else 64
                data[key] = r
                rows.append(
                    [
                        f"{board}, battery {soc_label}, heat {'power-aware' if aware else 'default 64 dots'}",
                        f"peak {r['peak_a']:.2f} A, mean {r['mean_a']:.2f} A while printing, "
                        f"min rail {r['min_rail_v']:.2f} V, {r['print_s']:.2f} s ({r['result']})",
                        f"peak <= {PEAK_BUDGET_A:.1f} A" if aware else "",
                    ]
                )
    return rows, data


def run(quick: bool) -> dict[str, Any]:
    flow_rows, flow_data = _flow_rows(quick)
    power_rows, power_data = _power_rows(quick)
    return {
        "title": "Thermal printer: flow control, print time and current (standard 30-line receipt)",
        "rows": flow_rows + power_rows,
        "data": {"flow": flow_data, "power": power_data},
    }


if __name__ == "__main__":
    out = run(quick=False)
    for row in out["rows"]:
        print(" | ".join(str(c) for c in row))
