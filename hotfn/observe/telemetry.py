"""What a server tells about its calls and containers, in one place: Prometheus metrics
(metrics), the access log (accesslog) and the per-route time series the dashboard charts
(timeseries).

The API and the dispatcher report each finished run with ``call_done``; the pools and cold
calls report containers through the PoolEvents methods. Each of the three can be off
(``--no-metrics``, ``--no-access-log``); what is off costs one attribute test per call.
"""

from __future__ import annotations

from ..invoke import Outcome
from ..models import Call, Route
from ..pool import PoolEvents
from . import tracecontext
from .accesslog import AccessLog
from .metrics import Metrics
from .timeseries import Series

_MAX_LOGGED_ERROR = 200


class Telemetry(PoolEvents):
    def __init__(self, metrics: Metrics | None = None, access_log: AccessLog | None = None) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.series = Series()
        # Routes that exist now: a container of a deleted route that ends later, or an async
        # call of one, must not bring its series back.
        self._live: set[tuple[str, str]] = set()

    def routes_changed(self, live: set[tuple[str, str]]) -> None:
        """The (app, route) pairs that exist now; the series of the others go."""
        for app, route in self._live - live:
            self.series.route_removed(app, route)
            if self.metrics is not None:
                self.metrics.route_removed(app, route)
        self._live = live

    def _route(self, app: str, route: str):
        if self.metrics is None or (app, route) not in self._live:
            return None
        return self.metrics.route(app, route)

    def call_done(self, call: Call, outcome: Outcome, method: str, mode: str) -> None:
        """One run of ``call`` ended (its record says when); ``mode``: hot, cold or async."""
        status = outcome.status
        started, completed = call.started_at, call.completed_at
        duration = completed - started if started is not None and completed is not None else None
        if completed is not None and duration is not None and (call.app, call.route) in self._live:
            self.series.add(call.app, call.route, completed, duration, status >= 500)
        route = self._route(call.app, call.route)
        if route is not None:
            queue_wait = outcome.queue_wait
            if mode == "async" and call.attempts <= 1 and started is not None:
                # Its first run: the time it spent in the store's queue counts too.
                queue_wait = (queue_wait or 0.0) + max(0.0, started - call.created_at)
            route.call(mode, status, duration, queue_wait)
            if outcome.cold_run is not None:
                route.cold_run(outcome.cold_run)
        if self.access_log is not None:
            error = outcome.error
            self.access_log.write(
                at=completed or call.created_at, method=method, app=call.app, route=call.route,
                status=status, duration_ms=round(duration * 1000, 3) if duration is not None else None,
                mode=mode, call_id=call.id, container=outcome.container_id,
                trace_id=tracecontext.trace_id(call.traceparent),
                error=error[:_MAX_LOGGED_ERROR] if error else None)

    # -- PoolEvents --

    def container_starting(self, route: Route) -> None:
        metrics = self._route(route.app, route.path)
        if metrics is not None:
            metrics.container_starting()

    def container_ready(self, route: Route, seconds: float) -> None:
        metrics = self._route(route.app, route.path)
        if metrics is not None:
            metrics.container_ready(seconds)

    def container_ended(self, route: Route, cause: str) -> None:
        metrics = self._route(route.app, route.path)
        if metrics is not None:
            metrics.container_ended(cause)
