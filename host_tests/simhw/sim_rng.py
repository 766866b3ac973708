# The simulator's one random source: xorshift32, the same sequence on CPython and the unix port (their
# `random` modules differ). Each model seeds its own stream; mult/add/zero/warmup keep the streams the
# models were written with, so seeded runs (and the figures measured on them) do not change.
import math

_MASK = 0xFFFFFFFF


class Rng:
    def __init__(self, seed, mult=2654435761, add=1, zero=1, warmup=0):
        self.s = ((seed * mult + add) & _MASK) or zero
        for _ in range(warmup):
            self.next()

    def next(self):
        s = self.s
        s ^= (s << 13) & _MASK
        s ^= s >> 17
        s ^= (s << 5) & _MASK
        self.s = s
        return s

    u32 = next

    def byte(self):
        return self.next() & 0xFF

    def below(self, n):
        return self.next() % n

    def randint(self, lo, hi):
        return lo + self.next() % (hi - lo + 1)

    def random(self):
        return self.next() / 4294967296.0

    def uniform(self, lo, hi):
        return lo + (hi - lo) * self.random()

    def uniform3(self, lo, hi):
        """uniform(lo, hi) + uniform(lo, hi) + uniform(lo, hi), the same numbers from the same stream in
        one call (the ADC's noise on every sample: a hot path)."""
        s = self.s
        s ^= (s << 13) & _MASK
        s ^= s >> 17
        s ^= (s << 5) & _MASK
        a = s
        s ^= (s << 13) & _MASK
        s ^= s >> 17
        s ^= (s << 5) & _MASK
        b = s
        s ^= (s << 13) & _MASK
        s ^= s >> 17
        s ^= (s << 5) & _MASK
        self.s = s
        w = hi - lo
        return (lo + w * (a / 4294967296.0)) + (lo + w * (b / 4294967296.0)) + (lo + w * (s / 4294967296.0))

    def expo(self, mean):
        return -mean * math.log(1.0 - self.random())
