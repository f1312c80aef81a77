"""The operator's endpoints: ``/health`` (the balancer's check) and ``/health/detail`` (the
operator's status), ``/v1/stats``, ``/v1/stats/series``, ``/metrics``, the dashboard's files
(``/ui/``) and the version (``/version``, ``/v1/version``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from .. import __version__, models, ui
from ..access import Access
from ..observe import timeseries
from ..store import StoreError
from .messages import (ApiError, ApiRequest, ApiResponse, _query, error_response, json_response,
                       needs)

if TYPE_CHECKING:
    from .core import Api

log = logging.getLogger("hotfn.api")  # named as before the move: operators filter on it


@needs(Access.OPEN)
async def health(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    """The balancer's check: 200 while this node can serve calls, even degraded (a store that
    is down stops the admin API and new routes, not the warm routes this node already knows);
    503 while it stops (draining) or while its engine does not answer. The body says why, as
    /health/detail does. Never waits on the store."""
    serving, body = await _status(api)
    headers = [("retry-after", "1")] if body["status"] == "draining" else []
    return json_response(200 if serving else 503, body, headers)


@needs(Access.OPEN)
async def health_detail(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    """The operator's status: 200 only when all is well; 503 "degraded" with the problems when
    the engine or the store fails, "draining" while the node stops. The store's state is the
    background probe's (hotfn.store.health), so that this answers at once when it is down."""
    _, body = await _status(api)
    headers = [("retry-after", "1")] if body["status"] == "draining" else []
    return json_response(200 if body["status"] == "ok" else 503, body, headers)


async def _status(api: Api) -> tuple[bool, dict]:
    """Whether this node can serve calls, and its detailed status."""
    if api.draining:
        return False, {"status": "draining", "serving": False, "problems": ["this node is stopping"]}
    problems = []
    docker_up = await api.driver.ping()
    if not docker_up:
        problems.append("the container engine does not answer")
    store = api.store.health
    if store.state != "ok":
        problems.append(f"the store is {store.state} since {time.time() - store.since:.0f} s ago: "
                        f"{store.problem}")
    return docker_up, {
        "status": "degraded" if problems else "ok",
        "serving": docker_up,
        "docker": "up" if docker_up else "down",
        "store": store.state,
        "problems": problems,
        # Open to anyone: with auth on, it does not name apps and routes.
        **({} if api.auth.enabled else {"pools": api.pools.stats()}),
    }


async def stats(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    return json_response(200, api.pools.stats())


MAX_SERIES_POINTS = 600


@needs(Access.ANY)
async def series(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    """Per route, this node's calls over the last ``window`` seconds in ``step``-second points:
    calls, rate, errors, p50 and p99 (the dashboard's charts; hotfn.observe.timeseries). Each token
    sees the routes of the apps it covers."""
    q = _query(request)
    try:
        window = int(q.get("window", "300"))
        step = int(q.get("step", "1"))
    except ValueError:
        raise ApiError(400, "window and step must be whole numbers of seconds") from None
    if not 1 <= window <= timeseries.SECONDS:
        raise ApiError(400, f"window must be from 1 to {timeseries.SECONDS} seconds")
    if not 1 <= step <= window or window // step > MAX_SERIES_POINTS:
        raise ApiError(400, f"step must be from 1 to window seconds, and give at most "
                            f"{MAX_SERIES_POINTS} points")
    route = models.normalize_path(q["route"], "route") if "route" in q else None
    now = time.time()
    return json_response(200, {
        "now": now, "window": window, "step": step,
        "routes": api.telemetry.series.snapshot(now, window, step, app=q.get("app"), route=route,
                                                 visible=request.principal.covers),
    })


async def metrics(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    # Unmarked: admins only once auth is on (it names every app and route); Prometheus sends
    # the token (README: Observability).
    exporter = api.telemetry.metrics
    if exporter is None:
        return error_response(404, "metrics are off on this server (--no-metrics)")
    try:
        # The async queue is the store's (all nodes'): asked at scrape time, one query.
        exporter.set_queue(await api.store.queue_stats(), time.time())
    except StoreError as exc:
        log.warning("metrics without the async queue's figures: %s", exc)
    body, content_type = exporter.render()
    return ApiResponse(200, [("content-type", content_type)], body)


@needs(Access.OPEN)  # the page's files hold no data; the page asks the API with its token
async def ui_file(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    found = ui.asset(match["file"] or "index.html")
    if found is None:
        return error_response(404, f"no such file: /ui/{match['file']}")
    content_type, data = found
    return ApiResponse(200, [("content-type", content_type), *ui.HEADERS], data)


@needs(Access.OPEN)
async def ui_redirect(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    return ApiResponse(308, [("location", "/ui/")])


@needs(Access.OPEN)
async def version(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    """GET /v1/version, and IronFunctions' GET /version (open, as there and as /health): `fn
    version` shows it as the server's version."""
    return json_response(200, {"version": __version__})

