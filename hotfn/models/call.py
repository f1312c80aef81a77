"""Calls: the record of one invocation, sync or async, and its id (a ULID)."""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from typing import Any

CALL_STATUSES = ("queued", "running", "success", "error", "timeout")


@dataclass
class Call:
    id: str
    app: str
    route: str
    mode: str  # "hot" or "cold"
    type: str = "sync"
    status: str = "queued"
    http_status: int | None = None
    container_id: str | None = None
    error: str | None = None
    result: str | None = None  # async calls: the function's response body (as text, capped)
    created_at: float = 0.0
    started_at: float | None = None  # the latest attempt's start
    completed_at: float | None = None
    attempts: int = 0  # runs begun; async calls may run again after a failure or a crash
    node_id: str | None = None  # the node that ran it, or (async) claimed it last
    traceparent: str | None = None  # W3C trace context the function got (hotfn.observe.tracecontext)

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return round((self.completed_at - self.started_at) * 1000, 3)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["duration_ms"] = self.duration_ms
        return out


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of Crockford digits (10 bits), for new_call_id.
_DIGIT_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_PAIR_SHIFTS = range(120, -1, -10)


def new_call_id() -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 characters, sortable by time.

    The bits make ids unique, not secret (random, not secrets: no syscall per request).
    """
    return _ulid_text((int(time.time() * 1000) << 80) | random.getrandbits(80))


def _ulid_text(value: int) -> str:
    # Two digits (10 bits) a step: 13 steps, not 26 (~20 k instructions a call, not ~40 k).
    return "".join([_DIGIT_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])

