"""What the API's handlers read and answer: ApiRequest and ApiResponse, ApiError (raised by a
handler, answered as a JSON error), the readers of a request's JSON body, query and page, and
``needs``, the mark that says what a handler's token must allow.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from .core import Api

Headers = list[tuple[str, str]]


@dataclass
class ApiRequest:
    method: str
    target: str  # path and query as sent: /r/app/hello?x=1
    headers: Headers  # names lower case, in order, repeats kept
    body: bytes = b""
    scheme: str = "http"
    principal: Any = None  # who it acts as (hotfn.access.Principal), once authorized

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
    # A refusal (over a rate or a bound, no such app or route): its connection's next request
    # is read only when the server has nothing else to do.
    refused: bool = False


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



Handler = Callable[["Api", ApiRequest, re.Match], Awaitable[ApiResponse]]


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


def needs(access: str) -> Callable[[Handler], Handler]:
    """Mark a handler with what its request's token must allow (hotfn.access.Access)."""
    def mark(handler: Handler) -> Handler:
        handler.access = access  # type: ignore[attr-defined]
        return handler
    return mark

