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


# 11 dB full scale of the raw code without factory calibration: the code saturates at about 3.1 V
# (docs/reference/esp32-port.md); the per-unit two-point calibration (calib.json) corrects the rest.
_U16_FULL_UV = 3100000
uncalibrated_adcs = []  # pin numbers read through read_u16 because read_uv() is refused (status says so)


class UncalibratedADC:
    """read_uv() for a chip without factory ADC calibration in eFuse: the port raises OSError there
    (ports/esp32/adc.c:69, check_esp_err(ensure_adc_calibration(...))), so scale read_u16() instead.
    Less accurate (the reference voltage spreads +/-9 %): the two-point calib.json is what fixes it."""

    def __init__(self, adc):
        self.adc = adc

    def read_uv(self):
        return self.adc.read_u16() * (_U16_FULL_UV // 1000) // 65535 * 1000

    def read_u16(self):
        return self.adc.read_u16()


def adc(pin_id):
    """ADC at 11 dB, set explicitly: creating an ADC without atten= resets it to 11 dB anyway
    (docs/reference/battery-and-printer.md), so saying it keeps the intent visible."""
    if pin_id is None:
        return None
    a = machine.ADC(machine.Pin(pin_id), atten=machine.ADC.ATTN_11DB)
    try:
        a.read_uv()
    except OSError:
        if pin_id not in uncalibrated_adcs:
            uncalibrated_adcs.append(pin_id)
        return UncalibratedADC(a)
    return a


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
