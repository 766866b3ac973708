# Test runner that lives inside the MicroPython unix port (no pytest there). A script defines
# `test_*` functions with plain asserts and ends with `mpy_runner.main(globals())`; each function is
# run on a fresh simulated world and reported as one line that the pytest driver turns into a result:
#   PASS name
#   FAIL name: ExceptionType: message
# followed by a HEAP line: the most heap the firmware held (above sim_heap's pinned budget) between tests.
# Run through mpy_main.py, which pins the ESP32's free heap before the test script is imported.
import gc
import os
import sys

_ROOT = None


def root():
    """The checkout's root: POSGUARD_ROOT from the driver, else two folders above this file."""
    global _ROOT
    if _ROOT is None:
        r = os.getenv("POSGUARD_ROOT")
        if not r:
            f = __file__
            for _ in range(3):
                f = f[: f.rfind("/")] if "/" in f else "."
            r = f
        _ROOT = r
    return _ROOT


def tmp_dir():
    d = os.getenv("POSGUARD_TMP") or "/tmp"
    return d


def make_world(profile_name="devkit-1s", seed=1):
    """The same world as the pytest `world` fixture (sim_world.World, power on) on boards/PROFILE.json,
    its filesystem in POSGUARD_TMP/mpyfs-PROFILE."""
    import json

    import sim_world

    with open(root() + "/boards/" + profile_name + ".json") as f:
        profile = json.load(f)
    fs = tmp_dir() + "/mpyfs-" + profile_name
    try:
        os.mkdir(fs)
    except OSError:
        pass
    w = sim_world.World(profile, fs, root() + "/firmware", seed=seed)
    w.power.on = True
    return w


_flashes = []


def fresh_flash(sectors=6, **kw):
    """A fresh simulated NOR flash of `sectors` 4 KB sectors (sim_flash.NorFlash keywords). The one made
    before gives its sector buffers back to the simulator's pool first: one VM runs every test of a
    script, and flash a finished test no longer uses must not add up in the heap."""
    import sim_flash

    while _flashes:
        _flashes.pop().release()
    f = sim_flash.NorFlash(sectors * 4096, **kw)
    _flashes.append(f)
    return f


def main(namespace):
    import sim_clock
    import sim_heap

    sim_clock.install()
    names = sorted(k for k in namespace if k.startswith("test_") and callable(namespace[k]))
    only = os.getenv("POSGUARD_MPY_ONLY")
    failed = 0
    peak = 0
    for name in names:
        if only and name != only:
            continue
        gc.collect()
        try:
            namespace[name]()
            print("PASS " + name)
        except Exception as e:  # a test failure: report it and go on with the next test
            failed += 1
            msg = str(e).replace("\n", " ")[:400]
            print("FAIL %s: %s: %s" % (name, type(e).__name__, msg))
        except SystemExit as e:  # simulated resets escaping a test are failures too, not exits
            failed += 1
            print("FAIL %s: escaped %s: %s" % (name, type(e).__name__, e))
        gc.collect()  # what a test left alive, not garbage waiting for a collection
        a = sim_heap.sample_peak()
        if a > peak:
            peak = a
    print("HEAP peak_alloc=%d free=%d" % (peak, gc.mem_free()))
    sys.exit(1 if failed else 0)
