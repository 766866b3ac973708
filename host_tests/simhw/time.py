# Unix-port override of the builtin `time` module (extensible builtins let a .py on the path win).
# Everything reads the simulated world's clock; never copied to a board. CPython ignores this file
# (its `time` is compiled in) and gets the same functions patched on by sim_clock.install().
import sim_clock


def ticks_ms():
    return sim_clock.CLOCK.ticks_ms()


def ticks_us():
    return sim_clock.CLOCK.ticks_us()


ticks_cpu = ticks_us
ticks_add = sim_clock.ticks_add
ticks_diff = sim_clock.ticks_diff
sleep_ms = sim_clock.sleep_ms
sleep_us = sim_clock.sleep_us
sleep = sim_clock.sleep


# Wall clock: the board's RTC, which starts at the epoch the simulated world set.
def time():
    import machine

    return machine.RTC()._seconds()


def time_ns():
    return time() * 1000000000


def gmtime(secs=None):
    import sim_rtc

    return sim_rtc.gmtime(time() if secs is None else secs)


localtime = gmtime


def mktime(t):
    import sim_rtc

    return sim_rtc.mktime(t)
