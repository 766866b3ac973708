# Per-chip pin rules the profile loader checks (facts: docs/reference/esp32-port.md):
# - input-only GPIO34-39 on the ESP32 have no internal pull-up (quickref.rst "Pins 34-39 ... do not
#   have internal pull-up resistors"; machine_pin.c sets the pull bit and reports nothing), so a line
#   the firmware reads with a pull-up must sit on a pin that has one, or the board must fit a resistor
#   and the profile must say so in pins.external_pullups;
# - the UART0 console pins (ESP32: GPIO1/3; ESP32-S3: GPIO43/44, plus the USB-serial-JTAG D-/D+ on
#   GPIO19/20) carry the ROM boot log and the REPL: no profile line may use them.
# (GPIO0 is a strapping pin: held low at reset the chip enters the ROM serial bootloader. It may still
# be the service button, because posguard.maint reads it as a long press while running, never at reset.)

_NO_PULL = {"esp32": (34, 35, 36, 37, 38, 39), "esp32s3": ()}
_CONSOLE = {"esp32": (1, 3), "esp32s3": (19, 20, 43, 44)}
_PULLED_UP = ("power_fail", "service")  # the inputs the firmware reads with Pin.PULL_UP (active low)


class PinError(ValueError):
    pass


def has_pullup(mcu, pin):
    return pin not in _NO_PULL.get(mcu, ())


def pull_for(prof, key):
    """The pull to ask for on pins[key]: PULL_UP when the chip has one there, None when the board
    fits an external resistor (asking for one on GPIO34-39 does nothing and says nothing)."""
    import machine

    pin = prof["pins"][key]
    if pin is None or pin in prof["pins"]["external_pullups"]:
        return None
    return machine.Pin.PULL_UP


def check(data):
    """Raise PinError naming the key when a pin breaks a rule of the profile's chip."""
    mcu = data["mcu"]
    pins = data["pins"]
    ext = pins["external_pullups"]
    for p in ext:
        if not isinstance(p, int) or isinstance(p, bool):
            raise PinError("profile key 'pins.external_pullups' must list pin numbers, got %r" % (p,))
    for key in _PULLED_UP:
        p = pins[key]
        if p is not None and not has_pullup(mcu, p) and p not in ext:
            raise PinError(
                "profile key 'pins.%s': GPIO%d on %s has no internal pull-up (input-only pins 34-39): "
                "fit a resistor and list the pin in pins.external_pullups, or use another pin" % (key, p, mcu))
    console = _CONSOLE.get(mcu, ())
    for sect, keys in (("host", ("tx", "rx")), ("printer", ("tx", "rx", "busy")), ("pins", tuple(pins))):
        for key in keys:
            if key == "external_pullups":
                continue
            p = data[sect][key]
            if p is not None and p in console:
                raise PinError("profile key '%s.%s': GPIO%d is a console pin on %s (ROM boot log and REPL "
                               "on UART0): use another pin" % (sect, key, p, mcu))
    return data
