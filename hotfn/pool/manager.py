"""Every route's pool on this server: the manager owns the pools, the server-wide capacity, the
call deadlines and the tasks of every warm container.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping

import trio

from .. import protocol
from ..drivers import ContainerSpec, Driver, DriverError
from ..models import Route
from .capacity import Capacity
from .deadlines import CallDeadlines
from .errors import PoolClosed
from .events import EVICTED, IDLE, SHUTDOWN, PoolEvents
from .routepool import RoutePool
from .worker import HotWorker

log = logging.getLogger("hotfn.pool")  # named as before the move: operators filter on it

class PoolManager:
    """Owns every route's pool, the server-wide capacity, and the tasks of every warm container."""

    def __init__(
        self,
        driver: Driver,
        nursery: trio.Nursery,
        *,
        spec_for: Callable[[Route], ContainerSpec],
        max_containers: int = 64,
        max_memory_mb: int = 8192,
        max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE,
        events: PoolEvents | None = None,
    ) -> None:
        self.driver = driver
        self.events = events or PoolEvents()
        self.nursery = nursery
        self.spec_for = spec_for
        self.capacity = Capacity(max_containers, max_memory_mb)
        self.max_frame_size = max_frame_size
        self.pools: dict[tuple[str, str], RoutePool] = {}
        self._retired: set[RoutePool] = set()
        self.closed = False
        self.deadlines = CallDeadlines()
        nursery.start_soon(self.deadlines.run)

    def pool_for(self, route: Route) -> RoutePool:
        key = (route.app, route.path)
        pool = self.pools.get(key)
        # Identity first: the route table hands out the same Route object until it changes, so
        # the common case skips computing revisions on every request.
        if pool is not None and (pool.route is route or pool.route.revision() == route.revision()):
            if route.updated_at >= pool.route.updated_at:
                pool.route = route  # timeouts and limits apply at once; they need no new container
            return pool
        if pool is not None and pool.route.updated_at > route.updated_at:
            # A call that waited across an update still holds the old route: it runs on the new
            # revision's pool rather than bringing the old revision back (which would retire the
            # new pool and start its containers again).
            return pool
        if self.closed:
            raise PoolClosed("server is shutting down")
        if pool is not None:
            self._retire(pool)
        pool = self.pools[key] = RoutePool(self, route, self.spec_for(route))
        return pool

    def route_changed(self, route: Route) -> None:
        """A route was created or updated: swap its pool if needed and keep min_warm."""
        pool = self.pool_for(route)
        pool._maybe_start()

    def route_removed(self, app: str, path: str | None = None) -> None:
        for key in [k for k in self.pools if k[0] == app and (path is None or k[1] == path)]:
            self._retire(self.pools.pop(key))

    def _retire(self, pool: RoutePool) -> None:
        pool.retire()
        if pool.workers:
            self._retired.add(pool)

    def set_app_limits(self, limits: dict[str, tuple[int | None, int | None]]) -> None:
        """Each app's (max_containers, max_memory_mb) on this node; None: no limit of its own."""
        self.capacity.set_app_limits(limits)

    def _idle_workers(self, exclude: RoutePool | None = None) -> list[HotWorker]:
        # (Only those with no call in flight: one with room for more calls is not idle.)
        return sorted((w for p in self.pools.values() if p is not exclude for w in p.idle if w.load == 0),
                      key=lambda w: w.idle_since)

    def reserve(self, memory_mb: int, exclude: RoutePool | None = None, app: str | None = None) -> bool:
        """Take capacity for one container, stopping idle containers of other routes if needed
        (under an app's own cap, only that app's)."""
        capacity = self.capacity
        if capacity.fits(memory_mb, app):
            capacity.take(memory_mb, app)
            return True
        idle = self._idle_workers(exclude)
        chosen: list[HotWorker] = []
        for worker in idle:
            if capacity.app_fits(app, memory_mb, chosen):
                break
            if worker.pool.route.app == app:
                chosen.append(worker)
        if not capacity.app_fits(app, memory_mb, chosen):
            return False
        for worker in idle:
            if capacity.server_fits(memory_mb, chosen):
                break
            if worker not in chosen:
                chosen.append(worker)
        if not capacity.server_fits(memory_mb, chosen):
            return False
        for worker in chosen:
            worker.die("stopped to make room for another route", EVICTED)
        if not capacity.fits(memory_mb, app):
            return False  # what was freed went to someone who had waited longer
        capacity.take(memory_mb, app)
        return True

    def relieve(self) -> None:
        """Someone waits for room and a container just went idle: stop idle ones for them."""
        while self.capacity.waiting:
            idle = self._idle_workers()
            if not idle:
                return
            victim = None
            for waiter in list(self.capacity.waiting):
                if not self.capacity.app_fits(waiter.app, waiter.memory_mb):
                    # Held by its app's own cap: only that app's idle containers help it.
                    own = [w for w in idle if w.pool.route.app == waiter.app]
                    if own and self.capacity.app_fits(waiter.app, waiter.memory_mb, own):
                        victim = own[0]
                        break
                    continue
                if self.capacity.server_fits(waiter.memory_mb, idle):
                    victim = idle[0]
                break  # the head of the server's FIFO
            if victim is None:
                return
            victim.die("stopped to make room for another route", EVICTED)

    def worker_gone(self, pool: RoutePool, worker: HotWorker) -> None:
        if pool in self._retired and not pool.workers:
            self._retired.discard(pool)

    async def run_housekeeping(self, *, interval: float = 1.0, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Stop containers idle past their route's idle_timeout; restore min_warm."""
        task_status.started()
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            for pool in list(self.pools.values()):
                keep = pool.route.min_warm
                # The oldest idle containers go first; min_warm of them stay whatever their age.
                for worker in sorted((w for w in pool.idle if w.load == 0), key=lambda w: w.idle_since):
                    if len(pool.workers) <= keep:
                        break
                    if now - worker.idle_since >= pool.route.idle_timeout:
                        worker.die(f"idle for {pool.route.idle_timeout:g} s", IDLE)
                pool._maybe_start()

    async def run_reconcile(self, labels: Mapping[str, str], *, check_every: float = 2.0,
                            every: float = 60.0, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Remove the containers carrying ``labels`` (this node's) that no pool or call owns:
        what an engine restart leaves standing (created, exited), once the engine answers
        again after it did not, and every ``every`` seconds besides."""
        task_status.started()
        engine_was_away = False
        last = trio.current_time()
        while True:
            await trio.sleep(check_every)
            if not await self.driver.ping():
                engine_was_away = True
                continue
            if not engine_was_away and trio.current_time() - last < every:
                continue
            try:
                removed = await self.driver.remove_strays(labels)
            except DriverError as exc:
                log.warning("could not look for containers left behind: %s", exc)
                continue
            engine_was_away = False
            last = trio.current_time()
            if removed:
                log.warning("removed %d container(s) of this node that nothing of ours owned "
                            "(left behind by the engine)", removed)

    async def close(self, grace: float = 10.0) -> None:
        """Retire every pool; calls in flight get ``grace`` seconds; then every container goes."""
        self.closed = True
        pools = list(self.pools.values()) + list(self._retired)
        self.pools.clear()
        for pool in pools:
            pool.retire()
        with trio.move_on_after(grace):
            while any(p.workers for p in pools):
                await trio.sleep(0.05)
        for pool in pools:
            for worker in list(pool.workers):
                worker.die("server shutting down", SHUTDOWN)
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            while any(p.workers for p in pools):
                await trio.sleep(0.05)
        self.deadlines.stop()  # no call is left to time

    def stats(self) -> dict[str, object]:
        return {
            "containers": self.capacity.containers,
            "memory_mb": self.capacity.memory_mb,
            "max_containers": self.capacity.max_containers,
            "max_memory_mb": self.capacity.max_memory_mb,
            "routes": {f"{a}{p}": pool.stats() for (a, p), pool in self.pools.items()},
            # Apps with a cap of their own or containers running: their use against their caps.
            "apps": {app: {"containers": used[0], "memory_mb": used[1],
                           "max_containers": self.capacity.app_limits.get(app, (None, None))[0],
                           "max_memory_mb": self.capacity.app_limits.get(app, (None, None))[1]}
                     for app in sorted(set(self.capacity.app_usage) | set(self.capacity.app_limits))
                     for used in [self.capacity.app_usage.get(app, (0, 0))]},
        }

