# Board profile: plain JSON on the board's filesystem (board.json), validated against a schema so a
# typo in a pin number or a missing key stops the boot with a message naming the key, instead of
# driving the wrong GPIO. Every key is required; `null` means "not fitted".
import json

from posguard import pins

# Type codes: i int, n number, s str, b bool, l list; a trailing ? allows null.
_SCHEMA = {
    "name": "s",
    "mcu": "s",
    "psram_kb": "i?",  # PSRAM on the module (0 or absent: none); the heap the firmware gets depends on it
    "pins": {
        "vbat_adc": "i",
        "charger_present": "i?",
        "power_fail": "i?",
        "service": "i?",
        "thermistor_adc": "i?",
        "current_adc": "i?",
        "status_led": "i?",
        "external_pullups": "l",  # pins the board pulls up with a resistor (posguard/pins.py)
    },
    "battery": {
        "cells_series": "i",
        "chemistry": "s",
        "capacity_mah": "n",
        "r_nominal_mohm": "n",
        "divider_ratio": "n",
    },
    "power": {
        "brownout_v": "n",
        "boost_converter": "b",
        "boost_v": "n?",  # the boost rail the printer head sees (null: no boost, the head sees the pack)
        "boost_eff": "n?",  # the boost converter's efficiency, 0-1 (null: no boost)
        "print_peak_a": "n?",  # a fixed-current printer's peak at policy.heat_dots (null: from the dots)
        "idle_a": "n",
        "sleep_a": "n",
        "print_a": "n",
        "receipt_s": "n",
        "charge_a": "n",
    },
    "printer": {
        "model": "s",
        "uart_id": "i",
        "baud": "i",
        "tx": "i",
        "rx": "i",
        "busy": "i?",
        "paper_mm": "i",
        "columns": "i",
        "encoding": "s",
        "cutter": "b",
        "flow": "s",
        "busy_active_high": "b",
        "busy_free": "i",
        "rx_buffer": "i",
        "heat": "s",
        "mm_per_s": "n",
        "answers_status": "b",
    },
    "host": {
        "uart_id": "i",
        "baud": "i",
        "tx": "i?",
        "rx": "i?",
        "line_max": "i",
        "items_max": "i",
        "name_max": "i",
        "amount_max": "i",
        "currency": "s",
    },
    "journal": {
        "label": "s",
        "size_kb": "i",
        "keep_last": "i",
    },
    "policy": {
        "low_pct": "n",
        "critical_pct": "n",
        "shutdown_pct": "n",
        "hysteresis_pct": "n",
        "margin_mv": "n",
        "heat_dots": "i",
        "heat_time_us": "i",
        "heat_interval_us": "i",
    },
}

_MCUS = ("esp32", "esp32s3")
# Value sets shared with the parts that use them (tests keep them equal): escpos.ENCODINGS,
# printer_link.MODES, printer.HEATS, the layout's receipt columns per paper width (escpos.md).
_ENCODINGS = ("gb18030", "gbk", "utf-8", "ascii")
_FLOWS = ("cts", "xon", "pacing")
_HEATS = ("esc7", "density", "none")
_COLUMNS = {58: (32,), 80: (42, 48)}
_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)  # standard UART rates
_PRINTER_BAUDS = (9600, 19200, 38400, 57600, 115200)  # what ESC/POS printer modules offer
_NAME_MAX = 32  # the board name is a receipt header line
# (key, lowest, highest): every number the firmware sizes something by. null stays allowed where the
# schema allows it.
_RANGES = (
    ("psram_kb", 0, 32768),
    ("battery.cells_series", 1, 4),
    ("battery.capacity_mah", 100, 50000),
    ("battery.r_nominal_mohm", 1, 2000),
    ("battery.divider_ratio", 1, 20),
    ("power.brownout_v", 1.5, 20),
    ("power.boost_v", 3, 12),
    ("power.boost_eff", 0.5, 1.0),
    ("power.print_peak_a", 0.1, 10),
    ("power.idle_a", 0, 2),
    ("power.sleep_a", 0, 0.5),
    ("power.print_a", 0.05, 10),
    ("power.receipt_s", 0.5, 60),
    ("power.charge_a", 0, 10),
    ("printer.uart_id", 1, 2),
    ("printer.busy_free", 0, 4096),
    ("printer.rx_buffer", 16, 65536),
    ("printer.mm_per_s", 10, 250),
    ("host.uart_id", 1, 2),
    ("host.line_max", 256, 4096),
    ("host.items_max", 1, 64),
    ("host.name_max", 1, 64),
    ("host.amount_max", 1, 99999999999),  # the column check below narrows it per printer
    ("journal.size_kb", 16, 4096),
    ("journal.keep_last", 0, 10000),
    ("policy.low_pct", 0, 100),
    ("policy.critical_pct", 0, 100),
    ("policy.shutdown_pct", 0, 100),
    ("policy.hysteresis_pct", 0, 10),
    ("policy.margin_mv", 0, 1000),
    ("policy.heat_dots", 8, 384),
    ("policy.heat_time_us", 30, 2550),
    ("policy.heat_interval_us", 0, 2550),
)
_REPL_UART = 0
_CHEMISTRIES = ("NMC", "LFP")  # the OCV tables posguard.soc ships


ProfileError = pins.PinError  # one error type for every profile problem (a ValueError)


def _shown(v):
    """A value for an error message: short, and never a card number (the message reaches the console
    and the crash log)."""
    from posguard import pan

    t = repr(v)
    if len(t) > 40:
        t = t[:37] + "..."
    return "a value that looks like a card number" if pan.Scanner().find(t) is not None else t


def _check_value(path, code, v):
    if v is None:
        if code.endswith("?"):
            return
        raise ProfileError("profile key '%s' must not be null" % path)
    t = code[0]
    ok = (
        (t == "i" and isinstance(v, int) and not isinstance(v, bool))
        or (t == "n" and isinstance(v, (int, float)) and not isinstance(v, bool))
        or (t == "s" and isinstance(v, str))
        or (t == "b" and isinstance(v, bool))
        or (t == "l" and isinstance(v, list))
    )
    if not ok:
        names = {"i": "an integer", "n": "a number", "s": "a string", "b": "true or false", "l": "a list"}
        raise ProfileError("profile key '%s' must be %s, got %s" % (path, names[t], _shown(v)))


def _check_section(prefix, schema, data):
    if not isinstance(data, dict):
        raise ProfileError("profile key '%s' must be an object" % prefix.rstrip("."))
    for key in data:
        if key not in schema:
            raise ProfileError("unknown profile key '%s%s'" % (prefix, key))
    for key, code in schema.items():
        if key not in data:
            raise ProfileError("missing profile key '%s%s'" % (prefix, key))
        if isinstance(code, dict):
            _check_section(prefix + key + ".", code, data[key])
        else:
            _check_value(prefix + key, code, data[key])


def _get(data, path):
    v = data
    for k in path.split("."):
        v = v[k]
    return v


def _one_of(data, path, allowed):
    v = _get(data, path)
    if v not in allowed:
        raise ProfileError("profile key '%s' must be one of %s, got %s" % (
            path, " or ".join(str(a) for a in allowed), _shown(v)))


def _text_ok(data, path, max_chars):
    # Text that reaches paper: printable, bounded, and never a card number (PCI: not even here).
    from posguard import pan

    v = _get(data, path)
    if not (1 <= len(v) <= max_chars):
        raise ProfileError("profile key '%s' must be 1-%d characters, got %d" % (path, max_chars, len(v)))
    for ch in v:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF:
            raise ProfileError("profile key '%s' holds a control character" % path)
    if pan.Scanner().find(v) is not None:
        raise ProfileError("profile key '%s' holds what looks like a full card number" % path)


def _check_ranges(data):
    for path, lo, hi in _RANGES:
        v = _get(data, path)
        if v is not None and not (lo <= v <= hi):
            raise ProfileError("profile key '%s' must be %s-%s, got %s" % (path, lo, hi, _shown(v)))
    _one_of(data, "printer.baud", _PRINTER_BAUDS)
    _one_of(data, "host.baud", _BAUDS)
    _one_of(data, "printer.encoding", _ENCODINGS)
    _one_of(data, "printer.flow", _FLOWS)
    _one_of(data, "printer.heat", _HEATS)
    _one_of(data, "printer.paper_mm", tuple(sorted(_COLUMNS)))
    pr = data["printer"]
    cols = _COLUMNS[pr["paper_mm"]]
    if pr["columns"] not in cols:
        raise ProfileError("profile key 'printer.columns' must be %s for %d mm paper, got %s" % (
            " or ".join(str(c) for c in cols), pr["paper_mm"], _shown(pr["columns"])))
    if pr["flow"] == "cts" and pr["busy"] is None:
        raise ProfileError("profile key 'printer.busy' must name the BUSY pin when printer.flow is 'cts'")
    pw = data["power"]
    if pw["boost_converter"] and (pw["boost_v"] is None or pw["boost_eff"] is None):
        raise ProfileError("profile keys 'power.boost_v' and 'power.boost_eff' must be set when "
                           "power.boost_converter is true")
    po = data["policy"]
    if not (po["shutdown_pct"] <= po["critical_pct"] < po["low_pct"]):
        raise ProfileError("profile keys 'policy.shutdown_pct' <= 'policy.critical_pct' < 'policy.low_pct' "
                           "must hold, got %s, %s, %s" % (_shown(po["shutdown_pct"]), _shown(po["critical_pct"]),
                                                          _shown(po["low_pct"])))
    if data["journal"]["size_kb"] % 4:
        raise ProfileError("profile key 'journal.size_kb' must be a multiple of 4 (one flash sector), got %s" % (
            _shown(data["journal"]["size_kb"]),))
    h = data["host"]
    # The largest amount must fit the receipt's amount column (10 characters at 32 columns, 12 at 42/48):
    # a longer one would overflow the line and the receipt could not be laid out.
    amt_w = 12 if pr["columns"] >= 42 else 10
    top = 10 ** (amt_w - 1) - 1  # "%d.%02d" of this is amt_w characters
    if h["amount_max"] > top:
        raise ProfileError("profile key 'host.amount_max' must be 1-%d for %d receipt columns (the amount "
                           "column is %d characters), got %s" % (top, pr["columns"], amt_w, _shown(h["amount_max"])))
    cur = h["currency"]
    if not (len(cur) == 3 and "A" <= cur[0] <= "Z" and "A" <= cur[1] <= "Z" and "A" <= cur[2] <= "Z"):
        raise ProfileError("profile key 'host.currency' must be a three-letter ISO 4217 code like CNY, got %s" % (
            _shown(cur[:8]),))
    _text_ok(data, "name", _NAME_MAX)
    _text_ok(data, "printer.model", 32)
    _text_ok(data, "journal.label", 16)


def validate(data):
    """Check a decoded profile; returns it, or raises ProfileError naming the offending key (and the
    allowed range or set)."""
    # The one optional section: telemetry (posguard/netconfig.py checks it; messages never show a credential).
    net = data.get("network")
    _check_section("", _SCHEMA, data if "network" not in data else {k: v for k, v in data.items() if k != "network"})
    if net is not None:
        from posguard import netconfig

        try:
            netconfig.check(net)
        except ValueError as e:
            raise ProfileError(str(e))
    if data["mcu"] not in _MCUS:
        raise ProfileError("profile key 'mcu' must be one of %s, got %s" % (", ".join(_MCUS), _shown(data["mcu"])))
    if data["battery"]["chemistry"] not in _CHEMISTRIES:
        raise ProfileError("profile key 'battery.chemistry' must be one of %s, got %s" % (
            ", ".join(_CHEMISTRIES), _shown(data["battery"]["chemistry"])))
    # Production mode: the REPL lives on UART0 (the USB-serial console) and the host link must never
    # share it, or a cashier app could reach the REPL. A technician gets in on UART0 instead.
    if data["host"]["uart_id"] == _REPL_UART:
        raise ProfileError("profile key 'host.uart_id' must not be %d: UART%d is the REPL console" % (
            _REPL_UART, _REPL_UART))
    if data["printer"]["uart_id"] in (_REPL_UART, data["host"]["uart_id"]):
        raise ProfileError("profile key 'printer.uart_id' must differ from the REPL's UART0 and host.uart_id")
    _check_ranges(data)
    _check_journal(data["journal"], data["host"]["line_max"])
    pins.check(data)  # per-chip pin rules: pull-ups, console pins (posguard/pins.py)
    return data


def _check_journal(j, line_max):
    # A sale body is built from one host request line, so line_max bounds it: the journal must store
    # such a body, and keep_last finished sales of that size must leave room for every new sale.
    from posguard import journal_limits as L

    if j["size_kb"] < 16 or j["size_kb"] % 4:
        raise ProfileError("profile key 'journal.size_kb' must be a multiple of 4 (sectors), at least 16")
    if line_max > L.MAX_BODY:
        raise ProfileError("profile key 'host.line_max' is %d: the journal stores sale bodies of at most %d bytes" % (
            line_max, L.MAX_BODY))
    most = L.keep_last_max(j["size_kb"] // 4, line_max)
    if not 0 <= j["keep_last"] <= most:
        raise ProfileError("profile key 'journal.keep_last' is %d: a %d KiB journal keeps at most %d finished sales "
                           "of up to host.line_max=%d bytes" % (j["keep_last"], j["size_kb"], most, line_max))


def load(path="board.json"):
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ProfileError("cannot read board profile %s: %s" % (path, e))
    except ValueError as e:
        raise ProfileError("board profile %s is not valid JSON: %s" % (path, e))
    return validate(data)
