"""HTTP/1.1 over trio with h11: the only module that imports h11.

One task per connection reads requests, hands each to the API as an ApiRequest, and writes the
ApiResponse back. Requests on a connection are answered in order (pipelining comes free: h11
buffers what the client sent ahead). Limits are enforced here, before the API sees anything:
header size (431), body size (413, before the body is read in full), a client that stalls (408),
malformed HTTP (400, then the connection is closed), a request with both Content-Length and
Transfer-Encoding (400 and close: RFC 9112 6.3, request smuggling), an HTTP version other than
1.0 or 1.1 (505 and close).

Nothing one connection does can end the server: a response that cannot be produced or written
(a function's answer HTTP cannot carry, a bug) ends that connection alone, with a 502 in its
place when the protocol state still allows one, and a log line naming the call.
"""

from __future__ import annotations

import ast
import http
import logging
import re
from dataclasses import dataclass
from typing import Awaitable, Callable

import h11
import trio

from ..api import ApiRequest, ApiResponse, error_response

log = logging.getLogger(__name__)

RECEIVE_SIZE = 64 * 1024
_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}


@dataclass
class HttpConfig:
    max_body_size: int = 6 * 1024 * 1024
    max_header_size: int = 64 * 1024
    request_timeout: float = 30.0  # to receive one whole request, once it has begun
    keepalive_timeout: float = 75.0  # an idle connection between requests
    shutdown_grace: float = 10.0


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
# Statuses whose responses never have a body (RFC 9110 6.4.1): one with a body cannot be framed.
_NO_BODY_STATUSES = frozenset({204, 304})


class _ClientError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# h11 puts offending bytes in its messages as reprs: "illegal header line: bytearray(b'...')".
_BYTES_REPR = re.compile(r"""bytearray\((b(['"])(?:\\.|(?!\2).)*\2)\)|\b(b(['"])(?:\\.|(?!\4).)*\4)""")
_SHOWN_BYTES = 100


def _show_bytes(raw: bytes) -> str:
    """Bytes as a message shows them: text in quotes, control characters escaped, cut short."""
    text = raw[:_SHOWN_BYTES].decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    more = f"... ({len(raw)} bytes)" if len(raw) > _SHOWN_BYTES else ""
    return f'"{text}"{more}'


def _readable(exc: BaseException) -> str:
    """An exception's message with the byte reprs h11 puts in it shown readably and briefly."""

    def show(match: re.Match) -> str:
        try:
            return _show_bytes(ast.literal_eval(match.group(1) or match.group(3)))
        except (ValueError, SyntaxError):
            return match.group(0)

    return _BYTES_REPR.sub(show, str(exc))


class _UnsendableResponse(Exception):
    """A response HTTP cannot carry as it is."""


def _call_id_of(response: ApiResponse) -> str | None:
    """The call a response answers (its hotfn-call-id), if it says so readably."""
    try:
        for name, value in response.headers:
            if isinstance(name, str) and name.lower() == "hotfn-call-id" and isinstance(value, str):
                return value if _TOKEN.fullmatch(value) else None
    except (TypeError, ValueError):
        pass  # headers that are not pairs: the response is broken anyway
    return None


def _decode_header_value(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _has_both_lengths(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name for name, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names


class HttpConnection:
    """One client connection: the one place where bytes meet h11."""

    def __init__(self, stream: trio.abc.Stream, server: "HttpServer") -> None:
        self.stream = stream
        self.server = server
        self.config = server.config
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_header_size)
        self.idle_scope: trio.CancelScope | None = None

    async def _send(self, *events: h11.Event) -> None:
        # One write for a whole response: head, body and end cost one syscall, not three.
        data = b"".join(self.conn.send(event) or b"" for event in events)
        try:
            if data:
                await self.stream.send_all(data)
        except BaseException:
            self.conn.send_failed()
            raise

    async def _next_event(self, deadline: float, too_slow: str) -> h11.Event:
        """The next event, reading as needed until ``deadline``; 408 after it."""
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            # A cancel scope only when we must wait: most requests arrive whole.
            with trio.move_on_at(deadline) as scope:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            if scope.cancelled_caught:
                raise _ClientError(408, too_slow)
            self.conn.receive_data(data)

    async def _receive_head(self) -> tuple[h11.Request | None, float]:
        """The next request's head, and the deadline for the whole request; no head when the
        client is done (or idle too long)."""
        deadline = trio.current_time() + self.config.request_timeout
        event = self.conn.next_event()
        if event is h11.NEED_DATA:
            if self.server.stopping:
                return None, deadline
            if not self.conn.trailing_data[0]:
                # Idle between requests: wait up to the keep-alive timeout; shutdown cancels it.
                data = None
                with trio.CancelScope() as self.idle_scope:
                    self.idle_scope.deadline = trio.current_time() + self.config.keepalive_timeout
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                self.idle_scope = None
                if data is None:
                    return None, deadline  # idle too long, or the server is stopping
                self.conn.receive_data(data)
                # Part of a request is here: the rest must come within the request timeout.
                deadline = trio.current_time() + self.config.request_timeout
            event = await self._next_event(deadline, "request not received in time")
        if isinstance(event, h11.ConnectionClosed):
            return None, deadline
        assert isinstance(event, h11.Request), event
        # RFC 9112 2.3: h11 reads any d.d version as if it were 1.1; answer only what we speak.
        if event.http_version not in (b"1.0", b"1.1"):
            raise _ClientError(505, f"HTTP/{event.http_version.decode()} is not supported: "
                                    "this server speaks HTTP/1.1 and 1.0")
        # RFC 9112 6.3: a request with both may be read differently by a proxy in front of us
        # (request smuggling); refuse it, before its body, and close.
        if event.headers and _has_both_lengths(event.headers):
            raise _ClientError(400, "a request cannot have both Content-Length and "
                                    "Transfer-Encoding")
        # h11 caps only a head that arrives in pieces; one that arrives whole is checked here.
        size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
        if size > self.config.max_header_size:
            raise _ClientError(431, f"request head of {size} bytes exceeds the limit of "
                                    f"{self.config.max_header_size} bytes")
        return event, deadline

    async def _receive_body(self, head: h11.Request, deadline: float) -> bytes:
        length = None
        for name, value in head.headers:
            if name == b"content-length":
                length = int(value)
        if length is not None and length > self.config.max_body_size:
            raise _ClientError(413, f"request body of {length} bytes exceeds the limit of "
                                    f"{self.config.max_body_size} bytes")
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        body = bytearray()
        while True:
            event = await self._next_event(deadline, "request body not received in time")
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.config.max_body_size:
                    raise _ClientError(413, f"request body exceeds the limit of "
                                            f"{self.config.max_body_size} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise _ClientError(400, "connection closed inside the request body")

    def _encode_head(self, response: ApiResponse, head_only: bool) -> h11.Response:
        """The response's head as h11 will send it; raises, with h11's state untouched, when
        HTTP cannot carry the response (h11 checks status and header bytes as the event is made)."""
        if response.body and (response.status in _NO_BODY_STATUSES or response.status < 200):
            raise _UnsendableResponse(f"status {response.status} cannot have a body")
        headers = [(k.encode("latin-1"), v.encode("utf-8")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        if self.server.stopping:
            headers.append((b"connection", b"close"))
        return h11.Response(status_code=response.status, headers=headers,
                            reason=_REASONS.get(response.status, b""))

    async def _respond(self, response: ApiResponse, head_only: bool) -> bool:
        """Send ``response``; False when the connection must end after it (the response could
        not be sent as it was, and a 502 went in its place)."""
        try:
            head = self._encode_head(response, head_only)
        except Exception as exc:  # h11.LocalProtocolError, UnicodeEncodeError, a bug upstream
            call_id = _call_id_of(response)
            log.error("response%s could not be sent, 502 instead: %s",
                      f" to call {call_id}" if call_id else "", exc,
                      exc_info=not isinstance(exc, (h11.LocalProtocolError, UnicodeError, _UnsendableResponse)))
            response = error_response(502, f"the response could not be sent: {_readable(exc)}")
            if call_id:
                response.headers.append(("hotfn-call-id", call_id))
            response.headers.append(("connection", "close"))
            head = self._encode_head(response, head_only)
            keep_open = False
        else:
            keep_open = True
        events: list[h11.Event] = [head]
        if response.body and not head_only:
            events.append(h11.Data(data=response.body))
        events.append(h11.EndOfMessage())
        await self._send(*events)
        return keep_open

    async def _refuse(self, status: int, message: str) -> None:
        """An error response, if the protocol state still allows one; then the connection ends."""
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            response = error_response(status, message)
            response.headers.append(("connection", "close"))
            try:
                await self._respond(response, head_only=False)
                # Read (and drop) what the client is still sending for a moment: closing with
                # unread input makes the kernel reset the connection, and the client may lose
                # the response.
                if isinstance(self.stream, trio.abc.HalfCloseableStream):
                    await self.stream.send_eof()
                with trio.move_on_after(1):
                    drained = 0
                    while drained < 4 * self.config.max_body_size:
                        data = await self.stream.receive_some(RECEIVE_SIZE)
                        if not data:
                            break
                        drained += len(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
                pass

    async def serve(self) -> None:
        try:
            while True:
                try:
                    head, deadline = await self._receive_head()
                    if head is None:
                        return
                    body = await self._receive_body(head, deadline)
                except _ClientError as exc:
                    await self._refuse(exc.status, str(exc))
                    return
                except h11.RemoteProtocolError as exc:
                    await self._refuse(exc.error_status_hint, f"malformed request: {_readable(exc)}")
                    return
                request = ApiRequest(
                    method=head.method.decode("ascii"),
                    target=head.target.decode("ascii", "replace"),
                    headers=[(k.decode("latin-1"), _decode_header_value(v)) for k, v in head.headers],
                    body=body,
                )
                try:
                    response = await self.server.handler(request)
                except Exception:
                    log.exception("unhandled error serving %s %s", request.method, request.target)
                    response = error_response(500, "internal server error")
                try:
                    keep_open = await self._respond(response, head_only=request.method == "HEAD")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise
                except Exception:
                    # The second line of defence (the invoker checks a function's answer first):
                    # h11 refused the response midway, and its state allows no other answer.
                    call_id = _call_id_of(response)
                    log.exception("response%s could not be sent; closing its connection",
                                  f" to call {call_id}" if call_id else "")
                    return
                if not keep_open or self.conn.our_state is h11.MUST_CLOSE or self.server.stopping:
                    return
                self.conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()


class HttpServer:
    def __init__(self, handler: Callable[[ApiRequest], Awaitable[ApiResponse]], config: HttpConfig) -> None:
        self.handler = handler
        self.config = config
        self.stopping = False
        self.connections: set[HttpConnection] = set()
        self._listener_scope: trio.CancelScope | None = None

    async def serve_connection(self, stream: trio.abc.Stream) -> None:
        """Serve one client connection until it ends; never raises (but Cancelled)."""
        connection = HttpConnection(stream, self)
        self.connections.add(connection)
        try:
            await connection.serve()
        except Exception:
            # One connection's bug must not reach the listener's nursery: that would end the server.
            log.exception("unexpected error on a connection; closed it")
        finally:
            self.connections.discard(connection)

    async def serve(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen until stop(); reports the bound (host, port) through task_status."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[:2]
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as self._listener_scope:
                task_status.started(bound)
                await trio.serve_listeners(self.serve_connection, listeners, handler_nursery=nursery)
            # Stopped: no new connections; idle ones close now, busy ones after their response.
            for connection in list(self.connections):
                if connection.idle_scope is not None:
                    connection.idle_scope.cancel()
            with trio.move_on_after(self.config.shutdown_grace):
                while self.connections:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    def stop(self) -> None:
        self.stopping = True
        if self._listener_scope is not None:
            self._listener_scope.cancel()
