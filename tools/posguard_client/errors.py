"""Typed errors of the host link: one exception class per error code. GENERATED from codes.TABLE by
`python -m posguard_client.codes --write`: edit the table, not this file.
"""

from __future__ import annotations

from typing import Any


class TerminalError(Exception):
    """Anything the client raises about the terminal or the link."""


class LinkTimeout(TerminalError):
    """No usable reply after every attempt (the terminal is off, the cable is out, or it is rebooting).
    The request may or may not have been executed: repeat it unchanged (every operation is
    idempotent), or ask the sale's state."""


class ProtocolError(TerminalError):
    """A reply the client cannot understand (not this protocol, or a wrong sale id)."""


class Refused(TerminalError):
    """The terminal refused the request with an error code; nothing changed on the terminal."""

    code = ""
    kind = ""
    todo = ""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.code = self.code or str(reply.get("err", ""))
        self.msg = str(reply.get("msg", ""))
        self.do = str(reply.get("do", self.todo))
        state = reply.get("state")
        self.state: str | None = state if isinstance(state, str) else None
        ra = reply.get("retry_after_s")
        self.retry_after_s: float | None = float(ra) if isinstance(ra, (int, float)) else None
        super().__init__(f"{self.code}: {self.msg}" + (f" (do: {self.do})" if self.do else ""))


class RequestInvalid(Refused):
    """The request is wrong: fix it (sending it again gets the same answer)."""

    kind = "invalid"


class SaleConflict(Refused):
    """The sale's id or state refuses this operation: ask the sale's state."""

    kind = "conflict"


class TerminalUnavailable(Refused):
    """The terminal cannot take new work now; nothing changed."""

    kind = "unavailable"


class LineDamaged(Refused):
    """The line arrived damaged; the client resends it by itself."""

    kind = "damaged"


class TryLater(Refused):
    """Ask again later (retry_after_s when the terminal says)."""

    kind = "later"


class TerminalBug(Refused):
    """A firmware bug, logged on the terminal: ask the sale's state, then retry."""

    kind = "bug"


class LineTooLong(RequestInvalid):
    code = "LINE_TOO_LONG"
    todo = "send shorter requests"


class BadCrc(LineDamaged):
    code = "BAD_CRC"
    todo = "send the same line again, with its CRC"


class BadJson(RequestInvalid):
    code = "BAD_JSON"
    todo = "one flat JSON object per line, shortest-form UTF-8"


class BadRequest(RequestInvalid):
    code = "BAD_REQUEST"
    todo = "send {'op': ...} with the documented fields"


class UnknownOp(RequestInvalid):
    code = "UNKNOWN_OP"
    todo = "use one of the documented operations"


class BadField(RequestInvalid):
    code = "BAD_FIELD"
    todo = "fix the field the message names"


class BadId(RequestInvalid):
    code = "BAD_ID"
    todo = "sale ids are integers 1..2^31-1"


class BadAmount(RequestInvalid):
    code = "BAD_AMOUNT"
    todo = "positive integer minor units under the cap; split the sale"


class TooManyItems(RequestInvalid):
    code = "TOO_MANY_ITEMS"
    todo = "1..items_max items: split the sale"


class BadName(RequestInvalid):
    code = "BAD_NAME"
    todo = "printable item names up to name_max characters"


class CardNumber(RequestInvalid):
    code = "CARD_NUMBER"
    todo = "send only the last four digits in last4; never the card number"


class DuplicateId(SaleConflict):
    code = "DUPLICATE_ID"
    todo = "a new sale needs a new id; a retry repeats the request unchanged"


class ReceiptLayout(RequestInvalid):
    code = "RECEIPT_LAYOUT"
    todo = "shorten the item names or split the sale"


class UnknownSale(SaleConflict):
    code = "UNKNOWN_SALE"
    todo = "open the sale first, or check the id"


class IllegalTransition(SaleConflict):
    code = "ILLEGAL_TRANSITION"
    todo = "ask the sale's state and continue from there"


class Busy(TryLater):
    code = "BUSY"
    todo = "ask again after retry_after_s seconds"


class BatteryCritical(TerminalUnavailable):
    code = "BATTERY_CRITICAL"
    todo = "connect the charger; paid receipts still print"


class BatteryFault(TerminalUnavailable):
    code = "BATTERY_FAULT"
    todo = "service the terminal"


class PaperOut(TerminalUnavailable):
    code = "PAPER_OUT"
    todo = "load a new paper roll"


class PrinterFault(TerminalUnavailable):
    code = "PRINTER_FAULT"
    todo = "close the cover / check the printer"


class JournalMaintenance(TerminalUnavailable):
    code = "JOURNAL_MAINTENANCE"
    todo = "put the terminal on the charger for a minute"


class JournalFull(TerminalUnavailable):
    code = "JOURNAL_FULL"
    todo = "export, then service"


class TooManyOpen(TerminalUnavailable):
    code = "TOO_MANY_OPEN"
    todo = "finish or void open sales first"


class TooLarge(RequestInvalid):
    code = "TOO_LARGE"
    todo = "split the sale or shorten names"


class JournalFault(TerminalUnavailable):
    code = "JOURNAL_FAULT"
    todo = "service: the journal partition is not mounted"


class JournalError(TryLater):
    code = "JOURNAL_ERROR"
    todo = "retry; call service if it persists"


class Internal(TerminalBug):
    code = "INTERNAL"
    todo = "ask the sale's state, then retry"


BY_CODE: dict[str, type[Refused]] = {
    LineTooLong.code: LineTooLong,
    BadCrc.code: BadCrc,
    BadJson.code: BadJson,
    BadRequest.code: BadRequest,
    UnknownOp.code: UnknownOp,
    BadField.code: BadField,
    BadId.code: BadId,
    BadAmount.code: BadAmount,
    TooManyItems.code: TooManyItems,
    BadName.code: BadName,
    CardNumber.code: CardNumber,
    DuplicateId.code: DuplicateId,
    ReceiptLayout.code: ReceiptLayout,
    UnknownSale.code: UnknownSale,
    IllegalTransition.code: IllegalTransition,
    Busy.code: Busy,
    BatteryCritical.code: BatteryCritical,
    BatteryFault.code: BatteryFault,
    PaperOut.code: PaperOut,
    PrinterFault.code: PrinterFault,
    JournalMaintenance.code: JournalMaintenance,
    JournalFull.code: JournalFull,
    TooManyOpen.code: TooManyOpen,
    TooLarge.code: TooLarge,
    JournalFault.code: JournalFault,
    JournalError.code: JournalError,
    Internal.code: Internal,
}


def from_reply(reply: dict[str, Any]) -> Refused:
    """The exception for an error reply (an unknown code becomes a plain Refused with that code)."""
    cls = BY_CODE.get(str(reply.get("err")))
    if cls is not None:
        return cls(reply)
    return Refused(reply)
