"""make test's driver: its options and how it reads pytest's JUnit report."""

from __future__ import annotations

from pathlib import Path

import pytest

from posguard_tools import check, tables

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="host_tests.test_a" name="test_ok"/>
<testcase classname="host_tests.test_a" name="test_bad"><failure message="boom"/></testcase>
<testcase classname="host_tests.test_a" name="test_skip"><skipped message="no"/></testcase>
<testcase classname="mpy_test_x.py" name="test_mpy"><properties><property name="runtime" value="micropython"/>
</properties></testcase>
</testsuite></testsuites>
"""


def test_junit_counts_split_by_runtime(tmp_path: Path) -> None:
    p = tmp_path / "j.xml"
    p.write_text(JUNIT)
    c = check.junit_counts(p)
    assert c["cpython"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert c["micropython"] == {"passed": 1, "failed": 0, "skipped": 0}


def test_options_parse_and_reject_unknown_stages() -> None:
    a = check.build_parser().parse_args(["--fast", "--skip", "gate", "--", "host_tests/test_x.py", "-k", "y"])
    assert a.fast and a.skip == ["gate"] and a.pytest_args == ["host_tests/test_x.py", "-k", "y"]
    with pytest.raises(SystemExit):
        check.build_parser().parse_args(["--skip", "lint"])


def test_tables_render_terminal_and_markdown() -> None:
    rows = [["commit", "3.0 ms", "< 5 ms"], ["short"]]
    md = tables.render("Journal", ["figure", "measured", "target"], rows, markdown=True)
    lines = md.splitlines()
    assert lines[0] == "**Journal**"
    assert lines[2].startswith("| figure") and set(lines[3]) <= set("|- :")
    assert "| short" in md and md.count("\n|") == 4
    term = tables.render("Journal", ["figure", "measured", "target"], rows)
    assert "Journal" in term and "3.0 ms" in term


def test_every_board_option_has_one_default_shown_in_help() -> None:
    from posguard_tools import cli, paths

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    seen = []
    for name, p in sub.choices.items():
        for a in p._actions:
            if "--board" in a.option_strings and a.default is not None:
                seen.append(name)
                assert a.default == paths.DEFAULT_BOARD, name
                assert paths.DEFAULT_BOARD in p.format_help(), name
    assert {"sim", "receipt", "replay", "deploy", "provision"} <= set(seen)


def test_markdown_rows_never_wrap() -> None:
    md = tables.render("T", ["figure", "measured"], [["x" * 150, "y" * 150]], markdown=True)
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(rows) == 3 and "x" * 150 in rows[2] and "y" * 150 in rows[2]
