"""Effects of a pilot on metrics other than energy, with intervals that respect day-to-day
autocorrelation (docs/pilots.md explains the choices).

- `before_after`: the baseline's days fit a model of weekday (and, when they vary, opening
  hours); the effect is the mean difference between what the reporting days measured and what
  that model expected for them.
- `diff_in_diff`: the same on the daily difference between the pilot's scope and its control
  spaces, so that what changes both (weather, season, events) cancels.
- `ratio_before_after`: for rates (sorting rate): the change in sum numerator/sum denominator,
  with an interval over weekly totals (collections are not independent from day to day).

Intervals are the larger of two: the daily residuals treated as AR(1) (variance inflated by
(1+rho)/(1-rho), the effective sample size n' = n(1-rho)/(1+rho) that ASHRAE Guideline 14 uses
for savings uncertainty, rho from both periods), and the days' errors summed per week (week
clusters, Welch-Satterthwaite degrees of freedom). bench/pilot_intervals.py chose it among
AR(1), week clusters, Newey-West and their combinations under AR(1) days, week effects, event
days and their mix (docs/pilots.md). Numpy only: the ingestor may import it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
from numpy.typing import NDArray

LEVEL = 0.90
# Fewer days than this cannot separate an effect from the weekdays they happened to cover.
MIN_BASELINE_DAYS = 14
MIN_REPORTING_DAYS = 7

Floats = NDArray[np.float64]


class Verdict(enum.StrEnum):
    EFFECT = "effect"  # the interval excludes zero
    NO_EFFECT_DETECTED = "no_effect_detected"  # the interval contains zero
    BASELINE_INADEQUATE = "baseline_inadequate"  # the baseline model does not explain the data
    INSUFFICIENT_DATA = "insufficient_data"  # too few days, or nothing measured


@dataclass(frozen=True, slots=True)
class Effect:
    """A pilot's effect on one metric so far. `estimate` is per day in the metric's unit (points
    for rates); `*_pct` relative to what the baseline expected; intervals at `LEVEL`."""

    method: str
    estimate: float | None
    low: float | None
    high: float | None
    estimate_pct: float | None
    low_pct: float | None
    high_pct: float | None
    baseline_days: int
    reporting_days: int
    verdict: Verdict
    notes: tuple[str, ...] = ()
    # Per day of both periods: what was measured and what the method expected without the pilot
    # (its baseline model's fit on baseline days, its prediction on reporting days): the
    # dashboard's and the report's baseline-against-actual series.
    daily: tuple[DayValue, ...] = ()


DayValue = tuple[date, float, float]  # local day, observed, expected


def day_values(days: Sequence[date], observed: Floats, expected: Floats) -> tuple[DayValue, ...]:
    return tuple((d, float(o), float(e)) for d, o, e in zip(days, observed, expected, strict=True))


def _insufficient(method: str, nb: int, nr: int, why: str) -> Effect:
    return Effect(method, None, None, None, None, None, None, nb, nr, Verdict.INSUFFICIENT_DATA,
                  (why,))  # fmt: skip


def _design(days: Sequence[date], open_hours: Mapping[date, float] | None, centre: float) -> Floats:
    x = np.zeros((len(days), 8))
    for i, d in enumerate(days):
        x[i, d.weekday()] = 1.0
        if open_hours is not None:
            x[i, 7] = open_hours.get(d, 0.0) - centre
    return x


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile by the Cornish-Fisher expansion about the normal one; within 0.1 %
    of the exact value from 5 degrees of freedom on, which is all an interval here needs."""
    z = _normal_quantile(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def _normal_quantile(p: float) -> float:
    # Acklam's rational approximation, relative error below 1.2e-9.
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)  # fmt: skip
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
        return num / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - 0.02425:
        return -_normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    return num / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def lag1(series: Floats) -> float:
    """Lag-1 autocorrelation with Kendall's small-sample bias correction, kept in [0, 0.95]:
    a negative estimate from a few weeks is noise, and 1 would mean no information at all."""
    x = series - series.mean()
    denom = float((x * x).sum())
    if len(x) < 3 or denom == 0:
        return 0.0
    rho = float((x[1:] * x[:-1]).sum()) / denom
    rho += (1 + 3 * rho) / len(x)
    return min(0.95, max(0.0, rho))


def _ar1_interval(
    xb: Floats, xr: Floats, resid_b: Floats, dev_r: Floats
) -> tuple[float, float, float]:
    """Half-width of the 90 % interval of the mean reporting deviation from the baseline model,
    with both periods' noise inflated for AR(1) autocorrelation (the effective sample size
    n' = n(1-rho)/(1+rho) of ASHRAE Guideline 14's savings uncertainty), degrees of freedom from
    the effective sizes; and rho."""
    nb, nr, p = len(resid_b), len(dev_r), xb.shape[1]
    # One rho from both periods' residuals: a few weeks each are too short to estimate it apart.
    rho = lag1(np.concatenate([resid_b, dev_r]))
    inflate = (1 + rho) / (1 - rho)
    var_b = float((resid_b**2).sum()) / (nb - p)
    var_r = float((dev_r**2).sum()) / (nr - 1)
    # The expected mean of the reporting days is x̄ᵀβ: its variance through (XᵀX)⁻¹.
    xbar = xr.mean(axis=0)
    leverage = float(xbar @ np.linalg.pinv(xb.T @ xb) @ xbar)
    variance = inflate * (var_r / nr + var_b * leverage)
    df = max(3.0, (nb + nr) * (1 - rho) / (1 + rho) - p - 1)
    return t_quantile((1 + LEVEL) / 2, df) * math.sqrt(variance), df, rho


# Days of a week: the block whose days share a busy week, a holiday, a season's event.
WEEK_DAYS = 7


def _week_interval(
    xb: Floats, xr: Floats, resid_b: Floats, dev_r: Floats,
    b_days: Sequence[date], r_days: Sequence[date],
) -> float | None:  # fmt: skip
    """Half-width of the 90 % interval with the days' errors summed per week: the effect is a
    weighted sum of the days' errors (reporting days 1/n, baseline days through the fit), and its
    variance is taken over whole weeks of each period (cluster-robust, with each period's
    G/(G-1)), degrees of freedom by Satterthwaite: for whole weeks, Welch's t on the periods'
    weekly means. None when a period has fewer than two weeks."""
    weights_b = -(xr.mean(axis=0) @ np.linalg.pinv(xb.T @ xb) @ xb.T)
    parts = []
    for days, weighted in ((b_days, weights_b * resid_b), (r_days, dev_r / len(r_days))):
        weeks = np.array([(d - days[0]).days // WEEK_DAYS for d in days])
        sums = np.bincount(weeks, weights=weighted)[np.unique(weeks)]
        g = len(sums)
        if g < 2:
            return None
        parts.append((float((sums**2).sum()) * g / (g - 1), g - 1))
    variance = sum(v for v, _ in parts)
    if variance <= 0:
        return 0.0
    df = variance**2 / sum(v**2 / g for v, g in parts)
    return t_quantile((1 + LEVEL) / 2, max(2.0, df)) * math.sqrt(variance)


def half_width(
    xb: Floats, xr: Floats, resid_b: Floats, dev_r: Floats,
    b_days: Sequence[date], r_days: Sequence[date],
) -> tuple[float, str]:  # fmt: skip
    """Half-width of the 90 % interval of the mean deviation of the reporting days (`dev_r`,
    centred) from a least-squares model fitted on the baseline (design `xb`, residuals
    `resid_b`; `xr` the reporting days' design): the larger of the AR(1) and the weekly
    interval, and which it was, in words. Neither alone holds under every noise
    (bench/pilot_intervals.py): a lag-1 estimate cannot see correlation that is flat within a
    week (busy weeks, holidays: 78-82 % coverage where 90 % is nominal), and weekly sums cannot
    see correlation that runs across weeks (73 % at rho 0.85); the larger held 89-95 % under
    each and their mix."""
    ar1, _, rho = _ar1_interval(xb, xr, resid_b, dev_r)
    weekly = _week_interval(xb, xr, resid_b, dev_r, b_days, r_days)
    if weekly is None:
        return ar1, (
            f"interval: AR(1) days (lag-1 autocorrelation {rho:.2f}); a period of one week "
            "cannot show week-to-week variation, so none is assumed"
        )
    if weekly > ar1:
        return weekly, (
            f"interval: over weekly sums (wider than the AR(1) days' one, lag-1 "
            f"autocorrelation {rho:.2f}: the weeks differ more than the days show)"
        )
    return ar1, (
        f"interval: AR(1) days (lag-1 autocorrelation {rho:.2f}), wider than over weekly sums"
    )


def verdict_of(low: float, high: float) -> Verdict:
    return Verdict.NO_EFFECT_DETECTED if low <= 0 <= high else Verdict.EFFECT


def before_after(
    baseline: Mapping[date, float],
    reporting: Mapping[date, float],
    open_hours: Mapping[date, float] | None = None,
    method: str = "before_after_weekday",
) -> Effect:
    """The mean daily change from the baseline's weekday (and opening-hours) pattern."""
    b_days, r_days = sorted(baseline), sorted(reporting)
    nb, nr = len(b_days), len(r_days)
    if nb < MIN_BASELINE_DAYS or nr < MIN_REPORTING_DAYS:
        return _insufficient(method, nb, nr, f"{nb} baseline and {nr} reporting days with data")
    hours = open_hours
    if hours is not None and np.ptp([hours.get(d, 0.0) for d in b_days]) == 0:
        hours = None  # the same hours every day: the weekday terms already hold them
    centre = float(np.mean([hours.get(d, 0.0) for d in b_days])) if hours else 0.0
    xb, xr = _design(b_days, hours, centre), _design(r_days, hours, centre)
    cols = [c for c in range(8) if xb[:, c].any()]
    missing = {r_days[i].weekday() for i in range(nr)} - {d.weekday() for d in b_days}
    if missing:
        return _insufficient(method, nb, nr, "the baseline lacks a weekday the pilot has")
    xb, xr = xb[:, cols], xr[:, cols]
    yb = np.array([baseline[d] for d in b_days], dtype=np.float64)
    yr = np.array([reporting[d] for d in r_days], dtype=np.float64)
    beta = np.linalg.lstsq(xb, yb, rcond=None)[0]
    fitted, expected = xb @ beta, xr @ beta
    resid_b = yb - fitted
    dev_r = yr - expected
    theta = float(dev_r.mean())
    base_mean = float(expected.mean())
    half, how = half_width(xb, xr, resid_b, dev_r - theta, b_days, r_days)
    low, high = theta - half, theta + half
    if abs(base_mean) < 1e-9:
        pct: tuple[float | None, float | None, float | None] = (None, None, None)
    else:
        pct = (theta / base_mean * 100, low / base_mean * 100, high / base_mean * 100)
    notes = (f"model: {'weekday and opening hours' if hours else 'weekday'}", how)
    daily = day_values(b_days, yb, fitted) + day_values(r_days, yr, expected)
    return Effect(method, theta, low, high, *pct, nb, nr, verdict_of(low, high), notes, daily)


def diff_in_diff(
    scope: Mapping[date, float],
    control: Mapping[date, float],
    baseline_days: Sequence[date],
    reporting_days: Sequence[date],
    open_hours: Mapping[date, float] | None = None,
) -> Effect:
    """`before_after` on the daily difference scope - control: the change in the gap."""
    common = set(scope) & set(control)
    gap = {d: scope[d] - control[d] for d in common}
    base = {d: gap[d] for d in baseline_days if d in gap}
    rep = {d: gap[d] for d in reporting_days if d in gap}
    did = before_after(base, rep, open_hours, method="difference_in_differences")
    if did.estimate is None:
        return did
    # In the scope's terms: the control's day plus the gap the baseline expected.
    daily = tuple(
        (d, scope[d], scope[d] - observed + expected) for d, observed, expected in did.daily
    )
    # Percent of what the scope would have measured without the pilot.
    actual = float(np.mean([scope[d] for d in rep]))
    counterfactual = actual - did.estimate
    if abs(counterfactual) < 1e-9 or did.low is None or did.high is None:
        return replace(did, daily=daily)
    return Effect(
        did.method, did.estimate, did.low, did.high,
        did.estimate / counterfactual * 100, did.low / counterfactual * 100,
        did.high / counterfactual * 100, did.baseline_days, did.reporting_days, did.verdict,
        ("scope minus control, by weekday",), daily,
    )  # fmt: skip


# The sorting rate's unit of independence: a week. Collections are a renewal process (a bin
# emptied today is not emptied tomorrow), so days are strongly negatively correlated and an
# interval over days was far too wide (docs/pilots.md); weekly totals are nearly independent.
RATE_BLOCK_DAYS = 7


def ratio_before_after(
    baseline: Mapping[date, tuple[float, float]],
    reporting: Mapping[date, tuple[float, float]],
) -> Effect:
    """The change in 100 x sum numerator / sum denominator (points), for rates such as the sorting
    rate, whose days without a denominator (no emptying) carry no rate of their own. The interval
    treats each period's weeks (from its first day) as independent blocks."""
    method = "rate_before_after"
    b_days, r_days = sorted(baseline), sorted(reporting)
    nb, nr = len(b_days), len(r_days)
    b = np.array([baseline[d] for d in b_days], dtype=np.float64).reshape(-1, 2)
    r = np.array([reporting[d] for d in r_days], dtype=np.float64).reshape(-1, 2)
    if nb < MIN_BASELINE_DAYS or nr < MIN_REPORTING_DAYS or not b[:, 1].sum() or not r[:, 1].sum():
        return _insufficient(method, nb, nr, "too few days, or nothing collected in a period")
    rate_b = 100 * b[:, 0].sum() / b[:, 1].sum()
    rate_r = 100 * r[:, 0].sum() / r[:, 1].sum()
    theta = float(rate_r - rate_b)
    # A day's own rate where something was collected; expected: the baseline's rate.
    daily = tuple(
        (d, 100 * num / den, float(rate_b))
        for d, (num, den) in sorted({**baseline, **reporting}.items())
        if den > 0
    )
    wb, wr = _blocks(b_days, b), _blocks(r_days, r)
    kb, kr = len(wb), len(wr)
    if kb < 2 or kr < 2:
        why = f"{kb} and {kr} weeks with something collected: the rate needs two in each period"
        return _insufficient(method, nb, nr, why)
    # Linearised: a week's share of the rate's error is (num - R*den) / mean(den).
    u_b = 100 * (wb[:, 0] - rate_b / 100 * wb[:, 1]) / wb[:, 1].mean()
    u_r = 100 * (wr[:, 0] - rate_r / 100 * wr[:, 1]) / wr[:, 1].mean()
    parts = (float(u_b.var(ddof=1)) / kb, float(u_r.var(ddof=1)) / kr)
    variance = sum(parts)
    # Welch-Satterthwaite degrees of freedom: the pilot's few weeks carry most of the variance,
    # and pooling them with the baseline's (kb + kr - 2) overstated what they know (its
    # no-effect intervals held zero in 24 of 30 held-out runs, docs/pilots.md).
    df = variance**2 / (parts[0] ** 2 / (kb - 1) + parts[1] ** 2 / (kr - 1)) if variance else 2.0
    half = t_quantile((1 + LEVEL) / 2, max(2.0, df)) * math.sqrt(variance)
    low, high = theta - half, theta + half
    pct: tuple[float | None, float | None, float | None] = (None, None, None)
    if rate_b:
        pct = (theta / rate_b * 100, low / rate_b * 100, high / rate_b * 100)
    return Effect(method, theta, low, high, *pct, nb, nr, verdict_of(low, high),
                  (f"rate {rate_b:.1f} % before, {rate_r:.1f} % during",
                   f"interval over {kb} + {kr} weekly totals"), daily)  # fmt: skip


def _blocks(days: Sequence[date], rows: Floats) -> Floats:
    """(numerator, denominator) summed per block of RATE_BLOCK_DAYS from the first day; blocks
    with nothing collected are left out."""
    sums: dict[int, list[float]] = {}
    for d, (num, den) in zip(days, rows, strict=True):
        block = sums.setdefault((d - days[0]).days // RATE_BLOCK_DAYS, [0.0, 0.0])
        block[0] += num
        block[1] += den
    out: Floats = np.array([v for v in sums.values() if v[1] > 0], dtype=np.float64)
    return out.reshape(-1, 2)
