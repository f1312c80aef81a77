"""Routes: ``/v1/apps/{app}/routes`` and ``/v1/apps/{app}/routes/{path}``. A route's image is
checked against the image policy and pinned to its image id here.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import models
from ..access import Access
from ..models import Route, ValidationError
from ..store import Conflict, NotFound, QuotaExceeded
from .apps import refuse_shared_images, require_isolation
from .messages import ApiError, ApiRequest, ApiResponse, _body, _page, json_response, needs

if TYPE_CHECKING:
    from .core import Api

log = logging.getLogger("hotfn.api")  # named as before the move: operators filter on it


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
    the same tag is a new revision, so warm containers of the old build are retired. The image
    must be one the server and the route's app may run (an app not yet made: the default)."""
    try:
        app = await api.store.get_app(route.app)
    except NotFound:
        app = models.App(route.app)
    refusal = api.images.refusal(route.image, app)
    if refusal is not None:
        raise ApiError(400, f"route.image: {refusal}", field="route.image")
    try:
        image_id = await api.driver.ensure_image(route.image)
    except Exception as exc:  # ImageNotFound, or the engine is down
        raise ApiError(400, f"route.image: {exc}", field="route.image") from None
    await require_isolation(api, route.isolation, "route.isolation")
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
    try:
        await api.store.create_route(route, api.config.max_routes or None)
    except QuotaExceeded as exc:  # (--max-routes, or the app's max_routes)
        raise ApiError(403, str(exc)) from None
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
    await refuse_shared_images(api, name)
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

