"""Apps: ``/v1/apps`` and ``/v1/apps/{app}``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .. import models
from ..access import Access, AuthError
from .messages import (ApiError, ApiRequest, ApiResponse, _body, _flag, _page, _query,
                       json_response, needs)

if TYPE_CHECKING:
    from .core import Api


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


async def _isolation_available(api: Api, app: models.App) -> None:
    """An app put in gVisor on a server without it would fail every call: refused up front."""
    try:
        available = await api.driver.isolation_available(app.isolation)
    except Exception as exc:  # the engine is down
        raise ApiError(400, f"app.isolation: {exc}", field="app.isolation") from None
    if not available:
        raise ApiError(400, f"app.isolation: {app.isolation!r} is not available on this server "
                            "(gVisor's runsc is not registered with the Docker engine: run "
                            "scripts/ensure-sandbox)", field="app.isolation")


async def create_app(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    app = models.new_app(_body(request, "app"))
    await _isolation_available(api, app)
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
    quotas = sorted(set(body) & {"max_containers", "max_memory_mb", "rate_limit", "burst",
                                 "isolation"})
    if quotas and request.principal.scope != "admin":
        # A tenant does not set its own share of the server, nor the walls it runs behind.
        raise AuthError(403, f"only an admin token may change app.{quotas[0]}")
    app = models.patch_app(await api.store.get_app(match["app"]), body)
    await _isolation_available(api, app)
    await api.store.update_app(app)
    await api.reload_routes()
    return json_response(200, {"app": app.to_json()})


async def delete_app(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    await api.store.delete_app(match["app"], cascade=_flag(_query(request).get("cascade")))
    await api.reload_routes()
    return json_response(200, {"message": f"app {match['app']!r} deleted"})

