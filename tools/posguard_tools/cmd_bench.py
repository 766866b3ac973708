"""`posguard bench`: every benchmark section (posguard_tools/bench_<name>.py), one table each, and all
figures in out/bench.json. The figures are measured here, never asserted by timed tests."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import time
from pathlib import Path
from typing import Any

import posguard_tools
from posguard_tools import paths, tables

HELP = "run the benchmarks, print their tables and write out/bench.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, for a smoke run)")
    parser.add_argument("--only", metavar="NAME", help="run one section (e.g. journal, battery, printer, app)")
    parser.add_argument("--out", default=str(paths.OUT / "bench.json"), help="where to write the JSON")


def sections() -> list[str]:
    return sorted(i.name[6:] for i in pkgutil.iter_modules(posguard_tools.__path__) if i.name.startswith("bench_"))


def format_table(title: str, rows: list[list[Any]], markdown: bool = False) -> str:
    return tables.render(title, ["figure", "measured", "target"], [(list(r) + ["", "", ""])[:3] for r in rows],
                         markdown=markdown)


def run(args: argparse.Namespace) -> int:
    names = sections()
    if args.only:
        if args.only not in names:
            print(f"no bench section '{args.only}' (known: {', '.join(names)})")
            return 2
        names = [args.only]
    results: dict[str, Any] = {"quick": bool(args.quick), "sections": {}}
    failed = 0
    for name in names:
        mod = importlib.import_module(f"posguard_tools.bench_{name}")
        t0 = time.perf_counter()
        try:
            sec = mod.run(bool(args.quick))
        except Exception as e:  # one broken section must not hide the others' figures
            failed += 1
            print(f"bench section {name} failed: {type(e).__name__}: {e}\n")
            results["sections"][name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        sec["wall_s"] = round(time.perf_counter() - t0, 2)
        results["sections"][name] = sec
        print(format_table(f"{sec['title']}  ({sec['wall_s']} s)", sec["rows"]))
        print()
    out = Path(args.out)
    if not out.is_absolute():
        out = paths.ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    md = out.with_suffix(".md")  # the same tables as Markdown, to paste into docs/benchmarks.md
    md.write_text("\n\n".join(
        format_table(f"{s['title']} ({s['wall_s']} s)", s["rows"], markdown=True)
        for s in results["sections"].values() if "rows" in s) + "\n")
    print(f"figures written to {out} (tables as Markdown: {md})")
    return 1 if failed else 0
