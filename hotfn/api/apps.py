"""Apps: ``/v1/apps`` and ``/v1/apps/{app}``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .. import models
from ..access import Access, AuthError
from ..store import Conflict, NotFound
from .messages import (ApiError, ApiRequest, ApiResponse, _body, _flag, _page, _query,
                       json_response, needs)

if TYPE_CHECKING:
    from .core import Api

# An app's share of the server and the images it may run: set by an unrestricted admin only.
ADMIN_FIELDS = frozenset({"max_containers", "max_memory_mb", "rate_limit", "burst", "max_routes",
                          "max_queued_calls", "max_queued_mb", "allowed_images", "isolation"})


@needs(Access.ANY)
async def list_apps(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    # Each token sees the apps it covers, and an invoke token only their names: GET
    # /v1/apps/{app} shows it nothing more.
    who = request.principal
    show = (lambda a: a.to_json()) if who.scope != "invoke" else _name_only
    page = _page(request)
    if page is None:
        apps = [a for a in await api.store.list_apps() if who.covers(a.name)]
        return json_response(200, {"apps": [show(a) for a in apps]})
    cursor, per_page = page
    if who.apps is None:
        apps = await api.store.list_apps(after=cursor, limit=per_page)
        more = len(apps) == per_page
    else:
        # Paged over the token's own apps: a cursor from the store's page would name an app the
        # token does not cover.
        apps = []
        names = sorted(n for n in who.apps if cursor is None or n > cursor)
        for name in names:
            try:
                apps.append(await api.store.get_app(name))
            except NotFound:
                continue
            if len(apps) == per_page:
                break
        more = len(apps) == per_page and names[-1] != apps[-1].name
    return json_response(200, {
        "apps": [show(a) for a in apps],
        "next_cursor": apps[-1].name if more else None,
    })


async def require_isolation(api: Api, isolation: str, field: str) -> None:
    """An app or route put in gVisor on a server without it would fail every call: refused up
    front, naming ``field``."""
    try:
        available = await api.driver.isolation_available(isolation)
    except Exception as exc:  # the engine is down
        raise ApiError(400, f"{field}: {exc}", field=field) from None
    if not available:
        raise ApiError(400, f"{field}: {isolation!r} is not available on this server "
                            "(gVisor's runsc is not registered with the Docker engine: run "
                            "scripts/ensure-sandbox)", field=field)


async def refuse_shared_images(api: Api, name: str) -> None:
    """Conflict if a new app ``name`` would own the images of an app already there: hotfn names
    an app's images by a lower-case form of its name (``my_app`` and ``My-App`` are both
    hotfn-fn/my-app/...), and each app may run its own."""
    scope = models.app_image_scope(name)
    for other in await api.store.list_apps():
        if other.name != name and models.app_image_scope(other.name) == scope:
            raise Conflict(f"app {name!r} would share its images (hotfn-fn/{scope}/...) with app "
                           f"{other.name!r}; choose a name that differs in more than case and "
                           f"punctuation")


def _name_only(app: models.App) -> dict:
    return {"name": app.name, "created_at": app.created_at, "updated_at": app.updated_at}


async def create_app(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    app = models.new_app(_body(request, "app"))
    await require_isolation(api, app.isolation, "app.isolation")
    await refuse_shared_images(api, app.name)
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
    old = await api.store.get_app(match["app"])
    app = models.patch_app(old, body)
    changed = sorted(f for f in ADMIN_FIELDS if getattr(app, f) != getattr(old, f))
    if changed and not request.principal.is_admin:
        # A tenant does not set its own share of the server, nor which images it may run: not
        # even an admin token limited to some apps (it would raise its own apps' limits). An
        # app sent back as it was read changes none of them.
        raise AuthError(403, f"only an admin token for every app may change app.{changed[0]}")
    await require_isolation(api, app.isolation, "app.isolation")
    await api.store.update_app(app)
    await api.reload_routes()
    return json_response(200, {"app": app.to_json()})


async def delete_app(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    await api.store.delete_app(match["app"], cascade=_flag(_query(request).get("cascade")))
    await api.reload_routes()
    return json_response(200, {"message": f"app {match['app']!r} deleted"})

