"""Summaries for reports: rounded numbers for JSON, a mean with its interval, a proportion's
Wilson interval. Pure functions on arrays."""

from __future__ import annotations

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def rounded(x, digits: int = 4):
    """Rounded float for JSON (None for NaN / missing)."""
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, digits)


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (stays inside [0, 1] for small n)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    denominator = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denominator
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values) -> dict:
    """Mean of the finite values with a 95% normal interval (mean +- 1.96 standard errors), the
    median and the count, rounded for JSON."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "median": None, "n": 0}
    mean = values.mean()
    half = Z95 * values.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    return {
        "mean": rounded(mean),
        "low": rounded(mean - half),
        "high": rounded(mean + half),
        "median": rounded(np.median(values)),
        "n": n,
    }
