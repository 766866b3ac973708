"""Bench: the heap each shipped profile's chip gives the firmware (the ESP32 port's split heap, sim_heap)
against what the firmware needs there: its code as .mpy measured on the unix port, the working-data
budget, and the verdict (the deployment docs/device.md's 'Shipped profiles' table names). The full run
also measures each module's share of the code (what a lazy import could save)."""

from __future__ import annotations

from typing import Any

from posguard_tools import deploy_heapcheck, paths


def _module_costs(package: dict[str, bytes]) -> dict[str, int]:
    """Code heap of each module imported alone (with what it imports), on the unix port."""
    costs = {}
    for dest in sorted(package):
        if dest.endswith("__init__.mpy"):
            continue
        name = dest[: -len(".mpy")].replace("/", ".")
        costs[name] = deploy_heapcheck.code_heap_bytes(package, only=[name])
    return costs


def run(quick: bool) -> dict[str, Any]:
    package = deploy_heapcheck.compile_package()
    code = deploy_heapcheck.code_heap_bytes(package)
    kb = 1024
    rows: list[list[str]] = [
        [".mpy files of the package (on flash)", f"{sum(len(b) for b in package.values()) / kb:.1f} KB", ""],
        ["the package's code in RAM as .mpy (unix port, 64-bit)", f"{code / kb:.1f} KB", ""],
        ["working-data budget (bench_app's peak live heap target)", f"{deploy_heapcheck.DATA_HEAP_BYTES // kb} KB", ""],
    ]
    plans = {}
    for board in sorted(p.stem for p in paths.BOARDS.glob("*.json")):
        plan = deploy_heapcheck.plan_for(board, code)
        plans[board] = plan
        areas = deploy_heapcheck.port_heap(plan.chip)
        rows.append(
            [
                f"{board} ({plan.chip}): heap areas",
                " + ".join(str(a) for a in areas) + f" = {plan.heap} B",
                "",
            ]
        )
        rows.append(
            [
                f"{board}: code + data as .mpy vs heap",
                f"{plan.need_mpy / kb:.0f} KB vs {plan.heap / kb:.0f} KB",
                "frozen build" if plan.frozen else "fits: .mpy deploy",
            ]
        )
    data: dict[str, Any] = {
        "code_bytes": code,
        "data_budget_bytes": deploy_heapcheck.DATA_HEAP_BYTES,
        "plans": {
            b: {"chip": p.chip, "heap": p.heap, "largest_area": p.largest_area, "frozen": p.frozen}
            for b, p in plans.items()
        },
    }
    if not quick:
        costs = _module_costs(package)
        data["module_code_bytes"] = costs
        for name in ("posguard.compaction", "posguard.crashlog", "posguard.saleio", "posguard.repl"):
            if name in costs:
                rows.append(
                    [f"{name} with its imports (a lazy import saves up to this)", f"{costs[name] / kb:.1f} KB", ""]
                )
    return {"title": "heap: the port's heap per profile, the firmware's need", "rows": rows, "data": data}
