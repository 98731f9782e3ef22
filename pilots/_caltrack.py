"""The CalTRACK 2.0 daily model fitted on a pilot's weeks of baseline, and the two places where
this project departs from it (`pilots.energy` judges with it; docs/pilots.md has the evidence).

CalTRACK methods 2.0 (github.com/openeemeter/caltrack, docs/methods.rst), followed here:

- §3.3.2: use per day = mu + beta_H HDD + beta_C CDD + e: a base load and degree days, no
  calendar term;
- §3.2.1/3.2.3: balance points searched on a grid no coarser than 3 degF (1.7 degC);
- §3.2.2.2: a candidate needs at least 10 days with non-zero degree days and 20 degree days;
- §3.4.3.2: a candidate qualifies when its parameters are positive (no significance test);
- §3.4.3.3: the qualified candidate with the highest adjusted R^2, df_e = P - c - 1.

Departures, each shown on data where it matters by a unit test (tests/unit/test_pilot_methods.py;
the method as a whole is judged by `bench/pilot_methods.py`, docs/pilots.md):

- **Degree days from the day's hours** when the weather station's hours are known: the mean of
  max(0, b - T_h) over the day's hours, not max(0, b - the day's mean). CalTRACK 2.0 uses the
  daily mean (§3.3.5); its issue #94 argues for hours where a day's temperature swings around
  the balance point. A spring day whose mean is above the balance point still heats in its
  cold hours, which the daily mean cannot show: a model fitted on a winter baseline (every hour
  below the balance point, where both agree) then under-predicts the spring days.
- **Day-of-week levels** in place of the single base load when they predict the baseline better
  out of sample (leave one week out, `cross_validate`): a meeting place open on weekdays,
  shorter on Saturday and closed on Sunday leaves the daily model a weekly pattern in its
  residuals, and a reporting window with more of one weekday than another is judged with that
  pattern's bias. One level per weekday (not weekday/weekend) so that no two days with
  different use share a level. CalTRACK weighed calendar terms for homes and left them out
  (CalTRACK-2/caltrack issue #57).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from pilots.stats import Floats, t_quantile

# Balance point grids, degC: heating below, cooling above (0.5 and 1 degC steps, finer than
# §3.2.3's 3 degF).
HEATING_BALANCE = np.arange(8.0, 20.01, 0.5)
COOLING_BALANCE = np.arange(16.0, 28.01, 1.0)
# §3.2.2.2: days with non-zero degree days, and degree days in all, that a term needs.
MIN_DEGREE_DAYS_COUNT = 10
MIN_DEGREE_DAYS_SUM = 20.0
# Adjusted R^2 closer than this is a tie.
TIE = 1e-9
# A day's degree days come from its hours when at least this many are known (as the pilot's
# data take a day's mean temperature: pilots.data.MIN_TEMPERATURE_HOURS).
MIN_HOURS = 18


@dataclass(frozen=True, slots=True)
class Weather:
    """The days' outdoor temperature as the model reads it: each day's mean and, where the
    weather station's hours are known, the hours themselves (NaN-padded rows)."""

    mean_c: Floats
    hours_c: Floats | None
    weekday: NDArray[np.int64]
    week: NDArray[np.int64]  # weeks from the first day, for cross-validation

    @classmethod
    def of(
        cls, days: Sequence[date], daily_c: Mapping[date, float],
        hourly_c: Mapping[int, float] | None, tz: ZoneInfo, first: date | None = None,
    ) -> Weather:  # fmt: skip
        mean = np.array([daily_c[d] for d in days], dtype=np.float64)
        start = first or days[0]
        weekday = np.array([d.weekday() for d in days], dtype=np.int64)
        week = np.array([(d - start).days // 7 for d in days], dtype=np.int64)
        if not hourly_c:
            return cls(mean, None, weekday, week)
        by_day: dict[date, list[float]] = {}
        for ms, value in hourly_c.items():
            local = datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).date()
            by_day.setdefault(local, []).append(value)
        hours = np.full((len(days), 25), np.nan)  # 25: the day clocks turn back
        for i, d in enumerate(days):
            values = by_day.get(d, [])[:25]  # whole hours: at most 25 in a local day
            if len(values) >= MIN_HOURS:
                hours[i, : len(values)] = values
        return cls(mean, hours, weekday, week)

    def hdd(self, balance: float) -> Floats:
        return self._degree_days(balance, heating=True)

    def cdd(self, balance: float) -> Floats:
        return self._degree_days(balance, heating=False)

    def _degree_days(self, balance: float, heating: bool) -> Floats:
        sign = 1.0 if heating else -1.0
        daily: Floats = np.maximum(0.0, sign * (balance - self.mean_c))
        if self.hours_c is None:
            return daily
        known = ~np.isnan(self.hours_c[:, 0])
        per_hour = np.maximum(0.0, sign * (balance - self.hours_c))
        with np.errstate(invalid="ignore"):
            hourly: Floats = np.nanmean(np.where(known[:, None], per_hour, 0.0), axis=1)
        # nanmean over a row of NaN is nan: those days keep the daily mean's degree days.
        out: Floats = np.where(known, hourly, daily)
        return out


@dataclass(frozen=True, slots=True)
class Model:
    """A fitted candidate: its base (one level, or one per weekday), balance points, and
    coefficients in the order of `columns`."""

    day_levels: bool
    heating: float | None
    cooling: float | None
    beta: Floats
    weekdays: tuple[int, ...]  # the weekdays the baseline has, when day_levels
    adj_r2: float

    @property
    def params(self) -> int:
        """Coefficients and the balance points searched (both count against the sample)."""
        return len(self.beta) + (self.heating is not None) + (self.cooling is not None)

    @property
    def name(self) -> str:
        return "+".join(
            ["day-of-week levels" if self.day_levels else "base load",
             *(["HDD"] if self.heating is not None else []),
             *(["CDD"] if self.cooling is not None else [])]
        )  # fmt: skip

    def design(self, weather: Weather) -> Floats:
        return columns(weather, self.day_levels, self.weekdays, self.heating, self.cooling)

    def predict(self, weather: Weather) -> Floats:
        predicted: Floats = self.design(weather) @ self.beta
        return predicted


def columns(
    weather: Weather, day_levels: bool, weekdays: Sequence[int], heating: float | None,
    cooling: float | None,
) -> Floats:  # fmt: skip
    if day_levels:
        cols = [(weather.weekday == wd).astype(np.float64) for wd in weekdays]
    else:
        cols = [np.ones_like(weather.mean_c)]
    if heating is not None:
        cols.append(weather.hdd(heating))
    if cooling is not None:
        cols.append(weather.cdd(cooling))
    return np.column_stack(cols)


def _enough(degree_days: Floats) -> bool:
    """§3.2.2.2's sufficiency for a degree-day term."""
    return (
        int((degree_days > 0).sum()) >= MIN_DEGREE_DAYS_COUNT
        and float(degree_days.sum()) >= MIN_DEGREE_DAYS_SUM
    )


def _fit(
    y: Floats, weather: Weather, day_levels: bool, weekdays: tuple[int, ...],
    heating: float | None, cooling: float | None,
) -> Model | None:  # fmt: skip
    x = columns(weather, day_levels, weekdays, heating, cooling)
    n, k = x.shape
    terms = (heating is not None) + (cooling is not None)
    if any(not _enough(x[:, j]) for j in range(k - terms, k)):
        return None
    beta: Floats = np.linalg.lstsq(x, y, rcond=None)[0].astype(np.float64)
    # §3.4.3.2: every parameter positive (each day's level is a base load).
    if (beta <= 0).any():
        return None
    c = k - 1  # explanatory variables besides the intercept (§3.4.3.3.3)
    if n - c - 1 <= 0:
        return None
    resid = y - x @ beta
    sst = float(((y - y.mean()) ** 2).sum())
    adj = 1 - (float(resid @ resid) / (n - c - 1)) / (sst / (n - 1)) if sst > 0 else 0.0
    return Model(day_levels, heating, cooling, beta, weekdays, adj)


def best_model(y: Floats, weather: Weather, day_levels: bool, cooling: bool) -> Model | None:
    """§3.4.3: every qualified candidate (base only, HDD, CDD, both) over the balance point
    grids; the highest adjusted R^2 (§3.4.3.3: the base-only model's is 0 by definition).
    Without `cooling` (heat; CalTRACK: gas) no CDD candidates (§3.2.1.1)."""
    weekdays = tuple(sorted(set(weather.weekday.tolist()))) if day_levels else ()
    best = _fit(y, weather, day_levels, weekdays, None, None)
    if best is not None and not day_levels:
        best = Model(False, None, None, best.beta, (), 0.0)
    candidates: list[tuple[float | None, float | None]] = [
        (float(h), None if c is None else float(c))
        for h in HEATING_BALANCE
        for c in (None, *COOLING_BALANCE)
        if c is None or c >= h
    ] + [(None, float(c)) for c in COOLING_BALANCE]
    if not cooling:
        candidates = [(h, c) for h, c in candidates if c is None]
    for h, c in candidates:
        cand = _fit(y, weather, day_levels, weekdays, h, c)
        # Equal fits (within rounding) keep the first, the lowest balance point: when every
        # baseline day is colder than a range of balance points they all fit alike, and which
        # one is kept must not depend on rounding (pilots.energy refuses what it cannot place).
        if cand is not None and (best is None or cand.adj_r2 > best.adj_r2 + TIE):
            best = cand
    return best


def cross_validate(model: Model, y: Floats, weather: Weather) -> Floats:
    """Each baseline day's error when its whole week is left out of the fit (the model's form
    and balance points kept): what the model does on days it has not seen, a week at a time
    because days within a week are not independent."""
    x = model.design(weather)
    errors = np.full(len(y), np.nan)
    for week in np.unique(weather.week):
        out = weather.week == week
        kept = ~out
        if kept.sum() <= x.shape[1]:
            continue
        # A weekday level with no day left in the fit cannot predict its day: left out.
        usable = x[kept].any(axis=0)
        beta = np.linalg.lstsq(x[kept][:, usable], y[kept], rcond=None)[0]
        predicted = x[out][:, usable] @ beta
        has_level = x[out][:, ~usable].sum(axis=1) == 0
        errors[np.flatnonzero(out)[has_level]] = (y[out] - predicted)[has_level]
    return errors


@dataclass(frozen=True, slots=True)
class OutOfSample:
    """Leave-one-week-out fit of the baseline: CV(RMSE) and NMBE over the days predicted."""

    cvrmse: float
    nmbe: float
    days: int


def out_of_sample(errors: Floats, y: Floats) -> OutOfSample:
    """`cross_validate`'s errors summed up against the baseline's days `y`."""
    known = ~np.isnan(errors)
    mean = float(y[known].mean()) if known.any() else math.nan
    e = errors[known]
    if not known.any() or mean == 0:
        return OutOfSample(math.inf, math.nan, 0)
    return OutOfSample(
        math.sqrt(float((e**2).mean())) / abs(mean), -float(e.mean()) / mean, int(known.sum())
    )


def choose(
    y: Floats, weather: Weather, cooling: bool, reporting: Weather
) -> tuple[Model, OutOfSample, str] | None:
    """CalTRACK's form, or day-of-week levels where they predict the baseline's unseen weeks
    better by more than one standard error of the difference (the one-standard-error rule of
    cross-validation: with no weekday pattern the simpler form is kept, not a coin toss of
    noise); with the comparison in words. Levels only when the baseline has every weekday the
    `reporting` days have."""
    plain = best_model(y, weather, day_levels=False, cooling=cooling)
    if plain is None:
        return None
    a = cross_validate(plain, y, weather)
    plain_oos = out_of_sample(a, y)
    if not set(reporting.weekday.tolist()) <= set(weather.weekday.tolist()):
        return plain, plain_oos, "the baseline lacks a weekday of the reporting days: one base load"
    levels = best_model(y, weather, day_levels=True, cooling=cooling)
    if levels is None:
        return plain, plain_oos, "day-of-week levels did not qualify"
    b = cross_validate(levels, y, weather)
    levels_oos = out_of_sample(b, y)
    why = (
        f"out of sample (a week left out at a time) CV(RMSE) {plain_oos.cvrmse:.1%} with one "
        f"base load, {levels_oos.cvrmse:.1%} with a level per weekday"
    )
    both = ~np.isnan(a) & ~np.isnan(b)
    gain = a[both] ** 2 - b[both] ** 2
    if len(gain) > 1 and float(gain.mean()) > float(gain.std(ddof=1)) / math.sqrt(len(gain)):
        return levels, levels_oos, why
    return plain, plain_oos, why


def plausible(
    model: Model, y: Floats, weather: Weather, level: float
) -> list[tuple[float | None, Model]]:
    """The balance points the baseline cannot tell from the chosen one, each with its refit:
    a profile-likelihood set, every heating (cooling) balance point of the grid whose fit's SSE
    is within F(1, n - p) at `level` of the best (the F test of nested least squares, an
    approximation for a change point's location), the other term kept. The savings then hold for
    each (pilots.energy widens the interval to cover them): a reporting period past the
    baseline's weather depends on where the heating stops, which the baseline may not say."""
    x = model.design(weather)
    n, k = x.shape
    best_sse = float(((y - x @ model.beta) ** 2).sum())
    df = n - k - (model.heating is not None) - (model.cooling is not None)
    if df <= 0:
        return [(None, model)]
    limit = best_sse * (1 + t_quantile((1 + level) / 2, df) ** 2 / df)
    out: list[tuple[float | None, Model]] = [(None, model)]
    for term, grid in (("heating", HEATING_BALANCE), ("cooling", COOLING_BALANCE)):
        if getattr(model, term) is None:
            continue
        for b in grid:
            h = float(b) if term == "heating" else model.heating
            c = float(b) if term == "cooling" else model.cooling
            if (h, c) == (model.heating, model.cooling) or (
                h is not None and c is not None and c < h
            ):
                continue
            cand = _fit(y, weather, model.day_levels, model.weekdays, h, c)
            if cand is None:
                continue
            if float(((y - cand.predict(weather)) ** 2).sum()) <= limit:
                out.append((float(b), cand))
    return out
