"""`posguard replay` on the reference trace: the issue's figures, and a technician's messy logs."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from posguard_tools import battery_sim, cmd_replay, paths, replay_metrics

TRACE = replay_metrics.TRACE


def _profile(name: str = "devkit-1s") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(paths.board_profile(name).read_text())
    return data


def _trace_printer(name: str = "devkit-1s") -> dict[str, Any]:
    """The board with the reference trace's printer: a fixed-current load (i_a 2.0 A printing, 0.3 A
    idle), so its peak is its mean; the board's own printer (peak from dots x V / R_dot) is not what
    the trace drew."""
    return battery_sim.trace_printer_profile(_profile(name))


@pytest.fixture(scope="module")
def trace() -> dict[str, list[float]]:
    return replay_metrics.load_trace()


@pytest.fixture(scope="module")
def at_trace_cutoff(trace: dict[str, list[float]]) -> replay_metrics.Figures:
    out = replay_metrics.replay_trace(_trace_printer(), trace, 2.5)  # the trace's own 2.5 V cutoff
    assert len(out) == len(trace["t_s"])
    return replay_metrics.figures(trace, out, 2.5)


def test_soc_error_on_reference_trace(at_trace_cutoff: replay_metrics.Figures) -> None:
    f = at_trace_cutoff
    print(f"\nSoC error vs soc_usable: RMS {f.soc_rms:.2f} %, max {f.soc_max:.2f} %, "
          f"max in the last 20 % {f.soc_max_last20:.2f} %")
    assert f.soc_rms <= 3.0
    assert f.soc_max_last20 <= 3.0


def test_no_false_allows_and_little_unused_charge(at_trace_cutoff: replay_metrics.Figures) -> None:
    f = at_trace_cutoff
    print(f"\nfalse allows {f.false_allows}, first refusal at {f.first_refusal_soc:.2f} %, last feasible "
          f"receipt at {f.last_feasible_soc:.2f} %: unused {f.unused_pct:.2f} %")
    assert f.false_allows == 0
    assert 0 <= f.unused_pct <= 2.0


def test_resistance_estimate_within_10_percent(at_trace_cutoff: replay_metrics.Figures) -> None:
    f = at_trace_cutoff
    print(f"\nresistance error over {f.r_events} steps: max {f.r_err_max_pct:.1f} %, p95 {f.r_err_p95_pct:.1f} %")
    assert f.r_events > 400
    assert f.r_err_max_pct <= 10.0


def test_profile_brownout_cutoff_with_adc_noise(trace: dict[str, list[float]]) -> None:
    """devkit-1s's own 3.0 V brownout level, with 3 mV (1 sigma) of extra noise on every reading: more
    than the trimmed mean of 64 samples leaves of the ADC's ~25 LSB (about 1 mV at the pack)."""
    out = replay_metrics.replay_trace(_trace_printer(), trace, None, v_noise_v=0.003)
    f = replay_metrics.figures(trace, out, 3.0, soc_truth=False)
    print(f"\n3.0 V cutoff, noisy: false allows {f.false_allows}, unused {f.unused_pct:.2f} %")
    assert f.false_allows == 0
    assert 0 <= f.unused_pct <= 2.0


def test_two_cell_pack_replay(trace: dict[str, list[float]]) -> None:
    """The same cell as a 2S pack on pos-2s (thermistor fitted: the temperature column is used)."""
    out = replay_metrics.replay_trace(_trace_printer("pos-2s"), trace, 2.5)
    f = replay_metrics.figures(trace, out, 2.5)
    assert f.false_allows == 0 and f.soc_rms <= 3.0


# -- the CLI on messy input --------------------------------------------------------------------------

def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _run(tmp_path: Path, trace_path: Path, *extra: str) -> tuple[int, list[dict[str, str]]]:
    out = tmp_path / "out.csv"
    parser = argparse.ArgumentParser()
    cmd_replay.add_arguments(parser)
    args = parser.parse_args(["--board", "devkit-1s", "--trace", str(trace_path), "--out", str(out), *extra])
    rc = cmd_replay.run(args)
    rows = list(csv.DictReader(out.open())) if out.exists() else []
    return rc, rows


def _slice(trace: dict[str, list[float]], a: int, b: int) -> list[list[str]]:
    return [[str(trace[k][i]) for k in ("t_s", "i_a", "v_cell", "temp_c", "soc_usable", "printing")]
            for i in range(a, b)]


HEADER = ["t_s", "i_a", "v_cell", "temp_c", "soc_usable", "printing"]


def test_cli_gaps_garbage_and_extra_columns(tmp_path: Path, trace: dict[str, list[float]]) -> None:
    rows = _slice(trace, 0, 2000)
    rows[100] = ["oops", "", "n/a", "", "", ""]
    rows[101] = ["101", "0.3", "nan", "25", "1", "0"]
    rows[102] = ["102"]  # a truncated line
    del rows[500:1400]  # a 15-minute hole
    rows = [r + ["extra"] for r in rows]
    rc, out = _run(tmp_path, _write(tmp_path / "t.csv", HEADER + ["comment"], rows))
    assert rc == 0
    assert len(out) == len(rows)  # one output row per input row, nothing dropped
    assert out[100]["t_s"] == "oops" and out[100]["soc_pct"] == ""
    assert out[102]["soc_pct"] == ""
    good = [float(r["soc_pct"]) for r in out if r["soc_pct"]]
    assert all(0 <= s <= 100 for s in good)
    assert set(out[-1]) == set(cmd_replay.OUT_COLUMNS)


def test_cli_missing_optional_columns(tmp_path: Path, trace: dict[str, list[float]]) -> None:
    rows = [[r[0], r[2]] for r in _slice(trace, 0, 500)]
    rc, out = _run(tmp_path, _write(tmp_path / "t.csv", ["t_s", "v_cell"], rows), "--cutoff-v-cell", "3.1")
    assert rc == 0 and len(out) == 500 and out[-1]["state"] == "OK"


def test_cli_cells_override_scales_the_board(tmp_path: Path, trace: dict[str, list[float]]) -> None:
    rows = _slice(trace, 0, 600)
    rc, out = _run(tmp_path, _write(tmp_path / "t.csv", HEADER, rows), "--cells", "2")
    assert rc == 0 and {r["state"] for r in out} == {"OK"}  # not a saturated ADC: the divider scaled
    rc1, out1 = _run(tmp_path, _write(tmp_path / "t.csv", HEADER, rows))
    assert abs(float(out[-1]["soc_pct"]) - float(out1[-1]["soc_pct"])) < 1.0


def test_cli_backwards_time_and_duplicates(tmp_path: Path, trace: dict[str, list[float]]) -> None:
    rows = _slice(trace, 0, 300) + _slice(trace, 0, 300)  # two logs pasted together
    rc, out = _run(tmp_path, _write(tmp_path / "t.csv", HEADER, rows))
    assert rc == 0 and len(out) == 600
    # The second log starts afresh from its own voltage, not from where the first one ended.
    assert abs(float(out[10]["soc_pct"]) - float(out[310]["soc_pct"])) < 3.0


@pytest.mark.parametrize(
    "content, message",
    [("", "empty"), ("t_s,i_a\n1,2\n", "v_cell"), ("time,volts\n", "t_s and v_cell")],
)
def test_cli_unusable_trace_is_a_clear_error(tmp_path: Path, capsys: Any, content: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(content)
    rc, _ = _run(tmp_path, p)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_cli_bad_board_and_chemistry(tmp_path: Path, capsys: Any) -> None:
    p = _write(tmp_path / "t.csv", ["t_s", "v_cell"], [["0", "3.9"]])
    prof = _profile()
    prof["battery"]["chemistry"] = "NiCd"
    bad = tmp_path / "nicd.json"
    bad.write_text(json.dumps(prof))
    out = tmp_path / "o.csv"
    parser = argparse.ArgumentParser()
    cmd_replay.add_arguments(parser)
    rc = cmd_replay.run(parser.parse_args(["--board", str(bad), "--trace", str(p), "--out", str(out)]))
    assert rc == 2 and "battery.chemistry" in capsys.readouterr().err
    rc = cmd_replay.run(parser.parse_args(["--board", "no-such-board", "--trace", str(p), "--out", str(out)]))
    assert rc == 2 and "no-such-board" in capsys.readouterr().err
