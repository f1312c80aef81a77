"""The API: ``Api`` owns what the handlers use (the store, the pools, the invoker, the route table,
the dispatcher) and its background tasks, and ``handle`` dispatches each request by the table
``ROUTES`` to its handler, the one place where tokens are checked and errors become answers.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from dataclasses import dataclass

import trio

from ..access import Access, Authenticator, AuthError, ImagePolicy, RateLimiter
from ..async_calls import Dispatcher
from ..cluster import RouteSync, RouteTable
from ..drivers import Driver
from ..invoke import CallRecorder, Invoker
from ..models import App, Route, ValidationError
from ..observe import Telemetry
from ..pool import PoolManager
from ..store import Conflict, NotFound, Store, StoreUnavailable, StoreUnreachable
from . import browsers
from .apps import create_app, delete_app, get_app, list_apps, patch_app
from .calls import get_call, get_log, list_calls
from .invocation import invoke
from .messages import ApiError, ApiRequest, ApiResponse, Handler, error_response
from .nodes import list_nodes
from .operator import health, health_detail, metrics, series, stats, ui_file, ui_redirect, version
from .routes import create_route, delete_route, get_route, list_routes, patch_route
from .sessions import create_session, delete_session
from .tokens import create_token, delete_token, list_tokens

log = logging.getLogger("hotfn.api")  # named as before the move: operators filter on it


@dataclass
class ApiConfig:
    domain: str | None = None  # invocations also by Host: {app}.{domain}
    log_retention: float = 24 * 3600.0
    route_refresh_interval: float = 1.0  # polling; PostgreSQL's NOTIFY wakes it at once
    node_id: str = "hotfn"  # recorded on the calls this node runs
    call_records: str = "async"  # "sync": a call's record is committed before its answer is sent
    async_retry_delay: float = 1.0  # seconds before an async call's second attempt; doubling
    async_lease_margin: float = 30.0  # an async call's claim outlasts its longest run by this
    async_engine_wait: float = 600.0  # async calls wait this long for an engine that is down
    record_spill: str | None = None  # records the store cannot take by shutdown wait here
    # Browsers (hotfn.api.browsers): Host names a server without auth answers besides addresses
    # and local names, origins besides its own whose pages may use the API, and how long the
    # dashboard's session lasts.
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    session_lifetime: float = 3600.0
    # The async queue's bounds (--max-queued-*): per app unless the app sets its own, and per
    # route (0: none of its own); bytes are of the calls' requests.
    max_queued_calls: int = 0
    max_queued_bytes: int = 0
    max_route_queued_calls: int = 0
    max_route_queued_bytes: int = 0
    max_routes: int = 0  # --max-routes: routes per app unless the app sets its own (0: no bound)


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
        self.recorder = CallRecorder(store, spill_path=config.record_spill)
        # Runs the async calls; its owner (the server) starts it in the nursery of calls.
        self.dispatcher = Dispatcher(store, invoker, self.recorder, find_route=self.find_route,
                                     node_id=config.node_id, retry_delay=config.async_retry_delay,
                                     lease_margin=config.async_lease_margin,
                                     engine_wait=config.async_engine_wait,
                                     telemetry=self.telemetry)
        self.routes = RouteSync(store, pools, servable=self._may_run,
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

    def _may_run(self, route: Route) -> bool:
        """Warm containers only for an image the route's app may run: app A's secrets never
        sit in a container of app B's image that A's calls would refuse."""
        return self.images.refusal(route.image, self.table.apps.get(route.app)) is None

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
            except StoreUnreachable:
                pass  # said once, by the store's health; the routes as they are go on
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
            refusal = browsers.host_refusal(request, auth_enabled=self.auth.enabled,
                                            domain=self.config.domain,
                                            allowed_hosts=self.config.allowed_hosts)
            if refusal is not None:
                return refusal
            host_app = self._app_from_host(request)
            if host_app is not None and not path.startswith(("/v1/", "/health")):
                return browsers.sandboxed(await invoke(self, browsers.without_session(request),
                                                       host_app, path, query), own_origin=False)
            if path.startswith("/r/"):
                app, _, rest = path[3:].partition("/")
                return browsers.sandboxed(await invoke(self, browsers.without_session(request),
                                                       urllib.parse.unquote(app), "/" + rest,
                                                       query), own_origin=True)
            refusal = browsers.origin_refusal(request, on_app_host=host_app is not None,
                                              allowed_origins=self.config.allowed_origins)
            if refusal is not None:
                return refusal
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
                refusal = browsers.content_type_refusal(request)
                if refusal is not None:
                    return refusal
                # The one seam where the API's tokens are checked (hotfn.access); an endpoint not
                # marked with its Access is for admins only. The dashboard's session cookie
                # counts on the server's own host only, for reading (hotfn.api.browsers).
                credentials = (request.headers if host_app is not None
                               else browsers.session_credentials(request, path))
                request.principal = await self.auth.authorize(
                    credentials, getattr(handler, "access", Access.ADMIN),
                    match.groupdict().get("app"))
                response = await handler(self, request, match)
                if handler is not ui_file:  # (the dashboard's page has a policy of its own)
                    response.headers.extend(browsers.API_HEADERS)
                return response
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



_APP = r"(?P<app>[^/]+)"
ROUTES: list[tuple[re.Pattern, dict[str, Handler]]] = [
    (re.compile(r"/health"), {"GET": health}),
    (re.compile(r"/health/detail"), {"GET": health_detail}),
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
    (re.compile(r"/v1/sessions/?"), {"POST": create_session, "DELETE": delete_session}),
]

