"""Host-link operations against the real journal (on simulated NOR flash), a stand-in power monitor
and the real print queue: gates, idempotency, and a hypothesis fuzz that checks the journal's
invariants after every request, valid or not."""

from __future__ import annotations

import json
from typing import Any

import esp32
import sim_flash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posguard import commands, printjobs, validate
from posguard import sales as S
from posguard.journal import Journal

LIM = validate.Limits({"line_max": 2048, "items_max": 20, "name_max": 32, "amount_max": 10_000_000})
PROFILE = {"printer": {"columns": 32}, "host": {"currency": "CNY"}, "name": "test"}


class FakeMonitor:
    def __init__(self, state: str = "OK", soc: float = 80.0, printable: bool = True) -> None:
        self.state_name = state
        self.soc_pct = soc
        self.soh_pct = 100.0
        self.replace_battery = False
        self.charger_fault = False
        self.fault = None
        self.printable = printable

    def can_print(self, lines: int = 30, heat: Any = None) -> tuple[bool, str]:
        return (self.printable, "ok" if self.printable else "predicted 2.9 V < 3.0 V")


def make(world: Any, mon: FakeMonitor | None = None) -> tuple[commands.Commands, Any, printjobs.PrintJobs]:
    if "journal" not in world.board.partitions:
        world.board.partitions["journal"] = sim_flash.NorFlash(16 * 4096, label="journal")
    (part,) = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")
    book = S.SaleBook(Journal(part), keep_last=5)
    book.recover()
    jobs = printjobs.PrintJobs(book, None, mon, PROFILE)
    return commands.Commands(book, jobs, mon if mon is not None else FakeMonitor()), book, jobs


def send(cmds: commands.Commands, obj: Any) -> dict[str, Any]:
    line = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
    try:
        req = validate.validate_line(line, LIM)
    except validate.HostError as e:
        return commands.error_reply(getattr(e, "seq", None), e)
    return cmds.handle(req)


ITEMS = [{"name": "乌龙茶 Oolong", "price": 900}]


def test_battery_critical_refuses_open_and_pay_but_never_approve(world: Any) -> None:
    mon = FakeMonitor()
    cmds, book, jobs = make(world, mon)
    assert send(cmds, {"op": "open", "id": 1, "items": ITEMS})["ok"]
    assert send(cmds, {"op": "pay", "id": 1, "method": "card"})["ok"]
    mon.state_name, mon.soc_pct = "CRITICAL", 0.6
    r = send(cmds, {"op": "open", "id": 2, "items": ITEMS})
    assert r["err"] == "BATTERY_CRITICAL" and "charger" in r["do"]
    r = send(cmds, {"op": "approve", "id": 1, "auth": "OK1", "last4": "1234"})
    assert r["ok"] and r["state"] == "PAID"  # the customer has paid: the journal must know it
    assert jobs.queued(1)
    assert send(cmds, {"op": "status"})["accepting"] == "BATTERY_CRITICAL"
    mon.state_name = "OK"
    mon.printable = False
    r = send(cmds, {"op": "open", "id": 3, "items": ITEMS})
    assert r["err"] == "BATTERY_CRITICAL" and "2.9 V" in r["msg"]


def test_paper_out_refuses_new_sales(world: Any) -> None:
    cmds, book, jobs = make(world)
    jobs.on_printer_event("paused", "paper out at line 7")
    r = send(cmds, {"op": "open", "id": 5, "items": ITEMS})
    assert r["err"] == "PAPER_OUT" and "roll" in r["do"]
    jobs.on_printer_event("resumed", "paper out cleared at line 7")
    assert send(cmds, {"op": "open", "id": 5, "items": ITEMS})["ok"]


def test_repeated_commands_are_idempotent(world: Any) -> None:
    cmds, book, jobs = make(world)
    for _ in range(2):
        assert send(cmds, {"op": "open", "id": 9, "items": ITEMS})["state"] == "OPEN"
    for _ in range(2):
        assert send(cmds, {"op": "pay", "id": 9, "method": "qr"})["state"] == "PAYMENT_PENDING"
    for _ in range(2):
        assert send(cmds, {"op": "approve", "id": 9, "auth": "Z9"})["state"] == "PAID"
    assert jobs.pending() == 1
    assert book.sale(9)["approval"] in (b"qr::Z9", "qr::Z9")


def test_export_pages_closed_sales(world: Any) -> None:
    cmds, book, jobs = make(world)
    for sid in range(1, 5):
        send(cmds, {"op": "open", "id": sid, "items": ITEMS})
        send(cmds, {"op": "pay", "id": sid, "method": "card"})
        send(cmds, {"op": "approve", "id": sid, "auth": f"A{sid}", "last4": "0004"})
        book.start_print(sid)
        book.print_done(sid)
        book.close(sid)
    got: list[int] = []
    after = 0
    for _ in range(10):
        r = send(cmds, {"op": "export", "after": after, "limit": 3})
        assert r["ok"]
        got += [rec["id"] for rec in r["records"]]
        if r["next"] is None:
            break
        after = r["next"]
    assert got == [1, 2, 3, 4]
    assert r["records"][-1]["last4"] == "0004" and r["records"][-1]["body"]["i"][0][0] == "乌龙茶 Oolong"


# -- fuzz: any request sequence keeps the journal's invariants ------------------------------------
sale_ids = st.integers(1, 6)
op_objs = st.one_of(
    st.fixed_dictionaries({"op": st.just("open"), "id": sale_ids,
                           "items": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["Tea", "拿铁", "\x1bX"]),
                                                                    "price": st.integers(-5, 20_000_000)}),
                                             max_size=3)}),
    st.fixed_dictionaries({"op": st.just("pay"), "id": sale_ids, "method": st.sampled_from(["card", "cash", "x"])}),
    st.fixed_dictionaries({"op": st.just("approve"), "id": sale_ids,
                           "auth": st.sampled_from(["A1", "", "4111111111111111"])}),
    st.fixed_dictionaries({"op": st.sampled_from(["decline", "ack_reversal", "sale", "reprint"]), "id": sale_ids}),
    st.fixed_dictionaries({"op": st.just("void"), "id": sale_ids, "reason": st.sampled_from(["cancel", "\x07"])}),
    st.just({"op": "status"}),
    st.binary(max_size=40),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(op_objs, max_size=25))
def test_fuzzed_requests_keep_journal_invariants(world: Any, ops: list[Any]) -> None:
    world.board.partitions.pop("journal", None)
    cmds, book, jobs = make(world)
    visited: dict[int, set[str]] = {}
    for obj in ops:
        before = book.stats()["seq"]
        r = send(cmds, obj)
        assert isinstance(r["ok"], bool)
        if not r["ok"]:
            assert r["err"] and r["msg"]
            assert book.stats()["seq"] == before, f"a refused request changed the journal: {obj!r} -> {r}"
        for sid in range(1, 7):
            try:
                state = book.state(sid)
            except Exception:
                continue
            visited.setdefault(sid, set()).add(state)
    for sid, states in visited.items():
        assert not ({"PAID", "PRINTING"} & states and {"VOIDED", "REVERSAL_PENDING"} & states), (sid, states)
        if "PAID" in states:
            assert jobs.queued(sid), "a paid sale has no receipt queued"
    for sid in visited:
        s = book.sale(sid)
        assert "4111111111111111" not in json.dumps(s, default=str)


def test_crash_log_is_bounded_and_keeps_the_newest(tmp_path: Any, monkeypatch: Any, world: Any) -> None:
    from posguard import crashlog

    monkeypatch.chdir(tmp_path)
    log = crashlog.CrashLog()
    assert log.last() is None
    for i in range(12):
        log.record("host", ValueError(f"bad thing {i}\nsecond line"))
    lines = log.read()
    assert len(lines) == 8 and lines[-1].endswith("host ValueError: bad thing 11")
    assert all("second line" not in ln and len(ln) <= 160 for ln in lines)
    assert not (tmp_path / "crash.log.tmp").exists()


def test_a_crashing_task_is_logged_and_restarted(world: Any, tmp_path: Any, monkeypatch: Any) -> None:
    import asyncio

    from posguard import app, crashlog

    monkeypatch.chdir(tmp_path)
    t = app.Terminal.__new__(app.Terminal)
    t.crash = crashlog.CrashLog()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")
        await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.create_task(t.guard("flaky", flaky))
        await asyncio.sleep(10)
        task.cancel()

    asyncio.run(main())
    assert len(runs) == 3
    assert [ln.split(" ", 2)[-1] for ln in t.crash.read()] == ["flaky RuntimeError: boom 1",
                                                               "flaky RuntimeError: boom 2"]


def test_repl_control_bytes_on_the_host_link_are_protocol_errors(world: Any) -> None:
    # Production mode: Ctrl-C / Ctrl-A (raw REPL) / Ctrl-D and Python source sent down the host link
    # are bad requests, answered as such and never executed.
    cmds, book, _ = make(world)
    for line in (b"\x03\x03", b"\x01", b"\x04", b"import machine; machine.reset()", b"\x05paste\x04"):
        reply = send(cmds, line)
        assert reply["ok"] is False and reply["err"] in ("BAD_JSON", "BAD_REQUEST", "BAD_LINE"), reply
    assert book.open_sales() == []


# -- issue 12 ------------------------------------------------------------------------------------------
class FakeDriver:
    """Records the receipts the job runner lays out; status is whatever the test sets."""

    def __init__(self, status: dict[str, Any] | None = None) -> None:
        from posguard import escpos

        self.enc = escpos.Encoder("utf-8")
        self.cfg = {"answers_status": True}
        self.st = status or {"answered": True, "online": True}
        self.printed: list[list[str]] = []

    async def status(self) -> dict[str, Any]:
        return dict(self.st)

    async def print_job(self, ops: list[Any]) -> dict[str, Any]:
        self.printed.append([op[1] for op in ops if op[0] == "text"])
        return {"result": "printed", "reason": "", "line": 0}


def maintain(book: Any) -> None:
    book.maintenance_allowed = True  # the app's maintenance task, between two sales
    for _ in range(8):
        if book.maintenance() is None:
            break
    book.maintenance_allowed = False


def close_sales(cmds: commands.Commands, book: Any, ids: range, items: list[dict[str, Any]] = ITEMS) -> None:
    for sid in ids:
        maintain(book)
        r = send(cmds, {"op": "open", "id": sid, "items": items})
        assert r["ok"], r
        assert send(cmds, {"op": "pay", "id": sid, "method": "card"})["ok"]
        assert send(cmds, {"op": "approve", "id": sid, "auth": f"A{sid}", "last4": "0004"})["ok"]
        book.start_print(sid)
        book.print_done(sid)
        book.close(sid)
    cmds.jobs._q.clear()  # the worker printed them


def test_a_full_print_queue_never_drops_a_paid_receipt_or_a_void_slip(world: Any) -> None:
    """Item 5: fill the queue every way the host can (reprints, void slips), then approve."""
    cmds, book, jobs = make(world)
    close_sales(cmds, book, range(1, 31))
    codes = [send(cmds, {"op": "reprint", "id": sid}) for sid in range(1, 31)]
    refused = [r for r in codes if not r["ok"]]
    assert refused and all(r["err"] == "BUSY" and r["retry_after_s"] > 0 for r in refused)
    # Void slips: each void of a PAYMENT_PENDING sale either queues its slip or is refused before the void.
    for sid in range(40, 52):
        maintain(book)
        r = send(cmds, {"op": "open", "id": sid, "items": ITEMS})
        assert r["ok"], r
        assert send(cmds, {"op": "pay", "id": sid, "method": "card"})["ok"]
    for sid in range(40, 52):
        before = book.stats()["seq"]
        r = send(cmds, {"op": "void", "id": sid})
        if r["ok"]:
            assert r["state"] == "REVERSAL_PENDING" and jobs.queued(sid), "a void slip was dropped"
        else:
            assert r["err"] == "BUSY" and book.state(sid) == "PAYMENT_PENDING" and book.stats()["seq"] == before
    assert any(not send(cmds, {"op": "sale", "id": sid})["state"] == "REVERSAL_PENDING" for sid in range(40, 52))
    # A paid sale now: approve is never refused, and its receipt is owed and queued.
    maintain(book)
    assert send(cmds, {"op": "open", "id": 99, "items": ITEMS})["ok"]
    assert send(cmds, {"op": "pay", "id": 99, "method": "cash"})["ok"]
    r = send(cmds, {"op": "approve", "id": 99, "auth": "OK99"})
    assert r["ok"] and r["state"] == "PAID" and r.get("printing") == "queued"
    assert jobs.queued(99)
    st = send(cmds, {"op": "status"})
    voids = sum(1 for sid in range(40, 52) if book.state(sid) == "REVERSAL_PENDING")
    assert st["printer"]["owed"] == 1 + voids


def test_the_journal_drives_the_queue(world: Any) -> None:
    """Item 5: a PAID sale with no job (lost, or the queue was cleared) is queued again from the journal."""
    cmds, book, jobs = make(world)
    send(cmds, {"op": "open", "id": 7, "items": ITEMS})
    send(cmds, {"op": "pay", "id": 7, "method": "card"})
    send(cmds, {"op": "approve", "id": 7, "auth": "A7"})
    jobs._q.clear()
    assert jobs.owed() == 1  # status still says a receipt is owed
    assert jobs.sync() == 1 and jobs.queued(7)


def test_open_with_an_existing_id_and_other_items_is_a_duplicate(world: Any) -> None:
    """Item 10: same body = same reply; different body = DUPLICATE_ID, nothing written."""
    cmds, book, jobs = make(world)
    first = {"op": "open", "id": 3, "items": ITEMS, "time": "2026-11-24 10:00"}
    assert send(cmds, first)["state"] == "OPEN"
    seq = book.stats()["seq"]
    assert send(cmds, first) == send(cmds, first) and send(cmds, first)["state"] == "OPEN"
    other = dict(first, items=[{"name": "Coffee", "price": 900}])
    r = send(cmds, other)
    assert r["err"] == "DUPLICATE_ID" and book.stats()["seq"] == seq
    assert send(cmds, dict(first, time="2026-11-24 10:01"))["err"] == "DUPLICATE_ID"
    assert book.sale(3)["body"]["i"] == [["乌龙茶 Oolong", 1, 900]]


def test_replays_after_close_with_new_contents_are_refused(world: Any) -> None:
    """Item 10: replaying open/pay/approve with new contents after the sale closed is not 'ok CLOSED'."""
    cmds, book, jobs = make(world)
    close_sales(cmds, book, range(5, 6))
    assert send(cmds, {"op": "open", "id": 5, "items": [{"name": "Cake", "price": 50}]})["err"] == "DUPLICATE_ID"
    assert send(cmds, {"op": "pay", "id": 5, "method": "cash"})["err"] == "DUPLICATE_ID"
    assert send(cmds, {"op": "approve", "id": 5, "auth": "OTHER", "last4": "0004"})["err"] == "DUPLICATE_ID"
    # The same requests again are retries: the current state.
    assert send(cmds, {"op": "open", "id": 5, "items": ITEMS})["state"] == "CLOSED"
    assert send(cmds, {"op": "pay", "id": 5, "method": "card"})["state"] == "CLOSED"
    assert send(cmds, {"op": "approve", "id": 5, "auth": "A5", "last4": "0004"})["state"] == "CLOSED"


def test_the_body_digest_survives_a_reboot(world: Any) -> None:
    cmds, book, jobs = make(world)
    assert send(cmds, {"op": "open", "id": 8, "items": ITEMS})["ok"]
    assert send(cmds, {"op": "pay", "id": 8, "method": "card"})["ok"]
    assert send(cmds, {"op": "approve", "id": 8, "auth": "A8"})["ok"]
    cmds2, book2, _ = make(world)  # a new SaleBook on the same flash: RAM gone
    assert book2.sale(8)["body"].get("h")
    assert send(cmds2, {"op": "open", "id": 8, "items": [{"name": "Other", "price": 1}]})["err"] == "DUPLICATE_ID"
    assert send(cmds2, {"op": "open", "id": 8, "items": ITEMS})["state"] == "PAID"


def test_pay_after_void_is_not_ok(world: Any) -> None:
    cmds, book, jobs = make(world)
    send(cmds, {"op": "open", "id": 11, "items": ITEMS})
    send(cmds, {"op": "void", "id": 11})
    r = send(cmds, {"op": "pay", "id": 11, "method": "card"})
    assert not r["ok"] and r["err"] == "ILLEGAL_TRANSITION" and r["state"] == "VOIDED"
    send(cmds, {"op": "open", "id": 12, "items": ITEMS})
    send(cmds, {"op": "pay", "id": 12, "method": "card"})
    send(cmds, {"op": "void", "id": 12})
    r = send(cmds, {"op": "pay", "id": 12, "method": "card"})
    assert not r["ok"] and r["state"] == "REVERSAL_PENDING"


def test_a_receipt_that_cannot_be_laid_out_is_refused_before_payment(world: Any) -> None:
    """Item 6: a sale whose receipt could never print is refused at open, before anything is written."""
    cmds, book, jobs = make(world)
    jobs.header = ["POSGUARD", "N" * 300]  # what a 300-character profile name did
    seq = book.stats()["seq"]
    r = send(cmds, {"op": "open", "id": 20, "items": ITEMS})
    assert r["err"] == "RECEIPT_LAYOUT" and book.stats()["seq"] == seq
    assert book.open_sales() == []


def test_export_replies_stay_within_3_kb_as_sent(world: Any) -> None:
    cmds, book, jobs = make(world)
    wide = [{"name": "乌龙茶" * 10 + "12", "qty": 2, "price": 1234} for _ in range(4)]
    close_sales(cmds, book, range(1, 7), wide)
    got: list[int] = []
    after = 0
    for _ in range(10):
        r = send(cmds, {"op": "export", "after": after, "limit": 16})
        assert len(json.dumps(r).encode()) <= 3072, len(json.dumps(r).encode())
        assert r["records"]
        got += [rec["id"] for rec in r["records"]]
        if r["next"] is None:
            break
        after = r["next"]
    assert got == list(range(1, 7))


def test_a_host_reprint_is_labelled_by_its_cause(world: Any) -> None:
    import asyncio

    cmds, book, jobs = make(world)
    close_sales(cmds, book, range(1, 2), [{"name": "Tea", "price": 300}])
    jobs.drv = FakeDriver()
    assert send(cmds, {"op": "reprint", "id": 1})["copy"]
    assert asyncio.run(jobs._one(jobs._q[0]))
    text = "\n".join(jobs.drv.printed[0])
    assert "DUPLICATE" in text and "Reprint on request" in text and "power loss" not in text


def test_one_printer_fault_vocabulary(world: Any) -> None:
    """Item 11: the same printer state has the same name idle and mid-job; answered-but-offline is a fault."""
    import asyncio

    from posguard import printer_status

    both = {"answered": True, "online": True, "cover_open": True, "paper_out": True}
    cmds, book, jobs = make(world)
    jobs.drv = FakeDriver(both)
    jobs.problem = "paper out"  # what a paused job reported
    assert asyncio.run(_printer_ok_quick(jobs)) is False
    assert jobs.problem == printer_status.fault_of(dict(both)) == printer_status.COVER_OPEN
    assert send(cmds, {"op": "open", "id": 1, "items": ITEMS})["err"] == "PRINTER_FAULT"
    # Answered but offline: not cleared by a poll.
    jobs.drv.st = {"answered": True, "online": False}
    jobs.problem = "offline"
    assert asyncio.run(_printer_ok_quick(jobs)) is False and jobs.problem == printer_status.OFFLINE
    # The idle poll uses the same function.
    jobs.problem = ""

    async def idle() -> None:
        task = asyncio.create_task(jobs.run())
        await asyncio.sleep(0.01)
        jobs.check_printer()  # what the app does about once a minute
        await asyncio.sleep(0.05)
        task.cancel()

    jobs.book = None
    asyncio.run(idle())
    assert jobs.problem == printer_status.OFFLINE


async def _printer_ok_quick(jobs: printjobs.PrintJobs) -> bool:
    import posguard.printjobs as pj

    saved = pj._RETRY_S
    pj._RETRY_S = 0
    try:
        return await jobs._printer_ok()
    finally:
        pj._RETRY_S = saved
