"""A function run on this machine without a server: `hotfn run`, and the start-up check of
`hotfn deploy`.

The same pool, invoker and Docker driver as the server, for one route held in memory: what
works here works behind the server (the same container limits, the same protocol checks).
"""

from __future__ import annotations

import dataclasses
import os
import time
import urllib.parse

import trio

from .. import models
from ..api import ApiRequest, ApiResponse, error_response
from ..drivers import DriverError
from ..invoke import Invocation, Invoker, Limits, Outcome, container_spec
from ..models import Route
from ..pool import PoolError, PoolManager


class CheckFailed(Exception):
    """The function cannot start (or its dry run failed); the message holds its stderr."""


class LocalRunner:
    """One route's containers on the local engine, owned by an ``async with`` block."""

    def __init__(self, route: Route, *, node_id: str | None = None) -> None:
        self.route = route
        # Under the node id of the shell (HOTFN_NODE_ID) when set, so that its owner finds them.
        base = os.environ.get("HOTFN_NODE_ID") or "hotfn"
        self.limits = Limits(node_id=node_id or f"{base}-local-{os.getpid()}")
        self.pools: PoolManager | None = None
        self.invoker: Invoker | None = None

    async def __aenter__(self) -> "LocalRunner":
        from ..drivers.docker import DockerDriver

        self.driver = DockerDriver.from_env()
        try:
            self.route = dataclasses.replace(self.route,
                                             image_id=await self.driver.ensure_image(self.route.image))
        except DriverError as exc:
            raise CheckFailed(str(exc)) from None
        self._nursery_manager = trio.open_nursery()
        nursery = await self._nursery_manager.__aenter__()
        self.pools = PoolManager(self.driver, nursery,
                                 spec_for=lambda r: container_spec(r, self.limits),
                                 max_containers=4, max_memory_mb=max(1024, 4 * self.route.memory))
        self.invoker = Invoker(self.driver, self.pools, nursery, self.limits)
        return self

    async def __aexit__(self, *exc_info) -> bool | None:
        assert self.pools is not None
        with trio.CancelScope(shield=True):
            await self.pools.close(grace=1.0)
        return await self._nursery_manager.__aexit__(*exc_info)

    async def check(self, *, speaks_hot: bool) -> str:
        """Start the function and see it become ready: a hot container's ready frame (also for a
        cold route whose image is a hotfn runtime: the same shim serves both formats), else a
        dry run (one GET with no body). Returns what was checked; CheckFailed says why not."""
        assert self.pools is not None and self.invoker is not None
        if self.route.is_hot or speaks_hot:
            # A hot route (frames or http) as it is; a cold one of a hotfn runtime as frames.
            hot = self.route if self.route.is_hot else dataclasses.replace(self.route, format="hot")
            pool = self.pools.pool_for(hot)
            try:
                worker = await pool.acquire()
            except PoolError as exc:
                raise CheckFailed(f"the function did not start: {exc}") from None
            pool.release(worker)
            return "started and ready"
        outcome = await self.invoke(ApiRequest("GET", "/", [], b""))
        if outcome.status >= 500 and outcome.error:
            raise CheckFailed(f"the function's dry run failed: {outcome.error}\n"
                              f"{_text(outcome.log)}".rstrip())
        return "dry run answered"

    async def invoke(self, request: ApiRequest) -> Outcome:
        assert self.invoker is not None
        path, _, query = request.target.partition("?")
        host = request.header("host") or "localhost"
        inv = Invocation(
            call_id=models.new_call_id(), route=self.route, method=request.method,
            url=f"http://{host}{request.target}", path=path,
            query=tuple(urllib.parse.parse_qsl(query, keep_blank_values=True)),
            headers=tuple(request.headers), body=request.body,
            params={"rest": path.lstrip("/")},
        )
        outcome = await self.invoker.invoke(inv)
        if not isinstance(outcome.log, bytes):
            # A hot call's log may still be filling for a moment after its answer.
            deadline = time.monotonic() + 0.2
            while not outcome.log.done(trio.current_time()) and time.monotonic() < deadline:
                await trio.sleep(0.01)
        return outcome

    async def handle(self, request: ApiRequest) -> ApiResponse:
        """`hotfn run --port`: every request, whatever its path, goes to the function."""
        outcome = await self.invoke(request)
        log = _text(outcome.log)
        if log:
            os.write(2, log.encode())
        if outcome.error is not None:
            return error_response(outcome.status, outcome.error)
        return ApiResponse(outcome.status, outcome.headers, outcome.body)


def _text(log: object) -> str:
    data = log if isinstance(log, bytes) else log.value()  # type: ignore[attr-defined]
    return data.decode("utf-8", "replace")


async def serve(runner: LocalRunner, host: str, port: int,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    from ..http import HttpConfig, HttpServer

    server = HttpServer(runner.handle, HttpConfig(max_connections=64))
    await server.serve(host, port, task_status=task_status)
