"""The dashboard's session: ``POST /v1/sessions`` takes a token once, in its Authorization
header, and answers with a cookie that stands for it, for reading, for ``session_lifetime``
seconds; ``DELETE /v1/sessions`` ends it.

Why a cookie and not the token in the page: a page's script can read whatever the page keeps
(localStorage, a variable), and a function's page, or a flaw in ours, would run script there.
The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends
it), ``Path=/v1/`` (never sent to a function under ``/r/``), and what it stands for is a token
of the store (so every node behind a balancer knows it, and ``DELETE /v1/tokens/{id}`` revokes
it) with the scope and apps of the token it was made for, expiring with it at the latest.
``hotfn.api.browsers`` takes it for reads only.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from ..access import Access
from ..models import hash_secret, new_token
from ..store import NotFound
from .browsers import SESSION_COOKIE, session_secret
from .messages import ApiError, ApiRequest, ApiResponse, json_response, needs

if TYPE_CHECKING:
    from .core import Api

SESSION_NAME = "dashboard session"


def _cookie(request: ApiRequest, value: str, max_age: int) -> str:
    # Secure when the page is on https (a proxy in front speaks TLS): never sent in clear then.
    secure = "; Secure" if (request.header("origin") or "").lower().startswith("https://") else ""
    return (f"{SESSION_COOKIE}={value}; Path=/v1/; Max-Age={max_age}; HttpOnly; "
            f"SameSite=Strict{secure}")


@needs(Access.ANY)
async def create_session(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    if not api.auth.enabled:
        return json_response(200, {"session": None, "message": "this server has no auth: the "
                                   "dashboard needs no token"})
    who = request.principal
    now = time.time()
    expires_at = now + api.config.session_lifetime
    # Authorized by its Authorization header (a session's cookie does not reach here).
    credentials = (request.header("authorization") or "").strip().partition(" ")[2].strip()
    made_for = await api.store.find_token(hash_secret(credentials))
    if made_for is not None:
        if made_for.name.startswith(SESSION_NAME):
            raise ApiError(403, "a session is made for a token, not for another session")
        if made_for.expires_at is not None:
            expires_at = min(expires_at, made_for.expires_at)
    await _forget_ended_sessions(api, now)
    token, secret = new_token({"name": f"{SESSION_NAME} of {who.token_id}", "scope": who.scope,
                               "apps": list(who.apps) if who.apps is not None else None,
                               "expires_at": expires_at}, now)
    await api.store.create_token(token)
    return json_response(201, {"session": {k: v for k, v in token.to_json().items()
                                           if k in ("id", "scope", "apps", "expires_at")}}, [
        ("set-cookie", _cookie(request, secret, max(1, int(expires_at - now)))),
        ("cache-control", "no-store")])


@needs(Access.OPEN)  # ends the session the cookie names, if any: nothing else
async def delete_session(api: Api, request: ApiRequest, match: re.Match) -> ApiResponse:
    secret = session_secret(request.headers)
    if secret is not None and api.auth.enabled:
        token = await api.store.find_token(hash_secret(secret))
        if token is not None and token.name.startswith(SESSION_NAME):
            await _delete(api, token.id)
    return json_response(200, {"message": "signed out"},
                         [("set-cookie", _cookie(request, "", 0))])


async def _forget_ended_sessions(api: Api, now: float) -> None:
    """Expired sessions are of no use to anyone: gone as the next one begins."""
    for token in await api.store.list_tokens():
        if token.name.startswith(SESSION_NAME) and token.expired(now):
            await _delete(api, token.id)


async def _delete(api: Api, token_id: str) -> None:
    try:
        await api.store.delete_token(token_id)
    except NotFound:
        pass  # another node, or another tab, was first
    api.auth.tokens_changed()  # signed out on this node at once, not at the next recheck
