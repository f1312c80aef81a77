"""The Prometheus text exposition format, version 0.0.4: what GET /metrics answers. Pure: no
I/O, no registry, no locks.

A scrape is written family by family: ``# HELP`` and ``# TYPE`` lines, then its samples, one a
line (``name{label="value",...} value``). Labels are written sorted by name, and values the way
prometheus_client wrote them (``1.0``, ``+Inf``, ``4.02653184e+08``), so a scrape reads the same
as before this module replaced it. A family is written even when it has no samples.

Histograms keep one count per bucket (``observe`` adds 1 to one of them and the value to the sum:
what the hot path pays) and are made cumulative only when written: ``_bucket{le=...}`` up to
``+Inf``, then ``_count`` and ``_sum``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Iterable[tuple[str, str]]


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    # HELP text is not quoted: a double quote stays as it is.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """As Go (and so prometheus_client) writes a float: ``+Inf``, ``NaN``, ``3.0``, ``0.25``, and
    an exponent from 1e7 on (``1.5e+07``) where Python's repr would still write digits."""
    value = float(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


class Histogram:
    """One histogram series: a count per bucket (not cumulative) and the sum of the values.

    ``bounds`` are the buckets' upper bounds, ascending; a value equal to a bound falls in that
    bucket (``le``: less or equal), one above the last in the implicit ``+Inf`` bucket."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class Exposition:
    """A scrape's text, written in order: ``family()`` then that family's samples."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def family(self, name: str, kind: str, help: str) -> None:
        """``kind``: counter, gauge or histogram. A counter's ``name`` ends in ``_total``."""
        self._parts.append(f"# HELP {name} {escape_help(help)}\n# TYPE {name} {kind}\n")

    def sample(self, name: str, labels: Labels, value: float) -> None:
        self._parts.append(f"{name}{_labels(labels)} {format_value(value)}\n")

    def histogram(self, name: str, labels: Labels, histogram: Histogram) -> None:
        labels = tuple(labels)
        cumulative = 0
        for bound, count in zip(histogram.bounds + (math.inf,), histogram.counts):
            cumulative += count
            self.sample(f"{name}_bucket", labels + (("le", format_value(bound)),), cumulative)
        self.sample(f"{name}_count", labels, cumulative)
        self.sample(f"{name}_sum", labels, histogram.sum)

    def text(self) -> bytes:
        return "".join(self._parts).encode()


def _labels(labels: Labels) -> str:
    pairs = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sorted(labels))
    return f"{{{pairs}}}" if pairs else ""
