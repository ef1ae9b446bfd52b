"""PostgreSQL's variance and standard deviation aggregates, which SQLite lacks,
registered on every connection (Hasura's `stddev`, `var_pop`, ... aggregates).

Integers are summed exactly (Python integers do not overflow), so their variance is
exact up to the final rounding, as PostgreSQL's numeric arithmetic is; as soon as a
float appears, Welford's algorithm keeps the running mean and squared deviations, which
stays accurate where "sum of squares minus square of sum" cancels catastrophically.
NULLs are skipped; no values answer NULL, and a sample of one value too (as in PG)."""

from __future__ import annotations

import math
from fractions import Fraction

import apsw

# SQL name -> (sample: divide by n - 1, not n; square root: a deviation, not a variance)
FUNCTIONS = {
    "clustore_var_pop": (False, False),
    "clustore_var_samp": (True, False),
    "clustore_stddev_pop": (False, True),
    "clustore_stddev_samp": (True, True),
}


class Spread:
    """The running state of one variance: exact while every value is an integer."""

    def __init__(self, sample: bool, root: bool):
        self.sample, self.root = sample, root
        self.n = 0
        self.total = self.squares = 0  # exact, while `mean` is None
        self.mean: float | None = None  # Welford's state, once a float was seen
        self.m2 = 0.0

    def step(self, value) -> None:
        if value is None:
            return
        if isinstance(value, (bytes, str)):
            raise TypeError("a variance takes numbers, not text or bytes")
        if isinstance(value, int) and self.mean is None:
            self.n += 1
            self.total += value
            self.squares += value * value
            return
        if self.mean is None:  # the first float: carry the exact state over
            self.mean = self.total / self.n if self.n else 0.0
            self.m2 = float(self._exact_m2()) if self.n else 0.0
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def _exact_m2(self) -> Fraction:
        """The sum of squared deviations from the mean, of the integers seen."""
        return Fraction(self.squares) - Fraction(self.total * self.total, self.n)

    def final(self) -> float | None:
        divisor = self.n - 1 if self.sample else self.n
        if divisor <= 0:
            return None
        if self.mean is None:
            variance = float(self._exact_m2() / divisor)
        else:
            variance = max(self.m2, 0.0) / divisor
        return math.sqrt(variance) if self.root else variance


def register(conn: apsw.Connection) -> None:
    """Define the variance and deviation aggregates on `conn`."""
    for name, (sample, root) in FUNCTIONS.items():
        conn.create_aggregate_function(
            name, lambda s=sample, r=root: Spread(s, r), 1, flags=apsw.SQLITE_DETERMINISTIC)
