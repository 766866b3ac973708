# One world builder on the unix port (issue 14): mpy_runner.make_world() is the pytest `world` fixture's
# world, a sim_world.World with the power on, and closing it leaves no board or power domain behind.
import mpy_runner
import sim_board
import sim_power
import sim_world


def test_make_world_is_a_sim_world_that_closes():
    w = mpy_runner.make_world("pos-2s", seed=3)
    assert isinstance(w, sim_world.World)
    assert w.power.on and w.board.seed == 3 and w.profile["mcu"] == "esp32s3"
    assert sim_board.current is w.board and sim_power.POWER is w.power
    w.close()
    assert sim_board.current is None and sim_power.POWER is None and not w.power.on


if __name__ == "__main__":
    mpy_runner.main(globals())
