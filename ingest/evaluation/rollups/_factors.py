"""Grid emission factors: a constant, an hourly series from CSV, or both (the constant then
covers the hours the series lacks)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

from devices.site import Impact

from ._energy import HOUR_MS

# Column names accepted for the time and the factor. Fingrid's open-data CSV export names them
# startTime and value (gCO2/kWh), so its files load as downloaded.
_TIME_COLUMNS = ("time", "starttime", "start_time", "timestamp")
_KG_COLUMNS = ("kg_per_kwh", "kgco2e_per_kwh")
_G_COLUMNS = ("g_per_kwh", "gco2_per_kwh", "gco2e_per_kwh", "value")


class FactorFileError(ValueError):
    """A factor CSV that cannot be used; the message names the file and line."""


def _parse_time(text: str) -> int:
    text = text.strip()
    try:
        return round(float(text) * 1000)  # epoch seconds
    except ValueError:
        pass
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return round(t.timestamp() * 1000)


def parse_factor_csv(text: str, source: str = "<csv>") -> dict[int, float]:
    """CSV text to {hour start ms: kgCO2e/kWh}. Several values within an hour (Fingrid
    publishes every 3 minutes) are averaged; `,` or `;` separate columns."""
    first = text.partition("\n")[0]
    rows = csv.reader(
        io.StringIO(text), delimiter=";" if first.count(";") > first.count(",") else ","
    )
    header = [h.strip().lower() for h in next(rows, [])]
    time_col = next((header.index(c) for c in _TIME_COLUMNS if c in header), None)
    kg_col = next((header.index(c) for c in _KG_COLUMNS if c in header), None)
    g_col = next((header.index(c) for c in _G_COLUMNS if c in header), None)
    if time_col is None or (kg_col is None and g_col is None):
        raise FactorFileError(
            f"{source}: the header needs a time column ({'/'.join(_TIME_COLUMNS)}) and a factor "
            f"column ({'/'.join(_KG_COLUMNS)} in kg/kWh, or {'/'.join(_G_COLUMNS)} in g/kWh)"
        )
    value_col, scale = (kg_col, 1.0) if kg_col is not None else (g_col, 0.001)
    assert value_col is not None
    sums: dict[int, tuple[float, int]] = {}
    for lineno, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            t = _parse_time(row[time_col])
            value = float(row[value_col]) * scale
        except (ValueError, IndexError) as exc:
            raise FactorFileError(f"{source}:{lineno}: {exc}") from None
        if not 0 <= value <= 2:
            raise FactorFileError(f"{source}:{lineno}: {value} kg/kWh is outside 0..2")
        hour = t - t % HOUR_MS
        total, n = sums.get(hour, (0.0, 0))
        sums[hour] = (total + value, n + 1)
    if not sums:
        raise FactorFileError(f"{source}: no rows")
    return {hour: total / n for hour, (total, n) in sums.items()}


class EmissionFactors:
    """The factor for an hour: the series' value, else the constant, else None (no emissions)."""

    def __init__(self, constant: float | None = None, hourly: dict[int, float] | None = None):
        self.constant = constant
        self.hourly = hourly or {}

    @classmethod
    def from_impact(cls, impact: Impact) -> EmissionFactors:
        hourly = None
        if impact.emission_factors_csv is not None:
            path = Path(impact.emission_factors_csv)
            try:
                text = path.read_text("utf-8-sig")
            except OSError as exc:
                raise FactorFileError(f"{path}: cannot read: {exc.strerror}") from exc
            hourly = parse_factor_csv(text, str(path))
        return cls(impact.emission_factor_kg_per_kwh, hourly)

    def at(self, hour_ms: int) -> float | None:
        return self.hourly.get(hour_ms, self.constant)
