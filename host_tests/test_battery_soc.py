"""The SoC estimator's parts: tables, temperature factors, smoothing limits, LFP's charge counting."""

from __future__ import annotations

import pytest

from posguard import soc


def test_nmc_table_matches_the_reference_points() -> None:
    # docs/reference/battery-and-printer.md, Chen2020 NMC811 at 25 C
    for pct, v in ((100, 4.200), (90, 4.097), (50, 3.751), (20, 3.485), (5, 3.109), (0, 2.500)):
        assert soc.soc_to_ocv(pct, "NMC") == pytest.approx(v)
        assert soc.ocv_to_soc(v, "NMC") == pytest.approx(pct)
    assert soc.ocv_to_soc(4.5) == 100.0 and soc.ocv_to_soc(1.0) == 0.0  # clamped, never outside 0-100
    assert 9 <= soc.slope_mv_per_pct(55) <= 11  # "9-11 mV per % at 30-80 %"


def test_resistance_rises_toward_empty() -> None:
    # all five reference traces: flat above 30 %, x1.1-1.2 at 10 %, x1.1-1.3 at 5 %
    assert soc.r_shape(50.0) == 1.0 and soc.r_shape(30.0) == 1.0
    assert 1.1 <= soc.r_shape(10.0) <= 1.25 and 1.1 <= soc.r_shape(5.0) <= 1.3
    assert soc.r_shape(-5.0) == soc.r_shape(0.0)


def test_first_estimate_waits_for_a_rested_reading() -> None:
    """Issue 11: a full aged cell starting under a receipt read 65 %. The estimator takes its first SoC only
    from a reading the monitor calls rested (idle current), never from the loaded voltage."""
    est = soc.SocEstimator("NMC", 4.25)
    r_true = 0.11
    ocv = 4.17  # about 97 %
    assert est.update(ocv - 2.0 * r_true, 2.0, 2.0, 0.04, 0.0, may_init=False) == -1.0  # under a receipt
    for _ in range(5):
        assert est.update(ocv - 2.0 * r_true, 2.0, 2.0, 0.04, 1.0, may_init=False) == -1.0
    s = est.update(ocv - 0.3 * r_true, 0.3, 2.0, r_true, 1.0, may_init=True)  # the first idle reading
    assert s > 90.0
    # Control: the same loaded reading accepted as a start gives the wrong figure.
    bad = soc.SocEstimator("NMC", 4.25)
    assert bad.update(ocv - 2.0 * r_true, 2.0, 2.0, 0.04, 0.0) < 80.0


def test_unknown_chemistry() -> None:
    with pytest.raises(ValueError, match="known: LFP, NMC"):
        soc.SocEstimator("LiPo-X", 5.0)


def test_a_voltage_jump_cannot_move_soc_faster_than_a_current_could() -> None:
    est = soc.SocEstimator("NMC", 5.0)
    est.update(3.75, 0.3, 0.3, 0.05, 0.0)  # first reading initialises at about 50 %
    start = est.soc
    for _ in range(10):
        est.update(4.05, 0.3, 0.3, 0.05, 1.0)  # the voltage now claims about 80 %
    # ten seconds at the 0.5 A rate floor move at most 10 * 0.5 / 3600 / 5 * 100 = 0.028 %
    assert est.soc - start < 0.03
    for _ in range(10):
        est.update(3.75, 0.3, 0.3, 0.05, 1.0)
    assert abs(est.soc - start) < 0.03


def test_relaxation_after_a_receipt_is_not_read_as_charge() -> None:
    est = soc.SocEstimator("NMC", 5.0)
    r0 = 0.05
    v = 3.75
    est.update(v - 0.3 * r0 * 1.5, 0.3, 0.3, r0, 0.0)
    for _ in range(300):
        est.update(v - 0.3 * r0 * 1.5, 0.3, 0.3, r0, 1.0)
    settled = est.soc
    # A 6 s pulse at 2 A, then the voltage recovers over tens of seconds: the estimate must not jump.
    for _ in range(6):
        est.update(v - 2.0 * r0 - 0.01, 2.0, 2.0, r0, 1.0)
    for k in range(120):
        est.update(v - 0.3 * r0 * 1.5 - 0.01 * 0.97**k, 0.3, 0.3 if k else 2.0, r0, 1.0)
    assert abs(est.soc - settled) < 0.3


def test_lfp_counts_charge_in_its_flat_region() -> None:
    lfp = soc.SocEstimator("LFP", 5.0)
    nmc = soc.SocEstimator("NMC", 5.0)
    assert not soc.voltage_reliable("LFP") and soc.voltage_reliable("NMC")
    lfp.update(3.300, 0.0, 0.0, 0.05, 0.0)
    nmc.update(3.751, 0.0, 0.0, 0.05, 0.0)
    l0, n0 = lfp.soc, nmc.soc
    for _ in range(600):  # ten minutes with the voltage reading 15 mV high
        lfp.update(3.315, 0.0, 0.0, 0.05, 1.0)
        nmc.update(3.766, 0.0, 0.0, 0.05, 1.0)
    assert nmc.soc - n0 > 0.5 * (lfp.soc - l0) + 0.2  # NMC follows the voltage, LFP mostly does not
    assert lfp.soc - l0 < 0.3
