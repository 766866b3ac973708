# Board profile: plain JSON on the board's filesystem (board.json), validated against a schema so a
# typo in a pin number or a missing key stops the boot with a message naming the key, instead of
# driving the wrong GPIO. Every key is required; `null` means "not fitted".
import json

from posguard import pins

# Type codes: i int, n number, s str, b bool, l list; a trailing ? allows null.
_SCHEMA = {
    "name": "s",
    "mcu": "s",
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
_REPL_UART = 0
_CHEMISTRIES = ("NMC", "LFP")  # the OCV tables posguard.soc ships


ProfileError = pins.PinError  # one error type for every profile problem (a ValueError)


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
        raise ProfileError("profile key '%s' must be %s, got %r" % (path, names[t], v))


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


def validate(data):
    """Check a decoded profile; returns it, or raises ProfileError naming the offending key."""
    _check_section("", _SCHEMA, data)
    if data["mcu"] not in _MCUS:
        raise ProfileError("profile key 'mcu' must be one of %s, got %r" % (", ".join(_MCUS), data["mcu"]))
    if data["battery"]["chemistry"] not in _CHEMISTRIES:
        raise ProfileError("profile key 'battery.chemistry' must be one of %s, got %r" % (
            ", ".join(_CHEMISTRIES), data["battery"]["chemistry"]))
    # Production mode: the REPL lives on UART0 (the USB-serial console) and the host link must never
    # share it, or a cashier app could reach the REPL. A technician gets in on UART0 instead.
    if data["host"]["uart_id"] == _REPL_UART:
        raise ProfileError("profile key 'host.uart_id' must not be %d: UART%d is the REPL console" % (
            _REPL_UART, _REPL_UART))
    if data["printer"]["uart_id"] in (_REPL_UART, data["host"]["uart_id"]):
        raise ProfileError("profile key 'printer.uart_id' must differ from the REPL's UART0 and host.uart_id")
    pins.check(data)  # per-chip pin rules: pull-ups, console pins (posguard/pins.py)
    return data


def load(path="board.json"):
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ProfileError("cannot read board profile %s: %s" % (path, e))
    except ValueError as e:
        raise ProfileError("board profile %s is not valid JSON: %s" % (path, e))
    return validate(data)
