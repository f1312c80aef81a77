"""What a handler receives and may return."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

Pairs = list[tuple[str, str]]
HeadersLike = Union[Mapping[str, str], Iterable[tuple[str, str]], None]


@dataclass
class Request:
    method: str
    url: str
    path: str
    query: Pairs
    headers: Pairs
    body: bytes
    call_id: str
    deadline: int  # ms since the Unix epoch; 0 when unknown
    app: str
    route: str
    params: dict[str, str] = field(default_factory=dict)
    # Which run of this call this is: 1, then 2, 3, ... when an async call runs again after a
    # failure or a crash (same call_id), so that a handler can do its side effects once.
    attempt: int = 1

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), or ``default``."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    def query_param(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return default

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    status: int = 200
    headers: HeadersLike = None
    body: bytes | str | None = b""


def normalize_headers(headers: HeadersLike) -> Pairs:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), str(v)) for k, v in items]


def to_response(result: Any) -> Response:
    """Turn whatever a handler returned into a Response with bytes for a body."""
    if isinstance(result, Response):
        headers = normalize_headers(result.headers)
        body = result.body
    else:
        headers, body = [], result
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode("utf-8")
        _default_content_type(headers, "text/plain; charset=utf-8")
    elif isinstance(body, (bytes, bytearray, memoryview)):
        body = bytes(body)
    elif isinstance(body, (dict, list)):
        body = json.dumps(body).encode("utf-8")
        _default_content_type(headers, "application/json")
    else:
        raise TypeError(
            "a handler must return bytes, str, dict, list, None or a hotfn_runtime.Response, "
            f"not {type(body).__name__}"
        )
    status = result.status if isinstance(result, Response) else 200
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ValueError(f"response status must be an int from 100 to 599, not {status!r}")
    return Response(status=status, headers=headers, body=body)


def _default_content_type(headers: Pairs, value: str) -> None:
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("content-type", value))
