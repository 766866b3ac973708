# The one builder of a simulated world around a board (MicroPython subset: it also runs inside the unix
# port; never deployed). Every simulated world is built here, from the board profile: the trading day
# (sim_day.Day), the virtual board (sim_vboard_boot.World), the pytest `world` fixtures (conftest.py), the
# unix-port test runner (mpy/mpy_runner.py) and the host tools' worlds (posguard_tools.printer_world,
# posguard_tools.battery_sim). The parts: the virtual clock, the power domain, the board (pins, ADC
# nets, UART peers, watchdog, RTC; sim_board.Board), the pack on its sense divider behind a connector,
# the thermal printer on its UART, the journal's flash partition and a peer on the host link.
# A caller adds the parts its world has, in the order it needs them: each part is built once, here.
import sim_board
import sim_clock
import sim_power


class Connector:
    """The pack's connector, between the pack and the board: pulled (0 V, nothing drawn from the pack) or
    connected. Counts the charge that left the pack (discharge only, Ah).

    rests: a pulled pack goes on living (it relaxes, a charger keeps charging it) as a real pack does;
    False freezes it while pulled (the virtual board's world, which never modelled the time off)."""

    def __init__(self, battery, rests=True):
        self.battery = battery
        self.rests = rests
        self.connected = True
        self.discharged_ah = 0.0

    def terminal_v(self, amps):
        return self.battery.terminal_v(amps) if self.connected else 0.0

    def step(self, dt_s, amps):
        if not (self.connected or self.rests):
            return
        before = self.battery.drawn_ah
        self.battery.step(dt_s, amps if self.connected else 0.0)
        if self.battery.drawn_ah > before:
            self.discharged_ah += self.battery.drawn_ah - before


class World:
    """A clock restarted at clock_ms, a power domain at the profile's brownout level and a board on the
    profile; add_pack / add_printer / add_journal / add_host put the rest of the world on it."""

    def __init__(self, profile, fs_dir, firmware_dir, seed=1, clock_ms=0):
        self.profile = profile
        self.fs_dir = fs_dir
        self.seed = seed
        self.clock = sim_clock.reset(clock_ms)
        self.power = sim_power.PowerDomain(self.clock, profile["power"]["brownout_v"])
        self.board = sim_board.Board(profile, fs_dir, firmware_dir, clock=self.clock, power=self.power, seed=seed)
        self.battery = None
        self.pack = None
        self.conn = None
        self.printer = None
        self.flash = None
        self.host = None

    def close(self):
        """The world ends: its power goes off and no board or power domain is current any more, so the
        next world (or a test's teardown) starts from nothing."""
        self.power.on = False
        sim_board.current = None
        sim_power.POWER = None

    def add_pack(self, battery, rests=True):
        """The pack as the board's supply: its sense divider on the ADC pin, the thermistor, the charger
        input (sim_battery.PackWiring), behind a Connector that can be pulled."""
        import sim_battery

        self.battery = battery
        self.pack = sim_battery.PackWiring(self.board, battery)
        self.conn = Connector(battery, rests)
        self.power.set_source(self.conn)
        return self.pack

    def add_printer(self, **overrides):
        """A printer of the profile's model on its UART (sim_printer.attach)."""
        import sim_printer

        self.printer = sim_printer.attach(self.board, **overrides)
        return self.printer

    def add_journal(self):
        """The journal partition the profile names, erased, as `posguard provision` leaves it."""
        import sim_flash

        self.flash = sim_flash.provision(self.board, seed=self.seed)
        return self.flash

    def add_host(self, peer_class=None):
        """A peer on the profile's host-link UART (default sim_host.HostPeer, the cashier app's end)."""
        if peer_class is None:
            import sim_host

            peer_class = sim_host.HostPeer
        self.host = peer_class(self.board, self.profile["host"]["uart_id"])
        return self.host
