"""Energy savings against a weather-normalised baseline: IPMVP Option B (a pilot's own meters)
or C (the whole building), with the CalTRACK daily model as OpenDSM implements it.

The baseline's daily energy is fitted against the day's mean outdoor temperature (the site's
weather station); the model predicts what the reporting days would have used without the pilot;
avoided energy is predicted minus measured. The uncertainty is ASHRAE Guideline 14's fractional
savings uncertainty at 90 % (OpenDSM's `ReportingMetrics`, with its autocorrelation and
daily-data corrections). A baseline the model does not explain gets the verdict "baseline
inadequate" and no number: CV(RMSE) or NMBE outside `CVRMSE_MAX` / `NMBE_MAX`.

OpenDSM is an optional extra (`pip install .[pilots]`, about 250 MB of scientific wheels): it is
imported here only, when a pilot is evaluated. The ingestor and the simulator never import it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from pilots.stats import LEVEL, MIN_BASELINE_DAYS, MIN_REPORTING_DAYS, Effect, Verdict

METHOD = "caltrack_daily"

# Guideline 14 states limits for monthly (CV(RMSE) 15 %, NMBE ±5 %) and hourly (30 %, ±10 %)
# models; daily models fall between. We apply the hourly limits, the less strict pair, with
# CV(RMSE) and NMBE as OpenDSM computes them (adjusted for the model's parameters).
CVRMSE_MAX = 0.30
NMBE_MAX = 0.10
# CalTRACK's sufficiency asks for a year of baseline. A pilot's is weeks; OpenDSM's
# disqualification for it is recorded as a note, and the fit limits above decide instead.
EXPECTED_DISQUALIFICATIONS = frozenset(
    {"eemeter.sufficiency_criteria.incorrect_number_of_total_days"}
)


class MissingExtra(RuntimeError):
    """OpenDSM is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "weather-normalised energy savings need OpenDSM: install the pilots extra with "
            "`.venv/bin/pip install -e '.[pilots]'` (scripts/setup --tests does it)"
        )


@dataclass(frozen=True, slots=True)
class Fit:
    """How well the baseline model explains the baseline (fractions, not percent)."""

    cvrmse: float
    nmbe: float
    adequate: bool


def _opendsm() -> Any:
    try:
        from opendsm import eemeter
        from opendsm.common.metrics import ReportingMetrics
    except ImportError as exc:
        raise MissingExtra() from exc
    return eemeter, ReportingMetrics


def _frame(energy: Mapping[date, float] | None, temp_c: Mapping[date, float], tz: ZoneInfo) -> Any:
    import pandas as pd

    days = sorted(temp_c if energy is None else set(energy) & set(temp_c))
    index = pd.DatetimeIndex([pd.Timestamp(d).tz_localize(tz) for d in days])
    frame = pd.DataFrame(
        {"temperature": [temp_c[d] * 9 / 5 + 32 for d in days]},  # CalTRACK wants °F
        index=index,
    )
    if energy is not None:
        frame["observed"] = [energy[d] for d in days]
    return frame


def weather_normalised_savings(
    baseline_kwh: Mapping[date, float],
    reporting_kwh: Mapping[date, float],
    temperature_c: Mapping[date, float],
    tz: ZoneInfo,
    is_electricity: bool,
) -> tuple[Effect, Fit | None]:
    """The change in daily energy (kWh/day, negative when the pilot saves: measured minus what
    the baseline model predicted for the reporting days' weather), in kWh and in percent of the
    prediction, with Guideline 14's 90 % interval; and the baseline fit."""
    base_days = set(baseline_kwh) & set(temperature_c)
    rep_days = set(reporting_kwh) & set(temperature_c)
    nb, nr = len(base_days), len(rep_days)
    if nb < MIN_BASELINE_DAYS or nr < MIN_REPORTING_DAYS:
        why = f"{nb} baseline and {nr} reporting days with both energy and temperature"
        return Effect(METHOD, None, None, None, None, None, None, nb, nr,
                      Verdict.INSUFFICIENT_DATA, (why,)), None  # fmt: skip
    eemeter, reporting_metrics = _opendsm()
    notes: list[str] = []
    with warnings.catch_warnings():
        # OpenDSM logs and warns about every sufficiency criterion; the ones that matter are
        # read from `disqualification` below and reported as notes.
        warnings.simplefilter("ignore")
        base = eemeter.DailyBaselineData(
            _frame(baseline_kwh, temperature_c, tz), is_electricity_data=is_electricity
        )
        unexpected = [
            w.qualified_name
            for w in base.disqualification
            if w.qualified_name not in EXPECTED_DISQUALIFICATIONS
        ]
        if unexpected:
            return Effect(METHOD, None, None, None, None, None, None, nb, nr,
                          Verdict.INSUFFICIENT_DATA,
                          tuple(f"OpenDSM: {name}" for name in unexpected)), None  # fmt: skip
        if base.disqualification:
            notes.append(
                f"baseline of {nb} days: CalTRACK asks for a year, so the model has seen only "
                "this season's temperatures"
            )
        model = eemeter.DailyModel().fit(base, ignore_disqualification=True)
        report = eemeter.DailyReportingData(
            _frame(reporting_kwh, temperature_c, tz), is_electricity_data=is_electricity
        )
        predicted = model.predict(report, ignore_disqualification=True)
    bm = model.baseline_metrics
    cvrmse, nmbe = float(bm.cvrmse_adj), float(bm.nmbe)
    fit = Fit(cvrmse, nmbe, cvrmse <= CVRMSE_MAX and abs(nmbe) <= NMBE_MAX)
    notes.append(f"baseline fit: CV(RMSE) {fit.cvrmse:.1%}, NMBE {fit.nmbe:+.1%}")
    if not fit.adequate:
        notes.append(
            f"Guideline 14 limits (CV(RMSE) ≤ {CVRMSE_MAX:.0%}, |NMBE| ≤ {NMBE_MAX:.0%}) not "
            "met: the weather does not explain the baseline, so no savings are claimed"
        )
        return Effect(METHOD, None, None, None, None, None, None, nb, nr,
                      Verdict.BASELINE_INADEQUATE, tuple(notes)), fit  # fmt: skip
    metrics = reporting_metrics(
        baseline_metrics=bm,
        reporting_df=predicted[["observed", "predicted"]],
        data_frequency="daily",
        confidence_level=LEVEL,
    )
    days = float(metrics.n)
    change = -float(metrics.savings) / days
    spread = metrics.total_savings_uncertainty
    if spread is None or not math.isfinite(spread):
        notes.append("OpenDSM could not compute the savings uncertainty")
        return Effect(METHOD, change, None, None, None, None, None, nb, nr,
                      Verdict.INSUFFICIENT_DATA, tuple(notes)), fit  # fmt: skip
    half = float(spread) / days
    expected = float(metrics.predicted_sum) / days
    low, high = change - half, change + half
    verdict = Verdict.NO_EFFECT_DETECTED if low <= 0 <= high else Verdict.EFFECT
    return Effect(
        METHOD, change, low, high,
        change / expected * 100, low / expected * 100, high / expected * 100,
        nb, nr, verdict, tuple(notes),
    ), fit  # fmt: skip
