"""Prometheus metrics, with prometheus_client: the only module that imports it.

Each server has its own CollectorRegistry (never the library's global one), so several
servers in one process (the tests) keep apart. Two kinds of figures:

- Counted on the way (calls, latencies, container starts and ends): label children are bound
  once per route and kept in a RouteMetrics, so a call costs a dict lookup and a few
  increments. The labels are app, route (its path pattern, never the request path), mode,
  status class, cause: bounded by apps x routes. A deleted route's series are removed.
- Read at scrape time (containers per route and state, capacity, connections, the record
  writer's lag, the async queue): a collector asks the live objects, so nothing is kept up to
  date on the hot path. The async queue is asked of the store by the /metrics handler just
  before it renders (one grouped query; see Store.queue_stats).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from typing import Callable, Iterable

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               disable_created_metrics, generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import __version__
from .pool import DEATHS, HotWorker, PoolManager

# Seconds. Calls: from a hot call's fraction of a millisecond to a long timeout.
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0, 30.0, 60.0, 300.0)
WAIT_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0)
START_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}

ROUTE = ("app", "route")


class RouteMetrics:
    """One route's label children, bound on first use and remembered so that they can all be
    removed with the route."""

    __slots__ = ("metrics", "labels", "_calls", "_durations", "_waits", "_bound")

    def __init__(self, metrics: "Metrics", app: str, route: str) -> None:
        self.metrics = metrics
        self.labels = (app, route)
        self._calls: dict[tuple[str, int], Callable[[], None]] = {}
        self._durations: dict[str, Callable[[float], None]] = {}
        self._waits: dict[str, Callable[[float], None]] = {}
        self._bound: set[tuple[object, tuple[str, ...]]] = set()  # (family, label values)

    def _child(self, family, *extra: str):
        values = self.labels + extra
        self._bound.add((family, values))
        return family.labels(*values)

    def call(self, mode: str, status: int, duration: float | None, queue_wait: float | None) -> None:
        key = (mode, status // 100)
        inc = self._calls.get(key)
        if inc is None:
            inc = self._calls[key] = self._child(self.metrics.calls, mode,
                                                 STATUS_CLASSES.get(key[1], "other")).inc
        inc()
        if duration is not None:
            observe = self._durations.get(mode)
            if observe is None:
                observe = self._durations[mode] = self._child(self.metrics.duration, mode).observe
            observe(duration)
        if queue_wait is not None:
            observe = self._waits.get(mode)
            if observe is None:
                observe = self._waits[mode] = self._child(self.metrics.queue_wait, mode).observe
            observe(queue_wait)

    def container_starting(self) -> None:
        self._child(self.metrics.container_starts).inc()

    def container_ready(self, seconds: float) -> None:
        self._child(self.metrics.container_start_seconds).observe(seconds)

    def container_ended(self, cause: str) -> None:
        if cause in DEATHS:
            self._child(self.metrics.container_deaths, cause).inc()
        else:
            self._child(self.metrics.container_stops, cause).inc()

    def cold_run(self, seconds: float) -> None:
        self._child(self.metrics.cold_run).observe(seconds)

    def remove(self) -> None:
        for family, values in self._bound:
            try:
                family.remove(*values)
            except KeyError:
                pass
        self._bound.clear()
        self._calls.clear()
        self._durations.clear()
        self._waits.clear()


class Metrics:
    def __init__(self, node_id: str, version: str | None = None) -> None:
        # No *_created series beside each counter and histogram: they double the output and
        # say only when a series was first seen. (A switch of the library, not of a registry.)
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.calls = Counter("hotfn_calls", "Calls run, by app, route, mode (hot, cold, async: "
                             "each run of an async call) and status class of the answer",
                             ROUTE + ("mode", "status"), registry=r)
        self.duration = Histogram("hotfn_call_duration_seconds", "Calls from their start to "
                                  "their answer (waiting for a container included)",
                                  ROUTE + ("mode",), buckets=CALL_BUCKETS, registry=r)
        self.queue_wait = Histogram("hotfn_call_queue_wait_seconds", "Time a call waited for a "
                                    "warm container (hot) or for room (cold); async: also its "
                                    "time in the queue before its first run",
                                    ROUTE + ("mode",), buckets=WAIT_BUCKETS, registry=r)
        self.container_start_seconds = Histogram(
            "hotfn_container_start_seconds", "Hot containers: from the start of their creation "
            "to their ready frame", ROUTE, buckets=START_BUCKETS, registry=r)
        self.cold_run = Histogram("hotfn_cold_run_seconds", "Cold calls: from their container's "
                                  "start to its end", ROUTE, buckets=CALL_BUCKETS, registry=r)
        self.container_starts = Counter("hotfn_container_starts", "Containers started (hot and "
                                        "cold)", ROUTE, registry=r)
        self.container_deaths = Counter(
            "hotfn_container_deaths", "Containers that failed: crash, oom, killed (a signal), "
            "timeout, protocol_error, start_failed, cancelled (its call was abandoned)",
            ROUTE + ("cause",), registry=r)
        self.container_stops = Counter(
            "hotfn_container_stops", "Healthy containers ended: idle, retired (route changed), "
            "evicted (room for another route), shutdown, exited (by itself when done: a cold "
            "one with status 0, an http-format one after Connection: close)",
            ROUTE + ("reason",), registry=r)
        self._routes: dict[tuple[str, str], RouteMetrics] = {}
        self._live = _LiveCollector(node_id, version)
        r.register(self._live)

    def route(self, app: str, route: str) -> RouteMetrics:
        metrics = self._routes.get((app, route))
        if metrics is None:
            metrics = self._routes[(app, route)] = RouteMetrics(self, app, route)
        return metrics

    def route_removed(self, app: str, route: str | None = None) -> None:
        for key in [k for k in self._routes if k[0] == app and (route is None or k[1] == route)]:
            self._routes.pop(key).remove()

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
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _LiveCollector(Collector):
    def __init__(self, node_id: str, version: str | None) -> None:
        self.node_id = node_id
        self.version = version
        self.started = time.time()
        self.pools: PoolManager | None = None
        self.record_lag: Callable[[], tuple[int, float]] | None = None
        self.connections: Callable[[], int] | None = None
        self.async_running: Callable[[], int] | None = None
        self.queue: list[tuple[str, str, int, float]] = []

    def collect(self):
        info = GaugeMetricFamily("hotfn_info", "This server: version and node id",
                                 labels=("version", "node"))
        if self.version is None:
            self.version = __version__
        info.add_metric((self.version, self.node_id), 1)
        yield info
        yield GaugeMetricFamily("hotfn_start_time_seconds", "When this server started (Unix time)",
                                value=self.started)
        if self.pools is not None:
            yield from self._pools(self.pools)
        if self.connections is not None:
            yield GaugeMetricFamily("hotfn_http_connections", "Open client connections",
                                    value=self.connections())
        if self.record_lag is not None:
            buffered, lag = self.record_lag()
            yield GaugeMetricFamily("hotfn_call_records_buffered", "Call records not yet written "
                                    "to the store", value=buffered)
            yield GaugeMetricFamily("hotfn_call_records_lag_seconds", "Age of the oldest call "
                                    "record not yet written to the store (0: none waiting)",
                                    value=lag)
        if self.async_running is not None:
            yield GaugeMetricFamily("hotfn_async_running", "Async calls this node is running",
                                    value=self.async_running())
        depth = GaugeMetricFamily("hotfn_async_queue_depth", "Async calls queued or running, by "
                                  "route (all nodes sharing the store)", labels=ROUTE)
        age = GaugeMetricFamily("hotfn_async_queue_oldest_age_seconds", "Age of the oldest "
                                "async call queued or running, by route", labels=ROUTE)
        for app, route, n, oldest in self.queue:
            depth.add_metric((app, route), n)
            age.add_metric((app, route), oldest)
        yield depth
        yield age

    @staticmethod
    def _pools(pools: PoolManager):
        containers = GaugeMetricFamily("hotfn_containers", "Warm containers of hot routes on this "
                                       "node, by state: idle, busy, starting",
                                       labels=ROUTE + ("state",))
        waiting = GaugeMetricFamily("hotfn_route_waiting", "Calls waiting for a warm container",
                                    labels=ROUTE)
        for (app, route), pool in list(pools.pools.items()):
            states = Tally(w.state for w in pool.workers)
            for state in (HotWorker.IDLE, HotWorker.BUSY, HotWorker.STARTING):
                containers.add_metric((app, route, state), states[state])
            waiting.add_metric((app, route), pool.stats()["waiting"])
        yield containers
        yield waiting
        c = pools.capacity
        yield GaugeMetricFamily("hotfn_capacity_containers", "Containers counted against "
                                "--max-containers (hot and cold)", value=c.containers)
        yield GaugeMetricFamily("hotfn_capacity_containers_limit", "--max-containers",
                                value=c.max_containers)
        yield GaugeMetricFamily("hotfn_capacity_memory_bytes", "Memory limits of running "
                                "containers, summed", value=c.memory_mb * 1024 * 1024)
        yield GaugeMetricFamily("hotfn_capacity_memory_limit_bytes", "--max-memory-mb",
                                value=c.max_memory_mb * 1024 * 1024)
        yield GaugeMetricFamily("hotfn_capacity_waiting", "Container starts waiting for room",
                                value=len(c.waiting))
