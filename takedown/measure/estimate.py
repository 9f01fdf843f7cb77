"""How many machines, not addresses: the population estimator.

Counting unique IPs is a loose proxy: DHCP churn gives one machine many addresses over a week
(Torpig: 6.8 per bot), NAT gives many machines one address. This estimator counts *events*
instead, which neither distorts: a machine sends as many check-ins whatever address it has and
whoever shares that address. Per family:

1. **The rate of one machine**, ``mu``: expected events per infected machine and day, zero days
   included. Measured on *tracked units* over their "deep interior": for a unit first seen on
   day ``f`` and last seen on day ``l``, the days ``f+2 .. l-2``. The unit was there all those
   days (it was seen before and after), and whether a day is in the deep interior depends only
   on days at least a day away from it, so the events of those days, zeros included, are an
   unbiased sample of one unit's days. A unit is

   - a **bot id**, where the family sends one: exactly one machine;
   - otherwise a **long-lived address** (static, or a lease of ≥ 5 days). Some hold several of
     the family's machines (home NAT): the addresses' deep-interior totals are fitted as a
     mixture over ``k`` machines behind one address, ``k = 1 + Poisson(m)``, each component a
     negative binomial with mean ``k n mu`` and the dispersion measured within addresses.
     Addresses above ``NAT_CAP`` machines' rate are carrier-grade NAT pools and left out of the
     fit (their events still count). Where families with bot ids share the lake, the address
     fit is also run on them, and its bias against their exact ``mu`` corrects the others.

   The fit runs over the window widened to ``CAL_DAYS`` (behaviour is assumed stationary).
2. **Machines on a day** = the family's events that day / ``mu``: the mean number infected
   over the day. Infected *at any moment of the day* adds half the day's turnover, taken from
   the slope of the smoothed daily series.
3. **Machines over a window** (infected at any moment of it): the peak of the smoothed daily
   series (a local linear fit over ±3 days), per network at the family's peak day: a
   population that grows, then shrinks (infections, then a takedown's clean-up) has the peak
   as its union. Machines with a bot id are counted instead: distinct ids, plus Chao's
   estimate of ids never seen (``f1² / 2 f2`` over days); and the ratio of that count to the
   peak of the same machines' daily series (> 1 when machines come and go within the window)
   scales the machines without ids.

Each figure has a 90% interval from the sampling error of ``mu`` (ratio estimator, and a
bootstrap over addresses for the mixture), the Poisson noise of the events, and a model error
calibrated on simulator seeds that the benchmark does not report (``MODEL_ERROR``;
bench/bench_measure.py, docs/measure.md).
Everything read from the lake is plain aggregate SQL, run as is on DuckDB and transpiled for
Spark; numpy works on the aggregated tables only.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy.special import gammaln

from takedown.measure.counts import Window, base_cte
from takedown.measure.engine import Engine

__all__ = [
    "CAL_DAYS",
    "MODEL_ERROR",
    "NAT_CAP",
    "Z90",
    "Estimate",
    "FamilyModel",
    "calibration_window",
    "estimate",
    "fit_addresses",
    "fit_ids",
    "interval",
    "local_linear",
]

F64 = npt.NDArray[np.float64]

Z90 = 1.6449
CAL_DAYS = 28  # calibrate on at least this many days around the window
GAP = 2  # deep interior: at least this many days after the first sighting, before the last
MIN_UNITS = 20  # tracked units needed for a fit
NAT_CAP = 4.0  # addresses above this many machines' rate are NAT pools, not households
K_MAX = 8  # machines per household address considered by the mixture
SMOOTH = 3  # half-width (days) of the local linear smoother
BOT_ID_SHARE = 0.9  # a family is "by bot id" when this share of its events carry one
# Relative model error (1 sigma) by calibration method, (daily, window). Calibrated on seeds
# 1-3 of the scenario matrix (bench/bench_measure.py --seeds 1 2 3 --calibrate), which the
# reported seeds do not include: 90% coverage there needed 0.8% / 1.2% (addresses), 1.0%
# (addresses with the bias from bot ids) and 0.3% (bot ids); these are about twice that, for
# a small calibration sample. The fallback (no long-lived unit at all) is a guess.
MODEL_ERROR: dict[str, tuple[float, float]] = {
    "bot ids": (0.01, 0.01),
    "addresses, bias from bot ids": (0.02, 0.02),
    "addresses": (0.02, 0.025),
    "one machine per address-day": (0.5, 0.5),
}
# Chao's estimate of the ids never seen assumes every machine was there all the window; on the
# simulator it was between a third and three times the truth (too high when machines are
# cleaned within the window, too low before the takedown), and never above the ids seen once
# (f1). Its standard deviation is taken as the larger of f0 * UNSEEN_ERROR and f1 / 4.
UNSEEN_ERROR = 1.0
_DEFAULT_DISPERSION = 1.5


@dataclass(frozen=True, slots=True)
class FamilyModel:
    """How one family was calibrated: ``rate`` events per infected machine per day."""

    family: str
    method: str  # a key of MODEL_ERROR
    by_bot_id: bool  # nearly all its events carry a bot id
    id_share: float  # share of its events with a bot id
    rate: float  # mu: events per infected machine-day, zero days included
    rate_se: float
    dispersion: float  # variance / mean of one machine's daily events
    multiplicity: float  # mean machines per long-lived address (address fit), else 1
    units: int  # tracked units (bot ids or addresses) behind the fit
    bias: float  # address-fit bias divided out (1 = none)


@dataclass
class Estimate:
    """Daily and window estimates, per family and network, and how to add them up.

    ``daily``: day, family, network, asn, cc, events, ips, ids, machines, low, high,
    sd_shared, sd_own. ``window``: family, network, asn, cc, events, ips, ids, machines, low,
    high, sd_shared, sd_own. ``sd_shared`` (calibration and model error) is added linearly
    when rows are summed, ``sd_own`` (noise of the row's own events) in quadrature.
    """

    models: dict[str, FamilyModel]
    daily: pa.Table
    window: pa.Table
    window_days: tuple[dt.date, dt.date] | None = None  # first and last day estimated
    # Exact counts per day from the same scan (period, events, unique_ips, unique_ips_hll,
    # bot_ids), so a daily report does not read the lake twice.
    counts: pa.Table | None = None

    def total_daily(self) -> pa.Table:
        return _sum_by(self.daily, ["day"])

    def total_window(self) -> dict[str, float]:
        rows = _sum_by(self.window, []).to_pylist()
        if not rows:
            return {"ips": 0.0, "ids": 0.0, "machines": 0.0, "low": 0.0, "high": 0.0}
        row = rows[0]
        return {k: float(row[k]) for k in ("ips", "ids", "machines", "low", "high")}

    def by(self, key: str) -> pa.Table:
        return _sum_by(self.window, [key])


def interval(est: float, sd: float, floor: float = 0.0) -> tuple[float, float]:
    """90% interval of a positive estimate with standard deviation ``sd`` (log-normal)."""
    if est <= 0:
        return max(0.0, floor), max(floor, Z90 * sd)
    spread = Z90 * sd / est
    return max(floor, est * math.exp(-spread)), max(floor, est * math.exp(spread))


_SUMMED = ("events", "ips", "ids", "machines")


def _sum_by(table: pa.Table, keys: list[str]) -> pa.Table:
    """Sum rows per key: estimates and counts add; ``sd_shared`` linearly, ``sd_own`` in
    quadrature (IPs are summed too, so an address in two groups counts twice)."""
    groups: dict[tuple[Any, ...], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    cols = table.to_pydict()
    for i in range(table.num_rows):
        g = groups[tuple(cols[k][i] for k in keys)]
        for c in _SUMMED:
            g[c] += float(cols[c][i] or 0)
        g["shared"] += float(cols["sd_shared"][i])
        g["own2"] += float(cols["sd_own"][i]) ** 2
        g["floor"] += float(cols["ids"][i] or 0) if "day" not in cols else 0.0
    rows = []
    for key, g in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        for c in _SUMMED:
            row[c] = g[c]
        sd = math.hypot(g["shared"], math.sqrt(g["own2"]))
        row["low"], row["high"] = interval(g["machines"], sd, g["floor"])
        row["sd"] = sd
        rows.append(row)
    if not rows:
        names = [*keys, *_SUMMED, "low", "high", "sd"]
        return pa.table({k: pa.array([], pa.float64()) for k in names})
    return pa.Table.from_pylist(rows)


# -- calibration -----------------------------------------------------------------------------
def calibration_window(window: Window, days: int = CAL_DAYS) -> Window:
    """The window widened symmetrically to at least ``days`` days (open ends stay open)."""
    if window.since is None or window.until is None:
        return window
    span = (window.until - window.since).days
    if span >= days:
        return window
    pad = (days - span + 1) // 2
    return replace(
        window,
        since=window.since - dt.timedelta(days=pad),
        until=window.until + dt.timedelta(days=pad),
    )


def _unit_histograms(engine: Engine) -> dict[tuple[str, str], F64]:
    """Deep-interior totals of tracked units, as a histogram per (family, kind).

    A unit first seen on day ``f`` and last seen on day ``l`` was there on the days between;
    its *deep interior* is ``f + GAP .. l - GAP``, days that decide neither ``f`` nor ``l``
    and lie a full day from both, so their events, zero days included, are a fair sample of
    the unit's days. Every unit that spans the margins is kept, also one without any event in
    its deep interior (its zero days are the point). Over ``est_ev`` (the calibration window).
    Rows of each array: n (deep days), e (their events), w (units), ss (sum of squared daily
    counts, for the within-unit dispersion). ``kind`` is ``id`` (bot ids) or ``ip``.
    """
    sql = f"""WITH ev AS (SELECT * FROM est_ev),
kd AS (
    SELECT family, 'ip' AS kind, ip AS unit, d, count(*) AS c FROM ev GROUP BY family, ip, d
    UNION ALL
    SELECT family, 'id' AS kind, bot_id AS unit, d, count(*) AS c FROM ev
    WHERE bot_id IS NOT NULL GROUP BY family, bot_id, d
),
span AS (
    SELECT family, kind, unit, min(d) AS f, max(d) AS l FROM kd GROUP BY family, kind, unit
    HAVING date_diff('day', min(d), max(d)) >= {2 * GAP}
),
deep AS (
    SELECT kd.family, kd.kind, kd.unit, span.f, span.l,
           CASE WHEN date_diff('day', span.f, kd.d) >= {GAP}
                 AND date_diff('day', kd.d, span.l) >= {GAP} THEN kd.c ELSE 0 END AS c
    FROM kd JOIN span
      ON kd.family = span.family AND kd.kind = span.kind AND kd.unit = span.unit
),
per AS (
    SELECT family, kind, unit, date_diff('day', f, l) - {2 * GAP - 1} AS n,
           sum(c) AS e, sum(c * c) AS ss
    FROM deep GROUP BY family, kind, unit, f, l
)
SELECT family, kind, n, CAST(e AS BIGINT) AS e, count(*) AS w, CAST(sum(ss) AS BIGINT) AS ss
FROM per GROUP BY family, kind, n, e"""
    got = engine.query(sql).to_pydict()
    rows: dict[tuple[str, str], list[tuple[int, int, int, int]]] = defaultdict(list)
    cols = [got[k] for k in ("family", "kind", "n", "e", "w", "ss")]
    for fam, kind, n, e, w, ss in zip(*cols, strict=True):
        rows[(str(fam), str(kind))].append((int(n), int(e), int(w), int(ss)))
    # Sorted, so that both engines hand numpy the same arrays in the same order.
    return {k: np.array(sorted(v), dtype=np.float64) for k, v in rows.items()}


def _dispersion(n: F64, e: F64, w: F64, ss: F64) -> float:
    """Within-unit variance of daily counts over their mean (k-invariant: ``k v / k mu``)."""
    many = n > 1
    if not many.any():
        return _DEFAULT_DISPERSION
    num = float((ss - w * e**2 / n)[many].sum())
    den = float(((n - 1) * w * e / n)[many].sum())
    if den <= 0:
        return _DEFAULT_DISPERSION
    return min(50.0, max(1.0, num / den))


def _ratio_se(e: F64, n: F64, w: F64, mu: float) -> float:
    """Standard error of the ratio estimator ``sum(e) / sum(n)`` over independent units."""
    den = float((w * n).sum())
    if den <= 0:
        return math.inf
    return math.sqrt(float((w * (e - mu * n) ** 2).sum())) / den


def fit_ids(hist: F64) -> tuple[float, float, float, int]:
    """``mu`` from bot ids (one machine each): (mu, se, dispersion, units)."""
    n, e, w, ss = (hist[:, i] for i in range(4))
    keep = n >= 1
    n, e, w, ss = n[keep], e[keep], w[keep], ss[keep]
    units = int(w.sum())
    if units == 0 or (w * n).sum() <= 0:
        return math.nan, math.inf, _DEFAULT_DISPERSION, 0
    mu = float((w * e).sum() / (w * n).sum())
    return mu, _ratio_se(e, n, w, mu), _dispersion(n, e, w, ss), units


def _nb_logpmf(e: F64, mean: F64, disp: float) -> F64:
    """Negative binomial log-pmf with the given mean and variance ``disp * mean``."""
    mean = np.maximum(mean, 1e-12)
    if disp <= 1.0 + 1e-9:
        out: F64 = e * np.log(mean) - mean - gammaln(e + 1)
        return out
    size = mean / (disp - 1.0)
    out = (
        gammaln(e + size)
        - gammaln(size)
        - gammaln(e + 1)
        - size * math.log(disp)
        + e * math.log1p(-1.0 / disp)
    )
    return out


def _weighted_quantile(x: F64, w: F64, q: float) -> float:
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    return float(x[order][min(int(np.searchsorted(cum, q * cum[-1])), x.size - 1)])


@dataclass
class _Mixture:
    """One EM solution of the household mixture."""

    loglik: float
    mu: float
    m: float  # machines per address - 1 (Poisson mean)
    kbar: F64  # posterior mean machines of each kept row
    kept: npt.NDArray[np.bool_]  # rows in the fit (below the NAT cap)


def _em(
    n: F64,
    e: F64,
    w: F64,
    disp: float,
    mu: float,
    m: float,
    iterations: int = 500,
    tol: float = 1e-10,
) -> _Mixture | None:
    """EM for ``mu`` and ``m`` from a start; None when too few addresses stay in."""
    rate = e / n
    ks = np.arange(1, K_MAX + 1, dtype=np.float64)
    log_fact = gammaln(ks)  # log (k-1)!
    out: _Mixture | None = None
    for _ in range(iterations):
        sel = rate <= NAT_CAP * mu
        if w[sel].sum() < MIN_UNITS:
            return None
        nn, ee, ww = n[sel], e[sel], w[sel]
        log_pi = (ks - 1) * math.log(max(m, 1e-9)) - m - log_fact
        log_pi -= np.logaddexp.reduce(log_pi)
        ll = _nb_logpmf(ee[:, None], ks[None, :] * nn[:, None] * mu, disp) + log_pi
        top = ll.max(axis=1, keepdims=True)
        post = np.exp(ll - top)
        total = post.sum(axis=1, keepdims=True)
        post /= total
        kbar = post @ ks
        out = _Mixture(float((ww * (top[:, 0] + np.log(total[:, 0]))).sum()), mu, m, kbar, sel)
        m = max(float((ww * kbar).sum() / ww.sum()) - 1.0, 1e-6)
        new = float((ww * ee).sum() / (ww * kbar * nn).sum())
        converged = abs(new - mu) <= tol * mu
        mu = new
        if converged:
            break
    if out is not None:
        out.mu, out.m = mu, m
    return out


BOOTSTRAP = 40  # resamples of the addresses for the standard error of the address fit


def fit_addresses(hist: F64) -> tuple[float, float, float, float, int] | None:
    """``mu`` from long-lived addresses with a household NAT mixture.

    Returns (mu, se, dispersion, mean machines per address, units), or None when there are
    too few addresses. Per address with ``n`` deep days and ``e`` events: ``k`` machines,
    ``k - 1 ~ Poisson(m)`` (truncated at ``K_MAX``), ``e ~ NB(mean k n mu, var k n mu D)``,
    ``D`` the within-address dispersion; addresses above ``NAT_CAP * mu`` are NAT pools and
    sit out. EM from a few starts near the lower quartile of the address rates; the best
    likelihood wins (the larger ``mu`` on a tie: fewer, busier machines). The standard error
    is the larger of the ratio estimator's and a bootstrap over addresses (seeded, so the
    same histogram gives the same answer).
    """
    n, e, w, ss = (hist[:, i] for i in range(4))
    keep = n >= 1
    n, e, w, ss = n[keep], e[keep], w[keep], ss[keep]
    if w.sum() < MIN_UNITS:
        return None
    disp = _dispersion(n, e, w, ss)
    anchor = _weighted_quantile(e / n, w, 0.25)
    if anchor <= 0:
        anchor = float((w * e).sum() / (w * n).sum())
    if anchor <= 0:
        return None
    best: _Mixture | None = None
    for start in (1.0, 1.5, 2.0):
        fit = _em(n, e, w, disp, anchor * start, 0.3)
        if fit is None or w[fit.kept].sum() < 0.3 * w.sum():
            continue
        if (
            best is None
            or fit.loglik > best.loglik + 1e-6
            or (abs(fit.loglik - best.loglik) <= 1e-6 and fit.mu > best.mu)
        ):
            best = fit
    if best is None:
        return None
    sel = best.kept
    se = _ratio_se(e[sel], best.kbar * n[sel], w[sel], best.mu)
    rng = np.random.default_rng(0)
    units = int(w.sum())
    boot = []
    for _ in range(BOOTSTRAP):
        ws = rng.multinomial(units, w / w.sum()).astype(np.float64)
        again = _em(n, e, ws, disp, best.mu, best.m, iterations=100, tol=1e-6)
        if again is not None:
            boot.append(again.mu)
    if len(boot) >= BOOTSTRAP // 2:
        se = max(se, float(np.std(boot, ddof=1)))
    return best.mu, se, disp, 1.0 + best.m, int(w[sel].sum())


def _models(engine: Engine, share: dict[str, float]) -> dict[str, FamilyModel]:
    hists = _unit_histograms(engine)
    families = sorted(share)
    models: dict[str, FamilyModel] = {}
    address_fit: dict[str, tuple[float, float, float, float, int] | None] = {}
    for fam in families:
        ids = hists.get((fam, "id"))
        ips = hists.get((fam, "ip"))
        address_fit[fam] = fit_addresses(ips) if ips is not None else None
        by_id = share[fam] >= BOT_ID_SHARE
        if ids is not None:
            mu, se, disp, units = fit_ids(ids)
            if units >= MIN_UNITS:
                models[fam] = FamilyModel(
                    fam, "bot ids", by_id, share[fam], mu, se, disp, 1.0, units, 1.0
                )
                continue
        fit = address_fit[fam]
        if fit is not None:
            mu, se, disp, mult, units = fit
            models[fam] = FamilyModel(
                fam, "addresses", by_id, share[fam], mu, se, disp, mult, units, 1.0
            )
            continue
        models[fam] = FamilyModel(
            fam, "one machine per address-day", by_id, share[fam], math.nan, math.inf,
            _DEFAULT_DISPERSION, 1.0, 0, 1.0,
        )  # fmt: skip
    return _transfer_bias(models, address_fit)


def _transfer_bias(
    models: dict[str, FamilyModel],
    address_fit: dict[str, tuple[float, float, float, float, int] | None],
) -> dict[str, FamilyModel]:
    """Families calibrated by bot ids show how far the address fit is off in these networks;
    divide that bias out of the families that only have the address fit."""
    ratios: list[tuple[float, float, float]] = []  # (log ratio, its variance, weight)
    for fam, model in models.items():
        fit = address_fit.get(fam)
        if model.method != "bot ids" or fit is None:
            continue
        mu_a, se_a = fit[0], fit[1]
        var = (se_a / mu_a) ** 2 + (model.rate_se / model.rate) ** 2
        ratios.append((math.log(mu_a / model.rate), var, float(fit[4])))
    if not ratios:
        return models
    weights = np.array([r[2] for r in ratios])
    logs = np.array([r[0] for r in ratios])
    variances = np.array([r[1] for r in ratios])
    log_bias = float((weights * logs).sum() / weights.sum())
    spread = float((weights * (logs - log_bias) ** 2).sum() / weights.sum())
    var_bias = float((weights**2 * variances).sum() / weights.sum() ** 2) + spread
    bias = math.exp(log_bias)
    out = dict(models)
    for fam, model in models.items():
        if model.method != "addresses":
            continue
        rel = math.hypot(model.rate_se / model.rate, math.sqrt(var_bias))
        mu = model.rate / bias
        out[fam] = replace(
            model, method="addresses, bias from bot ids", rate=mu, rate_se=rel * mu, bias=bias
        )
    return out


# -- the series ------------------------------------------------------------------------------
def local_linear(length: int, half: int = SMOOTH) -> tuple[F64, F64]:
    """Weights of a local linear fit over ±``half`` days: (level, slope), each (T, T).

    ``level @ x`` is the smoothed series, ``slope @ x`` its slope per day. Near the ends the
    fit is one-sided, so a straight trend is followed to the last day without lag.
    """
    level = np.zeros((length, length))
    slope = np.zeros((length, length))
    for t in range(length):
        lo, hi = max(0, t - half), min(length, t + half + 1)
        x = np.arange(lo, hi, dtype=np.float64) - t
        if x.size < 3:
            level[t, lo:hi] = 1.0 / x.size
            continue
        xm = x.mean()
        sxx = float(((x - xm) ** 2).sum())
        b = (x - xm) / sxx
        level[t, lo:hi] = 1.0 / x.size - xm * b
        slope[t, lo:hi] = b
    return level, slope


def _days_where(window: Window) -> str:
    """The window's days, as a filter on ``est_ev.d``."""
    clauses = []
    if window.since is not None:
        clauses.append(f"d >= CAST('{window.since.isoformat()}' AS DATE)")
    if window.until is not None:
        clauses.append(f"d < CAST('{window.until.isoformat()}' AS DATE)")
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _window_days(window: Window, seen: list[dt.date]) -> list[dt.date]:
    if not seen:
        return []
    first = window.since if window.since is not None else min(seen)
    last = window.until - dt.timedelta(days=1) if window.until is not None else max(seen)
    first, last = max(first, min(seen)), min(last, max(seen))
    return _days(first, last) if first <= last else []


def _chao(observed: float, f1: float, f2: float) -> tuple[float, float]:
    """Chao1 (bias-corrected) over days: ids never seen in the window, and its standard
    deviation (sampling, and model error: see ``UNSEEN_ERROR``)."""
    if f1 <= 0:
        return 0.0, 0.0
    f0 = f1 * (f1 - 1) / (2 * (f2 + 1))
    if f2 > 0:
        r = f1 / f2
        var = f2 * (r**2 / 2 + r**3 + r**4 / 4)
    else:
        var = f1 * (f1 - 1) / 2 + f1 * (2 * f1 - 1) ** 2 / 4 - f1**4 / (4 * observed)
    model = max(UNSEEN_ERROR * f0, f1 / 4)
    return f0, math.sqrt(max(var, 0.0) + model**2)


def estimate(engine: Engine, window: Window) -> Estimate:
    """Machines per family, network and day, and over the whole window, with 90% intervals."""
    # One scan of the lake: the columns needed, over the calibration window (a superset).
    engine.materialize(
        "est_ev",
        f"WITH {base_cte(calibration_window(window))} "
        "SELECT d, family, network, asn, cc, ip, bot_id FROM ev",
    )
    ev = f"ev AS (SELECT * FROM est_ev{_days_where(window)})"
    daily_raw = engine.query(f"""WITH {ev}
SELECT d AS day, family, network, max(asn) AS asn, max(cc) AS cc, count(*) AS events,
       count(bot_id) AS id_events, count(DISTINCT ip) AS ips, count(DISTINCT bot_id) AS ids
FROM ev GROUP BY d, family, network""").to_pylist()
    per_net = engine.query(f"""WITH {ev}
SELECT family, network, max(asn) AS asn, max(cc) AS cc, count(*) AS events,
       count(bot_id) AS id_events, count(DISTINCT ip) AS ips
FROM ev GROUP BY family, network""").to_pylist()
    id_net = engine.query(f"""WITH {ev},
idn AS (SELECT family, bot_id, max(network) AS network, count(DISTINCT d) AS nd
        FROM ev WHERE bot_id IS NOT NULL GROUP BY family, bot_id)
SELECT family, network, count(*) AS ids,
       sum(CASE WHEN nd = 1 THEN 1 ELSE 0 END) AS f1,
       sum(CASE WHEN nd = 2 THEN 1 ELSE 0 END) AS f2
FROM idn GROUP BY family, network""").to_pylist()
    day_counts = engine.query(f"""WITH {ev}
SELECT d AS period, count(*) AS events, count(DISTINCT ip) AS unique_ips,
       approx_count_distinct(ip) AS unique_ips_hll, count(DISTINCT bot_id) AS bot_ids
FROM ev GROUP BY d ORDER BY d""")
    events: dict[str, float] = defaultdict(float)
    with_id: dict[str, float] = defaultdict(float)
    for r in per_net:
        events[r["family"]] += r["events"]
        with_id[r["family"]] += r["id_events"]
    share = {f: with_id[f] / events[f] if events[f] else 0.0 for f in events}
    models = _models(engine, share) if share else {}
    days = _window_days(window, sorted({r["day"] for r in daily_raw}))
    daily, window_rows = _series(models, daily_raw, per_net, id_net, days)
    return Estimate(
        models, _table(daily, _DAILY_COLS), _table(window_rows, _WINDOW_COLS),
        (days[0], days[-1]) if days else None, day_counts,
    )  # fmt: skip


_DAILY_COLS = ("day", "family", "network", "asn", "cc", "events", "ips", "ids",
               "machines", "low", "high", "sd_shared", "sd_own")  # fmt: skip
_WINDOW_COLS = ("family", "network", "asn", "cc", "events", "ips", "ids",
                "machines", "low", "high", "sd_shared", "sd_own")  # fmt: skip


def _table(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> pa.Table:
    if rows:
        return pa.Table.from_pylist([{c: r[c] for c in cols} for r in rows])
    types = {"day": pa.date32(), "family": pa.string(), "network": pa.string(),
             "asn": pa.string(), "cc": pa.string()}  # fmt: skip
    return pa.table({c: pa.array([], types.get(c, pa.float64())) for c in cols})


@dataclass
class _Family:
    """One family's daily series, per network (rows) and day (columns), in machines."""

    model: FamilyModel
    names: list[str]
    events: F64
    ips: F64
    ids: F64
    noid: F64  # machines without a bot id, infected at any moment of the day
    withid: F64  # machines with a bot id, the same way
    machines: F64


def _series(
    models: dict[str, FamilyModel],
    daily_raw: list[dict[str, Any]],
    per_net: list[dict[str, Any]],
    id_net: list[dict[str, Any]],
    days: list[dt.date],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    index = {d: i for i, d in enumerate(days)}
    nets: dict[str, list[str]] = defaultdict(list)
    info: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted(per_net, key=lambda r: (r["family"], r["network"])):
        nets[r["family"]].append(r["network"])
        info[(r["family"], r["network"])] = r
    ids_by = {(r["family"], r["network"]): r for r in id_net}
    level, slope = local_linear(len(days))
    fams: dict[str, _Family] = {}
    daily: list[dict[str, Any]] = []
    for fam in sorted(nets):
        f = _family_series(models, fam, nets[fam], daily_raw, index, slope)
        fams[fam] = f
        err_day = MODEL_ERROR[f.model.method][0]
        shared_rel = math.hypot(f.model.rate_se / f.model.rate, err_day)
        own = np.sqrt(f.machines * f.model.dispersion / f.model.rate)
        for j, name in enumerate(f.names):
            meta = info[(fam, name)]
            for t, day in enumerate(days):
                if f.events[j, t] == 0 and f.ips[j, t] == 0:
                    continue
                m = float(f.machines[j, t])
                sd_shared, sd_own = m * shared_rel, float(own[j, t])
                low, high = interval(m, math.hypot(sd_shared, sd_own))
                daily.append({
                    "day": day, "family": fam, "network": name, "asn": meta["asn"],
                    "cc": meta["cc"], "events": float(f.events[j, t]),
                    "ips": float(f.ips[j, t]), "ids": float(f.ids[j, t]), "machines": m,
                    "low": low, "high": high, "sd_shared": sd_shared, "sd_own": sd_own,
                })  # fmt: skip
    union = _union_ratio(fams, ids_by, level)
    window: list[dict[str, Any]] = []
    for fam, f in fams.items():
        window += _window_rows(fam, f, info, ids_by, level, union)
    return daily, window


def _family_series(
    models: dict[str, FamilyModel],
    fam: str,
    names: list[str],
    daily_raw: list[dict[str, Any]],
    index: dict[dt.date, int],
    slope: F64,
) -> _Family:
    pos = {n: j for j, n in enumerate(names)}
    shape = (len(names), len(index))
    ev, ev_noid, ips, ids = (np.zeros(shape) for _ in range(4))
    for r in daily_raw:
        if r["family"] != fam or r["day"] not in index:
            continue
        j, t = pos[r["network"]], index[r["day"]]
        ev[j, t], ips[j, t], ids[j, t] = r["events"], r["ips"], r["ids"]
        ev_noid[j, t] = r["events"] - r["id_events"]
    model = models[fam]
    if math.isnan(model.rate):
        # No unit lived long enough to calibrate: one machine per address and day.
        mu = float(ev.sum() / ips.sum()) if ips.sum() else 1.0
        model = models[fam] = replace(model, rate=mu, rate_se=0.0)
    mu = model.rate
    total = ev.sum(axis=0) / mu
    # Infected at any moment of a day = mean over the day + half the day's turnover.
    turnover = np.abs(slope @ total)
    factor = 1.0 + 0.5 * np.divide(turnover, total, out=np.zeros_like(total), where=total > 0)
    return _Family(
        model, names, ev, ips, ids, ev_noid / mu * factor, (ev - ev_noid) / mu * factor,
        ev / mu * factor,
    )  # fmt: skip


def _peak(series: F64, level: F64, disp_over_mu: float) -> tuple[int, F64, F64]:
    """Peak day of the smoothed total, each row's smoothed value and variance there."""
    if not series.shape[1]:
        zero = np.zeros(series.shape[0])
        return 0, zero, zero
    smooth = series @ level.T
    peak = int(np.argmax(smooth.sum(axis=0)))
    # Each day's machines carry the Poisson noise of their events: variance m * disp / mu.
    var = np.maximum(series, 0.0) @ (level[peak] ** 2) * disp_over_mu
    return peak, np.maximum(smooth[:, peak], 0.0), var


@dataclass(frozen=True, slots=True)
class _Union:
    """Machines over the window / the peak of the daily series, from bot ids (1: none)."""

    ratio: float = 1.0
    rel_sd: float = 0.0
    ids: float = 0.0


def _union_ratio(
    fams: dict[str, _Family], ids_by: dict[tuple[str, str], dict[str, Any]], level: F64
) -> _Union:
    """How much bigger the window's population is than its peak day, seen on bot ids.

    Machines infected and cleaned within the window (turnover) are in the union but never all
    on one day; ids count the union directly. Their ratio to the peak of the same machines'
    daily series corrects the families (or parts of families) without ids.
    """
    union = peak = var_union = var_peak = 0.0
    for fam, f in fams.items():
        if f.model.method != "bot ids":
            continue
        for name in f.names:
            r = ids_by.get((fam, name))
            if r is not None:
                f0, sd = _chao(float(r["ids"]), float(r["f1"]), float(r["f2"]))
                union += float(r["ids"]) + f0
                var_union += sd**2
        _, at_peak, var = _peak(f.withid, level, f.model.dispersion / f.model.rate)
        peak += float(at_peak.sum())
        var_peak += float(var.sum()) + (float(at_peak.sum()) * f.model.rate_se / f.model.rate) ** 2
    if union < MIN_UNITS or peak <= 0:
        return _Union()
    ratio = union / peak
    rel = math.sqrt(var_union / union**2 + var_peak / peak**2)
    return _Union(ratio, rel, union)


def _window_rows(
    fam: str,
    f: _Family,
    info: dict[tuple[str, str], dict[str, Any]],
    ids_by: dict[tuple[str, str], dict[str, Any]],
    level: F64,
    union: _Union,
) -> list[dict[str, Any]]:
    """Per network: machines with a bot id (counted) + the others (peak of the series)."""
    model = f.model
    err_window = MODEL_ERROR[model.method][1]
    shared_rel = math.sqrt((model.rate_se / model.rate) ** 2 + err_window**2 + union.rel_sd**2)
    _, at_peak, var_peak = _peak(f.noid, level, model.dispersion / model.rate)
    rows = []
    for j, name in enumerate(f.names):
        meta = info[(fam, name)]
        idr = ids_by.get((fam, name))
        seen = float(idr["ids"]) if idr else 0.0
        f0, sd_f0 = _chao(seen, float(idr["f1"]), float(idr["f2"])) if idr else (0.0, 0.0)
        other = union.ratio * float(at_peak[j]) if meta["events"] > meta["id_events"] else 0.0
        m = seen + f0 + other
        sd_shared = other * shared_rel  # ids are counted: no calibration error
        sd_own = math.hypot(sd_f0, union.ratio * math.sqrt(float(var_peak[j])))
        low, high = interval(m, math.hypot(sd_shared, sd_own), seen)
        rows.append({
            "family": fam, "network": name, "asn": meta["asn"], "cc": meta["cc"],
            "events": float(meta["events"]), "ips": float(meta["ips"]), "ids": seen,
            "machines": m, "low": low, "high": high, "sd_shared": sd_shared, "sd_own": sd_own,
        })  # fmt: skip
    return rows
