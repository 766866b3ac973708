# Calendar arithmetic for the simulated RTC. MicroPython's ESP32 port counts seconds from 2000-01-01
# (its embedded epoch), and machine.RTC().datetime() uses the tuple
# (year, month, day, weekday, hours, minutes, seconds, subseconds) with Monday = 0.

_EPOCH_DAYS_FROM_0000 = 730425  # 719468 (civil day count of 1970-01-01) + 10957 days to 2000-01-01


def _days_from_civil(y, m, d):
    # Howard Hinnant's days_from_civil, shifted to the 2000 epoch.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - _EPOCH_DAYS_FROM_0000


def _civil_from_days(z):
    z += _EPOCH_DAYS_FROM_0000
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def mktime(t):
    """(year, month, mday, hour, minute, second, ...) -> seconds since 2000-01-01."""
    return _days_from_civil(t[0], t[1], t[2]) * 86400 + t[3] * 3600 + t[4] * 60 + t[5]


def gmtime(secs):
    """Seconds since 2000 -> (year, month, mday, hour, minute, second, weekday, yearday)."""
    days = secs // 86400
    rem = secs - days * 86400
    y, m, d = _civil_from_days(days)
    wd = (days + 5) % 7  # 2000-01-01 was a Saturday (Monday = 0)
    yd = days - _days_from_civil(y, 1, 1) + 1
    return (y, m, d, rem // 3600, (rem // 60) % 60, rem % 60, wd, yd)


def to_rtc_tuple(secs, subsec=0):
    t = gmtime(secs)
    return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], subsec)


def from_rtc_tuple(dt):
    return mktime((dt[0], dt[1], dt[2], dt[4], dt[5], dt[6]))
