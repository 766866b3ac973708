"""The fleet view's model: terminals' telemetry (retained health, events, online flag) folded into one row
per terminal, sorted by urgency (docs/fleet.md):

1. offline (its last will said so, or no health for three intervals),
2. dies before closing at the present rate (the slower of the SoC trends over the last hour and over the
   present discharge, on the terminal's own uptime clock; shown only while the latest health still
   predicts it; never while the terminal is on the charger),
3. replace battery,
4. reversals pending, 5. receipts owed, then the least time left.

Rates use the terminal's `up_s` (its own clock), so a simulated day and a real one read the same."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from posguard_tools.mqtt_wire import Message

_HISTORY = 240  # SoC points kept per terminal (the chart and the rate)
# The present rate is the slower of two SoC trends (least squares): over the last hour, and over the whole
# present discharge (since the day's first reading or the charger). No prediction before an hour and a half
# of readings, nor for half an hour after the charger. A day's first hour (the morning rush, a SoC estimate
# still settling after boot) or one busy hour is not the day's rate: with a 5-minute slope the view flagged
# 13 of 20 terminals of a 12 h fleet day that never ran out (docs/fleet.md).
_WINDOW_S = 3600
_MIN_SPAN_S = 5400
_AFTER_CHARGE_S = 1800
# Without the firmware's `charger` in health: SoC up at least this much at each of three readings in a row
# is the charger. Fewer are not: the firmware's SoC estimate steps up 1-2 % at a time, once or twice in a
# row, when the pack relaxes after a busy spell (a worn pack near empty most of all).
_CHARGE_RISE_PCT = 0.5
_CHARGE_RISES = 3


def _drop_per_h(pts: list[tuple[int, float]]) -> float:
    """SoC drop per hour: minus the least-squares slope of SoC over time (two points or more)."""
    n = len(pts)
    mt = sum(p[0] for p in pts) / n
    ms = sum(p[1] for p in pts) / n
    var = sum((p[0] - mt) ** 2 for p in pts)
    return -sum((p[0] - mt) * (p[1] - ms) for p in pts) / var * 3600 if var > 0 else 0.0


@dataclass
class Terminal:
    name: str
    health: dict[str, Any] = field(default_factory=dict)
    online: bool | None = None
    offline_at: float | None = None  # wall time (monotonic) when its last will arrived
    last_seen: float = 0.0
    soc: list[tuple[int, float]] = field(default_factory=list)  # (up_s, SoC %), up_s made monotonic
    events: list[dict[str, Any]] = field(default_factory=list)
    flagged_at: dict[str, float] = field(default_factory=dict)  # reason -> up_s when first flagged
    flagged_now: set[str] = field(default_factory=set)  # reasons that hold at the latest health
    flag_spans: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)  # reason -> [(on, off)]
    charging: bool = False  # on the charger: its health says so, or its SoC keeps rising
    up_offset: int = 0  # added to up_s after a reboot, so the series keeps running
    first_up: int | None = None  # series time of the first reading the view had
    charged_at: int | None = None  # series time of the last reading on the charger

    def add_soc(self, up: int, soc: float, charger: bool | None) -> None:
        """One health reading: SoC on the terminal's uptime, and whether it charges (`charger` from the
        health when the firmware publishes it, else a SoC that rose at each of the last readings)."""
        if self.soc and up + self.up_offset < self.soc[-1][0]:
            self.up_offset = self.soc[-1][0] + 1 - up  # a reboot: the series resumes where it stopped
        t = up + self.up_offset
        if self.first_up is None:
            self.first_up = t
        last = [p[1] for p in self.soc[-_CHARGE_RISES:]] + [soc]
        if charger is not None:
            self.charging = charger
        elif len(last) > _CHARGE_RISES and all(last[i + 1] - last[i] >= _CHARGE_RISE_PCT for i in range(_CHARGE_RISES)):
            self.charging = True
        elif len(last) >= 2 and last[-1] < last[-2]:
            self.charging = False
        if self.charging:
            self.charged_at = t
        self.soc.append((t, soc))
        del self.soc[:-_HISTORY]

    def hours_left(self) -> float | None:
        """At the present rate: SoC / SoC drop per hour, the slower of the last hour's trend and the whole
        present discharge's (of the kept history); None while charging, before _MIN_SPAN_S of readings or
        _AFTER_CHARGE_S after the charger, or when SoC does not fall."""
        if self.charging or len(self.soc) < 2 or self.first_up is None:
            return None
        t1, s1 = self.soc[-1]
        since = self.first_up if self.charged_at is None else self.charged_at
        if t1 - since < (_MIN_SPAN_S if self.charged_at is None else _AFTER_CHARGE_S):
            return None
        run = [p for p in self.soc if p[0] >= since]
        hour = [p for p in run if t1 - p[0] <= _WINDOW_S]
        if len(hour) < 2:
            hour = run[-2:]  # sparse readings: the last two are the present trend
        if len(hour) < 2:
            return None
        per_h = min(_drop_per_h(hour), _drop_per_h(run))
        if per_h <= 0:
            return None
        return s1 / per_h


@dataclass(frozen=True)
class Row:
    name: str
    status: str  # one line: why it is where it is
    soc: float | None
    receipts_left: int | None
    hours_left: float | None
    replace: bool
    reversals: int
    owed: int
    offline: bool
    dies_before_close: bool
    soc_history: tuple[tuple[int, float], ...]

    def key(self) -> tuple[Any, ...]:
        return (
            not self.offline,
            not self.dies_before_close,
            not self.replace,
            self.reversals == 0,
            self.owed == 0,
            self.hours_left if self.hours_left is not None else 1e9,
            self.name,
        )


class Fleet:
    def __init__(self, close_in_h: float | None = None, interval_s: float = 60.0) -> None:
        self.terminals: dict[str, Terminal] = {}
        self.close_in_h = close_in_h  # hours until closing time, from each terminal's latest health
        self.close_at_up_s: dict[str, float] = {}  # or: closing time on each terminal's uptime clock
        self.interval_s = interval_s

    def feed(self, m: Message) -> None:
        parts = m.topic.split("/")
        if len(parts) != 3 or parts[0] != "posguard":
            return
        t = self.terminals.setdefault(parts[1], Terminal(parts[1]))
        kind = parts[2]
        t.last_seen = m.at
        if kind == "online":
            t.online = m.payload == b"1"
            t.offline_at = None if t.online else m.at
            return
        try:
            body = json.loads(m.payload)
        except ValueError:
            return
        if kind == "health" and isinstance(body, dict):
            t.health = body
            t.online = True if t.online is None else t.online
            bat = body.get("battery") or {}
            soc = bat.get("soc_pct")
            up = body.get("up_s")
            charger = bat.get("charger")
            if isinstance(soc, (int, float)) and isinstance(up, int):
                t.add_soc(up, float(soc), charger if isinstance(charger, bool) else None)
            self._flags(t)
        elif kind == "events" and isinstance(body, dict):
            t.events.append(body)
            del t.events[:-50]

    def _close_left_h(self, t: Terminal) -> float | None:
        if t.name in self.close_at_up_s and t.soc:
            return max(0.0, (self.close_at_up_s[t.name] - t.soc[-1][0]) / 3600)
        return self.close_in_h

    def _flags(self, t: Terminal) -> None:
        """Recomputed at every health message: a flag is shown while it holds; its first raising and its
        spans (on, off) on the series' clock are kept for the report."""
        row = self.row(t)
        up = t.soc[-1][0] if t.soc else 0
        for reason, on in (("dies before close", row.dies_before_close), ("replace battery", row.replace)):
            spans = t.flag_spans.setdefault(reason, [])
            if on and reason not in t.flagged_now:
                t.flagged_at.setdefault(reason, up)
                t.flagged_now.add(reason)
                spans.append((up, None))
            elif not on and reason in t.flagged_now:
                t.flagged_now.discard(reason)
                spans[-1] = (spans[-1][0], up)

    def row(self, t: Terminal, now: float | None = None) -> Row:
        h = t.health
        b = h.get("battery") or {}
        hl = t.hours_left()
        close = self._close_left_h(t)
        dies = hl is not None and close is not None and hl < close
        stale = now is not None and t.last_seen and now - t.last_seen > 3 * self.interval_s
        offline = t.online is False or bool(stale)
        soc = b.get("soc_pct")
        rl = b.get("receipts_left")
        why = []
        if offline:
            why.append("offline")
        if dies:
            why.append(f"dies in {hl:.1f} h, before closing")
        if b.get("replace"):
            why.append("replace battery")
        if h.get("reversals"):
            why.append(f"{h['reversals']} reversal(s) pending")
        if h.get("owed"):
            why.append(f"{h['owed']} receipt(s) owed")
        if h.get("printer"):
            why.append(str(h["printer"]))
        return Row(
            name=t.name,
            status=", ".join(why) or "ok",
            soc=float(soc) if isinstance(soc, (int, float)) else None,
            receipts_left=int(rl) if isinstance(rl, (int, float)) else None,
            hours_left=hl,
            replace=bool(b.get("replace")),
            reversals=int(h.get("reversals") or 0),
            owed=int(h.get("owed") or 0),
            offline=offline,
            dies_before_close=dies,
            soc_history=tuple(t.soc),
        )

    def rows(self, now: float | None = None) -> list[Row]:
        return sorted((self.row(t, now) for t in self.terminals.values()), key=Row.key)


def _fmt(v: float | int | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


COLUMNS = ("terminal", "status", "SoC %", "receipts left", "hours left", "replace", "reversals", "owed")


def cells(r: Row) -> list[str]:
    return [r.name, r.status, _fmt(r.soc, ".1f"), _fmt(r.receipts_left, "d"), _fmt(r.hours_left, ".1f"),
            "yes" if r.replace else "no", str(r.reversals), str(r.owed)]


def _chart(points: tuple[tuple[int, float], ...]) -> str:
    """A small inline SVG of SoC over the terminal's uptime."""
    w, h = 160, 36
    if len(points) < 2:
        return f'<svg width="{w}" height="{h}" role="img" aria-label="no history"></svg>'
    t0, t1 = points[0][0], points[-1][0]
    span = max(1, t1 - t0)
    pts = " ".join(f"{(t - t0) * w / span:.1f},{h - s * h / 100:.1f}" for t, s in points)
    return (f'<svg width="{w}" height="{h}" role="img" aria-label="battery chart">'
            f'<rect width="{w}" height="{h}" fill="#f4f4f4"/>'
            f'<polyline points="{pts}" fill="none" stroke="#2a7" stroke-width="1.5"/></svg>')


def to_html(rows: list[Row], title: str = "posguard fleet") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (*COLUMNS, "battery"))
    body = []
    for r in rows:
        cls = "urgent" if (r.offline or r.dies_before_close or r.replace) else ("warn" if r.reversals or r.owed else "")
        tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells(r))
        name = html.escape(r.name)
        body.append(f'<tr class="{cls}" data-terminal="{name}">{tds}<td>{_chart(r.soc_history)}</td></tr>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
tr.urgent td {{ background: #fdd; }}
tr.warn td {{ background: #ffd; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{len(rows)} terminal(s), most urgent first: offline, dies before closing at the present rate, replace
battery, reversals pending, receipts owed.</p>
<table id="fleet"><thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
