"""Issue 14: one `posguard.states` module for the sale states, and the offline decoder as its oracle.

The firmware's table (firmware/posguard/states.py) and the host's decoder (journal_format.py, written
from docs/journal.md on its own) must agree on names, state bytes, final states and legal steps; the
visited masks derived from the transitions must be the ones older journals hold on flash; the sale book
must take exactly the steps the table allows; and decoding a journal the firmware wrote must give every
sale the state the firmware reads back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sim_flash
from journal_faults import boot, maintain
from test_journal_model import PATH

from posguard import records as R
from posguard import saleio, states
from posguard_tools import journal_format as jf

# The states each state counts as passed through, as journals already on flash hold them (checkpoint
# entries and CARRY records store the mask): the state machine model's table, which the derived masks
# must never move from.
ON_FLASH_VISITED = PATH

# The sale book's commands: which state each one asks for, from a sale in a given state.
Command = Callable[[Any, int], str]
COMMANDS: dict[str, tuple[Callable[[int], int], Command]] = {
    "request_payment": (lambda cur: states.PAYMENT_PENDING, lambda b, sid: b.request_payment(sid)),
    "payment_approved": (lambda cur: states.PAID, lambda b, sid: b.payment_approved(sid, f"A{sid}")),
    "payment_declined": (lambda cur: states.DECLINED, lambda b, sid: b.payment_declined(sid)),
    "start_print": (lambda cur: states.PRINTING, lambda b, sid: b.start_print(sid)),
    "print_done": (lambda cur: states.PRINTED, lambda b, sid: b.print_done(sid)),
    "close": (lambda cur: states.CLOSED, lambda b, sid: b.close(sid)),
    "void": (
        lambda cur: states.REVERSAL_PENDING if cur == states.PAYMENT_PENDING else states.VOIDED,
        lambda b, sid: b.void(sid, "cancel"),
    ),
    "reversal_acked": (lambda cur: states.REVERSAL_ACKED, lambda b, sid: b.reversal_acked(sid)),
}


def _names(mask: int) -> set[str]:
    return {n for i, n in enumerate(states.NAMES) if n and mask & (1 << i)}


def _path(target: int) -> list[int]:
    """The states from OPEN to target along TRANSITIONS (each state is entered from one state only)."""
    into = {to: frm for frm, tos in states.TRANSITIONS.items() for to in tos}
    path = [target]
    while path[-1] != states.OPEN:
        path.append(into[path[-1]])
    return path[::-1]


def _drive(book: Any, sid: int, target: int) -> None:
    """Open sale sid and take it to `target` through the public commands (maintenance first when the
    journal asks for it)."""
    body = {"items": [["x", 1, sid]], "total": sid}
    try:
        book.open_sale(sid, body)
    except R.JournalError as e:
        assert e.code == "needs_maintenance", e.code
        maintain(book)
        book.open_sale(sid, body)
    for frm, to in zip(_path(target), _path(target)[1:], strict=False):
        name = next(c for c, (want, _) in COMMANDS.items() if want(frm) == to)
        assert COMMANDS[name][1](book, sid) == states.NAMES[to]


def test_decoder_table_agrees_with_the_firmware() -> None:
    fw_names = {n: i for i, n in enumerate(states.NAMES) if n}
    assert jf.STATE_BYTE == fw_names
    assert all(getattr(states, n) == i for n, i in fw_names.items())  # the public constants
    assert jf.FINAL == {states.NAMES[s] for s in states.FINAL}
    fw_steps: dict[str, set[str]] = {}
    for table in (states.TRANSITIONS, states.RECOVERY):
        for frm, tos in table.items():
            fw_steps.setdefault(states.NAMES[frm], set()).update(states.NAMES[t] for t in tos)
    assert {k: v for k, v in jf.NEXT.items() if k} == fw_steps
    assert jf.NEXT[""] == {"OPEN"}
    assert not set(jf.FINAL) & set(fw_steps)  # nothing follows a final state


def test_visited_masks_are_derived_and_match_older_journals() -> None:
    assert states.VISITED[0] == 0
    assert {states.NAMES[s]: _names(m) for s, m in enumerate(states.VISITED) if s} == ON_FLASH_VISITED
    assert saleio.VISITED is states.VISITED  # one table: the reader uses the derived one
    # Admission budget: records a sale may still need, the longest way to a final state.
    assert [states.REMAINING[s] for s in range(1, len(states.NAMES))] == [5, 4, 3, 2, 1, 0, 0, 0, 1, 0]


def test_a_state_entered_from_two_states_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    two_ways = dict(states.TRANSITIONS)
    two_ways[states.PAID] = (states.PRINTING, states.DECLINED)  # DECLINED is entered from PAYMENT_PENDING
    monkeypatch.setattr(states, "TRANSITIONS", two_ways)
    with pytest.raises(ValueError, match="DECLINED"):
        states._derive()


def test_adding_a_state_as_docs_journal_md_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    # docs/journal.md "Adding a sale state": EXPIRED = 11, a final step from OPEN.
    expired = len(states.NAMES)
    steps = dict(states.TRANSITIONS)
    steps[states.OPEN] = steps[states.OPEN] + (expired,)
    monkeypatch.setattr(states, "NAMES", states.NAMES + ("EXPIRED",))
    monkeypatch.setattr(states, "TRANSITIONS", steps)
    visited, remaining = states._derive()
    assert visited[:expired] == states.VISITED  # the masks older journals hold do not move
    assert _names(visited[expired]) == {"OPEN", "EXPIRED"}
    assert remaining[expired] == 0 and remaining[:expired] == states.REMAINING


@pytest.mark.parametrize("start", range(1, len(states.NAMES)), ids=lambda s: states.NAMES[s])
def test_the_sale_book_takes_exactly_the_steps_the_table_allows(world: Any, start: int) -> None:
    book, _ = boot(sim_flash.NorFlash(8 * 4096), keep_last=50)
    for sid, (name, (want, call)) in enumerate(COMMANDS.items(), 1):
        _drive(book, sid, start)
        target = want(start)
        seq = book.j.seq
        if states.VISITED[start] & (1 << target):
            assert call(book, sid) == states.NAMES[start], name  # a repeated command
            assert book.j.seq == seq, name
        elif target in states.TRANSITIONS.get(start, ()):
            assert call(book, sid) == states.NAMES[target], name
            assert book.j.seq == seq + 1, name  # one record
        else:
            with pytest.raises(R.JournalError) as e:
                call(book, sid)
            assert e.value.code == "illegal_transition", name
            assert book.j.seq == seq and book.state(sid) == states.NAMES[start], name


def _agree(flash: Any, book: Any) -> dict[int, str]:
    """Decode the flash image offline; every sale it knows has the state the firmware reads back."""
    data = flash.image()
    img = jf.parse(data)
    assert jf.verify(img) == []
    decoded = {sid: s["state"] for sid, s in jf.sales(img, data).items()}
    assert decoded == {sid: book.state(sid) for sid in decoded}
    return decoded


def test_decoding_a_firmware_journal_gives_the_firmware_states(world: Any) -> None:
    flash = sim_flash.NorFlash(8 * 4096)
    book, _ = boot(flash, keep_last=4)
    every = range(1, len(states.NAMES))
    for st in every:
        _drive(book, st, st)  # sale n is left in state n
    assert _agree(flash, book) == {st: states.NAMES[st] for st in every}
    # A reboot: recovery voids OPEN, owes a reversal for PAYMENT_PENDING, closes PRINTED.
    book, rep = boot(flash, keep_last=4)
    assert rep["voided"] == [states.OPEN, states.PAYMENT_PENDING] and rep["closed"] == [states.PRINTED]
    after = _agree(flash, book)
    assert after[states.OPEN] == "VOIDED" and after[states.PAYMENT_PENDING] == "REVERSAL_PENDING"
    # Enough finished sales that compaction carries the unfinished ones and drops old finished ones.
    for sid in range(100, 140):
        _drive(book, sid, states.CLOSED)
    maintain(book)
    assert book.j.erase_counts != [1] * 8  # compaction reclaimed sectors
    assert any(r.type == "CARRY" for r in jf.parse(flash.image()).records)
    after = _agree(flash, book)
    unfinished = sorted(book.live)
    assert unfinished == [2, 3, 4, 9] and all(sid in after for sid in unfinished)  # reversals owed, receipts owed
