"""Runs async calls from the store's queue on this node.

An async call is accepted (202) only once the store has it (``Store.enqueue_call``). This node
claims due calls route by route, never more at once than the route's ``max_concurrency``, runs
each through the same invoker as a sync call (so the pools' capacity rules apply), and ends the
claim: finished, or back in the queue after a back-off to run again, at most the route's
``max_attempts`` times in all. A call whose node died mid-run is claimed again when that node
starts again (``Store.release_calls``) or, by any node, when its lease runs out; it counts as an
attempt. Every run is at least once and at most ``max_attempts``.

A call that found the container engine down (no container could be had, and the engine does
not answer a ping) did not fail: its attempt is given back and it goes back in the queue, and
this node claims nothing more until its engine answers again (other nodes go on). That wait has an end, ``engine_wait`` from the first such call: after it, calls that find
the engine down end in error, saying so, so that a node whose engine never comes back does not
hold its calls for ever.

Bookkeeping (calls running per route) is synchronous: nothing is awaited between a claim's
result and counting it, or between a call's end and uncounting it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import trio

from ..invoke import CallRecorder, Invocation, Invoker, Outcome
from ..models import Call, Route
from ..observe import Telemetry
from ..store import ClaimedCall, Store

log = logging.getLogger("hotfn.dispatcher")  # named as before the move: operators filter on it

RouteKey = tuple[str, str]  # (app, route path)

# How long a claim lasts beyond the longest a run can take (waiting for a container, its start
# and the call): a node that dies holds its calls that much longer, for other nodes.
LEASE_MARGIN = 30.0
# How long the engine may take to answer a ping before it counts as down.
ENGINE_PING_TIMEOUT = 2.0
# Claims at once for the calls of a route that no longer exists (each just fails).
GONE_ROUTE_BATCH = 16


class Dispatcher:
    def __init__(self, store: Store, invoker: Invoker, recorder: CallRecorder, *,
                 find_route: Callable[[str, str], Route | None], node_id: str,
                 retry_delay: float = 1.0, poll_interval: float = 1.0,
                 lease_margin: float = LEASE_MARGIN, engine_wait: float = 600.0,
                 telemetry: Telemetry | None = None) -> None:
        self.store = store
        self.telemetry = telemetry
        self.invoker = invoker
        self.recorder = recorder
        self.find_route = find_route  # (app, route path) -> the route as it is now, or None
        self.node_id = node_id
        self.retry_delay = retry_delay  # before attempt 2; doubled for each later one
        self.poll_interval = poll_interval  # other nodes' calls, and back-offs, are found so
        self.lease_margin = lease_margin
        self.engine_wait = engine_wait
        self._engine_down_since: float | None = None  # Unix time a call first found it down
        self._engine_asked_at = -math.inf  # monotonic: when we last pinged an engine found down
        self._running: dict[RouteKey, int] = {}
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._next_due = math.inf  # the earliest back-off this node set that has not ended
        self._stopping = False

    def wake(self) -> None:
        """A call was queued, or a slot freed: look for due calls now."""
        self._wake.set()

    def stop_claiming(self) -> None:
        self._stopping = True
        self._wake.set()

    async def wait_idle(self) -> None:
        """Until no call of this dispatcher is running."""
        await self._idle.wait()

    def stats(self) -> dict[str, int]:
        return {f"{app}{path}": n for (app, path), n in self._running.items() if n}

    # -- the loop --

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Claims and runs due calls until stopped; a call still running when this task is
        cancelled keeps its claim (and attempt), and runs again at this node's next start."""
        released = await self.store.release_calls(self.node_id, time.time())
        if released:
            log.warning("%d async call(s) were running when node %s stopped; they run again",
                        released, self.node_id)
        async with trio.open_nursery() as nursery:
            task_status.started()
            failures = 0
            while not self._stopping:
                self._wake = trio.Event()
                try:
                    if await self._engine_ready():
                        await self._claim_due(nursery)
                    failures = 0
                except Exception as exc:  # the store is failing: retry, but do not hammer it
                    failures += 1
                    log.error("could not claim async calls (attempt %d, will retry): %s",
                              failures, exc, exc_info=failures == 1)
                wait = self.poll_interval * min(2 ** failures, 30)
                if self._next_due < math.inf:
                    wait = min(wait, max(0.0, self._next_due - time.time()))
                with trio.move_on_after(wait):
                    await self._wake.wait()

    async def _engine_ready(self) -> bool:
        """Whether to claim calls: the engine answers, or has been down past ``engine_wait``
        (then claimed calls that find it still down end in error)."""
        if self._engine_down_since is None:
            return True
        # Asked once a poll, however often we are woken (each call queued wakes us).
        if time.monotonic() - self._engine_asked_at >= self.poll_interval:
            self._engine_asked_at = time.monotonic()
            if await self._engine_answers():
                log.warning("the container engine answers again: async calls run again (held "
                            "for %.0f s)", time.time() - self._engine_down_since)
                self._engine_down_since = None
                return True
        if time.time() - self._engine_down_since > self.engine_wait:
            return True
        self._next_due = math.inf  # back-offs that end meanwhile wait for the engine too
        return False

    async def _engine_answers(self) -> bool:
        answered = False
        with trio.move_on_after(ENGINE_PING_TIMEOUT):
            answered = await self.invoker.driver.ping()
        return answered

    def _engine_down(self) -> float:
        """Note that a call found the engine down; since when it has been."""
        if self._engine_down_since is None:
            self._engine_down_since = time.time()
            log.warning("the container engine does not answer: this node holds its async calls "
                        "until it does (up to %g s, --async-engine-wait)", self.engine_wait)
        return self._engine_down_since

    async def _claim_due(self, nursery: trio.Nursery) -> None:
        now = time.time()
        if self._next_due <= now:
            self._next_due = math.inf
        for app, path in await self.store.due_routes(now):
            if self._stopping:
                return
            route = self.find_route(app, path)
            key = (app, path)
            limit = (route.max_concurrency if route else GONE_ROUTE_BATCH) - self._running.get(key, 0)
            if limit <= 0:
                continue
            lease = self.lease_margin + (route.queue_timeout + route.startup_timeout
                                         + route.timeout if route else 0.0)
            claimed = await self.store.claim_calls(self.node_id, app, path, limit,
                                                   lease_until=now + lease, now=now)
            self._running[key] = self._running.get(key, 0) + len(claimed)
            if claimed:
                self._idle = trio.Event()
            for one in claimed:
                nursery.start_soon(self._run_claimed, key, one)

    # -- one call --

    async def _run_claimed(self, key: RouteKey, claimed: ClaimedCall) -> None:
        try:
            await self._run_one(claimed)
        finally:
            self._running[key] -= 1
            if not any(self._running.values()):
                self._idle.set()
            self._wake.set()

    async def _run_one(self, claimed: ClaimedCall) -> None:
        call, claim, request = claimed.call, claimed.claim, claimed.request
        route = self.find_route(call.app, call.route)
        if route is None:
            self._end(call, "error", f"route {call.route!r} of app {call.app!r} no longer exists")
            await self._finish(claimed)
            return
        if claim.attempt > route.max_attempts:
            # Its last attempt was under way when its node stopped: nothing is left to try.
            call.attempts = claim.attempt - 1
            last = f": {call.error}" if call.error else ""
            self._end(call, "error", f"gave up after {call.attempts} attempt(s): the server "
                                     f"stopped during the last one{last}")
            await self._finish(claimed)
            return
        try:
            outcome = await self.invoker.invoke(Invocation(
                call_id=call.id, route=route, method=request.method, url=request.url,
                path=request.path, query=request.query, headers=request.headers,
                body=request.body, params=request.params, attempt=claim.attempt,
            ))
        except Exception as exc:  # a bug of ours, not the function's: the call may still run
            log.exception("async call %s: the invoker failed", call.id)
            outcome = Outcome(500, error=f"hotfn could not run it: {exc!r}", call_status="error",
                              mode=call.mode)
        if outcome.container_id is not None:
            self._engine_down_since = None  # it ran a container: the engine is back
        call.mode = outcome.mode
        call.http_status = outcome.status
        call.container_id = outcome.container_id
        call.completed_at = time.time()
        if self.telemetry is not None:
            self.telemetry.call_done(call, outcome, request.method, "async")
        if outcome.log:
            self.recorder.record_log(call, outcome.log)
        if outcome.error is None:
            call.result = outcome.body[:65536].decode("utf-8", "replace")
            self._end(call, "success", None)
            await self._finish(claimed)
        elif (outcome.status == 502 and outcome.container_id is None
              and not await self._engine_answers()):
            # No container to run in, and an engine that does not answer: not the function's
            # failure (a start that failed on an engine that answers, a missing image, is).
            down_for = time.time() - self._engine_down()
            # The function never ran: this was no attempt.
            call.attempts = claim.attempt - 1
            if down_for <= self.engine_wait:
                await self._requeue(claimed, f"waiting for the container engine: {outcome.error}",
                                    delay=self.poll_interval)
            else:
                self._end(call, "error", f"the container engine has not answered for "
                                         f"{down_for:.0f} s (--async-engine-wait "
                                         f"{self.engine_wait:g}): {outcome.error}")
                await self._finish(claimed)
        elif outcome.retry_after is not None:
            # No capacity: the function never ran, so this was no attempt.
            call.attempts = claim.attempt - 1
            await self._requeue(claimed, f"waiting for capacity: {outcome.error}",
                                delay=float(outcome.retry_after))
        elif claim.attempt < route.max_attempts:
            await self._requeue(claimed, f"attempt {claim.attempt} failed: {outcome.error}",
                                delay=self.retry_delay * 2 ** (claim.attempt - 1))
        elif route.max_attempts == 1:
            self._end(call, outcome.call_status, outcome.error)
            await self._finish(claimed)
        else:
            # As the last attempt ended: a call that timed out every time ends "timeout".
            self._end(call, outcome.call_status,
                      f"gave up after {claim.attempt} attempts: {outcome.error}")
            await self._finish(claimed)

    @staticmethod
    def _end(call: Call, status: str, error: str | None) -> None:
        call.status, call.error = status, error
        if call.completed_at is None:
            call.completed_at = time.time()

    async def _finish(self, claimed: ClaimedCall) -> None:
        # Shielded: the call ran; its end must be written even if we are being cancelled.
        with trio.CancelScope(shield=True):
            try:
                held = await self.store.finish_call(claimed.call, claimed.claim)
            except Exception:
                log.exception("could not save the end of async call %s; it will run again once "
                              "its claim runs out", claimed.call.id)
                return
        if not held:
            log.warning("async call %s ran past its claim, and another run took it over",
                        claimed.call.id)

    async def _requeue(self, claimed: ClaimedCall, reason: str, delay: float) -> None:
        call = claimed.call
        call.status, call.error = "queued", reason
        due = time.time() + delay
        with trio.CancelScope(shield=True):
            try:
                held = await self.store.requeue_call(call, claimed.claim, available_at=due)
            except Exception:
                log.exception("could not put async call %s back in the queue; it will run again "
                              "once its claim runs out", call.id)
                return
        if held:
            self._next_due = min(self._next_due, due)
