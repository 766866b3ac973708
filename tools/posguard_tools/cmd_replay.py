"""`posguard replay`: feed a recorded battery trace through the firmware's own estimator and policy.

The firmware sees the trace as a board would: the voltage at the ADC pin (pack voltage over the
profile's divider), the printing flag telling it when the printer is on; the temperature
column feeds a thermistor only when the profile has one; the current column, when the trace has it, is
the board's current sensor. One output row per input row:
t_s, soc_pct, state, can_print, receipts_left, r_int_mohm, soh_pct, replace_battery (soc_pct and
receipts_left are empty until the first rested reading).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from posguard_tools import paths, traces

HELP = "replay a battery trace (CSV) through the firmware's SoC estimator and power policy"

OUT_COLUMNS = ("t_s", "soc_pct", "state", "can_print", "receipts_left", "r_int_mohm", "soh_pct", "replace_battery")
_GAP_RESET_S = 600.0  # a hole this long in the log: the board was off or rebooted; start afresh


class TraceError(ValueError):
    """The trace cannot be replayed at all (no header, no voltage column)."""


class _TraceADC:
    """The ADC as the replay feeds it: read_uv() gives the volts at the pin for the current row."""

    def __init__(self) -> None:
        self.uv = 0

    def read_uv(self) -> int:
        return self.uv


class _Pin:
    def __init__(self, level: int = 0) -> None:
        self.level = level

    def value(self) -> int:
        return self.level


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class Replayer:
    """Drives one PowerMonitor over rows; `step(row)` returns the output row (dict)."""

    def __init__(self, profile: dict[str, Any], cells: int | None = None, cutoff_v_cell: float | None = None,
                 store_dir: str | None = None, adc: Any = None, measured_current: bool = False) -> None:
        paths.use_simulated_hardware()
        import sim_clock

        sim_clock.install()
        self.clock = sim_clock.reset(0)
        from posguard import powermon
        from posguard import profile as fw_profile

        prof = json.loads(json.dumps(profile))
        if cells is not None:
            if cells < 1:
                raise TraceError("--cells must be at least 1")
            # A pack of another cell count gets the hardware that goes with it: the sense divider, the
            # brownout level and the margin scale with the cells, so the pin stays in the ADC's range.
            k = cells / prof["battery"]["cells_series"]
            prof["battery"]["cells_series"] = cells
            prof["battery"]["divider_ratio"] *= k
            prof["power"]["brownout_v"] *= k
            prof["policy"]["margin_mv"] *= k
        fw_profile.validate(prof)
        self.prof = prof
        self.cells = prof["battery"]["cells_series"]
        self.ratio = prof["battery"]["divider_ratio"]
        cutoff = None if cutoff_v_cell is None else cutoff_v_cell * self.cells
        self._tmp = None
        if store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="posguard-replay-")
            store_dir = self._tmp.name
        self.adc = adc if adc is not None else _TraceADC()
        self.therm = _TraceADC() if prof["pins"]["thermistor_adc"] is not None else None
        self.amps: float | None = None  # the trace's i_a on this row (None: no column, the load model)
        self.mon = powermon.PowerMonitor(prof, self.adc, therm_adc=self.therm, store_dir=store_dir,
                                         cutoff_v=cutoff, auto_shutdown=False, heat_scaling=False,
                                         current_fn=self._current if measured_current else None)
        self.std_heat = self.mon.load.heat(self.mon.load.dots, 0.0)
        self._t_last: float | None = None
        self._t0_ms = 0

    def _advance_to(self, t_s: float) -> None:
        if self._t_last is not None and (t_s < self._t_last or t_s - self._t_last > _GAP_RESET_S):
            self.mon.est.reset()  # a new log segment: the old state says nothing about this one
            self.mon._last_ms = None
        target_us = int(round(t_s * 1e6)) + self._t0_ms * 1000
        now = self.clock.now_us()
        if target_us < now:
            self._t0_ms += (now - target_us) // 1000 + 1  # time went backwards: keep the clock monotonic
            target_us = int(round(t_s * 1e6)) + self._t0_ms * 1000
        self.clock.advance_us(target_us - now)
        self._t_last = t_s

    def _current(self) -> float | None:
        return self.amps

    def step(self, t_s: float, v_cell: float, printing: bool, temp_c: float | None,
             i_a: float | None = None) -> dict[str, Any]:
        self._advance_to(t_s)
        self.amps = i_a
        self.adc.uv = int(round(v_cell * self.cells / self.ratio * 1e6))
        if self.therm is not None:
            import sim_battery

            self.therm.uv = int(sim_battery.ntc_volts(25.0 if temp_c is None else temp_c) * 1e6)
        self.mon.set_load(printing)
        self.mon.update()
        ok, _reason = self.mon.can_print(30, self.std_heat)
        known = self.mon.soc_known
        return {
            "t_s": t_s,
            "soc_pct": round(self.mon.soc_pct, 2) if known else "",
            "state": self.mon.state_name,
            "can_print": int(ok),
            "receipts_left": self.mon.receipts_left if known else "",
            "r_int_mohm": round(self.mon.r_int_mohm, 1),
            "soh_pct": round(self.mon.soh_pct, 1),
            "replace_battery": int(self.mon.replace_battery),
        }

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def read_rows(f: TextIO) -> tuple[list[str], Iterator[list[str]]]:
    reader = csv.reader(f)
    try:
        header = next(reader)
    except StopIteration:
        raise TraceError("the trace is empty (no header row)") from None
    cols = [h.strip().lower() for h in header]
    if "t_s" not in cols or "v_cell" not in cols:
        raise TraceError(f"the trace needs columns t_s and v_cell; it has: {', '.join(cols) or '(none)'}")
    return cols, reader


def replay(profile: dict[str, Any], rows: Iterable[list[str]], cols: list[str], cells: int | None = None,
           cutoff_v_cell: float | None = None, stats: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one output dict per input row. Rows whose time or voltage is not a number give an output
    row with the time as written and empty figures (nothing is dropped)."""
    st = stats if stats is not None else {}
    st.update(rows=0, bad=0)
    ix: dict[str, int] = {name: cols.index(name) for name in ("t_s", "v_cell", "printing", "temp_c", "i_a")
                          if name in cols}
    # The trace's measured current is the current sensor the replayed board reads (issue 11): the
    # firmware judges receipts by what the cell really gave, not by its own printer model.
    rp = Replayer(profile, cells, cutoff_v_cell, measured_current="i_a" in ix)
    try:
        for row in rows:
            st["rows"] += 1

            def cell(name: str, row: list[str] = row) -> str | None:
                i = ix.get(name)
                return row[i] if i is not None and i < len(row) else None

            t = _num(cell("t_s"))
            v = _num(cell("v_cell"))
            if t is None or v is None or not 0.5 < v < 6.0:
                st["bad"] += 1
                raw = cell("t_s")
                yield {"t_s": raw.strip() if raw else "", **{k: "" for k in OUT_COLUMNS[1:]}}
                continue
            p = _num(cell("printing"))
            yield rp.step(t, v, bool(p) if p is not None else False, _num(cell("temp_c")), _num(cell("i_a")))
    finally:
        rp.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", default=paths.DEFAULT_BOARD,
                        help="board profile name (boards/NAME.json) or a path (default: %(default)s)")
    parser.add_argument("--trace", required=True, type=str,
                        help="a reference trace name (fresh_25c, aged85_5c, ...) or a CSV (.csv or .csv.gz) "
                        "with t_s, v_cell[, printing, i_a, temp_c]")
    parser.add_argument("--cells", type=int, help="cells in series of the traced pack (default: the profile's; the "
                        "divider, brownout level and margin scale with it)")
    parser.add_argument("--cutoff-v-cell", type=float, help="brownout level per cell (default: the profile's)")
    parser.add_argument("--out", required=True, type=Path, help="output CSV")


def load_profile(board: str) -> dict[str, Any]:
    p = Path(board)
    if not p.exists():
        p = paths.board_profile(board)
    if not p.exists():
        raise TraceError(f"no board profile '{board}' (looked for {p})")
    data: dict[str, Any] = json.loads(p.read_text())
    return data


def run(args: argparse.Namespace) -> int:
    try:
        prof = load_profile(args.board)
        stats: dict[str, int] = {}
        with traces.open_text(args.trace) as f:
            cols, rows = read_rows(f)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.out.with_suffix(args.out.suffix + ".tmp")
            with tmp.open("w", newline="") as o:
                w = csv.DictWriter(o, fieldnames=OUT_COLUMNS)
                w.writeheader()
                for out in replay(prof, rows, cols, args.cells, args.cutoff_v_cell, stats):
                    w.writerow(out)
            tmp.replace(args.out)
    except (OSError, TraceError, ValueError) as e:
        print(f"posguard replay: {e}", file=sys.stderr)
        return 2
    missing = [c for c in ("printing",) if c not in cols]
    if missing:
        print(f"note: no {', '.join(missing)} column: the printer is taken as idle throughout", file=sys.stderr)
    print(f"replayed {stats['rows']} rows ({stats['bad']} unreadable, kept as empty rows) -> {args.out}")
    return 0
