# Foundation checks on the real MicroPython VM: the virtual clock, profiles, and a board that boots,
# loses power and boots again with RAM gone. Run by the pytest driver through mpy_main.py.
import os
import time

import mpy_runner
import sim_clock

WRAP = 1 << 30


def test_ticks_wrap_at_2_pow_30_on_the_unix_port_too():
    clock = sim_clock.reset(WRAP - 3)
    t0 = time.ticks_ms()
    clock.advance_ms(5)
    assert time.ticks_ms() == 2, time.ticks_ms()
    assert time.ticks_diff(time.ticks_ms(), t0) == 5


def test_asyncio_sleeps_in_virtual_time():
    import asyncio

    clock = sim_clock.reset(0)
    sim_clock.install()
    out = []

    async def nap():
        await asyncio.sleep(600)
        out.append(clock.now_ms())

    asyncio.run(nap())
    assert out == [600000], out


def test_both_profiles_validate():
    from posguard import profile

    for name in ("devkit-1s", "pos-2s"):
        p = profile.load(mpy_runner.root() + "/boards/" + name + ".json")
        assert p["name"] == name


def test_profile_errors_name_the_key():
    from posguard import profile

    p = profile.load(mpy_runner.root() + "/boards/devkit-1s.json")
    p["printer"]["bogus"] = 1
    try:
        profile.validate(p)
    except profile.ProfileError as e:
        assert "printer.bogus" in str(e), str(e)
    else:
        raise AssertionError("unknown key accepted")


def test_board_reboots_after_a_cut_with_ram_gone():
    w = mpy_runner.make_world()
    fw = mpy_runner.tmp_dir() + "/fw-foundation"
    try:
        os.mkdir(fw)
    except OSError:
        pass
    with open(fw + "/boot.py", "w") as f:
        f.write("")
    with open(fw + "/main.py", "w") as f:
        f.write(
            "import time, posguard\n"
            "open('log', 'a').write('%s\\n' % hasattr(posguard, '_mark'))\n"
            "posguard._mark = 1\n"
            "for _ in range(100):\n"
            "    time.sleep_ms(100)\n"
        )
    try:
        os.remove(w.board.fs_dir + "/log")
    except OSError:
        pass
    w.board.firmware_dir = fw
    w.power.pull_at_ms(300)
    summary = w.board.run(until_ms=1000)
    assert summary["boots"] == 2, summary
    with open(w.board.fs_dir + "/log") as f:
        assert f.read() == "False\nFalse\n"


if __name__ == "__main__":
    mpy_runner.main(globals())
