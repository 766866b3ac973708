# A trading day on a simulated board (MicroPython subset: the same day runs on CPython and inside the
# unix port). The world: the battery model as the board's supply (behind a connector that can be
# pulled or bounce), the thermal printer model, the journal's NOR flash, and a cashier app on the host
# link. Customers arrive at a seeded random rate with item lists in Chinese and English; payments
# approve, decline or time out; the paper runs out once; the power is cut at random moments. The
# firmware runs unchanged through boot.py and main.py (sim_board.Board.run), and only the printer's
# output and the journal on flash are used to judge the day afterwards.
# The battery story: the pack (a preset of the reference cell family, sim_battery.PACKS) may start the day
# part-charged; the cashier app shows the firmware's own low-battery warning from `status`; when the
# terminal refuses a sale for battery, the merchant plugs the charger a minute or two later and leaves it
# plugged to the close. At the first refusal the simulator looks ahead on a copy of its own pack to say how
# much charge a standard receipt could still have used (the physical limit the firmware is judged against).
import json
import os
import sys
from array import array

import sim_battery
import sim_board
import sim_host
import sim_printer
import sim_world
from sim_rng import Rng

_MPY = sys.implementation.name == "micropython"

# (name, price in fen): a small cafe's menu, names as a Chinese cashier app sends them.
MENU = (
    ("\u62ff\u94c1 Latte", 1800),  # 拿铁
    ("\u7f8e\u5f0f\u5496\u5561 Americano", 1500),  # 美式咖啡
    ("Croissant", 1200),
    ("\u4e4c\u9f99\u8336 Oolong Tea", 900),  # 乌龙茶
    ("\u725b\u8089\u9762 Beef Noodles", 2800),  # 牛肉面
    ("Mineral Water \u77ff\u6cc9\u6c34", 300),  # 矿泉水
    ("Ham Sandwich", 2500),
    ("\u677e\u997c Muffin", 1100),  # 松饼
    ("\u9965\u5b50 Dumplings x10", 2200),  # 饺子
    ("Orange Juice", 1600),
    ("\u5976\u8336 Milk Tea", 1300),  # 奶茶
    ("\u5305\u5b50 Steamed Bun", 400),  # 包子
    ("Green Tea \u7eff\u8336", 800),  # 绿茶
    ("Cheesecake", 2600),
    ("\u626c\u5dde\u7092\u996d Fried Rice", 2400),  # 扬州炒饭
    ("\u8c46\u6d46 Soy Milk", 500),  # 豆浆
)
METHODS = (("card", 70), ("qr", 20), ("cash", 10))  # share in %
P_DECLINE = 0.07
P_TIMEOUT = 0.04
P_CANCEL = 0.03
OPENING_H = 7.0  # the day starts at 07:00 (receipt times)
SAMPLE_S = 60  # the plot's resolution
HEAP_EVERY_S = 7  # unix port: live-heap samples (odd period: not locked to the firmware's own timers)
MAX_BOOTS = 500
_MAX_EVENTS = 400  # day events kept for the plot/report (bounded)
_MAX_QUEUE = 6  # customers waiting at the counter; more walk away
_MAX_SALES = 4096  # sale ids per day the bookkeeping has room for (preallocated: bounded RAM)
_KINDS = ("original", "duplicate", "void", "partial")
# The close ends the simulation, not the terminal: a receipt started after the last reset whose mechanism
# ran this recently is still printing (a receipt takes 3-9 s, pacing waits ~4 s after a pause), not cut.
# One stuck longer (a printer that stopped mid-receipt) is judged as cut: the judge is never kinder.
_CLOSE_ACTIVE_S = 30
_F_APPROVED = 1
_F_HOST_REPRINT = 2
_F_REVERSAL = 4
_F_ACKED = 8
_STATE_CODES = ("", "OK", "LOW", "CRITICAL", "SHUTDOWN", "FAULT")


def receipt_markers():
    """(copy, void, payment) markers: each the byte strings a printed line holds when it carries that
    label of posguard/receipt.py (LABELS, without its "***" frame), in every language, as the printer
    gets it: ASCII, GB18030 through the firmware's own table (gb.py; "?" where it has no code, like the
    encoder) and UTF-8. Read from the firmware, so a reworded label cannot silently change the report."""
    import sim_firmware

    labels = sim_firmware.borrow("posguard.receipt").LABELS
    gb = sim_firmware.borrow("posguard.gb")
    table = gb.GBTable(gb.data_path(gb.DATA_FILE))
    out = []
    try:
        for key in ("dup", "void", "paid"):
            needles = []
            for lang in labels:
                text = labels[lang][key].strip("* ")
                gb_bytes = bytearray()
                for ch in text:
                    cp = ord(ch)
                    code = table.code(cp) if cp >= 0x80 else cp
                    if code > 0xFF:
                        gb_bytes.append(code >> 8)
                    gb_bytes.append(code & 0xFF if code else 0x3F)
                for b in (bytes(gb_bytes), text.encode()):
                    if b not in needles:
                        needles.append(b)
            out.append(tuple(needles))
    finally:
        table.close()
    return out


_DUP, _VOID, _PAID = receipt_markers()


LOOKAHEAD_EVERY_S = 90  # the reference duty cycle's receipt spacing (tools/posguard_tools/traces/README.md)


def printer_pack_a(profile, dots, rail_v):
    """Pack-side strobe current of `dots` heated at once, as sim_printer._set_load draws it."""
    head_a = dots * (sim_printer.BOOST_V if profile["power"]["boost_converter"] else rail_v) / sim_printer.R_DOT_OHM
    if profile["power"]["boost_converter"]:
        return sim_printer.BOOST_V * head_a / (max(0.5, rail_v) * sim_printer.BOOST_EFF)
    return head_a


def physical_limit(battery, profile, mean_a, every_s=LOOKAHEAD_EVERY_S):
    """The physical limit of this board's standard receipt on (a copy of) the pack: sim_battery.physical_limit
    with the default heat's strobe peak as the simulated printer draws it, the profile's idle current,
    receipt length and brownout level."""
    p = profile["power"]
    dots = profile["policy"]["heat_dots"]

    def peak(v):
        return printer_pack_a(profile, dots, v)

    return sim_battery.physical_limit(battery, p["idle_a"], mean_a, peak, int(p["receipt_s"]), p["brownout_v"],
                                      every_s)


def arrival_rate_per_h(hour):
    """Customers per hour over the day: a breakfast and a lunch peak (a seeded Poisson process)."""
    if 7.5 <= hour < 9.5:
        return 40.0
    if 11.5 <= hour < 13.5:
        return 55.0
    if 17.0 <= hour < 18.5:
        return 30.0
    return 14.0


class Day(sim_world.World):
    def __init__(self, profile, fs_dir, firmware_dir, hours=12.0, seed=1, cuts=3, aged=False, temp_c=25.0,
                 policy="posguard", soc=1.0, pack=None, charger=True):
        self.hours = hours
        self.rng = Rng(seed)
        self.policy = policy
        self.fs_dir = fs_dir
        with open(fs_dir + "/board.json", "w") as f:
            f.write(json.dumps(profile))
        if policy == "naive":
            firmware_dir = _naive_entry(fs_dir, firmware_dir)
        # The world (sim_world): clock, power, board, the pack behind its connector, printer, journal, host.
        sim_world.World.__init__(self, profile, fs_dir, firmware_dir, seed=seed)
        if pack is None:
            pack = "aged85" if aged else "fresh"  # the old --aged is the aged85 preset now
        self.pack_name = pack
        self.start_soc = soc
        self.temp_c = temp_c
        self.charger_allowed = charger
        self.add_pack(sim_battery.Battery.of_pack(pack, cells=profile["battery"]["cells_series"], soc=soc,
                                                  temp_c=temp_c))
        self.add_printer()
        # Unix port: a finished sample receipt goes to a file, not into the firmware's heap areas (ten KB
        # of printed lines that no board holds, which would count as the firmware's peak).
        self.tracker = ReceiptTracker(self._commit_receipt, fs_dir if _MPY else None)
        orig_record = self.printer._record
        tracker = self.tracker

        printer = self.printer

        day = self
        self.receipt_since_us = 0  # when the receipt the tracker holds now started (world time)

        def record(rec):
            orig_record(rec)
            n = tracker.starts
            tracker.feed(rec)
            if tracker.starts != n:
                day.receipt_since_us = day.clock.now_us()
            if len(printer.printed) > 32:
                del printer.printed[:16]  # the tracker has seen them: keep the model's log small

        self.printer._record = record
        self.add_journal()
        self.peer = self.add_host()
        self.client = sim_host.HostClient(self.peer, self.clock)
        self._wrap_power_cut()
        # counters (what the cashier saw)
        self.next_id = 1000 + seed * 10000 % 100000
        self.base_id = self.next_id
        self.flags = bytearray(_MAX_SALES)
        self.printed = bytearray(4 * _MAX_SALES)  # per sale: originals, copies, void slips, partial prints
        n = int(hours * 3600 / SAMPLE_S) + 2
        self.s_t = array("f", bytes(4 * n))
        self.s_v = array("f", bytes(4 * n))
        self.s_soc = array("f", bytes(4 * n))
        self.s_fw = array("f", bytes(4 * n))
        self.s_state = bytearray(n)
        self.n_samples = 0
        self.n_approved = 0
        self.n_reversals = 0
        self.n_acked = 0
        self.queue = []
        self.busy = False
        self.c = {
            "arrived": 0, "walked_away": 0, "attempted": 0, "completed": 0, "declined": 0, "voided": 0,
            "payment_timeouts": 0, "voided_by_power_loss": 0, "reversals_acked": 0, "host_reprints": 0,
            "bad_lines_sent": 0, "bad_lines_refused": 0, "abandoned": 0,
        }
        self.refused = {}
        self.events = []
        self.on_progress = None  # fn(fraction of the day done), called once a simulated minute
        self.on_end = None  # fn() called when the day is over, before the report is built
        self.fw = {"soc": None, "state": None}
        self.brownouts_printing = 0
        self.cut_log = []
        self.paper_out_at = None
        self.paper_reloaded = 0
        self.peak_heap = 0
        self.last_receipt_soc = None
        # the battery story
        self.s_chg = bytearray(n)
        self.warnings = 0  # status replies carrying the firmware's low-battery warning
        self.first_warning = None  # [hours, text, receipts_left]
        self._warned = False
        self.last_receipts_left = None
        self.first_battery_refusal = None  # [hours, sim SoC %, possible receipts, unused share %]
        self.charger_at_us = None
        self._charger_planned = False
        self.n_complete = 0  # originals and copies finished on paper
        self.before_charger = None  # [receipts, discharged Ah] when the charger went in
        self.approved_after_charger = 0

    # -- world events ------------------------------------------------------------------------------
    def _note(self, kind, detail=""):
        if len(self.events) < _MAX_EVENTS:
            self.events.append([round(self.clock.now_us() / 3600e6, 4), kind, detail])

    def _wrap_power_cut(self):
        power = self.power
        orig = power.cut
        day = self

        def cut(reason="power pulled"):
            if power.on:
                busy = day.printer._op_end is not None or power.loads.get("printer", 0.0) > 0.0
                if reason.startswith("brownout"):
                    day._note("brownout", reason)
                    if busy:
                        day.brownouts_printing += 1
                day.cut_log.append([round(day.clock.now_us() / 3600e6, 4), reason, busy])
            orig(reason)

        power.cut = cut

    def _schedule(self, t_s, fn):
        self.clock.call_at_us(int(t_s * 1000000), fn)

    def _plan(self):
        end_s = self.hours * 3600
        rng = self.rng
        self._schedule(rng.expo(3600.0 / arrival_rate_per_h(OPENING_H)), self._arrive)
        self._schedule(SAMPLE_S, self._sample)
        if _MPY:
            self._schedule(HEAP_EVERY_S, self._heap_tick)
        self._schedule(300, self._status_poll)
        # the paper runs out once, somewhere in the middle of the day: a short roll is loaded
        self._schedule(rng.uniform(0.3, 0.6) * end_s, self._short_roll)
        self._schedule(rng.uniform(0.2, 0.8) * end_s, self._host_reprint)
        self._schedule(rng.uniform(0.1, 0.9) * end_s, self._bad_lines)
        for k in range(self.cuts_wanted):
            t = rng.uniform(0.05, 0.95) * end_s
            if k % 3 == 0:
                # every third cut waits for a receipt on the printer: the path that must never lose a sale
                self._schedule(t, self._cut_mid_receipt)
                continue
            bounce = rng.random() < 0.4
            self._schedule(t, self._bounce if bounce else self._pull)

    def _pull(self):
        # The pack is pulled and put back 5-40 s later.
        self._note("pack pulled")
        self.conn.connected = False
        self._schedule(self.clock.now_us() / 1e6 + self.rng.uniform(5, 40), self._reconnect)
        self.power.cut("pack pulled")

    def _bounce(self):
        # A loose connector: contact lost for a few ms, twice (the board resets on the first).
        self._note("connector bounce")
        self.conn.connected = False
        self._schedule(self.clock.now_us() / 1e6 + 0.02, self._reconnect)
        self.power.cut("connector bounce")

    def _cut_mid_receipt(self):
        if self.printer._op_end is not None and self.power.on:
            return self._bounce() if self.rng.random() < 0.5 else self._pull()
        self._schedule(self.clock.now_us() / 1e6 + 0.25, self._cut_mid_receipt)

    def _reconnect(self):
        self.conn.connected = True

    def _short_roll(self):
        left = 150.0  # mm: the roll ends within the next couple of receipts
        if self.printer.paper_mm_left > left:
            self.printer.paper_mm_left = left
            self._note("roll nearly empty")
        self._schedule(self.clock.now_us() / 1e6 + 5, self._watch_paper)

    def _watch_paper(self):
        if self.printer.paper_mm_left <= 0:
            self.paper_out_at = self.clock.now_us()
            self._note("paper out")
            # the cashier notices and changes the roll within 1-4 minutes
            self._schedule(self.clock.now_us() / 1e6 + self.rng.uniform(60, 240), self._reload)
            return
        self._schedule(self.clock.now_us() / 1e6 + 5, self._watch_paper)

    def _reload(self):
        self.printer.load_paper()
        self.paper_reloaded += 1
        self._note("paper loaded")

    def _sample(self):
        t_h = self.clock.now_us() / 3600e6
        v = self.power.rail_v() if self.power.on else self.conn.terminal_v(0.0)
        i = self.n_samples
        if i < len(self.s_t):
            self.s_t[i] = t_h
            self.s_v[i] = v
            self.s_soc[i] = self.battery.soc() * 100
            fw = self.fw["soc"]
            self.s_fw[i] = -1.0 if fw is None else fw
            st = self.fw["state"]
            self.s_state[i] = _STATE_CODES.index(st) if st in _STATE_CODES else 0
            self.s_chg[i] = 1 if self.battery.charge_a > 0 else 0
            self.n_samples = i + 1
        if self.on_progress is not None:
            self.on_progress(t_h / self.hours)
        self._heap()
        self._schedule(self.clock.now_us() / 1e6 + SAMPLE_S, self._sample)

    def _heap(self):
        # Live data only (after a collection): garbage waiting for the next GC is not a need.
        if _MPY:
            import gc

            import sim_heap

            gc.collect()
            sim_heap.sample_peak()

    def _heap_tick(self):
        self._heap()
        self._schedule(self.clock.now_us() / 1e6 + HEAP_EVERY_S, self._heap_tick)

    # -- the cashier ---------------------------------------------------------------------------
    def _arrive(self):
        self.c["arrived"] += 1
        hour = OPENING_H + self.clock.now_us() / 3600e6
        nxt = self.rng.expo(3600.0 / arrival_rate_per_h(hour))
        self._schedule(self.clock.now_us() / 1e6 + nxt, self._arrive)
        if not self.power.on and self._asleep():
            # The terminal is dark: its boot check put it to deep sleep for battery. The merchant sees it.
            if self.first_battery_refusal is None:
                self._note("terminal asleep", "battery")
            self._battery_refusal()
        if len(self.queue) >= _MAX_QUEUE:
            self.c["walked_away"] += 1
            return
        self.queue.append(1)
        if not self.busy:
            self._next_customer()

    def _next_customer(self):
        if not self.queue or self.busy:
            return
        self.queue.pop(0)
        self.busy = True
        self._ring_up(None)

    def _done(self):
        self.busy = False
        self._schedule(self.clock.now_us() / 1e6 + self.rng.uniform(2, 6), self._next_customer)

    def _ring_up(self, items):
        rng = self.rng
        if items is None:
            items = []
            for _ in range(rng.randint(1, 5)):
                name, price = MENU[rng.randint(0, len(MENU) - 1)]
                items.append({"name": name, "qty": rng.randint(1, 3) if rng.random() < 0.3 else 1, "price": price})
        sid = self.next_id
        self.next_id += 1
        self.c["attempted"] += 1
        sale = {"id": sid, "items": items}
        self.client.open_sale(sid, items, self._wall(), lambda r: self._after_open(sale, r))

    def _wall(self):
        mins = int(OPENING_H * 60 + self.clock.now_us() // 60000000)
        return "2026-11-24 %02d:%02d" % ((mins // 60) % 24, mins % 60)

    def _refused(self, rep):
        code = rep.get("err") if rep is not None else "NO_REPLY"
        self.refused[code] = self.refused.get(code, 0) + 1
        self._note("refused", code if rep is None else code + ": " + str(rep.get("msg", ""))[:60])
        if code == "BATTERY_CRITICAL":
            self._battery_refusal()
        return code

    # -- the battery story -----------------------------------------------------------------------
    def _battery_refusal(self):
        if self.first_battery_refusal is None:
            busy = self.printer.busy_us / 1e6
            p = self.profile["power"]
            mean = self.printer.charge_as / busy if busy > 1.0 else p["print_a"]
            n, share = physical_limit(self.battery, self.profile, mean)
            self.first_battery_refusal = [round(self.clock.now_us() / 3600e6, 4), round(self.battery.soc() * 100, 2),
                                          n, round(share * 100, 2)]
        if self.charger_allowed and not self._charger_planned:
            # The merchant reads the refusal and plugs the charger within a minute or two.
            self._charger_planned = True
            self._later(self.rng.uniform(30, 120), self._plug_charger)

    def _asleep(self):
        r = self.board.resets
        return bool(r) and r[-1][1] == "DeepSleep"

    def _plug_charger(self):
        self.charger_at_us = self.clock.now_us()
        self.before_charger = [self.n_complete, self.conn.discharged_ah]
        self.pack.set_charger(self.profile["power"]["charge_a"])
        self._note("charger plugged", "%.1f A" % self.profile["power"]["charge_a"])

    def _battery_status(self, b):
        w = b.get("warning")
        self.last_receipts_left = b.get("receipts_left")
        if w:
            self.warnings += 1
            if not self._warned:
                self._note("battery warning", str(w)[:60])
            if self.first_warning is None:
                self.first_warning = [round(self.clock.now_us() / 3600e6, 4), str(w), b.get("receipts_left")]
        self._warned = bool(w)

    def _after_open(self, sale, rep):
        if rep is None:
            self.c["abandoned"] += 1
            return self._done()
        if not rep["ok"]:
            self._refused(rep)
            return self._done()
        if self.rng.random() < P_CANCEL:
            return self._later(self.rng.uniform(5, 20), lambda: self._void(sale, "customer cancelled"))
        self._later(self.rng.uniform(4, 15), lambda: self._pay(sale))

    def _later(self, s, fn):
        self._schedule(self.clock.now_us() / 1e6 + s, fn)

    def _pay(self, sale):
        r = self.rng.randint(0, 99)
        method = "card"
        acc = 0
        for m, share in METHODS:
            acc += share
            if r < acc:
                method = m
                break
        sale["method"] = method
        self.client.pay(sale["id"], method, lambda rep: self._after_pay(sale, rep))

    def _after_pay(self, sale, rep):
        if rep is None:
            self.c["abandoned"] += 1
            return self._done()
        if not rep["ok"]:
            if rep.get("state") in ("VOIDED", "REVERSAL_PENDING"):
                return self._lost_to_power(sale, rep)
            self._refused(rep)
            return self._void(sale, "refused: " + rep.get("err", "?").lower())
        # the payment host answers (card/qr) or the cashier counts the cash
        x = self.rng.random()
        if sale["method"] != "cash" and x < P_TIMEOUT:
            self.c["payment_timeouts"] += 1
            return self._later(30.0, lambda: self._void(sale, "payment timeout"))
        if sale["method"] != "cash" and x < P_TIMEOUT + P_DECLINE:
            return self._later(self.rng.uniform(1.5, 6), lambda: self._decline(sale))
        self._later(self.rng.uniform(1.5, 6), lambda: self._approve(sale))

    def _approve(self, sale):
        rng = self.rng
        auth = "%06d" % rng.randint(0, 999999)
        last4 = "%04d" % rng.randint(0, 9999) if sale["method"] == "card" else None
        self.client.approve(sale["id"], auth, last4, lambda rep: self._after_approve(sale, rep))

    def _after_approve(self, sale, rep):
        if rep is None:
            self.c["abandoned"] += 1
            return self._done()
        if rep["ok"]:
            self.c["completed"] += 1
            self._flag(sale["id"], _F_APPROVED)
            self.n_approved += 1
            if self.charger_at_us is not None:
                self.approved_after_charger += 1
            self.last_receipt_soc = self.battery.soc() * 100
            return self._done()
        if rep.get("state") in ("VOIDED", "REVERSAL_PENDING"):
            return self._lost_to_power(sale, rep)
        self._refused(rep)
        self._done()

    def _decline(self, sale):
        def after(rep):
            if rep is not None and rep["ok"]:
                self.c["declined"] += 1
            elif rep is not None and rep.get("state") in ("VOIDED", "REVERSAL_PENDING"):
                return self._lost_to_power(sale, rep)
            self._done()

        self.client.decline(sale["id"], None, after)

    def _void(self, sale, reason):
        def after(rep):
            if rep is not None and rep["ok"]:
                self.c["voided"] += 1
                if rep.get("state") == "REVERSAL_PENDING":
                    self._reverse(sale["id"])
            self._done()

        self.client.void(sale["id"], reason, after)

    def _lost_to_power(self, sale, rep):
        # The terminal rebooted and its recovery voided the sale: reverse if needed, ring it up again.
        self.c["voided_by_power_loss"] += 1
        if rep.get("state") == "REVERSAL_PENDING":
            self._reverse(sale["id"])
        self._ring_up(sale["items"])

    def _reverse(self, sid):
        if self._has_flag(sid, _F_REVERSAL):
            return
        self._flag(sid, _F_REVERSAL)
        self.n_reversals += 1
        # the acquirer answers the reversal advice within 5-30 s
        self._later(self.rng.uniform(5, 30), lambda: self._ack(sid))

    def _ack(self, sid):
        def after(rep):
            if rep is not None and rep["ok"] and not self._has_flag(sid, _F_ACKED):
                self._flag(sid, _F_ACKED)
                self.n_acked += 1
                self.c["reversals_acked"] += 1

        self.client.ack_reversal(sid, after)

    def _status_poll(self):
        def after(rep):
            if rep is not None and rep.get("ok"):
                b = rep.get("battery") or {}
                self.fw["soc"] = b.get("soc_pct")
                self.fw["state"] = b.get("state")
                self._battery_status(b)
                for sid in rep.get("reversals") or ():
                    self._reverse(sid)

        if not self.client.busy():
            self.client.status(after)
        self._later(300, self._status_poll)

    def _host_reprint(self):
        def after(rep):
            if rep is not None and rep.get("ok"):
                self.c["host_reprints"] += 1
                self._flag(rep.get("id"), _F_HOST_REPRINT)

        self.client.reprint(None, after)

    def _bad_lines(self):
        # A buggy app build: garbage, an unknown op, and a full card number in an item name.
        lines = (b"\x00\xff garbage\n", b'{"op":"teleport"}\n',
                 b'{"op":"open","id":99,"items":[{"name":"card 4111111111111111","price":100}]}\n')
        peer = self.peer
        saved = peer.on_reply
        day = self

        def count(rep):
            if not rep.get("ok"):
                day.c["bad_lines_refused"] += 1

        def restore():
            peer.on_reply = saved

        if self.client.busy():
            return self._later(30, self._bad_lines)
        peer.on_reply = count
        for ln in lines:
            self.c["bad_lines_sent"] += 1
            peer.send_raw(ln)
        self._later(2.0, restore)

    # -- the run --------------------------------------------------------------------------------
    def preallocate(self):
        """Unix port: allocate the simulator's own storage before the firmware's heap is pinned."""
        flash = self.board.partitions[self.profile["journal"]["label"]]
        for s in range(flash.sectors):
            flash._sector_buf(s)  # reads erased (0xFF) exactly as an unallocated sector does
        # The page history dict at its full size (a deleted key keeps its slot): growing it later would
        # take a block of a few KB out of the firmware's heap, which a board's flash chip never does.
        touched = flash._touched
        fresh = [p for p in range(flash.size // 256) if p not in touched]
        for p in fresh:
            touched[p] = 0
        for p in fresh:
            del touched[p]

    def run(self, cuts=3):
        self.cuts_wanted = cuts
        self._plan()
        # A day has a handful of boots (cuts, deep-sleep wakes); hundreds are a boot loop: stop and say so.
        summary = self.board.run(int(self.hours * 3600 * 1000), max_boots=MAX_BOOTS)
        self._heap()
        if self.on_end is not None:
            self.on_end()  # the unix port releases the heap ballast: the report is not the firmware's
        return self.report(summary)

    # -- bookkeeping (preallocated, indexed by sale id) -------------------------------------------
    def _slot(self, sid):
        if type(sid) is not int:
            return -1
        i = sid - self.base_id
        return i if 0 <= i < _MAX_SALES else -1

    def _flag(self, sid, f):
        i = self._slot(sid)
        if i >= 0:
            self.flags[i] |= f

    def _has_flag(self, sid, f):
        i = self._slot(sid)
        return i >= 0 and bool(self.flags[i] & f)

    def _commit_receipt(self, sid, kind, complete):
        i = self._slot(sid)
        if i < 0:
            return
        k = _KINDS.index(kind) if complete else 3
        if k < 2:
            self.n_complete += 1
        j = 4 * i + k
        if self.printed[j] < 255:
            self.printed[j] += 1

    def series(self):
        n = self.n_samples
        out = []
        for i in range(n):
            fw = self.s_fw[i]
            out.append([round(self.s_t[i], 4), round(self.s_v[i], 4), round(self.s_soc[i], 2),
                        None if fw < 0 else round(fw, 1), _STATE_CODES[self.s_state[i]] or None, self.s_chg[i]])
        return out

    def _printing_at_close(self, resets):
        """The sale whose receipt is on the printer at the close, or None: it started after the last reset,
        is not finished, and the mechanism ran within _CLOSE_ACTIVE_S. Taken out of the tracker (not a
        partial print): nothing cut it, the day's end only stopped the simulation."""
        sid = self.tracker.in_progress()
        if sid is None:
            return None
        now = self.clock.now_us()
        last_reset_us = resets[-1][0] * 1000 if resets else -1
        if self.receipt_since_us <= last_reset_us or now - self.printer.last_end_us > _CLOSE_ACTIVE_S * 1000000:
            return None
        self.tracker.drop()
        return sid

    def report(self, summary):
        at_close = self._printing_at_close(summary["resets"])
        self.tracker.flush()
        ids = [self.base_id + i for i in range(self.next_id - self.base_id) if self.flags[i] & _F_APPROVED]
        states = journal_states(self.board, ids)
        lost = []
        pending = []
        twice = []
        originals = copies = voids = partials = 0
        interrupted = interrupted_once = 0
        for i in range(self.next_id - self.base_id):
            voids += self.printed[4 * i + 2]
            partials += self.printed[4 * i + 3]
        for sid in ids:
            i = sid - self.base_id
            o = self.printed[4 * i]
            # A copy the app asked for is not a recovery copy; if it never printed (the firmware had the
            # original still queued, e.g. parked for battery), there is nothing to discount.
            d = max(0, self.printed[4 * i + 1] - (1 if self.flags[i] & _F_HOST_REPRINT else 0))
            part = self.printed[4 * i + 3]
            originals += o
            copies += max(0, d)
            if o + d == 0:
                st = states.get(sid)
                if st in ("PAID", "PRINTING"):
                    pending.append(sid)  # still queued in the journal: prints at the next boot
                else:
                    lost.append([sid, st, part])
            if o > 1 or d > 1:
                twice.append(sid)
            if sid == at_close and o + d == 0:
                pass  # its receipt is on the printer at the close (reported as printing_at_close)
            elif d > 0 or (part and o == 0):
                # interrupted: its original never finished (or it was PAID when the power went)
                interrupted += 1
                if d == 1:
                    interrupted_once += 1
        # Receipts per charge: on the pack alone (up to the charger), per full pack of charge drawn.
        n_pack, dis_ah = self.before_charger or [self.n_complete, self.conn.discharged_ah]
        used = dis_ah / self.battery.usable_ah()
        n_receipts = n_pack
        now = self.clock.now_us()
        charger_h = 0.0 if self.charger_at_us is None else (now - self.charger_at_us) / 3600e6
        refusal = self.first_battery_refusal
        return {
            "hours": self.hours,
            "seed": self.seed,
            "policy": self.policy,
            "board": self.profile["name"],
            "outcome": summary["outcome"],
            "boots": summary["boots"],
            "counts": self.c,
            "refused": self.refused,
            "approved": len(ids),
            "receipts_original": originals,
            "receipts_copy": copies,
            "void_slips": voids,
            "partial_prints": partials,
            "interrupted_paid": interrupted,
            "interrupted_reprinted_once": interrupted_once,
            "printed_twice": twice,
            "lost": lost,
            "pending_reprint": pending,
            "printing_at_close": [] if at_close is None else [at_close],
            "reversals_pending": self.n_reversals - self.n_acked,
            "brownouts": self.power.brownouts,
            "brownouts_printing": self.brownouts_printing,
            "cuts": self.cut_log,
            "paper_reloads": self.paper_reloaded,
            "soc_end_pct": round(self.battery.soc() * 100, 2),
            "soc_last_receipt_pct": None if self.last_receipt_soc is None else round(self.last_receipt_soc, 2),
            "receipts_per_charge": round(n_receipts / used, 1) if used > 0.01 else None,
            "pack": self.pack_name,
            "soc_start_pct": round(self.start_soc * 100, 1),
            "battery_warnings": self.warnings,
            "first_warning": self.first_warning,
            "first_battery_refusal": self.first_battery_refusal,
            "unused_at_first_refusal_pct": None if refusal is None else refusal[3],
            "charger_plugged_h": None if self.charger_at_us is None else round(self.charger_at_us / 3600e6, 4),
            "charger_h": round(charger_h, 3),
            "approved_after_charger": self.approved_after_charger,
            "printer_dropped_bytes": self.printer.dropped,
            "host_timeouts": self.client.timeouts,
            "resets": [[round(r[0] / 3600000, 4), r[1], str(r[2])] for r in summary["resets"]],
            "events": self.events,
            "series": self.series(),
            "samples": self.tracker.samples_json(),
        }


class ReceiptTracker:
    """What the printer puts on paper, cut into receipts as it prints. A receipt starts at its header
    line (POSGUARD); marker lines right before it say copy or void; an original or a copy is complete
    once its payment line is on paper (and a copy's bottom marker). Each finished or abandoned receipt
    is handed to commit(sale_id, kind, complete): nothing per receipt is kept here (bounded RAM)."""

    def __init__(self, commit, spill=None):
        self.commit = commit
        self.spill = spill  # a folder: each finished sample is written there and dropped from RAM
        self._cur = None  # [id, kind, complete, paid, lines]
        self.starts = 0  # receipts started so far (the day stamps each start's time)
        self._prev = []
        self._prev_recs = []
        self._recs = []  # the current receipt's printed lines, kept only until a sample of its kind exists
        self.samples = {}  # kind -> printed lines of the first complete receipt of that kind

    def feed(self, rec):
        if rec is None or rec[0] != "text":
            return
        line = b"".join(seg[0] for seg in rec[2])
        prev = self._prev
        cur = self._cur
        if b"POSGUARD" in line:
            # A copy's top is marker, note, header; a void slip's is marker, header. The previous
            # receipt's bottom (note, marker) must not count: its marker is the line right before.
            kind = "original"
            if prev and _has(prev[-1], _VOID):
                kind = "void"
            elif len(prev) >= 2 and _has(prev[-2], _DUP) and not _has(prev[-1], _DUP):
                kind = "duplicate"
            # Those top lines belong to the receipt starting now, not to the sample being closed.
            top = {"void": 1, "duplicate": 2}.get(kind, 0)
            if top and len(self._recs) >= top:
                del self._recs[-top:]
            self.flush()
            self._cur = [None, kind, False, False, 0]
            self.starts += 1
            self._recs = []
            if kind not in self.samples:
                self._recs = self._prev_recs[-(1 if kind == "void" else 2):] if kind != "original" else []
                self._recs.append(rec)
        elif cur is not None:
            cur[4] += 1
            if cur[1] not in self.samples and len(self._recs) < 80:
                self._recs.append(rec)
            if cur[0] is None and cur[4] == 2:
                cur[0] = _trailing_int(line)
            if _has(line, _PAID):
                cur[3] = True
                cur[2] = cur[1] == "original"
            elif cur[1] == "duplicate" and cur[3] and _has(line, _DUP):
                cur[2] = True
                del prev[:]  # the bottom marker belongs to this copy, not to the next receipt
                self._prev_recs = []
                return
            elif cur[1] == "void" and cur[4] >= 5:
                cur[2] = True
        prev.append(line)
        if len(prev) > 3:
            prev.pop(0)
        self._prev_recs.append(rec)
        if len(self._prev_recs) > 3:
            self._prev_recs.pop(0)

    def in_progress(self):
        """The sale id of a receipt started and not finished, or None."""
        cur = self._cur
        return cur[0] if cur is not None and not cur[2] else None

    def drop(self):
        """Forget the receipt in progress without judging it (the day's close: it is still printing)."""
        self._cur = None
        self._recs = []

    def _keep(self, kind, sid, recs):
        if self.spill is None:
            return [sid, recs]
        path = self.spill + "/sim-sample-" + kind + ".json"
        with open(path, "w") as f:  # a line at a time: no allocation the size of the receipt
            f.write(json.dumps(sid))
            for rec in recs:
                f.write("\n")
                f.write(json.dumps(_sample_line(rec)))
        return path

    def samples_json(self):
        """The samples as _samples_json gives them, read back from their files when spilled."""
        out = {}
        for kind in self.samples:
            v = self.samples[kind]
            if type(v) is str:
                with open(v) as f:
                    rows = [json.loads(ln) for ln in f.read().split("\n")]
                out[kind] = {"id": rows[0], "lines": rows[1:]}
            else:
                out.update(_samples_json({kind: v}))
        return out

    def flush(self):
        cur = self._cur
        self._cur = None
        if cur is not None and cur[2] and cur[1] not in self.samples and self._recs:
            self.samples[cur[1]] = self._keep(cur[1], cur[0], self._recs)
        self._recs = []
        if cur is not None and cur[0] is not None:
            self.commit(cur[0], cur[1], cur[2])


def parse_receipts(printed):
    """[(sale id, kind, complete)] for a list of printer records (tests)."""
    out = []
    t = ReceiptTracker(lambda sid, kind, complete: out.append((sid, kind, complete)))
    for rec in printed:
        t.feed(rec)
    t.flush()
    return out


def _sample_line(rec):
    """One printed line of a sample receipt: [align, [[hex bytes, style key], ...]]."""
    import binascii

    segs = []
    for seg in rec[2]:
        segs.append([binascii.hexlify(seg[0]).decode(), list(seg[1]) if seg[1] is not None else None])
    return [rec[1], segs]


def _samples_json(samples):
    """Sample receipts as printed: kind -> {"id", "lines": [[align, [[hex bytes, style key], ...]], ...]}."""
    out = {}
    for kind in samples:
        sid, recs = samples[kind]
        out[kind] = {"id": sid, "lines": [_sample_line(rec) for rec in recs]}
    return out


def _has(line, needles):
    for n in needles:
        if n in line:
            return True
    return False


def _trailing_int(line):
    i = len(line)
    while i > 0 and 48 <= line[i - 1] <= 57:
        i -= 1
    return int(line[i:]) if i < len(line) else None


def journal_states(board, ids):
    """Each sale's state as the journal on flash has it after the day (mounted read-only)."""
    import esp32

    from posguard import journal, sales

    sim_board.current = board
    board.power.on = True
    out = {}
    try:
        part = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=board.profile["journal"]["label"])[0]
        book = sales.SaleBook(journal.Journal(part))
        book.mount(auto_format=False)
        for sid in ids:
            try:
                out[sid] = book.state(sid)
            except Exception:
                out[sid] = None
    finally:
        board.power.on = False
    return out


def _naive_entry(fs_dir, firmware_dir):
    """A boot folder whose main.py runs the same firmware with the naive power policy (the baseline the
    issue compares against): a fixed voltage threshold, no load compensation, no heat scaling."""
    d = fs_dir + "/naive-entry"
    try:
        os.mkdir(d)
    except OSError:
        pass
    with open(firmware_dir + "/boot.py") as f:
        boot = f.read()
    with open(d + "/boot.py", "w") as f:
        f.write(boot)
    with open(d + "/main.py", "w") as f:
        f.write("import sim_naive\nfrom posguard import app\n\napp.main(wrap_monitor=sim_naive.NaiveMonitor)\n")
    return d


def run_day(profile, fs_dir, firmware_dir, hours=12.0, seed=1, cuts=3, aged=False, temp_c=25.0, policy="posguard",
            soc=1.0, pack=None, charger=True):
    day = Day(profile, fs_dir, firmware_dir, hours, seed, cuts, aged, temp_c, policy, soc, pack, charger)
    return day.run(cuts)
