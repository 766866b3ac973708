"""The printer bench's figures hold their targets (quick size): flow control reaches >= 95 % of
max(wire time, mechanism time) with no byte dropped, and power-aware heating keeps the peak in budget
while the default setting does not."""

from __future__ import annotations

from posguard_tools import bench_printer


def test_bench_targets() -> None:
    out = bench_printer.run(quick=True)
    flow = out["data"]["flow"]
    for key, r in flow.items():
        assert r["result"] == "printed" and r["dropped"] == 0, (key, r)
        assert r["lines"] == 30
        if key.split("@")[0] in ("cts", "xon"):
            assert r["share"] >= bench_printer.TARGET_SHARE, (key, r["share"])
    assert flow["adafruit@9600"]["print_s"] > 3 * flow["cts@9600"]["print_s"]
    power = out["data"]["power"]
    for key, r in power.items():
        assert r["result"] == "printed", (key, r)
        if key.endswith("/aware"):
            assert r["peak_a"] <= bench_printer.PEAK_BUDGET_A + 1e-9, (key, r)
    assert power["pos-2s/full/default"]["peak_a"] > bench_printer.PEAK_BUDGET_A
    assert power["pos-2s/full/aware"]["print_s"] > power["pos-2s/full/default"]["print_s"]
    assert len(out["rows"]) == len(flow) + len(power)


def test_query_never_splits_a_command() -> None:
    from posguard import escpos

    e = escpos.Encoder("gb18030", 58, False)
    e.init()
    e.text("ab\u4e2d")
    e.qr(b"https://r.example.com/x")
    raw = bytes(e.out())
    gb_at = raw.index(b"\xd6\xd0")  # 中: the trail byte is never a boundary, the lead byte is
    assert e.safe_at(gb_at) and not e.safe_at(gb_at + 1)
    init_at = raw.index(b"\x1da\x00")  # inside GS a 0: no boundary after GS or after a
    assert e.safe_at(init_at) and not e.safe_at(init_at + 1) and not e.safe_at(init_at + 2)
    store = raw.index(b"\x1d(k\x1a\x001P0")
    assert all(not e.safe_at(i) for i in range(store + 1, store + 8 + 23))
    assert e.safe_at(store) and e.safe_at(store + 8 + 23)
