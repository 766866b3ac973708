# The simulator's pack of the reference cell family on the real MicroPython VM (unix port): the presets,
# the knobs, the thermal state, the copy the day's look-ahead runs on, and the physical limit itself
# (sim_battery.physical_limit: the figure `posguard sim --runtime micropython` reports).
import mpy_runner


def test_presets_and_knobs_on_the_unix_port():
    import sim_battery

    fresh = sim_battery.Battery.of_pack("fresh", soc=0.5)
    worn = sim_battery.Battery.of_pack("worn70", soc=0.5, temp_c=15.0)
    assert abs(fresh.usable_ah() - sim_battery.Q_AH) < 1e-9
    assert abs(worn.usable_ah() - 0.7 * sim_battery.Q_AH) < 1e-9
    assert worn.r0_cell() > 2.0 * fresh.r0_cell()
    assert sim_battery.pack_knobs("0.8,0.5,60") == (0.8, 0.5, 0.06)
    try:
        sim_battery.pack_knobs("0.8,0.5")
        raise AssertionError("a bad pack spec was accepted")
    except ValueError:
        pass
    worn.temp_c = 30.0  # the property setter: ambient and cell together
    assert worn.cell_c == 30.0 and worn.temp_c == 30.0


def test_copy_is_independent_and_warms_under_load():
    import sim_battery

    b = sim_battery.Battery.of_pack("aged85", soc=0.6, temp_c=5.0)
    c = b.copy()
    for _ in range(600):
        c.step(1.0, 2.0)
    assert c.soc() < b.soc() - 0.05 and b.soc() > 0.599
    assert c.cell_c > 5.3 and b.cell_c == 5.0


def test_physical_limit_on_the_unix_port():
    import sim_battery

    def peak(v):  # devkit-1s: 64 dots x 5 V / 176 Ohm behind the 90 % boost (sim_printer)
        return 5.0 * (64 * 5.0 / 176.0) / (0.9 * v)

    n_mid, share_mid = sim_battery.physical_limit(sim_battery.Battery.of_pack("fresh", soc=0.3), 0.3, 1.7, peak,
                                                  6, 3.0)
    n_low, share_low = sim_battery.physical_limit(sim_battery.Battery.of_pack("fresh", soc=0.1), 0.3, 1.7, peak,
                                                  6, 3.0)
    n_worn, _ = sim_battery.physical_limit(sim_battery.Battery.of_pack("worn70", soc=0.1), 0.3, 1.7, peak, 6, 3.0)
    assert n_mid > n_low > n_worn >= 0, (n_mid, n_low, n_worn)
    assert 0.0 < share_low < share_mid < 0.3


if __name__ == "__main__":
    mpy_runner.main(globals())
