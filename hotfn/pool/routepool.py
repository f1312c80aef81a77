"""One route's warm containers: who gets which container, and when containers come and go.

Layout (after httpcore's pool): the bookkeeping in ``RoutePool`` and ``Capacity`` is synchronous
— never an ``await`` between "find an idle worker" and "mark it busy" — and the I/O it decides on
(starting, reading, killing containers) runs in tasks owned by the ``PoolManager``'s nursery.

Invariants:
- A worker has at most ``concurrency`` calls in flight (1 unless its ready frame asked for more)
  and is handed out only while it has room (it is in ``idle``). Answers are matched to calls by
  call id, in any order.
- A worker whose container crashed, timed out, was cancelled mid-call, or spoke a bad frame is
  ``dead`` and never handed out again; its task kills and removes the container. Every call in
  flight on it fails, and only those.
- Waiters are served first come, first served; a worker freed or newly ready goes to the oldest
  waiter before it is parked as idle.
- Every container counts against the server-wide Capacity from the moment its start is decided
  until its worker is gone.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Deque

import trio

from ..drivers import ContainerSpec, DriverError
from ..models import Route, log_text
from .capacity import _CapacityWaiter
from .errors import PoolClosed, PoolError, QueueTimeout, StartFailed
from .events import CRASH, RETIRED, SHUTDOWN, START_FAILED, STOPS
from .http_worker import HttpHotWorker
from .worker import HotWorker

if TYPE_CHECKING:
    from .manager import PoolManager

log = logging.getLogger("hotfn.pool")  # named as before the move: operators filter on it

# Scaling out on evidence: a call that finds every container busy starts another only once it
# has waited SCALE_AFTER (the containers there clear most bursts within a few ms, and a start
# costs the machine ~0.1-1 s of CPU that the server and the running containers need), and a
# route has at most MAX_STARTING containers starting at once. A route with no container
# starts one at once. Measured: a burst of 8 clients on a route with one warm container and
# max_concurrency 8 (bench: hotfn_bench.ab --burst).
SCALE_AFTER = 0.02
MAX_STARTING = 2



@dataclass(eq=False)
class _Waiter:
    since: float
    granted: trio.Event = field(default_factory=trio.Event)
    worker: HotWorker | None = None
    error: PoolError | None = None


class RoutePool:
    def __init__(self, manager: "PoolManager", route: Route, spec: ContainerSpec) -> None:
        self.manager = manager
        self.route = route
        self.spec = spec
        self.max_frame_size = manager.max_frame_size
        self.workers: set[HotWorker] = set()
        # Workers with room for another call (all of a one-at-a-time one's, while it is idle),
        # a stack: the most recently used is reused first.
        self.idle: list[HotWorker] = []
        self.waiters: Deque[_Waiter] = collections.deque()
        self.pending_capacity: list[_CapacityWaiter] = []
        self.retired = False

    # -- decisions (synchronous) --

    @property
    def starting(self) -> int:
        return sum(1 for w in self.workers if w.state == HotWorker.STARTING)

    def _want_starts(self) -> int:
        """How many more containers to start now: min_warm, and enough for the waiters once
        one of them has waited SCALE_AFTER (at once when no container is up); at most
        MAX_STARTING at a time."""
        if self.retired:
            return 0
        live = len(self.workers)
        starting = self.starting
        pending = len(self.pending_capacity)
        wanted = self.route.min_warm - live - pending
        if self.waiters and (live == starting or trio.current_time() - self.waiters[0].since >= SCALE_AFTER):
            wanted = max(wanted, len(self.waiters) - starting - pending)
        room = min(self.route.max_concurrency - live - pending, MAX_STARTING - starting)
        return max(0, min(wanted, room))

    def _maybe_start(self) -> None:
        for _ in range(self._want_starts()):
            if self.manager.reserve(self.route.memory, exclude=self, app=self.route.app):
                self._start_worker()
            else:
                # Queue for capacity; when it is granted the reservation is already taken.
                waiter = self.manager.capacity.wait(self.route.memory, lambda: self._granted(waiter),
                                                    self.route.app)
                self.pending_capacity.append(waiter)

    def _granted(self, waiter: _CapacityWaiter) -> None:
        self.pending_capacity.remove(waiter)
        if self.retired or (not self.waiters and len(self.workers) >= self.route.min_warm):
            self.manager.capacity.give(self.route.memory, self.route.app)
            return
        self._start_worker()

    def _start_worker(self) -> None:
        worker = HttpHotWorker(self) if self.route.format == "http" else HotWorker(self)
        self.workers.add(worker)
        self.manager.nursery.start_soon(self._run_worker, worker)

    def _hand_out(self, worker: HotWorker) -> None:
        worker.load += 1
        worker.state = HotWorker.BUSY
        if worker.load >= worker.concurrency and worker.listed:
            worker.listed = False
            self.idle.remove(worker)  # (the top of the stack, in the common case)

    def _offer(self, worker: HotWorker) -> None:
        """A worker has room: the oldest waiters get it, else it is listed as idle."""
        while self.waiters and worker.load < worker.concurrency:
            waiter = self.waiters.popleft()
            if not waiter.granted.is_set():
                self._hand_out(worker)
                waiter.worker = worker
                waiter.granted.set()
        if worker.load >= worker.concurrency:
            return
        if not worker.listed:
            worker.listed = True
            self.idle.append(worker)
        if worker.load == 0:
            worker.state = HotWorker.IDLE
            worker.idle_since = trio.current_time()
            self.manager.relieve()

    def _forget(self, worker: HotWorker) -> None:
        """Called once when a worker dies: drop it from the books."""
        if worker.listed:
            worker.listed = False
            self.idle.remove(worker)

    # -- what callers use --

    async def acquire(self) -> HotWorker:
        """A busy-marked worker for one call; QueueTimeout after the route's queue timeout."""
        if self.retired:
            raise PoolClosed("route was updated; retry")
        if self.idle and not self.waiters:
            worker = self.idle[-1]
            self._hand_out(worker)
            return worker
        waiter = _Waiter(trio.current_time())
        self.waiters.append(waiter)
        self._maybe_start()
        try:
            if (not waiter.granted.is_set()
                    and len(self.workers) + len(self.pending_capacity) < self.route.max_concurrency):
                # Busy containers may free up soon: start more only if this call had to wait.
                # (A pool at its max_concurrency skips this wait and its cancel scope: under
                # load every queued call would pay for one.)
                with trio.move_on_after(SCALE_AFTER):
                    await waiter.granted.wait()
                if not waiter.granted.is_set():
                    self._maybe_start()
            with trio.move_on_at(waiter.since + self.route.queue_timeout):
                await waiter.granted.wait()
        except BaseException:
            self._abandon(waiter)
            raise
        if waiter.worker is not None:
            return waiter.worker
        if waiter.error is not None:
            raise waiter.error
        self._abandon(waiter)
        capacity = self.manager.capacity
        if self.pending_capacity and not capacity.app_fits(self.route.app, self.route.memory):
            raise QueueTimeout(
                f"app {self.route.app} is at its max_containers or max_memory_mb; route "
                f"{self.route.path} found no room within its queue timeout of {self.route.queue_timeout:g} s"
            )
        if self.pending_capacity:
            raise QueueTimeout(
                f"the server is at its container or memory cap; route {self.route.path} found no "
                f"room within its queue timeout of {self.route.queue_timeout:g} s"
            )
        raise QueueTimeout(
            f"all {self.route.max_concurrency} container(s) of route {self.route.path} stayed busy "
            f"for its queue timeout of {self.route.queue_timeout:g} s"
        )

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.worker is not None:
            # Granted while we were being cancelled: pass the worker on.
            worker, waiter.worker = waiter.worker, None
            self.release(worker)
        else:
            waiter.granted.set()
            try:
                self.waiters.remove(waiter)
            except ValueError:
                pass

    def release(self, worker: HotWorker) -> None:
        worker.load -= 1
        if worker.state == HotWorker.DEAD:
            self._maybe_start()
        elif self.retired:
            if worker.load == 0:
                worker.die("retired (route updated)", RETIRED)
        else:
            self._offer(worker)

    def retire(self) -> None:
        """Stop serving new calls; idle containers go now, busy ones after their call."""
        self.retired = True
        for worker in [w for w in self.idle if w.load == 0]:
            worker.die("retired (route updated)", RETIRED)
        for waiter in self.pending_capacity:
            self.manager.capacity.cancel(waiter)
        self.pending_capacity.clear()
        for waiter in list(self.waiters):
            if not waiter.granted.is_set():
                waiter.error = PoolClosed("route was updated while this call waited")
                waiter.granted.set()
        self.waiters.clear()
        for worker in list(self.workers):
            if worker.state == HotWorker.STARTING:
                worker.die("retired (route updated)", RETIRED)

    # -- the task behind each worker --

    async def _run_worker(self, worker: HotWorker) -> None:
        try:
            await self._serve(worker)
        except StartFailed as exc:
            self._start_failed(exc)
            worker.die(str(exc), START_FAILED)
        except DriverError as exc:
            self._start_failed(StartFailed(f"could not start a container of {self.spec.image}: {exc}"))
            worker.die(str(exc), START_FAILED)
        except Exception as exc:
            # A bug here must not take down every other route's containers with it.
            log.exception("worker of route %s%s failed", self.route.app, self.route.path)
            self._start_failed(StartFailed(f"internal error starting a container: {exc!r}"))
            worker.die(repr(exc), START_FAILED)
        finally:
            was_ready = worker.ready.is_set()
            worker.die(worker.death or "stopped", SHUTDOWN)
            if worker.started_at is not None:
                # Reported now, not after the removal below (which can take seconds).
                cause = worker.cause or CRASH
                if not was_ready and cause not in STOPS:
                    cause = START_FAILED
                self.manager.events.container_ended(self.route, cause)
            with trio.CancelScope(shield=True):
                if worker.container is not None:
                    await worker.container.kill()
            self.workers.discard(worker)
            self.manager.worker_gone(self, worker)
            # Replace a container that served and died; after a failed start only waiters
            # trigger another try (min_warm retries come from housekeeping, once a second).
            if was_ready or self.waiters:
                self._maybe_start()

    async def _serve(self, worker: HotWorker) -> None:
        startup = self.route.startup_timeout
        worker.started_at = trio.current_time()
        self.manager.events.container_starting(self.route)
        with trio.move_on_after(startup) as scope:
            worker.container = await self.manager.driver.start(self.spec)
        if scope.cancelled_caught:
            raise StartFailed(f"container of {self.spec.image} was not created within {startup:g} s")
        if worker.state == HotWorker.DEAD:
            return  # retired while it was being created
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.read_output)
            with trio.move_on_after(startup):
                await worker.settled.wait()
            if worker.ready.is_set() and worker.state != HotWorker.DEAD:
                self.manager.events.container_ready(self.route, trio.current_time() - worker.started_at)
                self._offer(worker)
                self._maybe_start()  # the next one, if more are wanted (MAX_STARTING)
                await worker.gone.wait()
            nursery.cancel_scope.cancel()
        # Raised out here, not inside the nursery, so that it is not wrapped in a group.
        if not worker.ready.is_set():
            why = worker.death or f"sent no ready frame within its start-up timeout of {startup:g} s"
            worker.die(why, START_FAILED)
            if why.startswith("retired"):
                return
            tail = worker.stderr_tail()
            # Escaped: the function's own words go into the server's log with this message.
            failure = StartFailed(f"function container {why}"
                                  + (f"; its stderr: {log_text(tail)}" if tail else ""))
            if tail:
                failure.public = f"function container {why}; its stderr is in the call's log"
                failure.log = tail.encode() + b"\n"
            raise failure

    def _start_failed(self, exc: StartFailed) -> None:
        # (Escaped whole: a death's reason may quote what the container sent.)
        log.warning("route %s%s: %s", self.route.app, self.route.path, log_text(str(exc)))
        # The oldest waiter hears why; the others keep waiting for another try.
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.granted.is_set():
                waiter.error = exc
                waiter.granted.set()
                break

    def stats(self) -> dict[str, int]:
        return {
            "workers": len(self.workers),
            "idle": sum(1 for w in self.idle if w.load == 0),
            "in_flight": sum(w.load for w in self.workers),
            "starting": self.starting,
            "waiting": sum(1 for w in self.waiters if not w.granted.is_set()),
        }

