"""Function invocation: ``/r/{app}/{path}`` (or a host under ``--domain``). The route is matched,
its auth and its app's rate limit checked, and the call run (sync) or queued (async); a sync
call's bookkeeping runs once its answer is written.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import urllib.parse
from typing import TYPE_CHECKING

from .. import models
from ..invoke import Invocation, Outcome
from ..models import Call
from ..observe import tracecontext
from ..store import CallRequest, QueueBounds, QueueFull, StoreError
from .messages import ApiRequest, ApiResponse, error_response, json_response

if TYPE_CHECKING:
    from .core import Api

log = logging.getLogger("hotfn.api")  # named as before the move: operators filter on it
# Seconds a client told the async queue is full waits: calls leave it as they run, which a
# server cannot foresee; long enough that a retrying client does not add to the load.
QUEUE_FULL_RETRY_AFTER = 5


async def invoke(api: Api, request: ApiRequest, app: str, path: str, query: str) -> ApiResponse:
    found = api.table.match(app, path) if app in api.table.apps else None
    if found is None:
        # A route just created through another node may not have reached this one yet
        # (NOTIFY or polling): on a miss, read the change feed once before saying 404, so
        # that a client that was told "created" is never told "not found" after.
        try:
            await api.reload_routes()
        except StoreError as exc:  # the table as it is answers, as it would have anyway
            log.warning("could not read route changes: %s", exc)
        if app not in api.table.apps:
            return _refused(error_response(404, f"app {app!r} not found"))
        found = api.table.match(app, path)
    if found is None:
        return _refused(error_response(404, f"no route matches {path!r} in app {app!r}"))
    route, params = found
    tenant = api.table.apps[app]  # as matched: the table may be replaced while we wait
    # Before any container work, and no call record: a refused request is not a call.
    # (Not even awaited for a route without auth: a coroutine made and run costs ~1 us.)
    if route.auth != "none":
        await api.auth.check_route(request.headers, app, route.auth, route.jwt_key)
    # The route's image, as stored, read again: a valid reference, allowed by the server and by
    # its app's allowed_images (either may have narrowed since). Decisions are remembered.
    refusal = api.images.refusal(route.image, tenant)
    if refusal is not None:
        return error_response(403, refusal)
    wait = api.rates.acquire(tenant)
    if wait is not None:
        return _refused(error_response(429, f"app {app!r} is over its rate limit of "
                                        f"{tenant.rate_limit:g} calls/s",
                                        [("retry-after", str(max(1, math.ceil(wait))))]))
    host = request.header("host") or "localhost"
    call_id = models.new_call_id()
    if route.auth == "token":
        # The token was for hotfn: the function (and an async call's stored request) never
        # sees it. A JWT goes on, as with IronFunctions: its claims are the function's.
        headers = [h for h in request.headers if h[0] != "authorization"]
    else:
        # Nor, on any route, a token of hotfn's that a client sent along (a CLI or a browser
        # that adds it to every request): the function would hold the caller's powers. (Most
        # calls carry no Authorization at all: no coroutine for them.)
        headers = request.headers
        if any(name == "authorization" for name, _ in headers):
            headers = await api.auth.without_api_tokens(headers)
    traceparent, headers = tracecontext.resolve(headers, call_id)
    inv = Invocation(
        call_id=call_id, route=route, method=request.method,
        url=f"{request.scheme}://{host}{request.target}", path=path,
        query=tuple(urllib.parse.parse_qsl(query, keep_blank_values=True)) if query else (),
        headers=headers, body=request.body, params=params,
    )
    call = Call(id=call_id, app=app, route=route.path, mode="hot" if route.is_hot else "cold",
                type=route.type, created_at=time.time(), traceparent=traceparent)
    if route.type == "async":
        # 202 only once the store has it: from then on no crash can lose the call. Within the
        # queue's bounds only, or a client could fill the disk with queued requests.
        try:
            await api.store.enqueue_call(call, CallRequest(
                method=inv.method, url=inv.url, path=inv.path, query=inv.query,
                headers=inv.headers, body=inv.body, params=inv.params), _queue_bounds(api, tenant))
        except QueueFull as exc:
            return _refused(error_response(429, str(exc),
                                           [("retry-after", str(QUEUE_FULL_RETRY_AFTER))]))
        api.dispatcher.wake()
        return json_response(202, {"call_id": call_id}, [("hotfn-call-id", call_id)])
    outcome = await _run(api, inv, call)
    response = _outcome_response(outcome, call_id)
    if api.config.call_records == "sync":
        api.telemetry.call_done(call, outcome, inv.method, outcome.mode)
        await api.recorder.record_committed(call, outcome.log)
    else:
        # The call's bookkeeping (metrics, chart, access log, its record in the writer's
        # buffer) is done once its answer is written: the client does not wait for it
        # (~15 us of a hot call). Its times were taken above, so they are the same.
        response.after = functools.partial(_call_done, api, call, outcome, inv.method)
    return response


def _refused(response: ApiResponse) -> ApiResponse:
    response.refused = True  # (the HTTP layer reads this connection's next request last)
    return response


def _queue_bounds(api: Api, app: models.App) -> QueueBounds:
    """The async queue's bounds for ``app`` and its routes: the app's own, else the server's."""
    config = api.config
    calls = app.max_queued_calls or config.max_queued_calls
    size = app.max_queued_mb << 20 if app.max_queued_mb else config.max_queued_bytes
    return QueueBounds(app_calls=_bound(calls), app_bytes=_bound(size),
                       route_calls=_bound(config.max_route_queued_calls),
                       route_bytes=_bound(config.max_route_queued_bytes))


def _bound(limit: int) -> int | None:
    return limit if limit > 0 else None  # (a flag's 0, or below: no bound)


def _call_done(api: Api, call: Call, outcome: Outcome, method: str) -> None:
    api.telemetry.call_done(call, outcome, method, outcome.mode)
    api.recorder.record(call, outcome.log)


async def _run(api: Api, inv: Invocation, call: Call) -> Outcome:
    call.status = "running"
    call.started_at = time.time()
    call.attempts = 1
    call.node_id = api.config.node_id
    try:
        outcome = await api.invoker.invoke(inv)
    except BaseException:
        call.status, call.error, call.completed_at = "error", "cancelled", time.time()
        api.recorder.record(call, b"")
        raise
    call.completed_at = time.time()
    call.status = outcome.call_status
    call.http_status = outcome.status
    call.error = outcome.error
    call.container_id = outcome.container_id
    return outcome


def _outcome_response(outcome: Outcome, call_id: str) -> ApiResponse:
    extra = [("hotfn-call-id", call_id)]
    if outcome.error is not None:
        if outcome.retry_after is not None:
            extra.append(("retry-after", str(outcome.retry_after)))
        return error_response(outcome.status, outcome.public_error or outcome.error, extra,
                              call_id=call_id)
    return ApiResponse(outcome.status, outcome.headers + extra, outcome.body)

