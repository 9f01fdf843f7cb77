"""Is the takedown working? Reduction since a date, and the remediation half-life.

Both work on a daily series (one value per UTC day: estimated machines, or unique IPs), per
group if wanted. The half-life comes from a least-squares fit of log(value) against days since
the takedown (an exponential decay); its interval from the slope's standard error (Student t).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Decay", "Reduction", "fit_decay", "reduction"]


@dataclass(frozen=True, slots=True)
class Reduction:
    start_day: dt.date
    start: float
    end_day: dt.date
    end: float

    @property
    def change(self) -> float:
        """Relative change, e.g. -0.56 for 1,601,619 → 702,860."""
        return (self.end - self.start) / self.start if self.start else math.nan


@dataclass(frozen=True, slots=True)
class Decay:
    half_life_days: float  # inf when there is no decay
    low: float
    high: float
    days: int
    r2: float


def _mean_near(
    days: Sequence[dt.date], values: Sequence[float], at: dt.date, span: int
) -> tuple[dt.date, float]:
    """Mean of the values within ``span`` days up to ``at`` (or the nearest day present)."""
    picked = [v for d, v in zip(days, values, strict=True) if 0 <= (at - d).days < span]
    if picked:
        return at, float(np.mean(picked))
    nearest = min(range(len(days)), key=lambda i: abs((days[i] - at).days))
    return days[nearest], float(values[nearest])


def reduction(
    days: Sequence[dt.date],
    values: Sequence[float],
    since: dt.date,
    until: dt.date | None = None,
    span: int = 1,
) -> Reduction:
    """Change from ``since`` to ``until`` (default: the last day), each a ``span``-day mean."""
    if not days:
        raise ValueError("empty series")
    until = until or max(days)
    start_day, start = _mean_near(days, values, since, span)
    end_day, end = _mean_near(days, values, until, span)
    return Reduction(start_day, start, end_day, end)


def fit_decay(
    days: Sequence[dt.date], values: Sequence[float], takedown: dt.date, level: float = 0.9
) -> Decay | None:
    """Exponential decay fitted to the values from the takedown day on; None if < 3 days."""
    pts = [
        ((d - takedown).days, v)
        for d, v in zip(days, values, strict=True)
        if d >= takedown and v > 0
    ]
    if len(pts) < 3:
        return None
    t = np.array([p[0] for p in pts], dtype=float)
    y = np.log(np.array([p[1] for p in pts], dtype=float))
    fit = stats.linregress(t, y)
    k = -fit.slope
    tcrit = stats.t.ppf(0.5 + level / 2, len(pts) - 2)
    k_lo, k_hi = k - tcrit * fit.stderr, k + tcrit * fit.stderr

    def half(rate: float) -> float:
        return math.log(2) / rate if rate > 0 else math.inf

    return Decay(half(k), half(k_hi), half(k_lo), len(pts), float(fit.rvalue**2))
