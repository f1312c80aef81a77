"""The process around a handler: hot (frame loop) or cold (one shot), per HOTFN_FORMAT."""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import platform
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
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
            attempt=_attempt(frame.get("attempt", 1)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise frames.ProtocolError(f"bad request frame: {exc!r}") from None


def _attempt(value: Any) -> int:
    """An attempt number as hotfn sends it (docs/protocol.md): an int from 1 up; absent is 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"attempt must be an int from 1 up, not {value!r}")
    return value


def _answer(call: Callable[[Request], Any], request: Request, max_frame_size: int) -> bytes:
    try:
        result = call(request)
    except Exception as exc:  # a user error never ends the loop
        return _error_frame(request, exc, max_frame_size)
    return _result_frame(request, result, max_frame_size)


def _result_frame(request: Request, result: Any, max_frame_size: int) -> bytes:
    try:
        response = to_response(result)
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
    except Exception as exc:
        return _error_frame(request, exc, max_frame_size)


def _error_frame(request: Request, exc: BaseException, max_frame_size: int) -> bytes:
    return frames.encode(
        {
            "type": "error",
            "call_id": request.call_id,
            "error_type": type(exc).__name__,
            "message": str(exc),
            "trace": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        },
        max_frame_size,
    )


MAX_CONCURRENCY = 1024


def concurrency_from_env(env: Mapping[str, str]) -> int:
    """HOTFN_CONCURRENCY: how many calls the container takes at once; 1 when unset.

    Anything but an int from 1 to MAX_CONCURRENCY is said on stderr and taken as 1, so the
    container still works (an old server sends one call at a time anyway).
    """
    raw = env.get("HOTFN_CONCURRENCY", "").strip()
    if not raw:
        return 1
    if raw.isdigit() and 1 <= int(raw) <= MAX_CONCURRENCY:
        return int(raw)
    print(f"hotfn-python: HOTFN_CONCURRENCY={raw} is not an int from 1 to {MAX_CONCURRENCY}; "
          "serving one call at a time", file=sys.stderr, flush=True)
    return 1


def _read_request(reader: frames.FrameReader) -> Request | None:
    frame = reader.read_frame()
    if frame is None:
        return None
    if frame["type"] != "request":
        raise frames.ProtocolError(f"expected a request frame, got {frame['type']!r}")
    return _request_from_frame(frame)


def serve_hot(call: Callable[[Request], Any], stdin: BinaryIO, stdout: BinaryIO,
              concurrency: int = 1) -> int:
    max_frame_size = frames.max_frame_size_from_env()
    reader = frames.FrameReader(stdin, max_frame_size)
    ready = {"type": "ready", "version": frames.PROTOCOL_VERSION, "runtime": RUNTIME_NAME}
    if concurrency > 1:
        ready["concurrency"] = concurrency
    write_all(stdout, frames.encode(ready))
    if concurrency > 1:
        handler = call.handler if isinstance(call, Caller) else call
        return asyncio.run(_serve_concurrently(handler, reader, stdout, max_frame_size, concurrency))
    while True:
        try:
            request = _read_request(reader)
            if request is None:
                return 0
        except frames.ProtocolError as exc:
            print(f"hotfn-python: protocol error, exiting: {exc}", file=sys.stderr, flush=True)
            return 2
        write_all(stdout, _answer(call, request, max_frame_size))


async def _serve_concurrently(handler: Callable[[Request], Any], reader: frames.FrameReader,
                              stdout: BinaryIO, max_frame_size: int, concurrency: int) -> int:
    """Up to ``concurrency`` calls at once, each answered as it ends (docs/protocol.md 2.2.1).

    A coroutine function runs as a task on this event loop; a plain function (its author set
    HOTFN_CONCURRENCY, so says it is thread-safe) on a pool of that many threads. Frames are
    read on a thread of their own, and only this loop's thread writes stdout, a whole frame at a
    time, so answers never interleave.
    """
    loop = asyncio.get_running_loop()
    stdin_thread = ThreadPoolExecutor(1, thread_name_prefix="hotfn-stdin")
    call_threads = None if inspect.iscoroutinefunction(handler) else ThreadPoolExecutor(
        concurrency, thread_name_prefix="hotfn-call")
    free = asyncio.Semaphore(concurrency)
    in_flight: set[asyncio.Task] = set()

    async def run(request: Request) -> None:
        try:
            try:
                if call_threads is None:
                    result = await handler(request)
                else:
                    result = await loop.run_in_executor(call_threads, handler, request)
                    if inspect.isawaitable(result):
                        result = await result
            except Exception as exc:  # a user error never ends the loop
                answer = _error_frame(request, exc, max_frame_size)
            else:
                answer = _result_frame(request, result, max_frame_size)
            try:
                write_all(stdout, answer)
            except OSError as exc:  # hotfn went away: nobody to answer any more
                print(f"hotfn-python: cannot write stdout, exiting: {exc}", file=sys.stderr, flush=True)
                os._exit(1)
        finally:
            free.release()

    while True:
        await free.acquire()
        try:
            request = await loop.run_in_executor(stdin_thread, _read_request, reader)
        except frames.ProtocolError as exc:
            print(f"hotfn-python: protocol error, exiting: {exc}", file=sys.stderr, flush=True)
            os._exit(2)  # not a clean exit: calls in flight and their threads are abandoned
        if request is None:
            break
        task = loop.create_task(run(request))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    for task in list(in_flight):
        await task  # after EOF: every call in flight is answered first
    stdin_thread.shutdown()
    if call_threads is not None:
        call_threads.shutdown()
    return 0


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
    try:
        attempt = _attempt(int(env.get("HOTFN_ATTEMPT", "1")))
    except ValueError:
        attempt = 1
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
        attempt=attempt,
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
        return serve_hot(call, stdin, stdout, concurrency_from_env(os.environ))
    return serve_cold(call, stdin, stdout)
