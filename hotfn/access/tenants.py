"""Tenants' shares of a node: each app's call rate (a token bucket per app, in this node's
memory). The app's container and memory caps are kept by the pool's Capacity.

The bucket refills continuously at ``rate_limit`` calls per second up to ``burst``; a call
takes one token or is refused with how long until one is there (429 with Retry-After).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..models import App


@dataclass
class _Bucket:
    rate: float
    size: float
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, app: App) -> float | None:
        """Take one call from ``app``'s bucket: None if it may go on, else the seconds until
        it could."""
        rate = app.rate_limit
        if rate is None:
            return None
        size = app.bucket_size
        now = self._clock()
        bucket = self._buckets.get(app.name)
        if bucket is None:
            bucket = self._buckets[app.name] = _Bucket(rate, size, size, now)
        elif bucket.rate != rate or bucket.size != size:
            # The app's limits changed: the new ones apply at once, the tokens it has stay.
            bucket.rate, bucket.size = rate, size
            bucket.tokens = min(bucket.tokens, size)
        bucket.tokens = min(bucket.size, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / rate

    def forget_others(self, apps: set[str]) -> None:
        """Drop the buckets of apps no longer there (or no longer limited)."""
        for name in list(self._buckets):
            if name not in apps:
                del self._buckets[name]
