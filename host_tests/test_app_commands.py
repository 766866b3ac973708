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
