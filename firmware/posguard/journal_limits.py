# Sizes of the sale journal that the board profile is checked against (plain ints, no `const`: the
# host tools validate profiles on CPython without the micropython module). posguard.sales and
# posguard.journal use the same numbers; docs/journal.md explains them.
REC_PAGES = 15  # record pages per 4 KiB sector (page 0 is the erase header)
PAYLOAD = 232  # payload bytes of one record page
MAX_DATA_PAGES = 9  # DATA pages of one sale body
MAX_BODY = 2088  # MAX_DATA_PAGES x PAYLOAD: at least the host link's longest request line
SLACK_PAGES = 4  # pages power cuts may spoil (one per boot, one per cut) that new sales leave free
REMAINING_OPEN = 5  # records an open sale may still need (the longest path to a final state)


def keep_last_max(sectors, max_body):
    """The most finished sales a journal of `sectors` sectors keeps readable (keep_last) when every
    body may be max_body bytes, leaving the maintenance spare, the active and the reclaimed sector, the
    slack and two of the largest sales in flight: then a new sale never waits for space."""
    per_sale = 1 + (max_body + PAYLOAD - 1) // PAYLOAD + REMAINING_OPEN
    room = (sectors - 3) * REC_PAGES - SLACK_PAGES - 2 * (MAX_DATA_PAGES + 1 + REMAINING_OPEN)
    return max(0, room // per_sale)
