"""Prometheus metrics: what a server counts, and the scrape that GET /metrics answers (written
by promtext).

Two kinds of figures:

- Counted on the way (calls, latencies, container starts and ends): each route has a
  RouteMetrics holding its counts and histograms, so a call costs a few dict lookups and
  additions: plain arithmetic, no lock (everything that counts runs on the server's one trio
  thread; the Docker SDK's worker threads never report here). The labels are app, route (its
  path pattern, never the request path), mode, status class, cause: bounded by apps x routes,
  and a RouteMetrics by modes x status classes and the fixed causes. A deleted route's
  RouteMetrics is dropped, and its series with it. An app's routes past ``max_routes_per_app``
  (--max-metric-routes) share one RouteMetrics, route="(other)": a tenant who makes routes
  cannot grow the scrape without bound (each route's series take about 5 KB of it).
- Read at scrape time (containers per route and state, capacity, connections, the record
  writer's lag, the async queue): asked of the live objects as the scrape is written, so
  nothing is kept up to date on the hot path. The async queue is asked of the store by the
  /metrics handler just before it renders (one grouped query; see Store.queue_stats).

Each server has its own Metrics, so several servers in one process (the tests) keep apart.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from typing import Callable, Iterable

from .. import __version__
from ..pool import DEATHS, HotWorker, PoolManager
from .promtext import CONTENT_TYPE, Exposition, Histogram

# Seconds. Calls: from a hot call's fraction of a millisecond to a long timeout.
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0, 30.0, 60.0, 300.0)
WAIT_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0)
START_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}
# The route label of an app's routes past its share of series (no route path has parentheses
# at its start: every one begins with "/").
OVERFLOW_ROUTE = "(other)"

# (name, type, help) of the counted families, in the order a scrape lists them.
CALLS = ("hotfn_calls_total", "counter", "Calls run, by app, route, mode (hot, cold, async: each "
         "run of an async call) and status class of the answer")
DURATION = ("hotfn_call_duration_seconds", "histogram", "Calls from their start to their answer "
            "(waiting for a container included)")
QUEUE_WAIT = ("hotfn_call_queue_wait_seconds", "histogram", "Time a call waited for a warm "
              "container (hot) or for room (cold); async: also its time in the queue before its "
              "first run")
START_SECONDS = ("hotfn_container_start_seconds", "histogram", "Hot containers: from the start of "
                 "their creation to their ready frame")
COLD_RUN = ("hotfn_cold_run_seconds", "histogram", "Cold calls: from their container's start to "
            "its end")
STARTS = ("hotfn_container_starts_total", "counter", "Containers started (hot and cold)")
DEATHS_FAMILY = ("hotfn_container_deaths_total", "counter", "Containers that failed: crash, oom, "
                 "killed (a signal), timeout, protocol_error, start_failed, cancelled (its call "
                 "was abandoned)")
STOPS = ("hotfn_container_stops_total", "counter", "Healthy containers ended: idle, retired "
         "(route changed), evicted (room for another route), shutdown, exited (by itself when "
         "done: a cold one with status 0, an http-format one after Connection: close)")


class RouteMetrics:
    """One route's counts and histograms. A series appears once it has counted something."""

    __slots__ = ("labels", "calls", "durations", "queue_waits", "starts", "start_seconds",
                 "cold_runs", "deaths", "stops")

    def __init__(self, app: str, route: str) -> None:
        self.labels = (("app", app), ("route", route))
        self.calls: dict[tuple[str, str], int] = {}  # (mode, status class) -> calls
        self.durations: dict[str, Histogram] = {}  # by mode
        self.queue_waits: dict[str, Histogram] = {}  # by mode
        self.starts = 0
        self.start_seconds: Histogram | None = None
        self.cold_runs: Histogram | None = None
        self.deaths: dict[str, int] = {}  # by cause
        self.stops: dict[str, int] = {}  # by reason

    def call(self, mode: str, status: int, duration: float | None, queue_wait: float | None) -> None:
        key = (mode, STATUS_CLASSES.get(status // 100, "other"))
        calls = self.calls
        calls[key] = calls.get(key, 0) + 1
        if duration is not None:
            histogram = self.durations.get(mode)
            if histogram is None:
                histogram = self.durations[mode] = Histogram(CALL_BUCKETS)
            histogram.observe(duration)
        if queue_wait is not None:
            histogram = self.queue_waits.get(mode)
            if histogram is None:
                histogram = self.queue_waits[mode] = Histogram(WAIT_BUCKETS)
            histogram.observe(queue_wait)

    def container_starting(self) -> None:
        self.starts += 1

    def container_ready(self, seconds: float) -> None:
        if self.start_seconds is None:
            self.start_seconds = Histogram(START_BUCKETS)
        self.start_seconds.observe(seconds)

    def container_ended(self, cause: str) -> None:
        counts = self.deaths if cause in DEATHS else self.stops
        counts[cause] = counts.get(cause, 0) + 1

    def cold_run(self, seconds: float) -> None:
        if self.cold_runs is None:
            self.cold_runs = Histogram(CALL_BUCKETS)
        self.cold_runs.observe(seconds)


class Metrics:
    def __init__(self, node_id: str, version: str | None = None,
                 max_routes_per_app: int | None = None) -> None:
        self._routes: dict[tuple[str, str], RouteMetrics] = {}
        self._live = _Live(node_id, version)
        self.max_routes_per_app = max_routes_per_app
        self._own_series: Tally[str] = Tally()  # routes with a RouteMetrics of their own, by app

    def route(self, app: str, route: str) -> RouteMetrics:
        metrics = self._routes.get((app, route))
        if metrics is None:
            limit = self.max_routes_per_app
            if limit is not None and self._own_series[app] >= limit:
                key = (app, OVERFLOW_ROUTE)
                metrics = self._routes.get(key)
                if metrics is None:
                    metrics = self._routes[key] = RouteMetrics(app, OVERFLOW_ROUTE)
                return metrics
            metrics = self._routes[(app, route)] = RouteMetrics(app, route)
            self._own_series[app] += 1
        return metrics

    def route_removed(self, app: str, route: str | None = None) -> None:
        """Drop a route's series (``route`` None: all of the app's). The overflow's go with the
        app's last route of its own: its other routes then get series of their own again."""
        for key in [k for k in self._routes if k[0] == app and (route is None or k[1] == route)]:
            del self._routes[key]
            if key[1] != OVERFLOW_ROUTE:
                self._own_series[app] -= 1
        if self._own_series[app] <= 0:
            self._own_series.pop(app, None)
            self._routes.pop((app, OVERFLOW_ROUTE), None)

    def watch(self, *, pools: PoolManager | None = None,
              record_lag: Callable[[], tuple[int, float]] | None = None,
              connections: Callable[[], int] | None = None,
              async_running: Callable[[], int] | None = None) -> None:
        """What the scrape-time figures are read from; any of them may come later."""
        live = self._live
        live.pools = pools or live.pools
        live.record_lag = record_lag or live.record_lag
        live.connections = connections or live.connections
        live.async_running = async_running or live.async_running

    def set_queue(self, rows: Iterable[tuple[str, str, int, float]], now: float) -> None:
        """The async queue as the store said just now: (app, route, depth, oldest created_at)."""
        self._live.queue = [(app, route, depth, max(0.0, now - oldest))
                            for app, route, depth, oldest in rows]

    def render(self) -> tuple[bytes, str]:
        out = Exposition()
        routes = list(self._routes.values())
        out.family(*CALLS)
        for r in routes:
            for (mode, status), n in r.calls.items():
                out.sample(CALLS[0], r.labels + (("mode", mode), ("status", status)), n)
        for family, by_mode in ((DURATION, "durations"), (QUEUE_WAIT, "queue_waits")):
            out.family(*family)
            for r in routes:
                for mode, histogram in getattr(r, by_mode).items():
                    out.histogram(family[0], r.labels + (("mode", mode),), histogram)
        for family, attribute in ((START_SECONDS, "start_seconds"), (COLD_RUN, "cold_runs")):
            out.family(*family)
            for r in routes:
                histogram = getattr(r, attribute)
                if histogram is not None:
                    out.histogram(family[0], r.labels, histogram)
        out.family(*STARTS)
        for r in routes:
            if r.starts:
                out.sample(STARTS[0], r.labels, r.starts)
        for family, label, by_cause in ((DEATHS_FAMILY, "cause", "deaths"), (STOPS, "reason", "stops")):
            out.family(*family)
            for r in routes:
                for cause, n in getattr(r, by_cause).items():
                    out.sample(family[0], r.labels + ((label, cause),), n)
        self._live.write(out)
        return out.text(), CONTENT_TYPE


class _Live:
    """The figures read at scrape time, from the objects ``Metrics.watch`` was given."""

    def __init__(self, node_id: str, version: str | None) -> None:
        self.node_id = node_id
        self.version = version or __version__
        self.started = time.time()
        self.pools: PoolManager | None = None
        self.record_lag: Callable[[], tuple[int, float]] | None = None
        self.connections: Callable[[], int] | None = None
        self.async_running: Callable[[], int] | None = None
        self.queue: list[tuple[str, str, int, float]] = []

    def write(self, out: Exposition) -> None:
        _gauge(out, "hotfn_info", "This server: version and node id",
               [((("version", self.version), ("node", self.node_id)), 1)])
        _gauge(out, "hotfn_start_time_seconds", "When this server started (Unix time)", self.started)
        if self.pools is not None:
            self._pools(out, self.pools)
        if self.connections is not None:
            _gauge(out, "hotfn_http_connections", "Open client connections", self.connections())
        if self.record_lag is not None:
            buffered, lag = self.record_lag()
            _gauge(out, "hotfn_call_records_buffered", "Call records not yet written to the "
                   "store", buffered)
            _gauge(out, "hotfn_call_records_lag_seconds", "Age of the oldest call record not yet "
                   "written to the store (0: none waiting)", lag)
        if self.async_running is not None:
            _gauge(out, "hotfn_async_running", "Async calls this node is running",
                   self.async_running())
        _gauge(out, "hotfn_async_queue_depth", "Async calls queued or running, by route (all "
               "nodes sharing the store)",
               [((("app", app), ("route", route)), n) for app, route, n, _ in self.queue])
        _gauge(out, "hotfn_async_queue_oldest_age_seconds", "Age of the oldest async call "
               "queued or running, by route",
               [((("app", app), ("route", route)), age) for app, route, _, age in self.queue])

    @staticmethod
    def _pools(out: Exposition, pools: PoolManager) -> None:
        containers, waiting = [], []
        for (app, route), pool in list(pools.pools.items()):
            labels = (("app", app), ("route", route))
            states = Tally(w.state for w in pool.workers)
            for state in (HotWorker.IDLE, HotWorker.BUSY, HotWorker.STARTING):
                containers.append((labels + (("state", state),), states[state]))
            waiting.append((labels, pool.stats()["waiting"]))
        _gauge(out, "hotfn_containers", "Warm containers of hot routes on this node, by state: "
               "idle, busy, starting", containers)
        _gauge(out, "hotfn_route_waiting", "Calls waiting for a warm container", waiting)
        c = pools.capacity
        _gauge(out, "hotfn_capacity_containers", "Containers counted against --max-containers "
               "(hot and cold)", c.containers)
        _gauge(out, "hotfn_capacity_containers_limit", "--max-containers", c.max_containers)
        _gauge(out, "hotfn_capacity_memory_bytes", "Memory limits of running containers, summed",
               c.memory_mb * 1024 * 1024)
        _gauge(out, "hotfn_capacity_memory_limit_bytes", "--max-memory-mb",
               c.max_memory_mb * 1024 * 1024)
        _gauge(out, "hotfn_capacity_waiting", "Container starts waiting for room", len(c.waiting))


def _gauge(out: Exposition, name: str, help: str,
           value: float | list[tuple[tuple[tuple[str, str], ...], float]]) -> None:
    """A gauge family: one unlabelled value, or (labels, value) pairs."""
    out.family(name, "gauge", help)
    if isinstance(value, list):
        for labels, v in value:
            out.sample(name, labels, v)
    else:
        out.sample(name, (), value)
