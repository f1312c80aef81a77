"""The last minutes of each route's calls, per second, in memory: what the dashboard charts.

Each route keeps a ring of ``SECONDS`` one-second buckets; a bucket holds the number of calls
that ended in that second, how many failed, and a histogram of their durations in fixed
logarithmic bins (a third of an octave: a percentile read from it is within about 12 % of the
true one). So memory is bounded per route, whatever the load (at most SECONDS x BINS counters),
and recording a call is a few arithmetic operations. Each node keeps its own: a chart shows
the calls this node served.
"""

from __future__ import annotations

import math
from typing import Any, Callable

SECONDS = 600  # the longest window that can be asked for
BINS = 64
_BASE_MS = 0.05  # the first bin holds everything up to 0.05 ms * 2^(1/3)
_PER_OCTAVE = 3


def _bin(ms: float) -> int:
    if ms <= _BASE_MS:
        return 0
    return min(BINS - 1, int(math.log2(ms / _BASE_MS) * _PER_OCTAVE))


def _bin_value(index: int) -> float:
    """The value a bin stands for: its geometric middle, in ms."""
    return _BASE_MS * 2 ** ((index + 0.5) / _PER_OCTAVE)


def _quantile(histogram: list[int], count: int, q: float) -> float | None:
    if not count or not histogram:
        return None
    rank = max(1, math.ceil(q * count))
    seen = 0
    for index, n in enumerate(histogram):
        seen += n
        if seen >= rank:
            return round(_bin_value(index), 3)
    return round(_bin_value(BINS - 1), 3)


class RouteSeries:
    """One route's ring of per-second buckets."""

    __slots__ = ("_second", "_calls", "_errors", "_histograms")

    def __init__(self) -> None:
        self._second = [-1] * SECONDS  # the Unix second each slot holds now
        self._calls = [0] * SECONDS
        self._errors = [0] * SECONDS
        self._histograms: list[list[int] | None] = [None] * SECONDS

    def add(self, at: float, duration_s: float, failed: bool) -> None:
        second = int(at)
        slot = second % SECONDS
        histogram = self._histograms[slot]
        if self._second[slot] != second:
            self._second[slot] = second
            self._calls[slot] = self._errors[slot] = 0
            histogram = self._histograms[slot] = [0] * BINS
        self._calls[slot] += 1
        if failed:
            self._errors[slot] += 1
        histogram[_bin(duration_s * 1000.0)] += 1  # type: ignore[index]

    def points(self, now: float, window: int, step: int) -> list[dict[str, Any]]:
        """One point per ``step`` seconds over the last ``window`` seconds (oldest first):
        calls, calls per second, errors, p50 and p99 in ms (None without calls)."""
        end = int(now)
        first = end - window + 1
        first -= first % step  # points start at multiples of step: stable while polling
        out = []
        for start in range(first, end + 1, step):
            calls = errors = 0
            merged: list[int] = []
            for second in range(start, min(start + step, end + 1)):
                slot = second % SECONDS
                histogram = self._histograms[slot]
                if self._second[slot] != second or end - second >= SECONDS or histogram is None:
                    continue
                calls += self._calls[slot]
                errors += self._errors[slot]
                merged = [a + b for a, b in zip(merged, histogram)] if merged else histogram
            out.append({
                "t": start, "calls": calls, "rate": round(calls / step, 3), "errors": errors,
                "p50_ms": _quantile(merged, calls, 0.5), "p99_ms": _quantile(merged, calls, 0.99),
            })
        return out


class Series:
    """Every route's RouteSeries, created on a route's first call and dropped with the route."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], RouteSeries] = {}

    def add(self, app: str, route: str, at: float, duration_s: float, failed: bool) -> None:
        series = self.routes.get((app, route))
        if series is None:
            series = self.routes[(app, route)] = RouteSeries()
        series.add(at, duration_s, failed)

    def route_removed(self, app: str, route: str | None = None) -> None:
        for key in [k for k in self.routes if k[0] == app and (route is None or k[1] == route)]:
            del self.routes[key]

    def snapshot(self, now: float, window: int, step: int, app: str | None = None,
                 route: str | None = None,
                 visible: Callable[[str], bool] = lambda app: True) -> dict[str, list[dict[str, Any]]]:
        """``visible``: whether the asker may see an app's routes."""
        return {f"{a}{p}": series.points(now, window, step)
                for (a, p), series in sorted(self.routes.items())
                if (app is None or a == app) and (route is None or p == route) and visible(a)}
