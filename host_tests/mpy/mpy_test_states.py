# posguard.states on the MicroPython VM: its const() names stay public (a name starting with "_"
# would be stripped from the module), and the tables derived at import come out as on CPython.
import mpy_runner

from posguard import saleio, sales, states


def test_state_bytes_are_public_module_attributes():
    for i in range(1, len(states.NAMES)):
        assert getattr(states, states.NAMES[i]) == i, states.NAMES[i]
        assert getattr(sales, states.NAMES[i]) == i  # re-exported by the sale book
    assert sales.NAMES is states.NAMES and saleio.VISITED is states.VISITED


def test_derived_tables_follow_the_transitions():
    v = states.VISITED
    r = states.REMAINING
    for frm in states.TRANSITIONS:
        for to in states.TRANSITIONS[frm]:
            assert v[to] & v[frm] == v[frm] and v[to] & (1 << to), (frm, to)
            assert r[frm] >= r[to] + 1, (frm, to)
    for st in states.FINAL:
        assert r[st] == 0 and st not in states.TRANSITIONS
    assert v[states.REVERSAL_PENDING] & (1 << states.VOIDED)  # IMPLIES: voided locally


def test_a_state_entered_twice_is_refused_at_import():
    saved = states.TRANSITIONS
    states.TRANSITIONS = {states.OPEN: (states.PAID,), states.PAYMENT_PENDING: (states.PAID,)}
    try:
        states._derive()
        raise AssertionError("two ways into PAID accepted")
    except ValueError as e:
        assert "PAID" in str(e)
    finally:
        states.TRANSITIONS = saved


if __name__ == "__main__":
    mpy_runner.main(globals())
