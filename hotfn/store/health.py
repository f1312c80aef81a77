"""What is known of the store's health without asking it: ``StoreHealth``, kept by a background
probe (``Store.watch``) and by the failures of real requests.

It is also a circuit: once the store is known to be unreachable (a database server that does
not answer), requests fail at once with ``StoreUnreachable`` instead of each waiting out a
connection timeout, and the probe alone knocks until the store answers again. A store that
answers but fails (a full disk) keeps its circuit closed: what it can still do (read) it does.
"""

from __future__ import annotations

import logging
import time

from .base import StoreUnreachable

log = logging.getLogger("hotfn.store")

OK = "ok"
FAILING = "failing"  # it answers, but could not do what the probe asked (a full disk)
UNREACHABLE = "unreachable"  # it does not answer: requests fail fast until it does


class StoreHealth:
    def __init__(self, where: str) -> None:
        self.where = where
        self.state = OK
        self.since = time.time()  # when the state last changed
        self.problem: str | None = None  # why it is not ok

    @property
    def reachable(self) -> bool:
        return self.state != UNREACHABLE

    def refuse_if_unreachable(self) -> None:
        """Fail fast while the store is known not to answer."""
        if self.state == UNREACHABLE:
            raise StoreUnreachable(
                f"the store ({self.where}) has not answered for {time.time() - self.since:.0f} s "
                f"({self.problem}); hotfn retries it in the background")

    def ok(self) -> None:
        self._set(OK, None)

    def failing(self, problem: str) -> None:
        self._set(FAILING, problem)

    def unreachable(self, problem: str) -> None:
        self._set(UNREACHABLE, problem)

    def _set(self, state: str, problem: str | None) -> None:
        if state != self.state:
            # Said once a change: the loops that meet a store that does not answer stay quiet.
            if state == UNREACHABLE:
                log.error("the store (%s) does not answer: %s; requests that need it fail at "
                          "once until it does (probed in the background)", self.where, problem)
            elif self.state == UNREACHABLE:
                log.warning("the store (%s) answers again, after %.1f s", self.where,
                            time.time() - self.since)
            self.since = time.time()
        self.state, self.problem = state, problem

    def to_json(self) -> dict:
        return {"state": self.state, "since": self.since, "problem": self.problem}
