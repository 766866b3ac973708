# Sale states: the one table the state machine (sales), the journal readers (saleio, compaction) and the
# host link's state names come from. docs/journal.md, "Adding a sale state", shows how to add one.
#
#   OPEN -> PAYMENT_PENDING -> PAID -> PRINTING -> PRINTED -> CLOSED
#   OPEN -> VOIDED;  PAYMENT_PENDING -> DECLINED;  PAYMENT_PENDING -> REVERSAL_PENDING -> REVERSAL_ACKED
#
# The numbers are the state byte on flash (STATE and CARRY records, checkpoint entries): a journal
# written by an older firmware must still mount, so a number is never reused or changed; a new state
# takes the next free one. The host's offline decoder (tools/posguard_tools/journal_format.py) keeps
# its own table on purpose, as an independent oracle; host_tests/test_states.py proves the two agree.
from micropython import const

OPEN = const(1)
PAYMENT_PENDING = const(2)
PAID = const(3)
PRINTING = const(4)
PRINTED = const(5)
CLOSED = const(6)
DECLINED = const(7)
VOIDED = const(8)
REVERSAL_PENDING = const(9)
REVERSAL_ACKED = const(10)

# Index = state byte (0 is no state): what every call returns and the host link reports.
NAMES = (
    None,
    "OPEN",
    "PAYMENT_PENDING",
    "PAID",
    "PRINTING",
    "PRINTED",
    "CLOSED",
    "DECLINED",
    "VOIDED",
    "REVERSAL_PENDING",
    "REVERSAL_ACKED",
)
# Nothing follows these: the sale leaves the live table, compaction may drop it after keep_last.
FINAL = (CLOSED, DECLINED, VOIDED, REVERSAL_ACKED)
# The steps a command may take (SaleBook refuses any other as illegal_transition). Every state but
# OPEN is entered from exactly one state: where a sale is now tells every state it went through.
TRANSITIONS = {
    OPEN: (PAYMENT_PENDING, VOIDED),
    PAYMENT_PENDING: (PAID, DECLINED, REVERSAL_PENDING),
    PAID: (PRINTING,),
    PRINTING: (PRINTED,),
    PRINTED: (CLOSED,),
    REVERSAL_PENDING: (REVERSAL_ACKED,),
}
# Steps only boot recovery takes: an OPEN sale a damaged page names may have asked for its payment,
# so it owes a reversal rather than a plain void (sales.SaleBook._recover_sales).
RECOVERY = {OPEN: (REVERSAL_PENDING,)}
# A state that also counts as another one reached: REVERSAL_PENDING is voided locally (a repeated void
# of it writes nothing), the reversal is what is still owed.
IMPLIES = {REVERSAL_PENDING: (VOIDED,)}


def _derive():
    """(VISITED, REMAINING) from TRANSITIONS and IMPLIES.

    VISITED[s]: bit mask of the states a sale in state s has been through (itself included), what
    makes a repeated command recognisable even after compaction dropped the older records.
    REMAINING[s]: records a sale in state s may still need (the longest way to a final state), the
    space admission budget. Raises ValueError if a state could be entered from two states, or if
    there are more states than the u16 visited field on flash has bits for (1..15)."""
    n = len(NAMES)
    if n > 16:
        raise ValueError("at most 15 sale states: the visited mask on flash is 16 bits")
    parent = [0] * n
    for frm in TRANSITIONS:
        for to in TRANSITIONS[frm]:
            if parent[to] or to == OPEN:
                raise ValueError("sale state %s is entered from two states (OPEN: from none)" % NAMES[to])
            parent[to] = frm
    visited = [0] * n
    remaining = [0] * n
    for st in range(1, n):
        m = 0
        s = st
        depth = 0
        while s and depth < n:  # bounded: a path visits each state at most once
            m |= 1 << s
            for also in IMPLIES.get(s, ()):
                m |= 1 << also
            if depth > remaining[s]:
                remaining[s] = depth  # st lies depth steps after s
            s = parent[s]
            depth += 1
        visited[st] = m
    return tuple(visited), tuple(remaining)


VISITED, REMAINING = _derive()
