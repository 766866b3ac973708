# The naive power policy the simulator compares posguard against (never deployed): the same battery
# reading, but a fixed voltage threshold per cell for "can this receipt print", no load compensation,
# no heat scaling (the printer's default ESC 7 heat), flash maintenance whenever it likes.
# Wraps a posguard.powermon.PowerMonitor; everything it does not override is the monitor's.
NAIVE_V_CELL = 3.3  # a common fixed cut-off in hobby firmware [EST]
# ESC 7 defaults: 64 dots, 800 us, 20 us (battery-and-printer.md); peak_a unknown to a naive policy
_DEFAULT_HEAT = (7, 80, 2, 64, 800, 20, 0.0)


class NaiveMonitor:
    def __init__(self, mon):
        self._mon = mon
        self._threshold = NAIVE_V_CELL * mon.prof["battery"]["cells_series"]

    def __getattr__(self, name):
        if name == "_mon":  # not set yet: never recurse
            raise AttributeError(name)
        return getattr(self._mon, name)

    def _ok(self):
        v = self._mon.pack_v
        return v is not None and v >= self._threshold and self._mon.fault is None

    @property
    def state_name(self):
        if self._mon.state_name in ("FAULT", "SHUTDOWN"):
            return self._mon.state_name
        return "OK" if self._ok() else "CRITICAL"

    def can_print(self, lines=30, heat=None):
        return (True, "ok") if self._ok() else (False, "pack below %.2f V" % self._threshold)

    def heat_setting(self):
        from posguard.power_policy import HeatSetting

        return HeatSetting(*_DEFAULT_HEAT)

    @property
    def maintenance_allowed(self):
        return True

    def run(self, period_s=1.0):
        return self._mon.run(period_s)

    def set_load(self, printing, heat=None):
        return self._mon.set_load(printing, heat)
