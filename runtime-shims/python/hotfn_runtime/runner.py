"""The process around a handler: hot (frame loop) or cold (one shot), per HOTFN_FORMAT."""

from __future__ import annotations

import io
import os
import platform
import sys
import traceback
from typing import Any, BinaryIO, Callable, Mapping
from urllib.parse import parse_qsl, urlsplit

from . import __version__, frames
from .loader import Caller, LoadError, load_handler
from .types import Request, to_response

SHIM_VERSION = __version__
RUNTIME_NAME = f"python/{platform.python_version()} hotfn-python/{SHIM_VERSION}"


def take_stdout() -> BinaryIO:
    """Keep the real stdout for hotfn and send everything else written to fd 1 to stderr.

    dup2 rather than only rebinding sys.stdout: C extensions and child processes that write to
    fd 1 must not corrupt frames (or a cold response body) either.
    """
    sys.stdout.flush()
    real = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(
        os.fdopen(1, "wb", buffering=0, closefd=False), write_through=True, line_buffering=True
    )
    return real


def write_all(out: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = out.write(view)
        view = view[written:]


def _request_from_frame(frame: Mapping[str, Any]) -> Request:
    try:
        return Request(
            method=frame["method"],
            url=frame["url"],
            path=frame["path"],
            query=[tuple(p) for p in frame["query"]],
            headers=[tuple(p) for p in frame["headers"]],
            body=frame["body"],
            call_id=frame["call_id"],
            deadline=frame["deadline"],
            app=frame["app"],
            route=frame["route"],
            params=dict(frame["params"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise frames.ProtocolError(f"bad request frame: {exc!r}") from None


def _answer(call: Callable[[Request], Any], request: Request, max_frame_size: int) -> bytes:
    try:
        response = to_response(call(request))
        return frames.encode(
            {
                "type": "response",
                "call_id": request.call_id,
                "status": response.status,
                "headers": [list(p) for p in response.headers],
                "body": response.body,
            },
            max_frame_size,
        )
    except Exception as exc:  # a user error never ends the loop
        return frames.encode(
            {
                "type": "error",
                "call_id": request.call_id,
                "error_type": type(exc).__name__,
                "message": str(exc),
                "trace": traceback.format_exc(),
            },
            max_frame_size,
        )


def serve_hot(call: Callable[[Request], Any], stdin: BinaryIO, stdout: BinaryIO) -> int:
    max_frame_size = frames.max_frame_size_from_env()
    reader = frames.FrameReader(stdin, max_frame_size)
    write_all(stdout, frames.encode(
        {"type": "ready", "version": frames.PROTOCOL_VERSION, "runtime": RUNTIME_NAME}
    ))
    while True:
        try:
            frame = reader.read_frame()
            if frame is None:
                return 0
            if frame["type"] != "request":
                raise frames.ProtocolError(f"expected a request frame, got {frame['type']!r}")
            request = _request_from_frame(frame)
        except frames.ProtocolError as exc:
            print(f"hotfn-python: protocol error, exiting: {exc}", file=sys.stderr, flush=True)
            return 2
        write_all(stdout, _answer(call, request, max_frame_size))


def request_from_env(env: Mapping[str, str], body: bytes) -> Request:
    """A cold call's request, rebuilt from the IronFunctions-style environment."""
    url = env.get("REQUEST_URL", "")
    parts = urlsplit(url)
    app = env.get("APP_NAME", "")
    path = parts.path
    prefix = f"/r/{app}"
    if app and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix):] or "/"
    headers = [
        (key[len("HEADER_"):].lower().replace("_", "-"), value)
        for key, value in env.items()
        if key.startswith("HEADER_")
    ]
    params = {
        key[len("PARAM_"):].lower(): value for key, value in env.items() if key.startswith("PARAM_")
    }
    try:
        deadline = int(env.get("DEADLINE", "0"))
    except ValueError:
        deadline = 0
    return Request(
        method=env.get("METHOD", "GET"),
        url=url,
        path=path,
        query=parse_qsl(parts.query, keep_blank_values=True),
        headers=headers,
        body=body,
        call_id=env.get("CALL_ID", ""),
        deadline=deadline,
        app=app,
        route=env.get("ROUTE", ""),
        params=params,
    )


def serve_cold(call: Callable[[Request], Any], stdin: BinaryIO, stdout: BinaryIO) -> int:
    request = request_from_env(os.environ, stdin.read())
    try:
        response = to_response(call(request))
    except Exception:
        traceback.print_exc()
        return 1
    write_all(stdout, response.body)
    return 0


def main(argv: list[str] | None = None) -> int:
    stdout = take_stdout()
    stdin = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    try:
        handler = load_handler()
        if os.environ.get("HOTFN_ADAPTER") == "lambda":
            from .lambda_adapter import adapt

            handler = adapt(handler)
    except LoadError as exc:
        print(f"hotfn-python: {exc}", file=sys.stderr, flush=True)
        traceback.print_exc()
        return 1
    call = Caller(handler)
    if os.environ.get("HOTFN_FORMAT") == "hot":
        return serve_hot(call, stdin, stdout)
    return serve_cold(call, stdin, stdout)
