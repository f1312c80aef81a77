"""The HTTP API's meaning: admin endpoints for apps, routes and calls, and function invocation.

This layer sees requests and responses as plain values (no sockets, no h11). The HTTP layer
(hotfn.http) turns bytes into ApiRequest and ApiResponse into bytes.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable

import trio

from .. import __version__, models, ui
from ..observe import timeseries, tracecontext
from ..access import Access, Authenticator, AuthError
from ..drivers import Driver
from ..invoke import Invocation, Invoker, Outcome
from ..models import App, Call, Route, ValidationError
from ..invoke import CallRecorder
from ..async_calls import Dispatcher
from ..access import ImagePolicy
from ..cluster import STALE_AFTER
from ..pool import PoolManager
from ..cluster import RouteSync, RouteTable
from ..store import CallRequest, Conflict, NotFound, Store, StoreError, StoreUnavailable
from ..observe import Telemetry
from ..access import RateLimiter
from ..models import new_token

log = logging.getLogger("hotfn.api")  # logger names stay as they were: operators filter on them

Headers = list[tuple[str, str]]


@dataclass
class ApiRequest:
    method: str
    target: str  # path and query as sent: /r/app/hello?x=1
    headers: Headers  # names lower case, in order, repeats kept
    body: bytes = b""
    scheme: str = "http"
    principal: Any = None  # who it acts as (hotfn.auth.Principal), once authorized

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass
class ApiResponse:
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    # Called once the response is written, or could not be (the client left): work the client
    # need not wait for. The HTTP layer calls it exactly once.
    after: Callable[[], None] | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def json_response(status: int, payload: Any, headers: Headers | None = None) -> ApiResponse:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return ApiResponse(status, [("content-type", "application/json")] + (headers or []), body)


def error_response(status: int, message: str, headers: Headers | None = None, **extra: Any) -> ApiResponse:
    return json_response(status, {"error": {"message": message, **extra}}, headers)


# -- the API ------------------------------------------------------------------------------------


@dataclass
class ApiConfig:
    domain: str | None = None  # invocations also by Host: {app}.{domain}
    log_retention: float = 24 * 3600.0
    route_refresh_interval: float = 1.0  # polling; PostgreSQL's NOTIFY wakes it at once
    node_id: str = "hotfn"  # recorded on the calls this node runs
    call_records: str = "async"  # "sync": a call's record is committed before its answer is sent
    async_retry_delay: float = 1.0  # seconds before an async call's second attempt; doubling
    async_lease_margin: float = 30.0  # an async call's claim outlasts its longest run by this


Handler = Callable[["Api", ApiRequest, re.Match], Awaitable[ApiResponse]]


class Api:
    def __init__(self, store: Store, driver: Driver, pools: PoolManager, invoker: Invoker,
                 config: ApiConfig, *, auth: Authenticator | None = None,
                 images: ImagePolicy | None = None, telemetry: Telemetry | None = None) -> None:
        self.store = store
        self.telemetry = telemetry or Telemetry()
        self.auth = auth or Authenticator(store, admin_token=None, enabled=False)
        self.images = images or ImagePolicy()
        self.rates = RateLimiter()
        self.driver = driver
        self.pools = pools
        self.invoker = invoker
        self.config = config
        self.recorder = CallRecorder(store)
        # Runs the async calls; its owner (the server) starts it in the nursery of calls.
        self.dispatcher = Dispatcher(store, invoker, self.recorder, find_route=self.find_route,
                                     node_id=config.node_id, retry_delay=config.async_retry_delay,
                                     lease_margin=config.async_lease_margin,
                                     telemetry=self.telemetry)
        self.routes = RouteSync(store, pools, servable=lambda r: self.images.allows(r.image),
                                on_apps_changed=self._apps_changed,
                                on_routes_changed=self.telemetry.routes_changed)
        # Set when this node begins to stop: /health answers 503 so that balancers go elsewhere.
        self.draining = False

    # -- lifecycle --

    @property
    def table(self) -> RouteTable:
        return self.routes.table

    async def reload_routes(self) -> None:
        """Apply the app and route changes made since the last time (by any node)."""
        await self.routes.refresh()

    def find_route(self, app: str, path: str) -> Route | None:
        """The route whose path (pattern) is ``path``, as it is now (config merged)."""
        return self.routes.table.get(app, path)

    def _apps_changed(self, apps: dict[str, App]) -> None:
        """Each app's own limits, for the pools and the rate limiter (after any app changed)."""
        self.pools.set_app_limits({a.name: (a.max_containers, a.max_memory_mb)
                                   for a in apps.values()})
        self.rates.forget_others({a.name for a in apps.values() if a.rate_limit})

    async def run_background(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Route refresh (other nodes may change the store), call flushing, log purging."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.recorder.run)
            nursery.start_soon(self._refresh_routes)
            nursery.start_soon(self._purge_old_calls)
            task_status.started()

    async def _refresh_routes(self) -> None:
        while True:
            # Early when the store can tell (PostgreSQL notifies every node of a change).
            try:
                await self.store.wait_for_changes(self.config.route_refresh_interval)
            except Exception:
                log.exception("could not wait for route changes")
                await trio.sleep(self.config.route_refresh_interval)
            try:
                await self.reload_routes()
            except Exception:
                log.exception("could not refresh routes")

    async def _purge_old_calls(self) -> None:
        while True:
            try:
                removed = await self.store.purge(time.time() - self.config.log_retention)
                if removed:
                    log.info("purged %d call records older than %gs", removed, self.config.log_retention)
            except Exception:
                log.exception("could not purge old call records")
            await trio.sleep(min(600.0, max(1.0, self.config.log_retention / 10)))

    # -- dispatch --

    async def handle(self, request: ApiRequest) -> ApiResponse:
        path, _, query = request.target.partition("?")
        try:
            host_app = self._app_from_host(request)
            if host_app is not None and not path.startswith(("/v1/", "/health")):
                return await self.invoke(request, host_app, path, query)
            if path.startswith("/r/"):
                app, _, rest = path[3:].partition("/")
                return await self.invoke(request, urllib.parse.unquote(app), "/" + rest, query)
            for pattern, methods in ROUTES:
                match = pattern.fullmatch(path)
                if match is None:
                    continue
                handler = methods.get(request.method) or (
                    methods.get("GET") if request.method == "HEAD" else None
                )
                if handler is None:
                    allowed = ", ".join(sorted(methods))
                    return error_response(405, f"{request.method} is not allowed on {path}",
                                          [("allow", allowed)])
                # The one seam where the API's tokens are checked (hotfn.auth); an endpoint not
                # marked with its Access is for admins only.
                request.principal = await self.auth.authorize(
                    request.headers, getattr(handler, "access", Access.ADMIN),
                    match.groupdict().get("app"))
                return await handler(self, request, match)
            return error_response(404, f"no such endpoint: {path}")
        except AuthError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except ApiError as exc:
            return error_response(exc.status, exc.message, **exc.extra)
        except ValidationError as exc:
            return error_response(400, exc.message, field=exc.field)
        except NotFound as exc:
            return error_response(404, str(exc))
        except Conflict as exc:
            return error_response(409, str(exc))
        except StoreUnavailable as exc:
            # Nothing was changed; the client may try again once the operator has made room.
            return error_response(503, str(exc), [("retry-after", "5")])

    def _app_from_host(self, request: ApiRequest) -> str | None:
        domain = self.config.domain
        if not domain:
            return None
        host = (request.header("host") or "").split(":")[0].lower()
        if host.endswith("." + domain):
            return host[: -len(domain) - 1] or None
        return None

    # -- invocation --

    async def invoke(self, request: ApiRequest, app: str, path: str, query: str) -> ApiResponse:
        found = self.table.match(app, path) if app in self.table.apps else None
        if found is None:
            # A route just created through another node may not have reached this one yet
            # (NOTIFY or polling): on a miss, read the change feed once before saying 404, so
            # that a client that was told "created" is never told "not found" after.
            try:
                await self.reload_routes()
            except StoreError as exc:  # the table as it is answers, as it would have anyway
                log.warning("could not read route changes: %s", exc)
            if app not in self.table.apps:
                return error_response(404, f"app {app!r} not found")
            found = self.table.match(app, path)
        if found is None:
            return error_response(404, f"no route matches {path!r} in app {app!r}")
        route, params = found
        tenant = self.table.apps[app]  # as matched: the table may be replaced while we wait
        # Before any container work, and no call record: a refused request is not a call.
        # (Not even awaited for a route without auth: a coroutine made and run costs ~1 us.)
        if route.auth != "none":
            await self.auth.check_route(request.headers, app, route.auth, route.jwt_key)
        wait = self.rates.acquire(tenant)
        if wait is not None:
            return error_response(429, f"app {app!r} is over its rate limit of "
                                  f"{tenant.rate_limit:g} calls/s",
                                  [("retry-after", str(max(1, math.ceil(wait))))])
        host = request.header("host") or "localhost"
        call_id = models.new_call_id()
        headers = request.headers
        if route.auth == "token":
            # The token was for hotfn: the function (and an async call's stored request) never
            # sees it. A JWT goes on, as with IronFunctions: its claims are the function's.
            headers = [h for h in headers if h[0] != "authorization"]
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
            # 202 only once the store has it: from then on no crash can lose the call.
            await self.store.enqueue_call(call, CallRequest(
                method=inv.method, url=inv.url, path=inv.path, query=inv.query,
                headers=inv.headers, body=inv.body, params=inv.params))
            self.dispatcher.wake()
            return json_response(202, {"call_id": call_id}, [("hotfn-call-id", call_id)])
        outcome = await self._run(inv, call)
        response = self._outcome_response(outcome, call_id)
        if self.config.call_records == "sync":
            self.telemetry.call_done(call, outcome, inv.method, outcome.mode)
            await self.recorder.record_committed(call, outcome.log)
        else:
            # The call's bookkeeping (metrics, chart, access log, its record in the writer's
            # buffer) is done once its answer is written: the client does not wait for it
            # (~15 us of a hot call). Its times were taken above, so they are the same.
            response.after = functools.partial(self._call_done, call, outcome, inv.method)
        return response

    def _call_done(self, call: Call, outcome: Outcome, method: str) -> None:
        self.telemetry.call_done(call, outcome, method, outcome.mode)
        self.recorder.record(call, outcome.log)

    async def _run(self, inv: Invocation, call: Call) -> Outcome:
        call.status = "running"
        call.started_at = time.time()
        call.attempts = 1
        call.node_id = self.config.node_id
        try:
            outcome = await self.invoker.invoke(inv)
        except BaseException:
            call.status, call.error, call.completed_at = "error", "cancelled", time.time()
            self.recorder.record(call, b"")
            raise
        call.completed_at = time.time()
        call.status = outcome.call_status
        call.http_status = outcome.status
        call.error = outcome.error
        call.container_id = outcome.container_id
        return outcome

    def _outcome_response(self, outcome: Outcome, call_id: str) -> ApiResponse:
        extra = [("hotfn-call-id", call_id)]
        if outcome.error is not None:
            if outcome.retry_after is not None:
                extra.append(("retry-after", str(outcome.retry_after)))
            return error_response(outcome.status, outcome.public_error or outcome.error, extra,
                                  call_id=call_id)
        return ApiResponse(outcome.status, outcome.headers + extra, outcome.body)


def _body(request: ApiRequest, key: str) -> dict[str, Any]:
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get(key), dict):
        raise ApiError(400, f'body must be a JSON object {{"{key}": {{...}}}}')
    return payload[key]


def _query(request: ApiRequest) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.target.partition("?")[2]))


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


# -- admin handlers -------------------------------------------------------------------------------


def needs(access: str) -> Callable[[Handler], Handler]:
    """Mark a handler with what its request's token must allow (hotfn.auth.Access)."""
    def mark(handler: Handler) -> Handler:
        handler.access = access  # type: ignore[attr-defined]
        return handler
    return mark


@needs(Access.OPEN)
async def health(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    """200 when this node can serve; 503 "degraded" with the reasons when the engine or the
    store fails, so that a load balancer sends its traffic elsewhere."""
    if api.draining:
        return json_response(503, {"status": "draining", "problems": ["this node is stopping"]},
                             [("retry-after", "1")])
    problems = []
    docker_up = await api.driver.ping()
    if not docker_up:
        problems.append("the container engine does not answer")
    store = "ok"
    try:
        await api.store.check()
    except StoreError as exc:
        store = "failing"
        problems.append(str(exc))
    return json_response(503 if problems else 200, {
        "status": "degraded" if problems else "ok",
        "docker": "up" if docker_up else "down",
        "store": store,
        "problems": problems,
        # Open to anyone: with auth on, it does not name apps and routes.
        **({} if api.auth.enabled else {"pools": api.pools.stats()}),
    })


def _page(request: ApiRequest) -> tuple[str | None, int] | None:
    """(cursor, per_page) when the client asks for a page (?cursor= or ?per_page=); None: it
    wants the whole list, as before paging existed."""
    q = dict(urllib.parse.parse_qsl(request.target.partition("?")[2], keep_blank_values=True))
    if "cursor" not in q and "per_page" not in q:
        return None
    try:
        per_page = int(q.get("per_page", "100"))
    except ValueError:
        raise ApiError(400, "per_page must be an integer from 1 to 1000") from None
    if not 1 <= per_page <= 1000:
        raise ApiError(400, "per_page must be an integer from 1 to 1000")
    return q.get("cursor") or None, per_page


@needs(Access.ANY)
async def list_apps(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    # Each token sees the apps it covers; a page of them may hold fewer than per_page.
    page = _page(request)
    if page is None:
        apps = [a for a in await api.store.list_apps() if request.principal.covers(a.name)]
        return json_response(200, {"apps": [a.to_json() for a in apps]})
    cursor, per_page = page
    apps = await api.store.list_apps(after=cursor, limit=per_page)
    return json_response(200, {
        "apps": [a.to_json() for a in apps if request.principal.covers(a.name)],
        "next_cursor": apps[-1].name if len(apps) == per_page else None,
    })


async def create_app(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    app = models.new_app(_body(request, "app"))
    await api.store.create_app(app)
    await api.reload_routes()
    # 200, not 201: IronFunctions' clients treat any other status as an error.
    return json_response(200, {"app": app.to_json()})


@needs(Access.READ)
async def get_app(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    return json_response(200, {"app": (await api.store.get_app(match["app"])).to_json()})


@needs(Access.DEPLOY)
async def patch_app(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    body = _body(request, "app")
    quotas = sorted(set(body) & {"max_containers", "max_memory_mb", "rate_limit", "burst"})
    if quotas and request.principal.scope != "admin":
        # A tenant does not set its own share of the server.
        raise AuthError(403, f"only an admin token may change app.{quotas[0]}")
    app = models.patch_app(await api.store.get_app(match["app"]), body)
    await api.store.update_app(app)
    await api.reload_routes()
    return json_response(200, {"app": app.to_json()})


async def delete_app(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    await api.store.delete_app(match["app"], cascade=_flag(_query(request).get("cascade")))
    await api.reload_routes()
    return json_response(200, {"message": f"app {match['app']!r} deleted"})


@needs(Access.READ)
async def list_routes(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    await api.store.get_app(match["app"])
    page = _page(request)
    if page is None:
        routes = await api.store.list_routes(match["app"])
        return json_response(200, {"routes": [r.to_json() for r in routes]})
    cursor, per_page = page
    routes = await api.store.list_routes(match["app"], after=cursor, limit=per_page)
    return json_response(200, {
        "routes": [r.to_json() for r in routes],
        "next_cursor": routes[-1].path if len(routes) == per_page else None,
    })


async def _with_image_id(api: Api, route: Route) -> Route:
    """The route pinned to the image its name means now (pulled if need be): a rebuild under
    the same tag is a new revision, so warm containers of the old build are retired."""
    if not api.images.allows(route.image):
        raise ApiError(400, f"route.image: {api.images.refusal(route.image)}", field="route.image")
    try:
        image_id = await api.driver.ensure_image(route.image)
    except Exception as exc:  # ImageNotFound, or the engine is down
        raise ApiError(400, f"route.image: {exc}", field="route.image") from None
    try:
        isolated = await api.driver.isolation_available(route.isolation)
    except Exception as exc:  # the engine is down
        raise ApiError(400, f"route.isolation: {exc}", field="route.isolation") from None
    if not isolated:
        raise ApiError(400, f"route.isolation: {route.isolation!r} is not available on this server "
                            "(gVisor's runsc is not registered with the Docker engine: run "
                            "scripts/ensure-sandbox)", field="route.isolation")
    return replace(route, image_id=image_id)


def _within_caps(api: Api, route: Route) -> Route:
    """A route whose one container would not fit this server could never be served: every call
    would wait out its queue_timeout for a 503. Refused up front, naming the cap."""
    cap = api.pools.capacity.max_memory_mb
    if route.memory > cap:
        raise ValidationError("route.memory", f"{route.memory} MiB is more than this server's cap of "
                              f"{cap} MiB for all containers together (hotfn serve --max-memory-mb)")
    return route


@needs(Access.DEPLOY)
async def create_route(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    app = match["app"]
    route = _within_caps(api, models.new_route(app, _body(request, "route")))
    route = await _with_image_id(api, route)
    await _ensure_app(api, request, app)
    await api.store.create_route(route)
    await api.reload_routes()
    # 200, not 201, as IronFunctions answered (its clients depend on it).
    return json_response(200, {"message": "Route successfully created", "route": route.to_json()})


async def _ensure_app(api: Api, request: ApiRequest, name: str) -> None:
    """A route created in an app that does not exist creates the app, as in IronFunctions;
    with auth on, only for a token that may create apps (an admin's)."""
    try:
        await api.store.get_app(name)
        return
    except NotFound:
        if not request.principal.is_admin:
            raise
    app = models.new_app({"name": name})
    try:
        await api.store.create_app(app)
    except Conflict:
        pass  # created meanwhile by another request: what was wanted


def _route_path(match: re.Match) -> str:
    return models.normalize_path("/" + urllib.parse.unquote(match["path"]).lstrip("/"), "path",
                                 lookup=True)


@needs(Access.READ)
async def get_route(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    route = await api.store.get_route(match["app"], _route_path(match))
    return json_response(200, {"route": route.to_json()})


@needs(Access.DEPLOY)
async def patch_route(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    old = await api.store.get_route(match["app"], _route_path(match))
    # Every PATCH looks the image up again: `hotfn deploy` of a rebuilt function keeps its tag.
    route = await _with_image_id(api, _within_caps(api, models.patch_route(old, _body(request, "route"))))
    await api.store.update_route(route)
    await api.reload_routes()
    return json_response(200, {"route": route.to_json()})


@needs(Access.DEPLOY)
async def delete_route(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    path = _route_path(match)
    await api.store.delete_route(match["app"], path)
    await api.reload_routes()
    return json_response(200, {"message": f"route {path!r} deleted"})


async def _flush_for_read(api: Api) -> None:
    """Save buffered records so that a read sees them. A store that cannot write (a full disk)
    still answers reads of what it holds: the records stay buffered for the recorder's retries."""
    try:
        await api.recorder.flush(wait_for_logs=True)
    except StoreError as exc:
        log.warning("reading call records without the newest ones: %s", exc)


@needs(Access.CALLS)
async def list_calls(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    await api.store.get_app(match["app"])
    q = _query(request)
    try:
        limit = int(q.get("limit", "50"))
        since = float(q["from"]) if "from" in q else None
        until = float(q["to"]) if "to" in q else None
    except ValueError:
        raise ApiError(400, "limit must be an integer; from and to are Unix times in seconds") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit must be from 1 to 1000")
    route = models.normalize_path(q["route"], "route") if "route" in q else None
    await _flush_for_read(api)
    calls = await api.store.list_calls(match["app"], route=route, since=since, until=until,
                                       limit=limit, before_id=q.get("cursor"))
    return json_response(200, {
        "calls": [c.to_json() for c in calls],
        "next_cursor": calls[-1].id if len(calls) == limit else None,
    })


@needs(Access.CALLS)
async def get_call(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    await _flush_for_read(api)
    call = await api.store.get_call(match["app"], match["call"])
    return json_response(200, {"call": call.to_json()})


@needs(Access.READ)
async def get_log(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    await _flush_for_read(api)
    data = await api.store.get_log(match["app"], match["call"])
    return ApiResponse(200, [("content-type", "text/plain; charset=utf-8")], data)


async def list_nodes(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    """The nodes sharing this store, as they registered themselves (alive: a recent heartbeat)."""
    now = time.time()
    return json_response(200, {"nodes": [n.to_json(now, STALE_AFTER)
                                         for n in await api.store.list_nodes()]})


async def stats(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    return json_response(200, api.pools.stats())


MAX_SERIES_POINTS = 600


@needs(Access.ANY)
async def series(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    """Per route, this node's calls over the last ``window`` seconds in ``step``-second points:
    calls, rate, errors, p50 and p99 (the dashboard's charts; hotfn.timeseries). Each token
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


# -- tokens (admin only: no marks) --


async def create_token(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    token, secret = new_token(_body(request, "token"))
    await api.store.create_token(token)
    log.info("token %s (%s, scope %s) created", token.id, token.name, token.scope)
    # The secret is in this answer and nowhere else, ever.
    return json_response(201, {"token": {**token.to_json(), "secret": secret}})


async def list_tokens(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    return json_response(200, {"tokens": [t.to_json() for t in await api.store.list_tokens()]})


async def delete_token(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    token_id = urllib.parse.unquote(match["token"])
    await api.store.delete_token(token_id)
    log.info("token %s revoked", token_id)
    return json_response(200, {"message": f"token {token_id!r} revoked"})


_APP = r"(?P<app>[^/]+)"
ROUTES: list[tuple[re.Pattern, dict[str, Handler]]] = [
    (re.compile(r"/health"), {"GET": health}),
    (re.compile(r"/version"), {"GET": version}),
    (re.compile(r"/v1/stats"), {"GET": stats}),
    (re.compile(r"/v1/nodes/?"), {"GET": list_nodes}),
    (re.compile(r"/v1/version"), {"GET": version}),
    (re.compile(r"/v1/stats/series"), {"GET": series}),
    (re.compile(r"/metrics"), {"GET": metrics}),
    (re.compile(r"/ui/(?P<file>[A-Za-z0-9_.-]*)"), {"GET": ui_file}),
    (re.compile(r"/(?:ui)?"), {"GET": ui_redirect}),
    (re.compile(r"/v1/apps/?"), {"GET": list_apps, "POST": create_app}),
    (re.compile(rf"/v1/apps/{_APP}/?"), {"GET": get_app, "PATCH": patch_app, "DELETE": delete_app}),
    (re.compile(rf"/v1/apps/{_APP}/routes/?"), {"GET": list_routes, "POST": create_route}),
    (re.compile(rf"/v1/apps/{_APP}/routes(?P<path>/.+)"),
     {"GET": get_route, "PATCH": patch_route, "DELETE": delete_route}),
    (re.compile(rf"/v1/apps/{_APP}/calls/?"), {"GET": list_calls}),
    (re.compile(rf"/v1/apps/{_APP}/calls/(?P<call>[^/]+)/?"), {"GET": get_call}),
    (re.compile(rf"/v1/apps/{_APP}/calls/(?P<call>[^/]+)/log/?"), {"GET": get_log}),
    (re.compile(r"/v1/tokens/?"), {"GET": list_tokens, "POST": create_token}),
    (re.compile(r"/v1/tokens/(?P<token>[^/]+)/?"), {"DELETE": delete_token}),
]
