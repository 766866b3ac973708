"""The one table of the host link's error codes (docs/terminal.md "Error codes").

`errors.py` is generated from it (`python -m posguard_client.codes --write`);
host_tests/test_client_codes.py checks the table against the codes the firmware can send and against the
generated file, so a new firmware code cannot slip past the client.

Kinds, i.e. the base class of each code's exception, say what a cashier app does with it:
- ``invalid``: the request itself is wrong; sending it again gets the same answer.
- ``conflict``: the sale's state or id says no (``state`` tells where the sale is).
- ``unavailable``: the terminal cannot take new work now (power, paper, journal); nothing changed.
- ``damaged``: the line arrived damaged; the client sends it again by itself.
- ``later``: ask again after ``retry_after_s`` (or a moment).
- ``bug``: the firmware failed (logged on the terminal); ask the sale's state, then retry.

MicroPython subset like protocol.py, which imports it inside the unix port (the simulated cashier): no
``from __future__``, no starred list displays.
"""

import json

KINDS: dict[str, tuple[str, str]] = {
    "invalid": ("RequestInvalid", "The request is wrong: fix it (sending it again gets the same answer)."),
    "conflict": ("SaleConflict", "The sale's id or state refuses this operation: ask the sale's state."),
    "unavailable": ("TerminalUnavailable", "The terminal cannot take new work now; nothing changed."),
    "damaged": ("LineDamaged", "The line arrived damaged; the client resends it by itself."),
    "later": ("TryLater", "Ask again later (retry_after_s when the terminal says)."),
    "bug": ("TerminalBug", "A firmware bug, logged on the terminal: ask the sale's state, then retry."),
}

# (code, exception class, kind, what the app should do) in the order of docs/terminal.md.
TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("LINE_TOO_LONG", "LineTooLong", "invalid", "send shorter requests"),
    ("BAD_CRC", "BadCrc", "damaged", "send the same line again, with its CRC"),
    ("BAD_JSON", "BadJson", "invalid", "one flat JSON object per line, shortest-form UTF-8"),
    ("BAD_REQUEST", "BadRequest", "invalid", "send {'op': ...} with the documented fields"),
    ("UNKNOWN_OP", "UnknownOp", "invalid", "use one of the documented operations"),
    ("BAD_FIELD", "BadField", "invalid", "fix the field the message names"),
    ("BAD_ID", "BadId", "invalid", "sale ids are integers 1..2^31-1"),
    ("BAD_AMOUNT", "BadAmount", "invalid", "positive integer minor units under the cap; split the sale"),
    ("TOO_MANY_ITEMS", "TooManyItems", "invalid", "1..items_max items: split the sale"),
    ("BAD_NAME", "BadName", "invalid", "printable item names up to name_max characters"),
    ("CARD_NUMBER", "CardNumber", "invalid", "send only the last four digits in last4; never the card number"),
    ("DUPLICATE_ID", "DuplicateId", "conflict", "a new sale needs a new id; a retry repeats the request unchanged"),
    ("RECEIPT_LAYOUT", "ReceiptLayout", "invalid", "shorten the item names or split the sale"),
    ("UNKNOWN_SALE", "UnknownSale", "conflict", "open the sale first, or check the id"),
    ("ILLEGAL_TRANSITION", "IllegalTransition", "conflict", "ask the sale's state and continue from there"),
    ("BUSY", "Busy", "later", "ask again after retry_after_s seconds"),
    ("BATTERY_CRITICAL", "BatteryCritical", "unavailable", "connect the charger; paid receipts still print"),
    ("BATTERY_FAULT", "BatteryFault", "unavailable", "service the terminal"),
    ("PAPER_OUT", "PaperOut", "unavailable", "load a new paper roll"),
    ("PRINTER_FAULT", "PrinterFault", "unavailable", "close the cover / check the printer"),
    ("JOURNAL_MAINTENANCE", "JournalMaintenance", "unavailable", "put the terminal on the charger for a minute"),
    ("JOURNAL_FULL", "JournalFull", "unavailable", "export, then service"),
    ("TOO_MANY_OPEN", "TooManyOpen", "unavailable", "finish or void open sales first"),
    ("TOO_LARGE", "TooLarge", "invalid", "split the sale or shorten names"),
    ("JOURNAL_FAULT", "JournalFault", "unavailable", "service: the journal partition is not mounted"),
    ("JOURNAL_ERROR", "JournalError", "later", "retry; call service if it persists"),
    ("INTERNAL", "Internal", "bug", "ask the sale's state, then retry"),
)


def entry(code: str) -> "tuple[str, str, str, str] | None":
    """(code, exception class name, kind, what to do) of a code, None if the table lacks it."""
    for row in TABLE:
        if row[0] == code:
            return row
    return None


def render() -> str:
    """The text of errors.py."""
    out = [
        '"""Typed errors of the host link: one exception class per error code. GENERATED from codes.TABLE by',
        "`python -m posguard_client.codes --write`: edit the table, not this file.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any",
        "",
        "",
        "class TerminalError(Exception):",
        '    """Anything the client raises about the terminal or the link."""',
        "",
        "",
        "class LinkTimeout(TerminalError):",
        '    """No usable reply after every attempt (the terminal is off, the cable is out, or it is rebooting).',
        "    The request may or may not have been executed: repeat it unchanged (every operation is",
        '    idempotent), or ask the sale\'s state."""',
        "",
        "",
        "class ProtocolError(TerminalError):",
        '    """A reply the client cannot understand (not this protocol, or a wrong sale id)."""',
        "",
        "",
        "class Refused(TerminalError):",
        '    """The terminal refused the request with an error code; nothing changed on the terminal."""',
        "",
        '    code = ""',
        '    kind = ""',
        '    todo = ""',
        "",
        "    def __init__(self, reply: dict[str, Any]) -> None:",
        "        self.reply = reply",
        '        self.code = self.code or str(reply.get("err", ""))',
        '        self.msg = str(reply.get("msg", ""))',
        '        self.do = str(reply.get("do", self.todo))',
        '        state = reply.get("state")',
        "        self.state: str | None = state if isinstance(state, str) else None",
        '        ra = reply.get("retry_after_s")',
        "        self.retry_after_s: float | None = float(ra) if isinstance(ra, (int, float)) else None",
        '        super().__init__(f"{self.code}: {self.msg}" + (f" (do: {self.do})" if self.do else ""))',
        "",
    ]
    for kind, (name, doc) in KINDS.items():
        out += ["", f"class {name}(Refused):", f'    """{doc}"""', "", f'    kind = "{kind}"', ""]
    for code, name, kind, todo in TABLE:
        base = KINDS[kind][0]
        out += ["", f"class {name}({base}):", f'    code = "{code}"', f"    todo = {json.dumps(todo)}", ""]
    out += ["", "BY_CODE: dict[str, type[Refused]] = {"]
    out += [f"    {name}.code: {name}," for _c, name, _k, _t in TABLE]
    out += [
        "}",
        "",
        "",
        "def from_reply(reply: dict[str, Any]) -> Refused:",
        '    """The exception for an error reply (an unknown code becomes a plain Refused with that code)."""',
        '    cls = BY_CODE.get(str(reply.get("err")))',
        "    if cls is not None:",
        "        return cls(reply)",
        "    return Refused(reply)",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if sys.argv[1:] == ["--write"]:
        Path(__file__).with_name("errors.py").write_text(render())
    else:
        print(render(), end="")
