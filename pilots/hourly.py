"""Energy savings with the CalTRACK hourly model, where the data allow it: a year of hourly
baseline (CalTRACK's hourly methods want twelve months: one model per month, each fitted on its
month and the two beside it, on time of week and outdoor temperature bins), as OpenDSM
implements it (`HourlyCaltrackModel`). CalTRACK's CV(RMSE) limit and Guideline 14's savings
uncertainty as in `pilots.energy`.

Why the CalTRACK hourly model and not OpenDSM's newer `HourlyModel`: on simulated years of a
heated building with a known 12 % cut (`bench/pilot_hourly.py`), the CalTRACK model found
-12.00, -12.07 and -11.88 %, the newer model -9.91, -9.79 and -8.99 % (docs/pilots.md). Where
the data do not allow the hourly model, `hourly_savings` returns None and the daily method
judges.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np

from pilots.energy import (
    CALTRACK_MIN_DAYS,
    CVRMSE_MAX,
    EXTRAPOLATION_MARGIN_C,
    EXTRAPOLATION_MAX,
    _opendsm,
)
from pilots.stats import LEVEL, MIN_REPORTING_DAYS, DayValue, Effect, Verdict, verdict_of

METHOD = "caltrack_hourly_opendsm"
# The share of the baseline's hours that must have both energy and temperature (CalTRACK's
# hourly sufficiency asks 90 % per month; this asks it of the whole year).
MIN_HOURS_SHARE = 0.90

Hours = Mapping[int, float]  # hour start, ms since the epoch -> value


def _index(hours: list[int], tz: ZoneInfo) -> object:
    import pandas as pd

    return pd.DatetimeIndex(pd.to_datetime(hours, unit="ms", utc=True)).tz_convert(tz)


def _daily(hours: list[int], observed: np.ndarray, predicted: np.ndarray,
           tz: ZoneInfo) -> tuple[list[DayValue], int]:  # fmt: skip
    sums: dict[date, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for h, o, p in zip(hours, observed, predicted, strict=True):
        day = sums[datetime.fromtimestamp(h / 1000, UTC).astimezone(tz).date()]
        day[0] += float(o)
        day[1] += float(p)
    return [(d, v[0], v[1]) for d, v in sorted(sums.items())], len(sums)


def hourly_savings(
    baseline_kwh: Hours,
    reporting_kwh: Hours,
    temperature_c: Hours,
    tz: ZoneInfo,
    is_electricity: bool,
) -> Effect | None:
    """The change in daily energy with the CalTRACK hourly model, or None when the data do not
    allow it (less than a year of baseline hours, or too few of them measured)."""
    b_hours = sorted(h for h in baseline_kwh if h in temperature_c)
    r_hours = sorted(h for h in reporting_kwh if h in temperature_c)
    if not b_hours or not r_hours:
        return None
    span_days = (b_hours[-1] - b_hours[0]) / 86_400_000 + 1 / 24
    if span_days < CALTRACK_MIN_DAYS or len(b_hours) < MIN_HOURS_SHARE * span_days * 24:
        return None
    yb = np.array([baseline_kwh[h] for h in b_hours])
    yr = np.array([reporting_kwh[h] for h in r_hours])
    tb = np.array([temperature_c[h] for h in b_hours])
    tr = np.array([temperature_c[h] for h in r_hours])
    lo, hi = float(tb.min()), float(tb.max())
    far = float(((tr < lo - EXTRAPOLATION_MARGIN_C) | (tr > hi + EXTRAPOLATION_MARGIN_C)).mean())
    nb_days = len({datetime.fromtimestamp(h / 1000, UTC).astimezone(tz).date() for h in b_hours})
    if far > EXTRAPOLATION_MAX:
        return None  # the daily method will say why, in days
    eemeter, baseline_metrics, reporting_metrics = _opendsm()
    import pandas as pd

    def frame(hours: list[int], y: np.ndarray, t: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"observed": y, "temperature": t * 9 / 5 + 32}, index=_index(hours, tz))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = eemeter.HourlyCaltrackBaselineData(frame(b_hours, yb, tb), is_electricity)
        model = eemeter.HourlyCaltrackModel().fit(base)
        fitted = model.predict(base)
        report = eemeter.HourlyCaltrackReportingData(frame(r_hours, yr, tr), is_electricity)
        predicted = model.predict(report)
        # Each month has its own model: the parameters of all of them count (conservative).
        params = sum(len(s.model_params) for s in model.model.model.segment_models)
        fb = fitted.loc[_index(b_hours, tz)]
        fr = predicted.loc[_index(r_hours, tz)]
        bm = baseline_metrics(df=fb[["observed", "predicted"]].dropna(), num_model_params=params)
        cvrmse, nmbe = float(bm.cvrmse_adj), float(bm.nmbe)
        daily_b, _ = _daily(b_hours, fb["observed"].to_numpy(), fb["predicted"].to_numpy(), tz)
        daily_r, nr = _daily(r_hours, fr["observed"].to_numpy(), fr["predicted"].to_numpy(), tz)
        daily = tuple(daily_b + daily_r)
        notes = [
            f"model: CalTRACK hourly (12 monthly models of time of week and temperature), "
            f"fitted on {len(b_hours)} baseline hours",
            f"baseline fit (hourly): CV(RMSE) {cvrmse:.1%}, NMBE {nmbe:+.1%}",
        ]
        if nr < MIN_REPORTING_DAYS:
            notes.append(f"{nr} reporting days")
            return Effect(METHOD, None, None, None, None, None, None, nb_days, nr,
                          Verdict.INSUFFICIENT_DATA, tuple(notes), daily)  # fmt: skip
        # CalTRACK 2.0's building-level limit (methods §4.3.2.1), in sample as it defines it;
        # in-sample NMBE of a least-squares fit is about zero whatever the fit: reported only.
        if cvrmse > CVRMSE_MAX:
            notes.append(
                f"CV(RMSE) {cvrmse:.0%} exceeds CalTRACK 2.0's {CVRMSE_MAX:.0%} (methods "
                "§4.3.2.1): the weather and the time of week do not explain the baseline"
            )
            return Effect(METHOD, None, None, None, None, None, None, nb_days, nr,
                          Verdict.BASELINE_INADEQUATE, tuple(notes), daily)  # fmt: skip
        metrics = reporting_metrics(
            baseline_metrics=bm,
            reporting_df=fr[["observed", "predicted"]].dropna(),
            data_frequency="hourly",
            confidence_level=LEVEL,
        )
    change = -float(metrics.savings) / nr
    expected = float(metrics.predicted_sum) / nr
    spread = metrics.total_savings_uncertainty
    if spread is None or not math.isfinite(spread) or expected == 0:
        notes.append("the savings uncertainty could not be computed")
        return Effect(METHOD, change, None, None, None, None, None, nb_days, nr,
                      Verdict.INSUFFICIENT_DATA, tuple(notes), daily)  # fmt: skip
    half = float(spread) / nr
    low, high = change - half, change + half
    return Effect(
        METHOD, change, low, high,
        change / expected * 100, low / expected * 100, high / expected * 100,
        nb_days, nr, verdict_of(low, high), tuple(notes), daily,
    )  # fmt: skip
