"""Percentiles and medians over latency samples (milliseconds), without numpy."""

from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks."""
    if not samples:
        return math.nan
    data = sorted(samples)
    if len(data) == 1:
        return data[0]
    rank = (p / 100) * (len(data) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """n, p50, p90, p99, p999, mean, min, max of latency samples in ms.

    With fewer samples than a percentile needs (p99 of 20 samples), the interpolated value is
    close to the maximum: report.md prints n next to every percentile for that reason.
    """
    if not samples:
        return {"n": 0}
    data = sorted(samples)
    return {
        "n": len(data),
        "p50": percentile(data, 50),
        "p90": percentile(data, 90),
        "p99": percentile(data, 99),
        "p999": percentile(data, 99.9),
        "mean": statistics.fmean(data),
        "min": data[0],
        "max": data[-1],
    }


def median(values: Iterable[float]) -> float:
    data = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(data) if data else math.nan


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median, min and max of one figure over repeated runs."""
    data = [v for v in values if v is not None and not math.isnan(v)]
    if not data:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "runs": 0}
    return {"median": statistics.median(data), "min": min(data), "max": max(data), "runs": len(data)}


def ns_to_ms(values: Iterable[int]) -> list[float]:
    return [v / 1e6 for v in values]
