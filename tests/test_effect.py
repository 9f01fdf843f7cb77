import datetime as dt
import math

import pytest

from takedown.measure.effect import fit_decay, reduction

D0 = dt.date(2011, 3, 16)


def series(n, f):
    days = [D0 + dt.timedelta(days=i) for i in range(n)]
    return days, [f(i) for i in range(n)]


def test_reduction_rustock_figures():
    days = [dt.date(2011, 3, 31), dt.date(2011, 6, 18)]
    red = reduction(days, [1_601_619, 702_860], dt.date(2011, 3, 31))
    assert red.start == 1_601_619 and red.end == 702_860
    assert round(100 * red.change) == -56


def test_reduction_uses_nearest_day_when_missing():
    days, vals = series(5, lambda i: 100 - 10 * i)
    red = reduction(days, vals, D0 - dt.timedelta(days=3), span=1)
    assert red.start_day == D0 and red.start == 100 and red.end == 60


def test_decay_recovers_a_known_half_life_with_an_interval_covering_it():
    days, vals = series(30, lambda i: 1000 * 0.5 ** (i / 7.0) * (1 + 0.03 * math.sin(i)))
    decay = fit_decay(days, vals, D0)
    assert decay is not None
    assert decay.half_life_days == pytest.approx(7.0, rel=0.05)
    assert decay.low <= 7.0 <= decay.high and decay.r2 > 0.98


def test_no_decay_is_an_infinite_half_life_and_short_series_none():
    days, vals = series(10, lambda i: 500 + (i % 2))
    decay = fit_decay(days, vals, D0)
    assert decay is not None and (decay.half_life_days == math.inf or decay.half_life_days > 1e3)
    assert fit_decay(days[:2], vals[:2], D0) is None
