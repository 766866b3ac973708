# Reading the pack: the sense divider on an ADC pin, many samples with a trimmed mean, the per-unit
# two-point calibration kept on flash (calib.json, written atomically), the temperature, and the
# detection of a sense line stuck at a rail.
import json
import math
import os

from micropython import const

_SAMPLES = const(64)  # 64-256 samples with a trimmed mean (battery-and-printer.md: ~25 LSB noise)
_TRIM = const(16)  # drop the 16 lowest and 16 highest
# 11 dB reads linearly 150-2450 mV and saturates at about 3.1 V (MicroPython esp32 quickref, ESP-IDF):
# a mean under 60 mV means the line is open (pulled down) or shorted to ground; over 2.95 V means the
# divider is bypassed (line shorted to the pack) or the ADC is saturated.
_PIN_MIN_UV = const(60000)
_PIN_MAX_UV = const(2950000)
# Plausible per-cell voltages (NMC/LFP): outside, the reading is not a battery.
_CELL_MIN_MV = const(2000)
_CELL_MAX_MV = const(4500)
# Calibration limits: 1 % resistors and the ADC band give a few % of gain error (battery-and-printer.md);
# a correction beyond these is a typo or a wrong meter range, not a divider.
_GAIN_MIN = 0.85
_GAIN_MAX = 1.15
_OFFSET_MAX_MV = 300
_TWO_POINT_MIN_MV = 300  # two points closer than this cannot fix a gain
CALIB_FILE = "calib.json"

# NTC on the thermistor pin: 10 kOhm at 25 C, B = 3950 K, 10 kOhm pull-up from 3.3 V (the common
# "103" NTC [EST]; the simulator's sim_battery.py uses the same constants).
_NTC_R25 = 10000.0
_NTC_B = 3950.0
_NTC_PULLUP = 10000.0
_NTC_VCC_UV = 3300000


class SenseFault(Exception):
    pass


def _join(d, name):
    if not d:
        return name
    return d + "/" + name


def write_json_atomic(path, obj):
    """Write to a temp file and rename over the old one: a reset mid-write leaves the old file whole."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    try:
        os.remove(path)  # MicroPython's VFS rename may refuse to replace an existing file
    except OSError:
        pass
    os.rename(tmp, path)


def read_json(path):
    """The decoded file, or None when missing or corrupt (a bad file must not stop the terminal)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    try:  # a reset between remove and rename leaves only the temp file: it is complete
        with open(path + ".tmp") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class BatterySense:
    def __init__(self, adc, divider_ratio, cells, store_dir="", therm_adc=None, mcu_temp=None):
        if divider_ratio <= 0 or cells < 1:
            raise ValueError("divider_ratio must be > 0 and cells >= 1")
        self.adc = adc
        self.ratio = divider_ratio
        self.cells = cells
        self.therm_adc = therm_adc
        self.mcu_temp = mcu_temp  # callable -> deg C, or None
        self.path = _join(store_dir, CALIB_FILE)
        # A list, not array("i"): list.sort() sorts in place (arrays have no sort). Samples are small ints
        # (< 3.1e6 uV, under 2**30): stored unboxed, 4 bytes each on the ESP32 like the array was.
        self._buf = [0] * _SAMPLES
        self.gain = 1.0
        self.offset_mv = 0.0
        self.points = []  # up to two (raw_mv, actual_mv) calibration points
        self.calib_error = None
        self.pin_uv = 0
        self.raw_mv = 0.0
        self.temp_ok = False
        self._load_calib()

    # -- calibration ----------------------------------------------------------------------------
    def _load_calib(self):
        d = read_json(self.path)
        if d is None:
            return
        try:
            pts = [(float(p[0]), float(p[1])) for p in d["points"]][:2]
            g, o = _fit(pts)
            _check(g, o)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            self.calib_error = "calib.json ignored: %s" % e
            return
        self.points = pts
        self.gain = g
        self.offset_mv = o

    def calibrate(self, actual_mv, raw_mv=None, save=True):
        """A meter reads actual_mv on the pack now. One point sets the gain; a second point at least
        300 mV away sets gain and offset. Raises ValueError (nothing changed) for absurd values.
        save=False: only returns what it would set. Saving keeps the replaced calibration (undo())."""
        try:
            actual_mv = float(actual_mv)
        except (TypeError, ValueError):
            raise ValueError("actual_mv must be a number of millivolts, got %r" % (actual_mv,))
        lo = _CELL_MIN_MV * self.cells
        hi = _CELL_MAX_MV * self.cells
        if not lo <= actual_mv <= hi:
            raise ValueError(
                "%d mV is not a %d-cell pack voltage (%d-%d mV); millivolts expected" % (actual_mv, self.cells, lo, hi)
            )
        if raw_mv is None:
            self.read_mv()
            raw_mv = self.raw_mv
        pts = [p for p in self.points if abs(p[0] - raw_mv) >= _TWO_POINT_MIN_MV]
        pts = pts[-1:] + [(raw_mv, actual_mv)]
        g, o = _fit(pts)
        _check(g, o)
        if save:
            self._save(pts, g, o)
        return g, o

    def _save(self, pts, g, o):
        # The calibration it replaces goes into the same file, in the same atomic write: undo() can
        # always bring it back, and a reset never leaves one without the other.
        write_json_atomic(self.path, {"points": [[p[0], p[1]] for p in pts], "gain": g, "offset_mv": o,
                                      "previous": [[p[0], p[1]] for p in self.points]})
        self.points = pts
        self.gain = g
        self.offset_mv = o
        self.calib_error = None

    def undo(self):
        """Back to the calibration the last saved one replaced (no points: uncalibrated); calling it again
        redoes. Returns (gain, offset) or None when calib.json keeps no previous calibration."""
        d = read_json(self.path)
        try:
            pts = [(float(p[0]), float(p[1])) for p in d["previous"]][:2]
            g, o = _fit(pts)
            _check(g, o)
        except (KeyError, TypeError, ValueError, IndexError):
            return None  # none kept (a file from before undo existed), or a damaged one: keep what works
        self._save(pts, g, o)
        return g, o

    # -- reading --------------------------------------------------------------------------------
    def _trimmed_uv(self, adc):
        b = self._buf
        n = _SAMPLES
        for i in range(n):
            b[i] = adc.read_uv()
        # The list's own sort, in place: MicroPython v1.28.0 py/objlist.c:325-346 runs mp_quicksort
        # (:290-322) on the items array, recursion on the smaller side only, nothing allocated without a
        # key; two small ints compare without an object (py/runtime.c:428, :579-580). The insertion sort
        # it replaces was ~2000 bytecode steps per reading (host_tests/mpy/mpy_test_battery.py checks
        # that a reading allocates nothing on the unix port).
        b.sort()
        s = 0
        for i in range(_TRIM, n - _TRIM):
            s += b[i]
        return s // (n - 2 * _TRIM)

    def read_mv(self):
        """Calibrated pack voltage in mV. Raises SenseFault when the line reads stuck at a rail."""
        uv = self._trimmed_uv(self.adc)
        self.pin_uv = uv
        if uv < _PIN_MIN_UV:
            raise SenseFault("sense line open or shorted to ground (%d mV at the pin)" % (uv // 1000))
        if uv > _PIN_MAX_UV:
            raise SenseFault("sense line at the ADC's rail (%d mV at the pin): divider bypassed?" % (uv // 1000))
        self.raw_mv = uv * self.ratio / 1000.0
        mv = self.raw_mv * self.gain + self.offset_mv
        if not _CELL_MIN_MV * self.cells <= mv <= _CELL_MAX_MV * self.cells:
            raise SenseFault("%d mV is not a plausible %d-cell pack voltage" % (mv, self.cells))
        return mv

    @property
    def temp_source(self):
        """Where the temperature comes from: "thermistor", "mcu" (a calibrated on-chip sensor) or "none"."""
        if self.therm_adc is not None:
            return "thermistor"
        if self.mcu_temp is not None:
            return "mcu"
        return "none"

    @property
    def temp_trusted(self):
        """The last reading came from a calibrated source (thermistor, or an MCU sensor in C): aging may be
        learned against it."""
        return self.temp_ok

    def temp_c(self):
        """Temperature in C from the thermistor if fitted, else the MCU's calibrated sensor; None when
        there is no trustworthy source (never a guessed 25 C, never the ESP32's raw register)."""
        self.temp_ok = False
        if self.therm_adc is not None:
            uv = self.therm_adc.read_uv()
            if 50000 < uv < _NTC_VCC_UV - 50000:
                r = _NTC_PULLUP * uv / (_NTC_VCC_UV - uv)
                self.temp_ok = True
                return 1.0 / (1.0 / 298.15 + math.log(r / _NTC_R25) / _NTC_B) - 273.15
            return None  # an open or shorted thermistor: no temperature (not the MCU's board temperature)
        if self.mcu_temp is not None:
            try:
                t = float(self.mcu_temp())
                self.temp_ok = True
                return t
            except (OSError, ValueError, TypeError, AttributeError):
                pass
        return None


def _fit(pts):
    if not pts:
        return 1.0, 0.0
    if len(pts) == 1:
        m, a = pts[0]
        if m <= 0:
            raise ValueError("calibration point with a zero reading")
        return a / m, 0.0
    (m1, a1), (m2, a2) = pts[0], pts[1]
    if abs(m2 - m1) < _TWO_POINT_MIN_MV:
        raise ValueError("calibration points closer than %d mV" % _TWO_POINT_MIN_MV)
    g = (a2 - a1) / (m2 - m1)
    return g, a1 - g * m1


def _check(g, o):
    if not _GAIN_MIN <= g <= _GAIN_MAX:
        raise ValueError(
            "calibration gain %.3f is outside %.2f-%.2f: wrong value or wrong units?" % (g, _GAIN_MIN, _GAIN_MAX)
        )
    if abs(o) > _OFFSET_MAX_MV:
        raise ValueError("calibration offset %d mV is beyond +/-%d mV" % (o, _OFFSET_MAX_MV))


# Chips whose MicroPython port has esp32.mcu_temperature() (calibrated, in C): every esp32 target but the
# original ESP32, which has only esp32.raw_temperature(), an uncalibrated 8-bit register read (often a
# stuck 128), not a temperature in any unit (docs/reference/micropython-runtime.md, modesp32.c).
_MCU_TEMP_CHIPS = ("esp32s3", "esp32s2", "esp32c3", "esp32c6")


def mcu_temp_reader(mcu=None):
    """A callable reading the MCU's calibrated sensor in C, or None: on the original ESP32 (and when the
    chip is not known) there is none, and raw_temperature() is never turned into degrees."""
    if mcu not in _MCU_TEMP_CHIPS:
        return None
    try:
        import esp32
    except ImportError:
        return None
    return getattr(esp32, "mcu_temperature", None)
