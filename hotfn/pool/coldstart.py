"""Cold containers started ahead of their calls ("parked"), so a cold call skips create and start.

A parked container is created from its route's spec, attached and started, and then waits in
/bin/sh for the call's environment (drivers/docker: DockerDriver.park). The function itself
starts only when a call releases the container, so every call still gets a fresh process in a
fresh container, as cold calls always did; what the call no longer waits for is the engine's
create and start (about half of a cold call here).

Rules:
- at most one parked container per cold route, at most ``max_parked`` in all;
- a route gets one when it is seen (a deploy) and after each cold call, for as long as it was
  seen or called within ``keep_for`` seconds; never while a cold call of it is running (the
  engine's work would compete with that call for CPU);
- only while the capacity (the server's and the app's) has room for one more container of the
  route, nobody waits for room, and the route's image is allowed (a parked container is not
  counted in the capacity: it is a shell blocked on a read, well under 1 MiB; the call that
  takes it reserves capacity as every cold call does);
- removed when its route is deleted or changes (another spec), when unused for ``keep_for``,
  and at shutdown; an image without /bin/sh is never parked (its calls take the usual path).
Every parked container carries the node's labels, so a server that died leaves none behind
for long: the next start of the node removes them with the rest.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import trio

from ..drivers import ContainerSpec, DriverError, NoShell
from ..models import Route

log = logging.getLogger("hotfn.coldstart")  # named as before the move: operators filter on it

RouteKey = tuple[str, str]


@dataclass
class _Parked:
    spec: ContainerSpec
    container: object  # drivers.docker.driver.ParkedContainer


class ColdStarts:
    def __init__(self, driver, spec_for: Callable[[Route], ContainerSpec],
                 may_park: Callable[[Route], bool], *, max_parked: int = 8, keep_for: float = 600.0,
                 retry_after: float = 30.0, park_wait: float = 10.0) -> None:
        """``spec_for``: a route's container spec (the same as the invoker's, without per-call
        env); ``may_park(route)``: whether a call of the route could start a container now
        (the capacity has room for one more, no one waits for it, its image is allowed)."""
        self.driver = driver
        self.spec_for = spec_for
        self.may_park = may_park
        self.max_parked = max_parked
        self.keep_for = keep_for
        self.retry_after = retry_after
        self.park_wait = park_wait
        self.parked: dict[RouteKey, _Parked] = {}
        self._running: Counter[RouteKey] = Counter()
        self._last_used: dict[RouteKey, float] = {}
        self._failed_at: dict[str, float] = {}  # image -> when parking it last failed
        self._no_shell: set[str] = set()
        self._parking: dict[RouteKey, trio.Event] = {}
        self._waiting: set[RouteKey] = set()  # routes with a call waiting for their park
        self._wake = trio.Event()
        self._closed = False

    async def take(self, route: Route, spec: ContainerSpec) -> object | None:
        """The route's parked container, if it has one made from ``spec``; it is the caller's.
        One being parked right now is waited for (up to ``park_wait``): the engine is already
        making it, and began before this call, so a container started now would be ready later."""
        key = (route.app, route.path)
        parking = self._parking.get(key)
        if parking is not None and key not in self.parked and key not in self._waiting:
            # One call waits for it; others of a burst start theirs at once.
            self._waiting.add(key)
            try:
                with trio.move_on_after(self.park_wait):
                    await parking.wait()
            finally:
                self._waiting.discard(key)
        entry = self.parked.get(key)
        if entry is None or entry.spec != spec:
            return None  # (one of another spec is removed by the next sync)
        del self.parked[key]
        return entry.container

    @contextlib.contextmanager
    def calling(self, route: Route) -> Iterator[None]:
        """Around a cold call: no parking for the route meanwhile, a new one after."""
        key = (route.app, route.path)
        self._running[key] += 1
        self._last_used[key] = trio.current_time()
        try:
            yield
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, cold_routes: Callable[[], Iterable[Route]], *, interval: float = 1.0,
                  task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Keeps the parked containers in line with ``cold_routes()``; removes them all when
        cancelled."""
        task_status.started()
        try:
            while True:
                self._wake = trio.Event()
                await self.sync(list(cold_routes()))
                with trio.move_on_after(interval):
                    await self._wake.wait()
        finally:
            await self.close()

    async def sync(self, routes: list[Route]) -> None:
        now = trio.current_time()
        wanted: dict[RouteKey, Route] = {}
        for route in routes:
            key = (route.app, route.path)
            wanted[key] = route
            self._last_used.setdefault(key, now)  # first seen: a deploy; its first call is near
        for key in list(self._last_used):
            if key not in wanted:
                del self._last_used[key]
        for key, entry in list(self.parked.items()):
            route = wanted.get(key)
            if (route is None or self._stale(key, now) or self.spec_for(route) != entry.spec
                    or not entry.container.alive()):  # (killed from outside: park another)
                del self.parked[key]
                await entry.container.discard()
        for key, route in wanted.items():
            if len(self.parked) >= self.max_parked or self._closed:
                return
            if key in self.parked or key in self._running or self._stale(key, now):
                continue
            spec = self.spec_for(route)
            failed_at = self._failed_at.get(spec.image)
            if spec.image in self._no_shell or (failed_at is not None and now - failed_at < self.retry_after):
                continue
            if not self.may_park(route):
                continue
            await self._park(key, spec)

    def _stale(self, key: RouteKey, now: float) -> bool:
        return now - self._last_used.get(key, now) > self.keep_for

    async def _park(self, key: RouteKey, spec: ContainerSpec) -> None:
        self._parking[key] = done = trio.Event()
        try:
            container = await self.driver.park(spec)
        except NoShell:
            log.info("image %s has no /bin/sh: its cold calls are not started ahead", spec.image)
            self._no_shell.add(spec.image)
            return
        except DriverError as exc:
            log.warning("could not park a cold container of %s: %s", spec.image, exc)
            self._failed_at[spec.image] = trio.current_time()
            return
        finally:
            del self._parking[key]
            done.set()
        if self._closed or key in self.parked:
            await container.discard()  # things moved on while the engine worked
            return
        self._failed_at.pop(spec.image, None)
        self.parked[key] = _Parked(spec, container)

    async def close(self) -> None:
        """Remove every parked container; nothing is parked after this."""
        with trio.CancelScope(shield=True):
            self._closed = True
            entries, self.parked = list(self.parked.values()), {}
            async with trio.open_nursery() as nursery:
                for entry in entries:
                    nursery.start_soon(entry.container.discard)
