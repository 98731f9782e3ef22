"""Which interval holds for the non-energy metrics under every kind of noise? (docs/pilots.md)

    .venv/bin/python bench/pilot_intervals.py [--reps 2000] [--seed 1]

A statistical study, not a test: it chose `pilots.stats`'s interval (issue 30). Daily series of
12 weeks (8 of baseline, 4 of pilot, from a Monday) with a weekday pattern and no effect, under
three noise structures and their mix:

- AR(1) days: day-to-day correlation rho 0, 0.3, 0.6 and 0.85 (the weather's, a busy spell);
- week effects: each week shifted by its own draw (busy weeks, school holidays), sd 0.5 and 1
  against the days' 1, which a lag-1 estimate cannot see: the correlation is flat within a week;
- event days: a quarter of the weekdays get an evening event that adds an exponential amount
  (mean 2, against the days' 1) on top of the days' noise;
- mixed: week effects (0.7), AR(1) days (0.5) and event days together.

Each series goes through the before/after model (one level per weekday; difference-in-
differences is the same model on the gap), and each candidate interval is asked whether its
90 % interval holds the true change (0). Candidates (the effect is a weighted sum of the days'
errors, theta = sum w_i e_i; they differ in its variance):

- `ar1`: the residuals' variance inflated by (1 + rho) / (1 - rho), rho the lag-1
  autocorrelation (ASHRAE Guideline 14's effective sample size) — the method before issue 30;
- `week_clusters`: cluster-robust by week: sum over weeks of (sum w_i e_i)^2, times
  G / (G - 1), with t on G - 1 degrees of freedom (G weeks of both periods);
- `week_welch`: the same per period (each with its own G / (G - 1)), degrees of freedom by
  Satterthwaite: for whole weeks, Welch's t on the two periods' weekly means;
- `newey_west`: HAC with a Bartlett kernel over 7 days' lags;
- `larger`, `larger_welch`: the larger of `ar1` and `week_clusters` (`week_welch`);
- `shipped`: what `pilots.stats.before_after` gives now, called as the CLI calls it
  (`larger_welch` since issue 30).

Printed: per noise structure, each candidate's coverage (nominal 0.90) and its interval's
median half-width relative to `ar1`'s.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np

from pilots.stats import LEVEL, before_after, lag1, t_quantile

Floats = np.ndarray
START = date(2026, 11, 2)  # a Monday
DAYS = [START + timedelta(i) for i in range(84)]
BASE, REP = DAYS[:56], DAYS[56:]
WEEKDAY = np.array([d.weekday() for d in DAYS])
WEEK = np.arange(84) // 7
LEVELS = np.array([10.0, 11.0, 11.0, 10.5, 9.0, 5.0, 2.0])


def ar1(rng: np.random.Generator, rho: float, n: int = 84) -> Floats:
    e = np.empty(n)
    e[0] = rng.normal()
    for i in range(1, n):
        e[i] = rho * e[i - 1] + math.sqrt(1 - rho**2) * rng.normal()
    return e


def weeks(rng: np.random.Generator, sd: float) -> Floats:
    out: Floats = np.repeat(rng.normal(0, sd, 12), 7)
    return out


def events(rng: np.random.Generator, mean: float = 2.0) -> Floats:
    on = (WEEKDAY < 5) & (rng.random(84) < 0.25)
    out: Floats = on * rng.exponential(mean, 84)
    return out


NOISE: dict[str, Callable[[np.random.Generator], Floats]] = {
    "ar1_days rho=0": lambda r: ar1(r, 0.0),
    "ar1_days rho=0.3": lambda r: ar1(r, 0.3),
    "ar1_days rho=0.6": lambda r: ar1(r, 0.6),
    "ar1_days rho=0.85": lambda r: ar1(r, 0.85),
    "week_effects sd=0.5": lambda r: weeks(r, 0.5) + r.normal(size=84),
    "week_effects sd=1": lambda r: weeks(r, 1.0) + r.normal(size=84),
    "event_days": lambda r: events(r) + r.normal(size=84),
    "mixed": lambda r: weeks(r, 0.7) + ar1(r, 0.5) + events(r),
}


def _design(days: slice) -> Floats:
    x: Floats = np.zeros((len(WEEKDAY[days]), 7))
    x[np.arange(x.shape[0]), WEEKDAY[days]] = 1.0
    return x


XB, XR = _design(slice(0, 56)), _design(slice(56, 84))
XTX_INV = np.linalg.inv(XB.T @ XB)
# The effect as a weighted sum of the days: reporting days 1/nr, baseline days through the
# weekday levels' fit.
W = np.concatenate([-(XR.mean(axis=0) @ XTX_INV @ XB.T), np.full(28, 1 / 28)])


def intervals(y: Floats) -> tuple[float, dict[str, tuple[float, float]]]:
    """The estimate and each candidate's (half-width, degrees of freedom)."""
    beta = XTX_INV @ XB.T @ y[:56]
    resid_b = y[:56] - XB @ beta
    dev = y[56:] - XR @ beta
    theta = float(dev.mean())
    e = np.concatenate([resid_b, dev - theta])
    q = (1 + LEVEL) / 2
    # ar1, as pilots.stats did before issue 30.
    rho = lag1(e)
    inflate = (1 + rho) / (1 - rho)
    var_b = float((resid_b**2).sum()) / (56 - 7)
    var_r = float(((dev - theta) ** 2).sum()) / 27
    leverage = float(XR.mean(axis=0) @ XTX_INV @ XR.mean(axis=0))
    se_ar1 = math.sqrt(inflate * (var_r / 28 + var_b * leverage))
    df_ar1 = max(3.0, 84 * (1 - rho) / (1 + rho) - 8)
    # Week clusters (CR1).
    g = 12
    per_week = np.bincount(WEEK, weights=W * e, minlength=g)
    se_cl = math.sqrt(float((per_week**2).sum()) * g / (g - 1))
    # Newey-West, Bartlett kernel, 7 lags, on u_i = w_i e_i in time order.
    u = W * e * 84  # scaled; undone below
    gamma0 = float(u @ u) / 84
    hac = gamma0 + 2 * sum((1 - lag / 8) * float(u[lag:] @ u[:-lag]) / 84 for lag in range(1, 8))
    se_nw = math.sqrt(max(hac, 0.0) * 84) / 84
    # Week clusters per period (CR1 in each), Satterthwaite's degrees of freedom: for whole
    # weeks, Welch's two-sample t on the periods' weekly means.
    v = []
    for lo, hi in ((0, 8), (8, 12)):
        sums = per_week[lo:hi]
        v.append((float((sums**2).sum()) * (hi - lo) / (hi - lo - 1), hi - lo - 1))
    var_w = v[0][0] + v[1][0]
    df_w = var_w**2 / sum(part**2 / df for part, df in v)
    out = {
        "week_welch": (t_quantile(q, max(df_w, 2.0)) * math.sqrt(var_w), df_w),
        "ar1": (t_quantile(q, df_ar1) * se_ar1, df_ar1),
        "week_clusters": (t_quantile(q, g - 1) * se_cl, g - 1.0),
        "newey_west": (t_quantile(q, 84 - 8) * se_nw, 76.0),
    }
    out["larger"] = max(out["ar1"], out["week_clusters"], key=lambda hw: hw[0])
    out["larger_welch"] = max(out["ar1"], out["week_welch"], key=lambda hw: hw[0])
    return theta, out


def study(reps: int, seed: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, float]] = {}
    for name, noise in NOISE.items():
        hits: dict[str, int] = {}
        widths: dict[str, list[float]] = {}
        for _ in range(reps):
            y = LEVELS[WEEKDAY] + noise(rng)
            theta, cands = intervals(y)
            shipped = before_after(dict(zip(BASE, y[:56], strict=True)),
                                   dict(zip(REP, y[56:], strict=True)))  # fmt: skip
            assert shipped.estimate is not None
            assert shipped.low is not None
            assert shipped.high is not None
            assert abs(shipped.estimate - theta) < 1e-9  # the same estimate as the study's
            cands["shipped"] = ((shipped.high - shipped.low) / 2, math.nan)
            for cand, (half, _) in cands.items():
                hits[cand] = hits.get(cand, 0) + (abs(theta) <= half)
                widths.setdefault(cand, []).append(half)
        base = float(np.median(widths["ar1"]))
        rows[name] = {
            **{f"{c} coverage": round(h / reps, 3) for c, h in hits.items()},
            **{f"{c} width": round(float(np.median(w)) / base, 2) for c, w in widths.items()},
        }
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.monotonic()
    rows = study(args.reps, args.seed)
    cands = ["ar1", "week_clusters", "week_welch", "newey_west", "larger", "larger_welch",
             "shipped"]  # fmt: skip
    print(f"coverage of 90 % intervals, {args.reps} series each (seed {args.seed}); "
          "width: median half-width / ar1's")  # fmt: skip
    print(f"{'noise':22}" + "".join(f"{c:>15}" for c in cands))
    for name, row in rows.items():
        print(f"{name:22}" + "".join(f"{row[f'{c} coverage']:>15.3f}" for c in cands))
        print(f"{'  width':22}" + "".join(f"{row[f'{c} width']:>15.2f}" for c in cands))
    print(json.dumps({"reps": args.reps, "seed": args.seed,
                      "seconds": round(time.monotonic() - t0), "rows": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
