# Run by host_tests/test_frozen_layout.py on the unix port, from a board filesystem laid out the way
# `posguard deploy --frozen` leaves it (cwd = that filesystem: board.json, boot.py, main.py, data/...),
# with the posguard package on a *relative* sys.path entry that stands where '.frozen' stands on a
# board (sys.path ['', '.frozen', '/lib']): a frozen module's __file__ is relative (py/builtinimport.c:158)
# and there is no data file inside the package directory. A cashier app sells one item priced in CNY;
# the firmware's working data gets exactly the chip's heap (sim_heap, code counted as frozen).
# Prints "PRINTED ..." (the yen sign reached the paper), "HELD ..." or "FAILED <why>".
import sys

import sim_clock
import sim_day
import sim_heap

sim_clock.install()


def main():
    import json

    with open("board.json") as f:
        prof = json.load(f)
    day = sim_day.Day(prof, ".", ".", hours=1.0, seed=3)
    texts = []
    orig = day.printer._record

    def record(rec):
        orig(rec)
        if rec[0] == "text":
            for seg in rec[2]:
                texts.append(bytes(seg[0]))

    day.printer._record = record

    # Frozen code lives in flash: import it, then leave exactly the chip's heap for the working data.
    day.board.on_boot.append(lambda board: sim_heap.repin(chip=prof["mcu"]))
    replies = []
    day.peer.on_reply = replies.append
    items = [{"name": "\u62ff\u94c1", "qty": 1, "price": 1800}]
    for t_s, req in ((5, {"op": "open", "id": 7, "items": items, "time": "2026-11-24 09:00", "seq": 1}),
                     (7, {"op": "pay", "id": 7, "method": "cash", "seq": 2}),
                     (9, {"op": "approve", "id": 7, "auth": "A1", "seq": 3}),
                     (30, {"op": "open", "id": 8, "items": [{"name": "Tea", "price": 500}], "seq": 4}),
                     (50, {"op": "status", "seq": 5})):
        day.clock.call_at_us(t_s * 1000000, lambda r=req: day.peer.send(r))
    out = day.board.run(60000)
    mod = sys.modules.get("posguard.gb")
    where = getattr(mod, "__file__", "?") if mod is not None else "not imported"
    blob = b"".join(texts)
    status = [r for r in replies if r.get("seq") == 5]
    held = status[0].get("held_receipts") if status else None
    later = [r for r in replies if r.get("seq") == 4]
    if b"\xa3\xa4" in blob:  # the full-width yen, GB18030 A3 A4
        print("PRINTED gb.__file__=%s resets=%d" % (where, len(out["resets"])))
    elif held:
        # No table: the receipt is held and reported, the board does not reset, the next sale opens.
        print("HELD %r resets=%d next_sale_ok=%s" % (held, len(out["resets"]), later and later[0].get("ok")))
    else:
        print("FAILED no CNY sign on paper; replies=%r resets=%r gb.__file__=%s" % (replies, out["resets"], where))


main()
