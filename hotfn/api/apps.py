"""Apps: ``/v1/apps`` and ``/v1/apps/{app}``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .. import models
from ..access import Access, AuthError
from .messages import ApiRequest, ApiResponse, _body, _flag, _page, _query, json_response, needs

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
    quotas = sorted(set(body) & {"max_containers", "max_memory_mb", "rate_limit", "burst",
                                 "max_routes", "max_queued_calls", "max_queued_mb"})
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

