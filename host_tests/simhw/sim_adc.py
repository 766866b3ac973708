# Simulated ESP32 / ESP32-S3 ADC (MicroPython subset; never deployed), re-exported as machine.ADC.
#
# API as in MicroPython's esp32 docs (machine.ADC): ADC(pin, *, atten), init(*, atten), atten(a),
# width(w), read_u16(), read_uv(), read(); constants ATTN_0DB/2_5DB/6DB/11DB and WIDTH_9..12BIT.
# The volts at the pin come from the current simulated board: sim_board.current.analog_v(pin_id).
#
# What is modelled, and where the numbers come from:
# - Attenuation ranges: linear 100-950 / 100-1250 / 150-1750 / 150-2450 mV at 0 / 2.5 / 6 / 11 dB
#   (MicroPython esp32 quickref, "ADC (analog to digital conversion)"); the raw code saturates at about
#   1.1 / 1.5 / 2.2 / 3.1 V (ESP-IDF v4.4 ADC guide, attenuation table; 11 dB reads 4095 from ~3.1 V).
#   Outside the linear range the ESP32 ADC is strongly non-linear (docs/reference/battery-and-printer.md):
#   the transfer is compressed there (slope 1/2 above, quadratic toward 0 below).
# - read_uv() applies the factory calibration; what is left is a per-unit error inside the documented
#   worst case: ESP32 +/-23/30/40/60 mV, ESP32-S3 +/-5/6/10/50 mV at 0/2.5/6/11 dB (battery-and-printer.md).
#   Each unit gets a fixed offset and gain error drawn from the board seed so that offset + gain error
#   stays inside that band over the linear range.
# - read_u16()/read() are uncalibrated: they also carry the chip's reference-voltage spread (ESP32 Vref
#   1000-1200 mV around 1100 mV, ESP-IDF ADC calibration docs), i.e. up to +/-9 % of gain.
# - Noise: about 25 LSB (battery-and-printer.md). Modelled as 25 LSB peak-to-peak, the sum of three
#   uniform draws (bell-shaped, hard-bounded to +/-12.5 LSB), in 12-bit LSBs of the saturation range.
import sim_board
from sim_rng import Rng

_CAL_BAND_MV = {
    "esp32": (23, 30, 40, 60),
    "esp32s3": (5, 6, 10, 50),
}
# (linear low V, linear high V, saturation V) per attenuation index 0..3
_RANGES = (
    (0.100, 0.950, 1.10),
    (0.100, 1.250, 1.50),
    (0.150, 1.750, 2.20),
    (0.150, 2.450, 3.10),
)
_NOISE_PP_LSB = 25.0
_NOISE_K = _NOISE_PP_LSB / 6.0  # the factor read_uv applied as (_NOISE_PP_LSB / 6.0): the same float
_RING = 64  # noise draws made at once: one pack reading's samples
_VREF_SPREAD = 0.09  # 1000-1200 mV around 1100 mV


def _pin_id(pin):
    pid = getattr(pin, "_id", None)
    if pid is None:
        if not isinstance(pin, int):
            raise TypeError("ADC needs a Pin or a pin number, got %r" % (pin,))
        pid = pin
    return pid


def _transfer(v, lo, hi, sat):
    """The ADC front end's effective input: linear inside [lo, hi], compressed outside: it reads low
    above hi and reaches the saturation code only at 1.1 x sat [EST]; quadratic toward 0 below lo."""
    if v <= 0.0:
        return 0.0
    if v < lo:
        return lo * (v / lo) * (v / lo)
    if v > hi:
        v = hi + (v - hi) * (sat - hi) / (1.1 * sat - hi)
        return sat if v > sat else v
    return v


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 0
    WIDTH_10BIT = 1
    WIDTH_11BIT = 2
    WIDTH_12BIT = 3

    def __init__(self, pin, *, atten=None):
        board = sim_board.current
        if board is None:
            raise OSError("no simulated board is powered (sim_board.current is None)")
        self._board = board
        self._id = _pin_id(pin)
        mcu = "esp32"
        prof = getattr(board, "profile", None)
        if prof is not None:
            mcu = prof.get("mcu", "esp32")
        self._bands = _CAL_BAND_MV.get(mcu, _CAL_BAND_MV["esp32"])
        seed = getattr(board, "seed", 1)
        unit = Rng(seed * 131 + self._id, add=12345, zero=0x9E3779B9, warmup=4)
        # Per-unit calibrated residual: offset in +/-band/2, gain error so that the total stays in band.
        self._off_frac = unit.uniform(-0.5, 0.5)
        self._gain_frac = unit.uniform(-0.5, 0.5)
        self._vref = 1.0 + unit.uniform(-_VREF_SPREAD, _VREF_SPREAD)
        self._noise = Rng(seed * 7919 + self._id * 31 + 1, add=12345, zero=0x9E3779B9, warmup=4)
        # The noise stream drawn ahead into a preallocated ring, _RING at a time, and taken in order: the
        # same numbers in the same order as one uniform3() per sample (nothing else draws from _noise).
        self._ring = [0.0] * _RING
        self._ring_i = _RING
        self._width_bits = 12
        self._atten = 3
        self.init(atten=atten)

    # -- configuration ---------------------------------------------------------------------------
    def init(self, *, atten=None):
        # Creating an ADC or calling init() without atten= resets it to 11 dB (battery-and-printer.md).
        self.atten(self.ATTN_11DB if atten is None else atten)

    def atten(self, a):
        if a not in (0, 1, 2, 3):
            raise ValueError("invalid attenuation %r" % (a,))
        self._atten = a
        # read_uv's per-attenuation constants, computed here once with the very operations it used to
        # repeat per sample (so the same floats): range, LSB, this unit's offset and gain error in volts.
        lo, hi, sat = _RANGES[a]
        band = self._bands[a] / 1000.0
        self._k = (lo, hi, sat, sat / 4095.0, self._off_frac * band, self._gain_frac * band)

    def width(self, w):
        if w not in (0, 1, 2, 3):
            raise ValueError("invalid width %r" % (w,))
        self._width_bits = 9 + w

    # -- the analogue path -----------------------------------------------------------------------
    def _pin_v(self):
        return float(self._board.analog_v(self._id))

    def _next_noise(self):
        """The next uniform3(-1, 1) of the noise stream, from the ring (refilled _RING draws at a time)."""
        i = self._ring_i
        ring = self._ring
        if i >= _RING:
            draw = self._noise.uniform3
            for k in range(_RING):
                ring[k] = draw(-1.0, 1.0)
            i = 0
        self._ring_i = i + 1
        return ring[i]

    def _noise_v(self, sat):
        lsb = sat / 4095.0
        return self._next_noise() * _NOISE_K * lsb

    def _effective_v(self):
        lo, hi, sat = _RANGES[self._atten]
        return _transfer(self._pin_v() + self._noise_v(sat), lo, hi, sat), hi, sat

    def _raw12(self):
        v, hi, sat = self._effective_v()
        if v >= sat:
            return 4095  # the converter itself saturates, whatever this chip's reference voltage
        code = int(v * self._vref / sat * 4095.0 + 0.5)
        return 4095 if code > 4095 else (0 if code < 0 else code)

    # -- readings ----------------------------------------------------------------------------------
    def read_uv(self):
        """Calibrated microvolts: true value plus this unit's residual error plus noise, in 12-bit steps.

        A chip without factory calibration in eFuse (early ESP32s: neither eFuse Vref nor two-point
        values; board.adc_efuse_cal = False) raises OSError like the port: ports/esp32/adc.c:69 wraps
        ensure_adc_calibration() in check_esp_err, and creating the line/curve-fitting scheme fails
        (adc.c:87, adc.c:94) when the eFuse holds nothing."""
        if not getattr(self._board, "adc_efuse_cal", True):
            raise OSError(262, "ESP_ERR_NOT_SUPPORTED")  # check_esp_err raises OSError(esp_err)
        # _effective_v() and _transfer() written out in place, the constants from atten() and the noise
        # from the ring (the firmware reads 64 samples per pack reading: this is the simulator's hottest
        # call); the same operations in the same order, so the same numbers.
        lo, hi, sat, lsb, off, gain = self._k
        i = self._ring_i
        if i >= _RING:
            u = self._next_noise()
        else:
            u = self._ring[i]
            self._ring_i = i + 1
        v = float(self._board.analog_v(self._id)) + u * _NOISE_K * lsb
        if v <= 0.0:
            v = 0.0
        elif v < lo:
            v = lo * (v / lo) * (v / lo)
        elif v > hi:
            v = hi + (v - hi) * (sat - hi) / (1.1 * sat - hi)
            if v > sat:
                v = sat
        v = v + off + gain * (v / hi)
        steps = int(v / lsb + 0.5)
        if steps < 0:
            steps = 0
        elif steps > 4095:
            steps = 4095
        return int(steps * lsb * 1000000.0)

    def read_u16(self):
        r = self._raw12()
        return (r << 4) | (r >> 8)

    def read(self):
        return self._raw12() >> (12 - self._width_bits)

    def __repr__(self):
        return "ADC(Pin(%d), atten=%d)" % (self._id, self._atten)
