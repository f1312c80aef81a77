"""The nodes sharing this store: ``/v1/nodes``."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from ..cluster import STALE_AFTER
from .messages import ApiRequest, ApiResponse, json_response

if TYPE_CHECKING:
    from .core import Api


async def list_nodes(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    """The nodes sharing this store, as they registered themselves (alive: a recent heartbeat)."""
    now = time.time()
    return json_response(200, {"nodes": [n.to_json(now, STALE_AFTER)
                                         for n in await api.store.list_nodes()]})

