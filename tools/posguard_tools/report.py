"""The end of `posguard sim`: a table in the terminal, out/report.json, out/battery.png (pack voltage,
state of charge and the day's events) and PNGs of sample receipts as the simulated printer printed them."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import JustifyMethod

from posguard_tools import tables
from posguard_tools.deploy_heapcheck import DATA_HEAP_BYTES

# (label, how to get it from a report, target shown in the table)
ROWS: list[tuple[str, str, str]] = [
    ("sales attempted", "counts.attempted", ""),
    ("sales completed (paid)", "approved", ""),
    ("refused: battery critical", "refused.BATTERY_CRITICAL", ""),
    ("refused: paper out", "refused.PAPER_OUT", ""),
    ("refused: printer fault", "refused.PRINTER_FAULT", ""),
    ("refused: journal maintenance", "refused.JOURNAL_MAINTENANCE", ""),
    ("refused: other", "refused_other", ""),
    ("declined by the acquirer", "counts.declined", ""),
    ("voided (cancel, timeout)", "counts.voided", ""),
    ("voided by power loss, re-rung", "counts.voided_by_power_loss", ""),
    ("receipts printed (originals)", "receipts_original", ""),
    ("reprinted as copies", "receipts_copy", ""),
    ("interrupted paid sales", "interrupted_paid", ""),
    ("  ... reprinted exactly once", "interrupted_reprinted_once", "all"),
    ("void slips", "void_slips", ""),
    ("reversals pending at close", "reversals_pending", ""),
    ("power cuts / boots", "cuts_boots", ""),
    ("brownouts during printing", "brownouts_printing", "0"),
    ("sales lost", "lost_n", "0"),
    ("paid sales awaiting reprint", "pending_n", ""),
    ("SoC at the last completed sale", "soc_last_receipt_pct", ""),
    ("SoC at close", "soc_end_pct", ""),
    ("receipts per charge", "receipts_per_charge", ""),
    ("battery low warning (first)", "warning_first", "before refusal"),
    ("first refusal for battery", "refusal_first", ""),
    ("  charge unused then (sim's own limit)", "unused", "<= 2 %"),
    ("charger plugged / time on charger", "charger", ""),
    ("sales completed on the charger", "approved_after_charger", ""),
    ("brownouts (all)", "brownouts", "0"),
    ("bad host lines refused", "bad_lines", ""),
    ("peak heap (unix port)", "heap", f"<= {DATA_HEAP_BYTES // 1024} KB"),
    ("simulated h per wall s", "speed", ""),
]


def _hours(h: float | None) -> str:
    return "-" if h is None else f"{h:.2f} h"


def _get(rep: dict[str, Any], key: str) -> Any:
    if key == "warning_first":
        w = rep.get("first_warning")
        return "none" if not w else f"{_hours(w[0])}: \"{w[1]}\""
    if key == "refusal_first":
        f = rep.get("first_battery_refusal")
        return "none" if not f else f"{_hours(f[0])} (pack at {f[1]:.1f} %)"
    if key == "unused":
        f = rep.get("first_battery_refusal")
        return "-" if not f else f"{f[3]:.1f} % ({f[2]} receipts)"
    if key == "charger":
        at = rep.get("charger_plugged_h")
        return "-" if at is None else f"{_hours(at)} / {rep.get('charger_h', 0):.1f} h"
    if key == "refused_other":
        known = {"BATTERY_CRITICAL", "PAPER_OUT", "PRINTER_FAULT", "JOURNAL_MAINTENANCE"}
        return sum(v for k, v in rep.get("refused", {}).items() if k not in known)
    if key == "cuts_boots":
        return f"{len(rep.get('cuts', []))} / {rep.get('boots')}"
    if key == "lost_n":
        return len(rep.get("lost", []))
    if key == "pending_n":
        return len(rep.get("pending_reprint", []))
    if key == "bad_lines":
        c = rep.get("counts", {})
        return f"{c.get('bad_lines_refused', 0)} of {c.get('bad_lines_sent', 0)}"
    if key == "heap":
        h = rep.get("heap_peak_bytes")
        return "-" if h is None else f"{h / 1024:.1f} KB"
    if key == "speed":
        w = rep.get("wall_s") or 0
        return f"{rep['hours'] / w:.2f}" if w else "-"
    cur: Any = rep
    for part in key.split("."):
        if not isinstance(cur, dict):
            return "-"
        cur = cur.get(part, 0 if key.startswith(("refused.", "counts.")) else "-")
    if isinstance(cur, float):
        return f"{cur:.1f}"
    return "-" if cur is None else cur


def table(reports: list[dict[str, Any]]) -> str:
    """The day's figures, one column per report, as plain text (tables.render: no escape codes)."""
    heads = ["", *[f"{r['policy']} ({r['runtime']})" for r in reports], "target"]
    rows = [[label, *[str(_get(r, key)) for r in reports], target] for label, key, target in ROWS]
    first = reports[0]
    title = (f"posguard sim: board {first['board']}, {first['hours']:g} h, seed {first['seed']}, "
             f"pack {first.get('pack', 'fresh')} at {first.get('temp_c', 25):g} C, "
             f"opening charge {first.get('soc_start_pct', 100):g} %")
    # Wide enough that no cell folds (a long warning text, the naive policy's extra column).
    width = sum(max(len(str(row[i])) for row in [heads, *rows]) + 3 for i in range(len(heads)))
    right: JustifyMethod = "right"
    justify: list[JustifyMethod] = ["left", *[right] * (len(heads) - 1)]
    return tables.render(title, heads, rows, width=max(width, len(title)), justify=justify)


def verdict(rep: dict[str, Any]) -> list[str]:
    """What must hold after any day with the posguard policy; empty when all holds."""
    bad = []
    if rep.get("outcome", "time up") != "time up":
        bad.append(f"the day did not run to the close: {rep['outcome']}")
    if rep.get("lost"):
        bad.append(f"{len(rep['lost'])} sales lost: {rep['lost'][:5]}")
    if rep.get("brownouts_printing"):
        bad.append(f"{rep['brownouts_printing']} brownouts during printing")
    if rep.get("printed_twice"):
        bad.append(f"sales printed twice: {rep['printed_twice'][:5]}")
    if rep.get("brownouts"):
        bad.append(f"{rep['brownouts']} brownouts")
    if rep.get("interrupted_paid") != rep.get("interrupted_reprinted_once"):
        bad.append("an interrupted paid sale was not reprinted exactly once as a copy")
    if rep.get("printer_dropped_bytes"):
        bad.append(f"printer dropped {rep['printer_dropped_bytes']} bytes")
    # A crash-log line is a task that died during the day (a MemoryError on an ESP32 is a sale refused
    # or lost for want of heap): the firmware logs and restarts it, the day must not pass over it.
    crashes = rep.get("crash_log") or []
    if crashes:
        bad.append(f"{len(crashes)} crash-log entries (the firmware's crash.log keeps the last 8): {crashes[-1]}")
    heap = rep.get("heap_peak_bytes")
    if heap is not None and heap > DATA_HEAP_BYTES:
        bad.append(f"peak heap {heap / 1024:.1f} KB over the {DATA_HEAP_BYTES // 1024} KB working-data budget")
    return bad


def battery_plot(rep: dict[str, Any], path: Path, other: dict[str, Any] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = rep["series"]
    t = [r[0] for r in s]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    ax1.plot(t, [r[1] for r in s], lw=1, label=f"pack voltage ({rep['policy']})")
    if other is not None:
        o = other["series"]
        ax1.plot([r[0] for r in o], [r[1] for r in o], lw=1, alpha=0.6, label=f"pack voltage ({other['policy']})")
    on = [r[1] for r in s if r[1] > 0.5]
    if on:
        ax1.set_ylim(min(on) - 0.2, max(on) + 0.1)  # a pulled pack reads 0 V: keep the scale readable
    ax1.set_ylabel("V")
    ax1.legend(loc="lower left", fontsize=8)
    ax2.plot(t, [r[2] for r in s], lw=1.2, label="true SoC (model)")
    fw = [(r[0], r[3]) for r in s if r[3] is not None]
    if fw:
        ax2.plot([x for x, _ in fw], [y for _, y in fw], ".", ms=3, label="firmware SoC (status)")
    if other is not None:
        o = other["series"]
        ax2.plot([r[0] for r in o], [r[2] for r in o], lw=1, alpha=0.6, label=f"true SoC ({other['policy']})")
    ax2.set_ylabel("SoC %")
    ax2.set_xlabel("hours into the day")
    colors = {"pack pulled": "red", "connector bounce": "orange", "brownout": "black", "paper out": "purple",
              "paper loaded": "green", "battery warning": "deeppink"}
    for ev in rep.get("events", []):
        c = colors.get(ev[1])
        if c:
            for ax in (ax1, ax2):
                ax.axvline(ev[0], color=c, lw=0.8 if ev[1] != "battery warning" else 1.6, alpha=0.7)
    # sales refused for battery: a red tick on the SoC axis each
    refusals = [ev[0] for ev in rep.get("events", []) if ev[1] == "refused" and "BATTERY" in str(ev[2])]
    if refusals:
        ax2.plot(refusals, [2.0] * len(refusals), "|", color="crimson", ms=14, mew=1.5, label="sale refused: battery")
    # charging: shade the hours the charger was in
    on = [r[0] for r in s if len(r) > 5 and r[5]]
    if on:
        for ax in (ax1, ax2):
            ax.axvspan(min(on), max(on), color="limegreen", alpha=0.12, lw=0)
    handles: list[Any] = [plt.Line2D([0], [0], color=c, lw=1) for c in colors.values()]
    labels = list(colors.keys())
    if on:
        handles.append(plt.Rectangle((0, 0), 1, 1, color="limegreen", alpha=0.3))
        labels.append("on charger")
    ax2.legend(handles=[*ax2.get_legend_handles_labels()[0], *handles],
               labels=[*ax2.get_legend_handles_labels()[1], *labels], loc="upper left", fontsize=7, ncol=3)
    ax2.set_ylim(-2, 102)
    fig.suptitle(f"{rep['board']}: a {rep['hours']:g} h trading day (seed {rep['seed']}, pack "
                 f"{rep.get('pack', 'fresh')}, {rep.get('temp_c', 25):g} C, "
                 f"opening at {rep.get('soc_start_pct', 100):g} %)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
)


def _font(size: int) -> Any:
    from PIL import ImageFont

    for p in _FONT_CANDIDATES:
        if Path(p).exists():
            return ImageFont.truetype(p, size)
    return ImageFont.load_default()


def receipt_png(sample: dict[str, Any], path: Path, columns: int = 32, encoding: str = "gb18030") -> None:
    """Draw the printed lines of a sample receipt (as the simulated printer recorded them)."""
    from PIL import Image, ImageDraw

    cell = 12  # px per column at 203 dpi, 12x24 font (384 dots / 32 columns)
    width = columns * cell + 24
    rows = []
    for align, segs in sample["lines"]:
        text = ""
        wmul = hmul = 1
        inverse = bold = False
        for hexdata, key in segs:
            text += bytes.fromhex(hexdata).decode(encoding, errors="replace")
            if key:  # the printer model's style key: (cn, bold, wmul, hmul, underline, reverse)
                bold = bold or bool(key[1])
                wmul = max(wmul, int(key[2]))
                hmul = max(hmul, int(key[3]))
                inverse = inverse or bool(key[5])
        rows.append((align, text, wmul, hmul, bold, inverse))
    height = 32 + sum(24 * r[3] for r in rows)
    img = Image.new("L", (width, height), 255)
    font = _font(20)
    y = 16
    for align, text, wmul, hmul, bold, inverse in rows:
        probe = ImageDraw.Draw(img)
        tw = max(1, int(probe.textlength(text, font=font)) + 4)
        line = Image.new("L", (tw, 24), 0 if inverse else 255)
        d = ImageDraw.Draw(line)
        fg = 255 if inverse else 0
        d.text((2, 1), text, font=font, fill=fg, stroke_width=1 if bold else 0, stroke_fill=fg)
        line = line.resize((tw * wmul, 24 * hmul))
        x = 12 if align == 0 else (width - line.width) // 2 if align == 1 else width - 12 - line.width
        img.paste(line, (int(x), y))
        y += 24 * hmul
    img.save(path)


def write_outputs(reports: list[dict[str, Any]], out: Path, profile: dict[str, Any]) -> list[Path]:
    """report.json, battery.png and the sample receipts in `out`. Each is drawn in a scratch folder inside
    `out` and then renamed into place, so an interrupted run leaves every file whole (old or new)."""
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".posguard-partial-", dir=out))
    try:
        drawn = _draw_outputs(reports, scratch, profile)
        for p in drawn:
            os.replace(p, out / p.name)
        return [out / p.name for p in drawn]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _draw_outputs(reports: list[dict[str, Any]], out: Path, profile: dict[str, Any]) -> list[Path]:
    written = []
    main = reports[0]
    rj = out / "report.json"
    rj.write_text(json.dumps(reports[0] if len(reports) == 1 else {"posguard": reports[0], "naive": reports[1]},
                             indent=1, ensure_ascii=False))
    written.append(rj)
    bp = out / "battery.png"
    battery_plot(main, bp, reports[1] if len(reports) > 1 else None)
    written.append(bp)
    names = {"original": "receipt_original.png", "duplicate": "receipt_duplicate.png", "void": "receipt_void.png"}
    for kind, sample in main.get("samples", {}).items():
        p = out / names.get(kind, f"receipt_{kind}.png")
        receipt_png(sample, p, profile["printer"]["columns"], _py_encoding(profile["printer"]["encoding"]))
        written.append(p)
    return written


def _py_encoding(name: str) -> str:
    n = name.lower().replace("-", "")
    if n in ("gb18030", "gbk", "gb2312"):
        return "gb18030"
    if n == "utf8":
        return "utf-8"
    return "latin-1"
