# The simulated board's power: a source (ideal bench supply, or the battery model) feeding named loads.
# All load currents are pack-side amps. When the rail falls under the profile's brownout level the
# board resets (ESP32 brownout detector: flash and RF power are cut, an in-progress program or erase
# is aborted; docs/reference/storage.md), modelled by raising PowerLoss into whatever ran.

# Resets are SystemExit subclasses on purpose: firmware's `except Exception` never swallows them, and
# both asyncio implementations let them through a task to the runner (CPython keeps plain
# BaseExceptions inside the task).


class BoardReset(SystemExit):
    cause = 0


class PowerLoss(BoardReset):
    """The rail fell under the brownout level, the pack was pulled, or a test cut the power."""

    cause = 1  # machine.PWRON_RESET: the ESP32 reports a brownout as a power-on reset


class WatchdogReset(BoardReset):
    cause = 3  # machine.WDT_RESET


class DeepSleep(BoardReset):
    cause = 4  # machine.DEEPSLEEP_RESET

    def __init__(self, ms):
        super().__init__("deepsleep")  # (MicroPython refuses BoardReset.__init__(self, ...) on exceptions)
        self.ms = ms


class SoftReset(BoardReset):
    cause = 5  # machine.SOFT_RESET


class SimulationEnd(BoardReset):
    """The simulated world's time is up (not a reset: the runner stops)."""


class IdealSupply:
    """A bench supply: constant voltage, any current. The default until a battery model is attached."""

    def __init__(self, volts):
        self.volts = volts

    def terminal_v(self, amps):
        return self.volts

    def step(self, dt_s, amps):
        pass


_MAX_LOG = 64  # power events kept for reports; older ones are dropped


class PowerDomain:
    def __init__(self, clock, brownout_v, source=None, restart_hysteresis_v=0.05):
        self.clock = clock
        self.brownout_v = brownout_v
        # The ESP32 brownout detector has about 0.05 V of tolerance per level (storage.md); the
        # chip restarts only once the rail is above the level again.
        self.restart_v = brownout_v + restart_hysteresis_v
        self.source = source if source is not None else IdealSupply(brownout_v + 1.0)
        self.loads = {}
        self.on = False
        self.brownouts = 0
        self.cuts = 0
        self.min_v = None
        self.log = []
        # World time (us) since which the source gives no voltage at all (the pack is out of its
        # connector), None while it is there. Parts on the same pack (the printer) read it to lose their
        # own power: a board reset alone (brownout, watchdog, a test's cut()) leaves it None.
        self.outage_since = None
        self.outages = 0
        clock.add_listener(self._on_time)

    # -- loads ------------------------------------------------------------------------------------
    def set_load(self, name, amps):
        self.loads[name] = amps
        if self.on:
            self.check()

    def total_a(self):
        t = 0.0
        for a in self.loads.values():
            t += a
        return t

    def rail_v(self):
        return self.source.terminal_v(self.total_a())

    # -- supply ------------------------------------------------------------------------------------
    def set_source(self, source):
        self.source = source

    def _on_time(self, t0_us, t1_us):
        self.source.step((t1_us - t0_us) / 1000000, self.total_a())
        self._watch_outage(t0_us)
        if self.on:
            self.check()

    def _watch_outage(self, t0_us):
        # Registered before any part's listener (parts are built on this domain), so a part reading
        # outage_since in the same step sees it. A pull is an event: the clock settles right after it,
        # or the cut's PowerLoss stops time there, so t0_us is the moment the contact went.
        gone = self.source.terminal_v(0.0) <= 0.0
        if gone and self.outage_since is None:
            self.outage_since = t0_us
            self.outages += 1
        elif not gone and self.outage_since is not None:
            self.outage_since = None

    def check(self):
        v = self.rail_v()
        if self.min_v is None or v < self.min_v:
            self.min_v = v
        if v < self.brownout_v:
            self.brownouts += 1
            self.cut("brownout at %.3f V" % v)

    def cut(self, reason="power pulled"):
        """Power fails now: raise PowerLoss into whatever the board was doing."""
        if not self.on:
            return
        self.on = False
        self.cuts += 1
        self._note(reason)
        raise PowerLoss(reason)

    def require(self):
        """Hardware that needs power (flash, UART) calls this: nothing runs on a dead board."""
        if not self.on:
            raise PowerLoss("no power")

    def pull_at_ms(self, t_ms, reason="pack pulled"):
        """Schedule a power cut at absolute world time t_ms (a test or the simulator pulling the pack)."""

        def fire():
            self.cut(reason)

        return self.clock.call_at_us(int(t_ms * 1000), fire)

    def can_start(self):
        return self.source.terminal_v(self.total_a()) >= self.restart_v

    def _note(self, what):
        if len(self.log) >= _MAX_LOG:
            self.log.pop(0)
        self.log.append((self.clock.now_ms(), what))


# The power domain of the current simulated world (set by sim_board.Board).
POWER = None
