# Telemetry to the back office over MQTT (docs/fleet.md): retained health, events, pending reversals.
# Its own asyncio task, one bounded step a second: at most one connect attempt, one health message, a
# few events, a few reversals and a few incoming acks, each socket call bounded by mqtt_link's timeouts.
# It never waits on the network while a sale is in progress (the host link was active in the last few
# seconds, or a receipt prints), backs off exponentially while the broker is away, and keeps events on
# flash meanwhile (telemetry_queue: bounded, oldest dropped first, counted).
#
# What goes out is built from whitelisted status fields and sale ids only: never a card number, an item
# list, an approval code or a credential (the network config keeps those out of its repr and status).
import asyncio
import json
import time

from micropython import const

from posguard import VERSION, states
from posguard.telemetry_queue import PAYLOAD_MAX, EventQueue

TICK_S = 1.0
BACKOFF_MIN_MS = const(1000)
BACKOFF_MAX_MS = const(300000)  # five minutes between attempts at most, however long the outage
QUIET_MS = const(5000)  # no network work within this long of a host-link request (a sale in progress)
_EVENTS_PER_STEP = const(4)
_REVERSALS_PER_STEP = const(4)
_POLL_PER_STEP = const(4)
_ACK_MAX = const(96)  # an ack message longer than this is not ours: ignored
_LIST_MAX = const(16)  # sale ids in one event (the journal's unfinished-sale limit)

# Battery fields passed on as they are (numbers, booleans, short words); anything else is left out.
_BATTERY_KEYS = ("soc_pct", "state", "soh_pct", "replace", "charger_fault", "fault", "receipts_left",
                 "warning", "temp_source", "r_growth_pct", "cycles", "charger", "temp_c")
_LOW = ("LOW",)
_CRITICAL = ("CRITICAL", "SHUTDOWN")
# machine.PWRON_RESET. The ESP32 port reports a brownout (ESP_RST_BROWNOUT) as this very value, the same as
# a power-on (micropython ports/esp32/modmachine.c:237-240), so a brownout is inferred, never read: see
# boot_events().
_PWRON_RESET = const(1)
# How long after boot the battery may take to say "low": the monitor reads the state from the rested
# pack (powermon._BOOT_REST_S, 20 s) and the policy's hysteresis; a healthy reading until then clears it.
_BROWNOUT_WINDOW_MS = const(30000)


def _reset_cause():
    try:
        import machine

        return machine.reset_cause()
    except (ImportError, AttributeError, OSError):  # a port without it (the unix port): no inference
        return None


def _scalar(v):
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, str) and len(v) <= 24:
        return v
    return None


class Telemetry:
    def __init__(self, cfg, status_fn, book=None, session=None, queue_path="telemetry.q", busy_fn=None,
                 wifi=None, now_ms=None):
        self.cfg = cfg
        self.status_fn = status_fn  # -> the host link's status dict
        self.book = book  # the sale book (reversals, acks), or None
        self.session = session  # mqtt_link.Session (or a stand-in with the same calls)
        self.busy_fn = busy_fn  # -> True while a sale is in progress
        self.wifi = wifi  # network.WLAN or None (the unix port: sockets work without it)
        self._now = now_ms if now_ms is not None else time.ticks_ms
        base = "posguard/" + cfg.terminal + "/"
        self.t_health = base + "health"
        self.t_events = base + "events"
        self.t_reversals = base + "reversals"
        self.t_ack = base + "ack"
        self.t_online = base + "online"
        self.queue = EventQueue(queue_path, cfg.queue_max)
        t0 = self._now()
        self.started = t0
        self._next_try = t0
        self._backoff = BACKOFF_MIN_MS
        self._health_due = t0
        self._last_key = None
        self._prev = None  # the last status snapshot's event-relevant fields
        self._cut = None  # receipts a power-on reset cut mid-print: a brownout if the battery says so
        self._rev_due = {}  # sale id -> ticks when its reversal is published again (<= _LIST_MAX)
        self._deferred = 0
        self.published = 0
        self.failures = 0
        self.acks = 0
        self.bad_acks = 0
        self.connects = 0
        self.last_error = None

    # -- what the status shows (no credential, no broker user) -------------------------------------
    def counters(self):
        return {"connected": self.session is not None and self.session.connected, "queued": len(self.queue),
                "dropped": self.queue.dropped, "published": self.published, "failures": self.failures,
                "acks": self.acks, "backoff_s": self._backoff // 1000, "error": self.last_error}

    # -- events ---------------------------------------------------------------------------------------
    def event(self, name, **fields):
        """Queue one event on flash (delivered at least once, in order)."""
        # n: the queue's sequence number, so the back office sees order and gaps (dropped events)
        body = {"e": name, "n": self.queue.next_seq, "up_s": time.ticks_diff(self._now(), self.started) // 1000}
        for k, v in fields.items():
            body[k] = v
        data = json.dumps(body).encode()
        while len(data) > PAYLOAD_MAX:
            # A list of sale ids too long for a slot: keep the first ones and say how many were left out.
            trimmed = False
            for k, v in body.items():
                if isinstance(v, list) and v:
                    body[k] = v[: len(v) // 2]
                    body["more"] = True
                    trimmed = True
                    break
            if not trimmed:
                return None
            data = json.dumps(body).encode()
        return self.queue.push(data)

    def boot_events(self, recovery):
        """After the journal's recovery: what a power loss left, by sale id."""
        if not recovery:
            return
        voided = list(recovery.get("voided", ()))[:_LIST_MAX]
        reprint = list(recovery.get("reprint", ()))[:_LIST_MAX]
        # Reversals this power loss made (a sale awaiting payment); older pending ones are not news.
        pending = recovery.get("reversal_pending", ())
        rev = [sid for sid in voided if sid in pending]
        if voided or reprint:
            self.event("power_loss_recovered", voided=voided, reprinted=reprint, reversals=rev)
        # A brownout cannot be told from a pulled pack by the reset cause (both PWRON_RESET). It is inferred
        # from what a brownout leaves: a receipt cut mid-print (the journal still holds it PRINTING: the
        # printer's peak current is what pulls a weak pack under the brownout level) and, at the battery's
        # first reading after boot, a pack that is low or worn (observe()). A pack pulled from a healthy
        # battery cuts the same receipt: only power_loss_recovered then.
        if reprint and self.book is not None and _reset_cause() == _PWRON_RESET:
            cut = []
            for sid in reprint:
                try:
                    if self.book.state(sid) == "PRINTING":
                        cut.append(sid)
                except Exception:  # noqa: BLE001 - a damaged record: not evidence either way
                    pass
            if cut:
                self._cut = cut

    def observe(self, st):
        """Compare a status snapshot with the last one; queue an event per transition."""
        b = st.get("battery") or {}
        p = st.get("printer") or {}
        if self._cut is not None:
            if b.get("state") in _LOW or b.get("state") in _CRITICAL or b.get("replace"):
                self.event("brownout", sales=self._cut, soc_pct=_scalar(b.get("soc_pct")),
                           state=_scalar(b.get("state")), replace=bool(b.get("replace")))
                self._cut = None
            elif time.ticks_diff(self._now(), self.started) > _BROWNOUT_WINDOW_MS:
                self._cut = None  # the pack read healthy: a pulled pack, not a brownout
        cur = (b.get("state"), bool(b.get("replace")), p.get("problem"))
        prev = self._prev
        self._prev = cur
        if prev is None:
            prev = ("OK", False, None)
        state, replace, problem = cur
        if state in _LOW and prev[0] not in _LOW:
            self.event("battery_low", soc_pct=_scalar(b.get("soc_pct")))
        if state in _CRITICAL and prev[0] not in _CRITICAL:
            self.event("battery_critical", soc_pct=_scalar(b.get("soc_pct")))
        if state == "FAULT" and prev[0] != "FAULT":
            self.event("battery_fault")
        if replace and not prev[1]:
            self.event("replace_battery", soh_pct=_scalar(b.get("soh_pct")))
        if problem and problem != prev[2]:
            if problem == "paper out":
                self.event("paper_out")
            else:
                self.event("printer_fault", fault=_scalar(problem))

    # -- health -----------------------------------------------------------------------------------------
    def health(self, st):
        b = st.get("battery") or {}
        p = st.get("printer") or {}
        j = st.get("journal") or {}
        rev = st.get("reversals") or ()
        h = {"v": VERSION, "up_s": _scalar(st.get("uptime_s")), "crashes": _scalar(st.get("crashes")),
             "accepting": _scalar(st.get("accepting")), "owed": _scalar(p.get("owed")),
             "printer": _scalar(p.get("problem")), "journal_pct": _scalar(j.get("fill_pct")),
             "reversals": len(rev), "queued": len(self.queue), "dropped": self.queue.dropped}
        bat = {}
        for k in _BATTERY_KEYS:
            if k in b:
                bat[k] = _scalar(b[k])
        h["battery"] = bat
        return h

    # -- the step --------------------------------------------------------------------------------------
    def _trading(self):
        """(a sale is in progress, hold publishing too). A sale is in progress while the cashier app
        spoke within QUIET_MS or a receipt prints (busy_fn), and also while a sale is open in the journal
        and not yet paid and printed (a payment host may answer many seconds after "pay": a connect
        attempt then would hold the event loop when the approval comes in, up to CONNECT_MS with the
        broker's host gone). A steady stream of sales, or a sale the app left open, would keep telemetry
        quiet forever: after one interval of waiting, a connected session publishes anyway between two
        requests (a publish on a LAN takes milliseconds), and an open sale the app has been silent about
        for that long no longer holds a connect back; a connect always waits for a quiet host link."""
        busy = self.busy_fn is not None and self.busy_fn()
        if not busy and not self._sale_open():
            self._deferred = 0
            return False, False
        self._deferred += 1
        late = self._deferred * TICK_S >= self.cfg.interval_s
        return busy or not late, not late

    def _sale_open(self):
        live = getattr(self.book, "live", None)  # sales.SaleBook: sale id -> [state, ...], unfinished ones
        if live:
            for e in live.values():
                if states.OPEN <= e[0] <= states.PRINTED:  # a sale on its way (REVERSAL_PENDING is not)
                    return True
        return False

    def step(self):
        st = self.status_fn()
        self.observe(st)
        now = self._now()
        trading, hold = self._trading()
        s = self.session
        if s is None:
            return
        if not s.connected:
            if trading or time.ticks_diff(now, self._next_try) < 0 or not self._link_up():
                return
            try:
                s.connect(self.t_online, b"0")
                s.subscribe(self.t_ack)
                s.publish(self.t_online, b"1", True, 1)
            except Exception as e:  # noqa: BLE001 - OSError, the library's MQTTException: back off
                self._failed(e, now)
                return
            self.connects += 1
            self._backoff = BACKOFF_MIN_MS
            self._health_due = now  # fresh health at once
            self._rev_due = {}
        if hold:
            return
        try:
            self._exchange(st, now)
        except Exception as e:  # noqa: BLE001 - the broker went away mid-publish: keep the queue, back off
            self._failed(e, now)

    def _exchange(self, st, now):
        s = self.session
        s.poll(_POLL_PER_STEP)  # acks first: an acked reversal is not sent again
        h = self.health(st)
        key = (h["accepting"], h["printer"], h["owed"], h["reversals"], h["battery"].get("state"),
               h["battery"].get("replace"), h["battery"].get("warning"))
        if time.ticks_diff(now, self._health_due) >= 0 or key != self._last_key:
            s.publish(self.t_health, json.dumps(h).encode(), True, 0)
            self.published += 1
            self._last_key = key
            self._health_due = time.ticks_add(now, self.cfg.interval_s * 1000)
        q = self.queue
        for _ in range(_EVENTS_PER_STEP):
            item = q.peek()
            if item is None:
                if len(q):
                    q.skip_broken()
                    continue
                break
            s.publish(self.t_events, item[1], False, 1)  # returns after the broker's PUBACK
            q.pop(item[0])
            self.published += 1
        self._reversals(now)

    def _reversals(self, now):
        if self.book is None:
            return
        pending = self.book.reversals()
        due = self._rev_due
        for sid in list(due):
            if sid not in pending:
                del due[sid]
        sent = 0
        for sid in pending[:_LIST_MAX]:
            t = due.get(sid)
            if t is not None and time.ticks_diff(now, t) < 0:
                continue
            self.session.publish(self.t_reversals, json.dumps({"id": sid}).encode(), False, 1)
            due[sid] = time.ticks_add(now, self.cfg.interval_s * 1000)  # again until the back office acks
            self.published += 1
            sent += 1
            if sent >= _REVERSALS_PER_STEP:
                break

    def on_message(self, topic, msg):
        """An incoming message (umqtt.simple's callback): reversal acks from the back office."""
        if bytes(topic) != self.t_ack.encode() or len(msg) > _ACK_MAX:
            self.bad_acks += 1
            return
        try:
            sid = json.loads(msg)["reversal"]
        except (ValueError, KeyError, TypeError):
            self.bad_acks += 1
            return
        book = self.book
        if book is None or not isinstance(sid, int) or sid not in book.reversals():
            self.bad_acks += 1  # unknown or already acked: at-least-once delivery repeats acks too
            return
        book.reversal_acked(sid)
        self._rev_due.pop(sid, None)
        self.acks += 1

    def _link_up(self):
        w = self.wifi
        if w is None:
            return True
        if w.isconnected():
            return True
        try:
            w.connect(self.cfg.ssid, self.cfg.wifi_password())  # returns at once; joins in the background
        except OSError:
            pass
        return False

    def _failed(self, e, now):
        self.failures += 1
        # The error's type and errno only: a message could quote a server reply or a credential.
        self.last_error = "%s %s" % (type(e).__name__, e.args[0] if e.args and isinstance(e.args[0], int) else "")
        if self.session is not None:
            self.session.close()
        self._next_try = time.ticks_add(now, self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_MS)

    async def run(self):
        while True:
            self.step()
            await asyncio.sleep(TICK_S)


def start(cfg, status_fn, book, busy_fn, queue_path="telemetry.q"):
    """The telemetry part of a terminal: Wi-Fi (on a board that has it) and the MQTT session."""
    from posguard import mqtt_link

    wifi = None
    if cfg.ssid is not None:
        try:
            import network

            wifi = network.WLAN(network.STA_IF)
            wifi.active(True)
        except (ImportError, AttributeError, OSError):
            wifi = None
    t = Telemetry(cfg, status_fn, book, None, queue_path, busy_fn, wifi)
    t.session = mqtt_link.Session(cfg, "posguard-" + cfg.terminal, t.on_message)
    return t
