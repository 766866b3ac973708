# The one place that turns a board profile into hardware objects. Everything else takes these objects
# as constructor arguments, which is what lets the same classes run on a board and in the simulator.
import machine


def pin_in(pin_id, pull=None):
    """An input pin, or None when the profile says it is not fitted."""
    if pin_id is None:
        return None
    if pull is None:
        return machine.Pin(pin_id, machine.Pin.IN)
    return machine.Pin(pin_id, machine.Pin.IN, pull)


def pin_out(pin_id, value=0):
    if pin_id is None:
        return None
    return machine.Pin(pin_id, machine.Pin.OUT, value=value)


def adc(pin_id):
    """ADC at 11 dB, set explicitly: creating an ADC without atten= resets it to 11 dB anyway
    (docs/reference/battery-and-printer.md), so saying it keeps the intent visible."""
    if pin_id is None:
        return None
    return machine.ADC(machine.Pin(pin_id), atten=machine.ADC.ATTN_11DB)


def uart(uart_id, baud, tx=None, rx=None, cts=None, txbuf=256, rxbuf=256, invert_cts=False):
    kw = {"baudrate": baud, "txbuf": txbuf, "rxbuf": rxbuf, "timeout": 0}
    if tx is not None:
        kw["tx"] = tx
    if rx is not None:
        kw["rx"] = rx
    if cts is not None:
        kw["cts"] = cts
        kw["flow"] = machine.UART.CTS
        if invert_cts:  # CTS is active-low; an active-low BUSY line needs it inverted
            kw["invert"] = machine.UART.INV_CTS
    return machine.UART(uart_id, **kw)


def journal_partition(profile):
    """The raw flash partition of the journal, found by label (a custom partition table adds it)."""
    import esp32

    label = profile["journal"]["label"]
    found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=label)
    if not found:
        raise OSError("no flash partition labelled '%s': provision the board first" % label)
    return found[0]


def watchdog(timeout_ms):
    return machine.WDT(timeout=timeout_ms)
