"""Which hourly model recovers a known heat cut: OpenDSM's CalTRACK hourly model (what
`pilots/hourly.py` uses), OpenDSM's newer `HourlyModel`, and the daily path for reference, on a
simulated year of hourly baseline and four pilot weeks with a -12 % cut (docs/pilots.md).

    .venv/bin/python bench/pilot_hourly.py --seeds 3
"""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import typer

TZ = ZoneInfo("Europe/Helsinki")
CUT = -12.0


def _year(seed: int) -> tuple[Any, Any]:
    import pandas as pd

    rng = np.random.default_rng(seed)
    idx = pd.date_range("2025-01-01", periods=24 * (365 + 28), freq="h", tz=TZ)
    doy, hour = idx.dayofyear.to_numpy(), idx.hour.to_numpy()
    temp = (5 - 12 * np.cos((doy - 20) / 365 * 2 * np.pi) + 3 * np.sin(hour / 24 * 2 * np.pi)
            + rng.normal(0, 2, len(idx)))  # fmt: skip
    working = ((hour >= 8) & (hour < 18) & (idx.dayofweek.to_numpy() < 5)).astype(float)
    heat = np.maximum(0, 17 - temp) * 0.8 + 2 + 3 * working + rng.normal(0, 0.5, len(idx))
    heat[24 * 365 :] *= 1 + CUT / 100
    return idx, pd.DataFrame({"observed": heat, "temperature_c": temp}, index=idx)


def _pct(frame: Any) -> float:
    return float((frame.observed.sum() - frame.predicted.sum()) / frame.predicted.sum() * 100)


def main(seeds: int = typer.Option(3, help="Simulated years to try")) -> None:
    from opendsm import eemeter

    from pilots.energy import weather_normalised_savings
    from pilots.hourly import hourly_savings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    rows = []
    for seed in range(1, seeds + 1):
        _, df = _year(seed)
        f = df.assign(temperature=df.temperature_c * 9 / 5 + 32)[["observed", "temperature"]]
        base, rep = f.iloc[: 24 * 365], f.iloc[24 * 365 :]
        newer = eemeter.HourlyModel().fit(
            eemeter.HourlyBaselineData(base, is_electricity_data=False),
            ignore_disqualification=True,
        )
        try:
            newer_pct = _pct(newer.predict(
                eemeter.HourlyReportingData(rep, is_electricity_data=False),
                ignore_disqualification=True,
            ))  # fmt: skip
        except ValueError:  # OpenDSM 1.2 fails on some reporting spans
            newer_pct = float("nan")
        ms = [int(t.timestamp() * 1000) for t in df.index]
        heat = dict(zip(ms, df.observed, strict=True))
        temp = dict(zip(ms, df.temperature_c, strict=True))
        split = ms[24 * 365]
        before = {h: v for h, v in heat.items() if h < split}
        during = {h: v for h, v in heat.items() if h >= split}
        ours = hourly_savings(before, during, temp, TZ, False)
        daily = df.groupby(df.index.date).agg({"observed": "sum", "temperature_c": "mean"})
        days = [date.fromisoformat(str(d)) for d in daily.index]
        dd = dict(zip(days, daily.observed, strict=True))
        dt = dict(zip(days, daily.temperature_c, strict=True))
        cut_day = datetime.fromtimestamp(split / 1000, UTC).astimezone(TZ).date()
        daily_effect, _ = weather_normalised_savings(
            {d: v for d, v in dd.items() if d < cut_day},
            {d: v for d, v in dd.items() if d >= cut_day}, dt, TZ, False,
        )  # fmt: skip
        rows.append((seed, ours.estimate_pct if ours else None, ours and ours.low_pct,
                     ours and ours.high_pct, newer_pct, daily_effect.estimate_pct))  # fmt: skip
    print(f"true change {CUT:+.1f} %; {timedelta(days=28).days} pilot days after 365 baseline days")
    print(
        "seed  caltrack_hourly (90 %)          opendsm HourlyModel  daily (caltrack_daily_opendsm)"
    )
    for seed, est, low, high, newer_pct, daily_pct in rows:
        print(f"{seed:4d}  {est:+6.2f} ({low:+.2f} .. {high:+.2f})   {newer_pct:+6.2f}"
              f"               {daily_pct:+6.2f}")  # fmt: skip


if __name__ == "__main__":
    typer.run(main)
