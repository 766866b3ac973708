"""The simulated `machine` and `esp32` modules accept every call form MicroPython documents for what the
firmware uses (docs.micropython.org: library/machine.*.html and library/esp32.html, esp32 port).

Each row is a documented call written the way the docs write it; binding it against the stand-in's
signature must succeed, so a stand-in that drifts from the board's API fails here rather than on a board.
"""

from __future__ import annotations

import inspect
from typing import Any

import esp32
import machine
import pytest

P = "PIN"  # placeholder for a Pin object

# (dotted name, positional args, keyword args): one documented call form each.
DOCUMENTED_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("machine.Pin", (4,), {}),
    ("machine.Pin", (4, machine.Pin.IN), {}),
    ("machine.Pin", (4, machine.Pin.IN, machine.Pin.PULL_UP), {}),
    ("machine.Pin", (4, machine.Pin.OUT), {"value": 1}),
    ("machine.Pin.value", (), {}),
    ("machine.Pin.value", (1,), {}),
    ("machine.Pin.on", (), {}),
    ("machine.Pin.off", (), {}),
    ("machine.Pin.irq", (), {"handler": None, "trigger": machine.Pin.IRQ_FALLING}),
    ("machine.Pin.irq", (), {"handler": None, "trigger": 3, "hard": False}),
    ("machine.ADC", (P,), {}),
    ("machine.ADC", (P,), {"atten": machine.ADC.ATTN_11DB}),
    ("machine.ADC.read_u16", (), {}),
    ("machine.ADC.read_uv", (), {}),
    ("machine.ADC.atten", (machine.ADC.ATTN_11DB,), {}),
    ("machine.ADC.width", (machine.ADC.WIDTH_12BIT,), {}),
    ("machine.UART", (1,), {}),
    ("machine.UART", (1, 9600), {}),
    ("machine.UART", (1,), {"baudrate": 19200, "tx": 17, "rx": 16, "txbuf": 256, "rxbuf": 256, "timeout": 0}),
    ("machine.UART", (1,), {"baudrate": 9600, "tx": 17, "rx": 16, "cts": 18, "flow": machine.UART.CTS}),
    ("machine.UART.init", (), {"baudrate": 9600, "bits": 8, "parity": None, "stop": 1}),
    ("machine.UART.write", (b"x",), {}),
    ("machine.UART.read", (), {}),
    ("machine.UART.read", (10,), {}),
    ("machine.UART.readinto", (bytearray(4),), {}),
    ("machine.UART.readinto", (bytearray(4), 2), {}),
    ("machine.UART.readline", (), {}),
    ("machine.UART.any", (), {}),
    ("machine.UART.flush", (), {}),
    ("machine.UART.txdone", (), {}),
    ("machine.UART.deinit", (), {}),
    ("machine.WDT", (), {"timeout": 8000}),
    ("machine.WDT", (0, 8000), {}),
    ("machine.WDT.feed", (), {}),
    ("machine.RTC", (), {}),
    ("machine.RTC.datetime", (), {}),
    ("machine.RTC.datetime", ((2026, 11, 24, 1, 12, 0, 0, 0),), {}),
    ("machine.RTC.memory", (), {}),
    ("machine.RTC.memory", (b"x",), {}),
    ("machine.deepsleep", (), {}),
    ("machine.deepsleep", (10000,), {}),
    ("machine.reset_cause", (), {}),
    ("machine.wake_reason", (), {}),
    ("machine.unique_id", (), {}),
    ("machine.reset", (), {}),
    ("machine.freq", (), {}),
    ("esp32.Partition", ("journal",), {}),
    ("esp32.Partition", ("journal",), {"block_size": 4096}),
    ("esp32.Partition.find", (), {"type": 1, "label": "journal"}),
    ("esp32.Partition.find", (1, 0xFF, "journal"), {}),
    ("esp32.Partition.info", (), {}),
    ("esp32.Partition.readblocks", (0, bytearray(16)), {}),
    ("esp32.Partition.readblocks", (0, bytearray(16), 256), {}),
    ("esp32.Partition.writeblocks", (0, bytearray(16)), {}),
    ("esp32.Partition.writeblocks", (0, bytearray(16), 256), {}),
    ("esp32.Partition.ioctl", (4, 0), {}),
    ("esp32.wake_on_ext0", (P, esp32.WAKEUP_ANY_HIGH), {}),
]

# Constants the firmware uses, with the esp32 port's values where the value matters across a reset.
DOCUMENTED_CONSTANTS = {
    "machine.Pin.IN": None,
    "machine.Pin.OUT": None,
    "machine.Pin.PULL_UP": None,
    "machine.Pin.IRQ_RISING": None,
    "machine.Pin.IRQ_FALLING": None,
    "machine.ADC.ATTN_0DB": None,
    "machine.ADC.ATTN_11DB": None,
    "machine.UART.CTS": None,
    "machine.UART.INV_CTS": None,
    "machine.PWRON_RESET": 1,
    "machine.HARD_RESET": 2,
    "machine.WDT_RESET": 3,
    "machine.DEEPSLEEP_RESET": 4,
    "machine.SOFT_RESET": 5,
    "machine.EXT0_WAKE": 2,
    "machine.TIMER_WAKE": 4,
    "esp32.Partition.TYPE_APP": 0,
    "esp32.Partition.TYPE_DATA": 1,
    "esp32.WAKEUP_ANY_HIGH": None,
    "esp32.WAKEUP_ALL_LOW": None,
}


def _resolve(dotted: str) -> Any:
    mod_name, *attrs = dotted.split(".")
    obj: Any = {"machine": machine, "esp32": esp32}[mod_name]
    for a in attrs:
        obj = getattr(obj, a)
    return obj


@pytest.mark.parametrize(("name", "args", "kwargs"), DOCUMENTED_CALLS, ids=[c[0] for c in DOCUMENTED_CALLS])
def test_documented_call_form_binds(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    target = _resolve(name)
    sig = inspect.signature(target)
    params = list(sig.parameters.values())
    is_method = inspect.isfunction(target) and "." in name[len(name.split(".")[0]) + 1 :]
    if is_method and params and params[0].name == "self":
        args = ("SELF", *args)
    args = tuple(object() if a == P else a for a in args)
    sig.bind(*args, **kwargs)  # raises TypeError when the stand-in's signature differs


@pytest.mark.parametrize("name", sorted(DOCUMENTED_CONSTANTS))
def test_documented_constant_exists(name: str) -> None:
    value = _resolve(name)
    want = DOCUMENTED_CONSTANTS[name]
    if want is not None:
        assert value == want


def test_a_signature_drift_is_caught() -> None:
    # The check itself can fail: a call form the stand-in does not take raises.
    with pytest.raises(TypeError):
        inspect.signature(machine.WDT.feed).bind("SELF", 1)
