"""Repeated log lines said once, then counted: a flood (an engine away, a store down) costs a
few lines, not megabytes.

A line is "like" another when it comes from the same place in the code with the same message
template (``log.warning("could not remove container %s: %s", ...)`` is one kind, whatever the
container). The first of a kind is written; more of that kind within ``window`` seconds are
only counted; the first one after the window is written with the count of those held back:

    could not remove container 3f2a9c1b7d0e: ... (and 5,895 more like it in 20 s)

RepeatFilter is a logging.Filter for the handlers (``install``), so it needs nothing of the
code that logs, and a formatter set later (``--log-format json``) still applies.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

WINDOW = 10.0  # seconds during which more lines of a kind are only counted

_Kind = tuple[str, int, str, int, str]


class _Seen:
    __slots__ = ("said_at", "held")

    def __init__(self, said_at: float) -> None:
        self.said_at = said_at
        self.held = 0


class RepeatFilter(logging.Filter):
    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic,
                 max_kinds: int = 4096) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self.max_kinds = max_kinds
        self._seen: dict[_Kind, _Seen] = {}
        self._lock = threading.Lock()  # handlers filter before they take their own lock

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, record.pathname, record.lineno, str(record.msg))
        now = self.clock()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is not None and now - seen.said_at < self.window:
                seen.held += 1
                return False
            if seen is not None and seen.held:
                record.msg = f"{record.msg} (and {seen.held:,} more like it in {_seconds(now - seen.said_at)})"
            if seen is None and len(self._seen) >= self.max_kinds:
                self._forget_old(now)
            self._seen[kind] = _Seen(now)
        return True

    def _forget_old(self, now: float) -> None:
        """Make room: kinds not said within the window have nothing held back worth keeping
        beyond one more line's count; drop those first, else the oldest."""
        quiet = [k for k, s in self._seen.items() if now - s.said_at >= self.window]
        for kind in quiet or sorted(self._seen, key=lambda k: self._seen[k].said_at)[:len(self._seen) // 2]:
            del self._seen[kind]


def _seconds(span: float) -> str:
    return f"{span:.0f} s" if span >= 10 else f"{span:.1f} s"


def install(window: float = WINDOW, logger: logging.Logger | None = None) -> RepeatFilter:
    """Put one RepeatFilter on every handler of ``logger`` (the root logger by default)."""
    logger = logger or logging.getLogger()
    repeat = RepeatFilter(window)
    for handler in logger.handlers:
        handler.addFilter(repeat)
    return repeat
