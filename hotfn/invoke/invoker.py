"""Runs one call of a route, hot or cold, and says how it went.

Everything that can go wrong with a function (a crash, a timeout, a bad frame, no capacity)
comes back as an Outcome with an HTTP status and a message; nothing here raises to the caller
for a function's misbehaviour. Which status means what is decided here and only here.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Mapping

import trio

from .. import protocol
from ..access import ImagePolicy
from ..drivers import Container, ContainerGone, ContainerSpec, Driver, DriverError, ImageNotFound
from ..models import Route, config_env, header_env_name, header_problem
from ..pool import (CANCELLED, CRASH, EXITED, PROTOCOL_ERROR, START_FAILED, TIMEOUT, CallLog,
                    ColdStarts, PoolError, PoolManager, default_cpus, exit_cause, node_cpus)
from ..protocol.httpformat import RequestNotWritable

log = logging.getLogger("hotfn.invoker")  # named as before the move: operators filter on it

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te",
    "trailer", "proxy-authenticate", "proxy-authorization", "proxy-connection",
})


@dataclass(slots=True)  # (not frozen: a frozen dataclass's __init__ costs ~3x, and one is made per call)
class Invocation:
    call_id: str
    route: Route  # config already merged: the app's, then the route's
    method: str
    url: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 1  # an async call's run: 1, then 2, ... after a failure or a crash


@dataclass
class Outcome:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str | None = None  # set: the call failed; the call's record says this
    # What the client is told, when it must be less than ``error``: a function's exception
    # message or stderr may hold anything (a query, a path, a secret), so it stays in the
    # call's record and log, and the client gets the kind of failure and the call id.
    public_error: str | None = None
    call_status: str = "success"  # success | error | timeout
    log: bytes | CallLog = b""  # a hot call's log may still be filling (pool.CallLog)
    container_id: str | None = None
    mode: str = "hot"
    retry_after: int | None = None
    queue_wait: float | None = None  # seconds waiting for a container (hot) or for room (cold)
    cold_run: float | None = None  # cold: seconds from the container's start to its end


@dataclass(frozen=True)
class Limits:
    max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE
    max_response_size: int = protocol.DEFAULT_MAX_FRAME_SIZE
    node_id: str = "hotfn"
    images: ImagePolicy = field(default_factory=ImagePolicy)  # --allowed-images
    default_cpus: float = field(default_factory=default_cpus)  # --default-cpus
    cores: int = field(default_factory=node_cpus)  # no container gets more CPUs than this

    def cpus(self, route: Route) -> float:
        """The CPU limit of ``route``'s containers on this node: the route's, else the node's
        default, and never more than the node's cores (the engine refuses more)."""
        return min(route.cpus or self.default_cpus, float(self.cores))


def container_spec(route: Route, limits: Limits) -> ContainerSpec:
    """The container every call of ``route`` runs in, hot or cold (cold adds per-call env)."""
    cpus = limits.cpus(route)
    env = {
        # Names as IronFunctions made them: upper case, '-' as '_' (db-url is DB_URL).
        **config_env(route.config),
        **config_env(route.secrets),  # as config, after it: a secret of the same name wins
        "HOTFN_FORMAT": route.format,
        "HOTFN_PROTOCOL_VERSION": str(protocol.PROTOCOL_VERSION),
        "HOTFN_MAX_FRAME_SIZE": str(limits.max_frame_size),
        "HOTFN_MEMORY_MB": str(route.memory),
        "APP_NAME": route.app,
        "ROUTE": route.path,
    }
    if route.format == "http":
        env["FN_FORMAT"] = "http"  # what IronFunctions told its hot containers
    return ContainerSpec(
        # The id, not the name: every container of a revision runs the same build.
        image=route.image_id or route.image,
        env=env,
        labels={
            "hotfn": "1",
            "hotfn.node": limits.node_id,
            "hotfn.app": route.app,
            "hotfn.route": route.path,
            "hotfn.format": route.format,
        },
        memory_mb=route.memory,
        # A ceiling (the engine's CFS quota) and, under contention, a weight in proportion to
        # it: 1024 per core. Not in proportion to memory: a 2048 MiB route then had 16 times
        # the weight of a 128 MiB one, and a fork bomb in it starved every other route's calls.
        cpus=cpus,
        cpu_shares=max(2, int(cpus * 1024)),
        user=route.user,
        isolation=route.isolation,
        # gVisor has no network here (scripts/ensure-sandbox): a route of an app put in gVisor
        # whole runs without the network it asked for, rather than not at all.
        network=route.network and route.isolation != "gvisor",
        network_labels={"hotfn": "1", "hotfn.node": limits.node_id, "hotfn.app": route.app},
        direct_stdio=route.is_hot,
    )


def cold_env(inv: Invocation, deadline_ms: int) -> dict[str, str]:
    env = {
        "METHOD": inv.method,
        "REQUEST_URL": inv.url,
        "CALL_ID": inv.call_id,
        "DEADLINE": str(deadline_ms),
        "HOTFN_ATTEMPT": str(inv.attempt),
    }
    joined: dict[str, list[str]] = {}
    for name, value in inv.headers:
        joined.setdefault(f"HEADER_{header_env_name(name)}", []).append(value)
    env.update({k: ", ".join(v) for k, v in joined.items()})
    env.update({f"PARAM_{header_env_name(k)}": v for k, v in inv.params.items()})
    return env


class Invoker:
    def __init__(self, driver: Driver, pools: PoolManager, nursery: trio.Nursery, limits: Limits,
                 cold_starts: ColdStarts | None = None) -> None:
        self.driver = driver
        self.pools = pools
        self.nursery = nursery  # owns the removal of finished cold containers
        self.limits = limits
        self.cold_starts = cold_starts  # cold containers started ahead; None: none

    async def invoke(self, inv: Invocation) -> Outcome:
        if not self.limits.images.allows(inv.route.image):
            # A route saved before the setting changed is kept, but never run.
            return Outcome(403, error=self.limits.images.refusal(inv.route.image),
                           call_status="error", mode="hot" if inv.route.is_hot else "cold")
        if inv.route.is_hot:
            return await self._invoke_hot(inv)
        return await self._invoke_cold(inv)

    # -- hot --

    async def _invoke_hot(self, inv: Invocation) -> Outcome:
        route = inv.route
        deadline_ms = int((time.time() + route.timeout) * 1000)
        request = protocol.Request(
            call_id=inv.call_id, method=inv.method, url=inv.url, path=inv.path, query=inv.query,
            headers=inv.headers, body=inv.body, deadline=deadline_ms, app=route.app,
            route=route.path, params=dict(inv.params), attempt=inv.attempt,
        )
        for attempt in (1, 2):
            pool = self.pools.pool_for(route)
            container_id = None
            waited_from = trio.current_time()
            try:
                worker = await pool.acquire()
                acquired = trio.current_time()
                queue_wait = acquired - waited_from
                container_id = worker.container_id
                try:
                    frame, log = await worker.call(request, acquired + route.timeout)
                finally:
                    pool.release(worker)
            except protocol.FrameTooLarge as exc:
                return Outcome(413, error=f"request too large for one frame: {exc}",
                               call_status="error", mode="hot")
            except RequestNotWritable as exc:  # format http: e.g. a parameter holding CR
                return Outcome(400, error=str(exc), call_status="error", mode="hot")
            except PoolError as exc:
                if exc.retryable and attempt == 1:
                    continue
                return self._failed(exc, container_id)
            outcome = self._answer(frame, log, container_id, inv)
            outcome.queue_wait = queue_wait
            return outcome
        raise AssertionError("unreachable")

    def _failed(self, exc: PoolError, container_id: str | None) -> Outcome:
        outcome = Outcome(
            exc.status, error=str(exc), public_error=exc.public, log=exc.log,
            container_id=container_id, mode="hot",
            call_status="timeout" if exc.status == 504 else "error",
        )
        if exc.status == 503:
            outcome.retry_after = 1
        return outcome

    def _answer(self, frame: protocol.Response | protocol.HandlerError, log: CallLog,
                container_id: str | None, inv: Invocation) -> Outcome:
        if isinstance(frame, protocol.HandlerError):
            # The trace says what was raised where; a shim that sent none still gets the message
            # into the log, which is where a function's own words go.
            log.write(frame.trace.encode("utf-8", "replace"))
            if not frame.trace:
                log.write(f"{frame.error_type}: {frame.message}\n".encode("utf-8", "replace"))
            kind = _brief_kind(frame.error_type)
            return Outcome(
                502, error=f"function raised {kind}: {frame.message}",
                public_error=f"function raised {kind}",
                call_status="error", log=log, container_id=container_id, mode="hot",
            )
        # The function's answer goes to a client verbatim: anything HTTP cannot carry is
        # refused here, where it enters, and never reaches the HTTP layer (docs/protocol.md 2.3).
        status, body = frame.status, frame.body
        problem = None
        if not 200 <= status <= 599:
            problem = f"status {status} (a function answers with a final status, 200 to 599)"
        headers = []
        for name, value in frame.headers:
            if problem is None:
                problem = header_problem(name, value)
            if name.lower() not in HOP_BY_HOP:
                headers.append((name, value))
        if problem is not None:
            log.write(f"[hotfn: the function's response was refused: {problem}]\n".encode())
            return Outcome(502, error=f"function answered with an invalid response: {problem}",
                           call_status="error", log=log, container_id=container_id, mode="hot")
        if body and status in (204, 304):
            # (A HEAD answer keeps its body here: the HTTP layer sends its length, not its bytes.)
            log.write(f"[hotfn: dropped the {len(body)}-byte body: status {status} has none]\n".encode())
            body = b""
        return Outcome(status, headers=_with_route_headers(headers, inv.route), body=body,
                       log=log, container_id=container_id, mode="hot")

    # -- cold --

    async def _invoke_cold(self, inv: Invocation) -> Outcome:
        if self.cold_starts is None:
            return await self._invoke_cold_now(inv)
        with self.cold_starts.calling(inv.route):
            return await self._invoke_cold_now(inv)

    async def _start_cold(self, base: ContainerSpec, call_env: dict[str, str], route: Route) -> Container:
        """A container running the call: a parked one given the call's environment if the
        route has one, else one created and started now."""
        parked = await self.cold_starts.take(route, base) if self.cold_starts is not None else None
        if parked is not None:
            try:
                return await parked.release(call_env)
            except (ValueError, DriverError) as exc:  # discarded; start one the usual way
                log.info("parked container not used for %s%s: %s", route.app, route.path, exc)
        return await self.driver.start(dataclasses.replace(base, env={**base.env, **call_env}))

    async def _invoke_cold_now(self, inv: Invocation) -> Outcome:
        route = inv.route
        base = container_spec(route, self.limits)
        deadline_ms = int((time.time() + route.timeout) * 1000)
        call_env = cold_env(inv, deadline_ms)
        waited_from = trio.current_time()
        if not await self._reserve_cold(route):
            return Outcome(503, error="server is at its container capacity; try again",
                           call_status="error", mode="cold", retry_after=1)
        started_at = trio.current_time()
        events = self.pools.events
        events.container_starting(route)
        try:
            container = await self._start_cold(base, call_env, route)
        except BaseException as exc:
            events.container_ended(route, CANCELLED if isinstance(exc, trio.Cancelled)
                                   else START_FAILED)
            self.pools.capacity.give(route.memory, route.app)
            if isinstance(exc, ImageNotFound):
                return Outcome(502, error=str(exc), call_status="error", mode="cold")
            if isinstance(exc, DriverError):
                return Outcome(502, error=f"could not start the function's container: {exc}",
                               call_status="error", mode="cold")
            raise
        ended = CANCELLED
        try:
            try:
                outcome, ended = await self._run_cold(container, inv)
            except DriverError as exc:  # the engine went away under the call (killed, restarted)
                ended = CRASH
                return Outcome(502, error=f"the function's container was lost: {exc}",
                               call_status="error", container_id=container.id, mode="cold")
            outcome.queue_wait = started_at - waited_from
            outcome.cold_run = trio.current_time() - started_at
            return outcome
        finally:
            events.container_ended(route, ended)
            # Removal takes tens of milliseconds; the client need not wait for it.
            self.nursery.start_soon(self._remove_cold, container, route.memory, route.app)

    async def _remove_cold(self, container: Container, memory_mb: int, app: str) -> None:
        try:
            await container.kill()
        finally:
            self.pools.capacity.give(memory_mb, app)

    async def _reserve_cold(self, route: Route) -> bool:
        if self.pools.reserve(route.memory, app=route.app):
            return True
        granted = trio.Event()
        waiter = self.pools.capacity.wait(route.memory, granted.set, route.app)
        with trio.move_on_after(route.queue_timeout):
            await granted.wait()
        if not granted.is_set():
            self.pools.capacity.cancel(waiter)
            return False
        return True

    async def _run_cold(self, container: Container, inv: Invocation) -> tuple[Outcome, str]:
        """How the call went, and how its container ended (pool.DEATHS or EXITED)."""
        route = inv.route
        stdout, stderr = bytearray(), CallLog()
        too_big = False
        self.nursery.start_soon(container.watch_exit, route.timeout + 10)

        async def feed_stdin() -> None:
            try:
                if inv.body:
                    await container.send_all(inv.body)
            except ContainerGone:
                pass  # it exited without reading its input; its exit status tells the story
            await container.close_stdin()

        with trio.move_on_after(route.timeout) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed_stdin)
                while (output := await container.receive_some()) is not None:
                    out, err = output
                    stdout += out
                    stderr.write(err)
                    if len(stdout) > self.limits.max_response_size:
                        too_big = True
                        break
                nursery.cancel_scope.cancel()
            status = None if too_big else await container.exit_status(timeout=route.timeout)
        log = stderr.value()
        if scope.cancelled_caught:
            return Outcome(504, error=f"function did not finish within its timeout of {route.timeout:g} s",
                           call_status="timeout", log=log, container_id=container.id,
                           mode="cold"), TIMEOUT
        if too_big:
            return Outcome(502, error=f"function wrote more than {self.limits.max_response_size} bytes",
                           call_status="error", log=log, container_id=container.id,
                           mode="cold"), PROTOCOL_ERROR
        assert status is not None
        if status.code != 0:
            return Outcome(502, error=f"function failed: {status.describe()}",
                           call_status="error", log=log, container_id=container.id,
                           mode="cold"), exit_cause(status)
        return Outcome(200, headers=_with_route_headers([], route), body=bytes(stdout), log=log,
                       container_id=container.id, mode="cold"), EXITED


def _brief_kind(error_type: str) -> str:
    """An error's class name as a client may see it: one short line of printable text."""
    kind = "".join(c for c in error_type if c.isprintable()).strip()
    return (kind[:77] + "...") if len(kind) > 80 else (kind or "an error")


def _with_route_headers(headers: list[tuple[str, str]], route: Route) -> list[tuple[str, str]]:
    """The route's static headers, where the function did not set the same header itself."""
    if not route.headers:
        return headers
    have = {k.lower() for k, _ in headers}
    return headers + [(k, v) for k, values in route.headers.items() if k.lower() not in have
                      for v in values]
