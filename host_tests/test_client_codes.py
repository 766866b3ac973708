"""The client's error table is the firmware's: every code the firmware can send (read from its source)
has exactly one exception class, every class a code the firmware sends, the documented table lists the
same codes, and errors.py is what codes.render() generates from the table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from posguard_client import codes, errors
from posguard_tools import paths

_CODE = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")


def _str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CODE.match(node.value):
        return node.value
    return None


def firmware_codes(root: Path) -> set[str]:
    """Codes in firmware/posguard/*.py: HostError("CODE", ...), the code argument of validate's
    _printable(..., "CODE"), and ("CODE", "what to do") pairs (commands._JOURNAL, printer_status.refusal)."""
    found: set[str] = set()
    for f in sorted((root / "posguard").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if name == "HostError" and node.args and (c := _str(node.args[0])):
                    found.add(c)
                if name == "_printable" and len(node.args) >= 4 and (c := _str(node.args[3])):
                    found.add(c)
            elif isinstance(node, ast.Tuple) and len(node.elts) == 2 and (c := _str(node.elts[0])):
                todo = node.elts[1]
                if isinstance(todo, ast.Constant) and isinstance(todo.value, str) and " " in todo.value:
                    found.add(c)
    return found


def documented_codes() -> set[str]:
    text = (paths.ROOT / "docs" / "terminal.md").read_text()
    section = text.split("### Error codes", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", section, re.M))


def test_table_matches_firmware_and_docs() -> None:
    table = {code for code, *_ in codes.TABLE}
    fw = firmware_codes(paths.FIRMWARE)
    assert len(fw) >= 25, fw  # the extraction itself still works
    assert table == fw, f"missing in client: {sorted(fw - table)}, not sent by firmware: {sorted(table - fw)}"
    assert documented_codes() == fw


def test_extraction_sees_a_new_code(tmp_path: Path) -> None:
    # A firmware change that adds a code must fail the check above.
    fw = tmp_path / "posguard"
    fw.mkdir()
    (fw / "x.py").write_text('def f():\n    raise HostError("NEW_CODE", "msg", "do")\n')
    assert firmware_codes(tmp_path) == {"NEW_CODE"}


def test_one_class_per_code_generated_from_the_table() -> None:
    assert Path(errors.__file__).read_text() == codes.render(), "run: python -m posguard_client.codes --write"
    assert len(errors.BY_CODE) == len(codes.TABLE)
    for code, name, kind, _todo in codes.TABLE:
        cls = getattr(errors, name)
        assert errors.BY_CODE[code] is cls and cls.code == code and cls.kind == kind
        e = errors.from_reply({"ok": False, "err": code, "msg": "m", "do": "d", "state": "OPEN"})
        assert type(e) is cls and e.state == "OPEN" and isinstance(e, errors.TerminalError)
    unknown = errors.from_reply({"ok": False, "err": "FUTURE_CODE", "msg": "m"})
    assert type(unknown) is errors.Refused and unknown.code == "FUTURE_CODE"
