"""Runs an AWS Lambda handler ``handler(event, context)`` unchanged on hotfn.

The request becomes an API Gateway (REST, v1 payload) proxy event; the handler's
``{"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}`` becomes the
response. Enabled with ``HOTFN_ADAPTER=lambda`` (``func.json``: ``"env"``).
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any, Callable

from .types import Request, Response


class LambdaContext:
    """The parts of Lambda's context object that handlers use in practice."""

    def __init__(self, request: Request) -> None:
        self.aws_request_id = request.call_id
        self.function_name = f"{request.app}{request.route}"
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:hotfn:{request.app}:{request.route}"
        self.memory_limit_in_mb = int(os.environ.get("HOTFN_MEMORY_MB", "128"))
        self.log_group_name = f"/hotfn/{request.app}"
        self.log_stream_name = request.call_id
        self._deadline_ms = request.deadline

    def get_remaining_time_in_millis(self) -> int:
        if not self._deadline_ms:
            return 0
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _is_text(request: Request) -> bool:
    content_type = (request.header("content-type") or "").lower()
    textual = content_type.startswith("text/") or any(
        t in content_type for t in ("json", "xml", "x-www-form-urlencoded", "javascript")
    )
    if not request.body or textual:
        try:
            request.body.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False
    return False


def _last_and_multi(pairs: list[tuple[str, str]]) -> tuple[dict | None, dict | None]:
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def to_event(request: Request) -> dict[str, Any]:
    headers, multi_headers = _last_and_multi(request.headers)
    query, multi_query = _last_and_multi(request.query)
    text = _is_text(request)
    return {
        "resource": request.route,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or {},
        "multiValueHeaders": multi_headers or {},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": dict(request.params) or None,
        "stageVariables": None,
        "requestContext": {
            "requestId": request.call_id,
            "resourcePath": request.route,
            "httpMethod": request.method,
            "path": request.path,
            "stage": request.app,
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": (request.body.decode("utf-8") if text else base64.b64encode(request.body).decode())
        if request.body
        else None,
        "isBase64Encoded": not text,
    }


def from_result(result: Any) -> Response:
    if not isinstance(result, dict) or "statusCode" not in result:
        # Lambda's proxy integration answers 502 for this; a plain value is a friendlier reading.
        body = result if isinstance(result, (str, bytes)) or result is None else json.dumps(result)
        return Response(200, [], body)
    headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((key, str(v)) for v in values)
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body)
    elif not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return Response(int(result["statusCode"]), headers, body)


def adapt(handler: Callable[[dict, LambdaContext], Any]) -> Callable[[Request], Any]:
    def lambda_call(request: Request) -> Response:
        return from_result(handler(to_event(request), LambdaContext(request)))

    return lambda_call
