"""posguard_client: drive a posguard terminal from a cashier app (docs/integration.md).

from posguard_client import Terminal, errors
with Terminal("/dev/ttyUSB0") as pos:
    pos.open_sale(1042, [("Latte", 1800, 2)], "2026-11-24 12:05")
    pos.pay(1042, "card")
    pos.approve(1042, "A1B2C3", last4="4242")

`protocol` (the host link without I/O) and `codes` are MicroPython subset: the simulated cashier of
`make sim` drives the same core inside the unix port, where this package offers only those two modules.
"""

import sys

if sys.implementation.name != "micropython":
    from posguard_client import errors
    from posguard_client.errors import LinkTimeout, ProtocolError, Refused, TerminalError
    from posguard_client.terminal import ExportPage, Item, Link, Sale, Terminal, open_digest

__all__ = [
    "ExportPage",
    "Item",
    "Link",
    "LinkTimeout",
    "ProtocolError",
    "Refused",
    "Sale",
    "Terminal",
    "TerminalError",
    "errors",
    "open_digest",
]
