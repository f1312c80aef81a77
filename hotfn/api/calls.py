"""Call records and logs: ``/v1/apps/{app}/calls``, ``.../calls/{id}``, ``.../calls/{id}/log``."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from .. import models
from ..access import Access
from ..store import StoreError
from .messages import ApiError, ApiRequest, ApiResponse, _query, json_response, needs

if TYPE_CHECKING:
    from .core import Api

log = logging.getLogger("hotfn.api")  # named as before the move: operators filter on it


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

