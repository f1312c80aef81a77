"""API tokens, admins only: ``/v1/tokens`` and ``/v1/tokens/{id}``."""

from __future__ import annotations

import logging
import re
import urllib.parse
from typing import TYPE_CHECKING

from ..models import new_token
from .messages import ApiRequest, ApiResponse, _body, json_response

if TYPE_CHECKING:
    from .core import Api

log = logging.getLogger("hotfn.api")  # named as before the move: operators filter on it

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
    api.auth.tokens_changed()  # this node at once; the others within TOKENS_RECHECK
    log.info("token %s revoked", token_id)
    return json_response(200, {"message": f"token {token_id!r} revoked"})

