"""The weekly report's figures (matplotlib, drawn off screen) and how they are embedded (PNG as
base64); the pilot report draws with the same colours."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here, and none on a server

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from dashboards.report._data import WeekData

NAN = float("nan")

GREEN, GREY, ORANGE, BLUE = "#2e7d32", "#9e9e9e", "#ef6c00", "#1565c0"


def fmt(v: float | None, unit: str | None = None) -> str:
    """Quantities with one decimal below 100 and none above; percentages always with one;
    counts (unit "") as whole numbers."""
    if v is None:
        return "no data"
    if unit == "%":
        return f"{v:.1f} %"
    text = f"{v:,.0f}" if unit == "" or abs(v) >= 100 else f"{v:,.1f}"
    return f"{text} {unit or ''}".strip()


def day_label(ms: int, data: WeekData) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(data.tz).strftime("%a %d.%m.")


# --- figures -----------------------------------------------------------------------------------

Bars = tuple[list[float], str, str]  # values, label, colour


def _grouped(ax: Any, names: list[str], series: list[Bars], horizontal: bool = False) -> None:
    """Bars of several series side by side per name; horizontal ones read top to bottom."""
    width = 0.8 / len(series)
    pos = range(len(names))
    for k, (values, label, color) in enumerate(series):
        at = [i + (k - (len(series) - 1) / 2) * width for i in pos]
        if horizontal:
            ax.barh(at, values, width, label=label, color=color)
        else:
            ax.bar(at, values, width, label=label, color=color)
    if horizontal:
        ax.set_yticks(list(pos), names)
        ax.invert_yaxis()
    else:
        ax.set_xticks(list(pos), names)


def _nan(v: float | None) -> float:
    """A missing value as a gap: matplotlib draws no bar and breaks the line there."""
    return NAN if v is None else v


def _fig_energy(data: WeekData) -> Figure | None:
    if not any(d[1] is not None or d[2] is not None for d in data.daily):
        return None
    fig, ax = plt.subplots(figsize=(8, 3.4))
    days = [day_label(d[0], data) for d in data.daily]
    _grouped(ax, days, [([_nan(d[1]) for d in data.daily], "grid kWh", BLUE),
                        ([_nan(d[2]) for d in data.daily], "solar kWh", ORANGE)])  # fmt: skip
    ax.set_ylabel("kWh")
    ax2 = ax.twinx()
    kg = [_nan(d[3]) for d in data.daily]
    ax2.plot(list(range(len(days))), kg, "o-", color=GREY, label="kgCO2e")
    ax2.set_ylabel("kgCO2e")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=8)
    ax.set_title("Energy and emissions per day")
    fig.tight_layout()
    return fig


def _fig_spaces(data: WeekData) -> Figure | None:
    rows = [r for r in data.spaces_energy if r[1] or r[3] or r[4]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.4))
    _grouped(
        ax,
        [r[0] for r in rows],
        [([r[1] for r in rows], "consumption kWh", BLUE),
         ([r[3] for r in rows], "grid supply kWh", GREY),
         ([r[4] for r in rows], "solar kWh", ORANGE)],
        horizontal=True,
    )  # fmt: skip
    ax.set_xlabel("kWh this week")
    ax.legend(fontsize=8)
    ax.set_title("Energy per space")
    fig.tight_layout()
    return fig


def _fig_waste(data: WeekData) -> Figure | None:
    if not any(f[1] for f in data.fractions):
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = [f[0] for f in data.fractions]
    colors = [GREY if n == "mixed" else GREEN for n in names]
    ax.bar(names, [f[1] for f in data.fractions], color=colors)
    ax.set_ylabel("litres collected")
    rate = data.totals.get("sorting_rate_pct")
    ax.set_title(f"Waste per fraction (sorting rate {fmt(rate, '%')}; grey: mixed waste)")
    fig.tight_layout()
    return fig


def _fig_use(data: WeekData) -> Figure | None:
    if not data.space_use:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.4))
    names = [s[0] for s in data.space_use]
    _grouped(
        ax,
        names,
        [([s[1] for s in data.space_use], "this week", GREEN),
         ([data.hours_previous.get(n, 0.0) for n in names], "previous week", GREY)],
        horizontal=True,
    )  # fmt: skip
    ax.set_xlabel("hours with people present")
    ax.legend(fontsize=8)
    ax.set_title("Hours of use per space")
    fig.tight_layout()
    return fig


def _fig_utilisation(data: WeekData) -> Figure | None:
    if not data.space_use:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    _grouped(
        ax,
        [s[0] for s in data.space_use],
        [([s[2] for s in data.space_use], "occupied while open %", GREEN),
         ([_nan(s[5]) for s in data.space_use], "good air (CO2 < 1000 ppm) %", BLUE)],
    )  # fmt: skip
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Utilisation and air quality per space")
    fig.tight_layout()
    return fig


def _fig_completeness(data: WeekData) -> Figure | None:
    rows = data.completeness
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.22 * len(rows) + 1)))
    colors = [GREEN if r[4] >= 95 else ORANGE if r[4] >= 80 else "#c62828" for r in rows]
    ax.barh([r[0] for r in rows], [r[4] for r in rows], color=colors)
    ax.set_xlim(0, 100)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("% of expected readings received")
    ax.set_title("Data completeness per device")
    fig.tight_layout()
    return fig


FIGURES: list[tuple[str, Callable[[WeekData], Figure | None]]] = [
    ("energy", _fig_energy),
    ("spaces", _fig_spaces),
    ("waste", _fig_waste),
    ("use", _fig_use),
    ("utilisation", _fig_utilisation),
    ("completeness", _fig_completeness),
]


def png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode()
