# Lifetime charge counters in integers. The ESP32 port computes in single-precision floats (24-bit
# mantissa): a float total of amp-seconds stops moving once it is 2^24 times the step, so 1 s steps of a
# few hundred mA vanish after a few thousand Ah. Here the only float is the current of one step, turned
# into whole mA once; everything that accumulates is an int, with the remainders carried, so nothing is
# ever lost. The totals are kept as whole mAh plus a remainder so every int stays a small int on the port
# (10 years at 5 A is 438 000 mAh).
from micropython import const

_MS_PER_S = const(1000)
_S_PER_H = const(3600)


class ChargeCounter:
    """Charge in one direction (discharge or charge), exact: mah + (mas + mams / 1000) / 3600."""

    def __init__(self):
        self.mah = 0  # whole mAh
        self.mas = 0  # 0 <= mas < 3600: mA.s on top of mah
        self.mams = 0  # 0 <= mams < 1000: mA.ms on top of mas

    def add(self, ma, dt_ms):
        """Add `ma` (int mA, >= 0) flowing for dt_ms (int ms, >= 0)."""
        if ma <= 0 or dt_ms <= 0:
            return
        t = self.mams + ma * dt_ms
        self.mams = t % _MS_PER_S
        t = self.mas + t // _MS_PER_S
        self.mas = t % _S_PER_H
        self.mah += t // _S_PER_H

    def total_mas(self):
        """Whole mA.s counted (an int; may be a long int on the port: for tests and reports)."""
        return self.mah * _S_PER_H + self.mas

    def ah(self):
        """The total in Ah as a float, for display only (never accumulate this)."""
        return self.mah / 1000.0 + self.mas / 3600000.0

    def set(self, mah, mas):
        self.mah = int(mah)
        self.mas = int(mas) % _S_PER_H
        self.mams = 0


def to_ma(amps):
    """A current in A (float) as whole mA, rounded to nearest (the one float step of the count)."""
    if amps >= 0:
        return int(amps * 1000.0 + 0.5)
    return -int(-amps * 1000.0 + 0.5)


class NetCharge:
    """Discharged and charged counters, and the net charge drawn since a movable reference, in Ah as a
    small float (the reference moves with the capacity fit so the float stays small and exact enough)."""

    def __init__(self):
        self.out = ChargeCounter()
        self.into = ChargeCounter()

    def add(self, amps, dt_ms):
        ma = to_ma(amps)
        if ma > 0:
            self.out.add(ma, dt_ms)
        elif ma < 0:
            self.into.add(-ma, dt_ms)

    def net_mah_mas(self):
        """(mAh, mA.s) net drawn, as ints (mA.s in -3600..3600 range after the mAh)."""
        return self.out.mah - self.into.mah, self.out.mas - self.into.mas

    def net_ah_since(self, ref_mah, ref_mas):
        mah, mas = self.net_mah_mas()
        return (mah - ref_mah) / 1000.0 + (mas - ref_mas) / 3600000.0
