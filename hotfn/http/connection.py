"""One client connection, served by its own task (HttpConnection).

One task per connection reads requests, hands each to the API as an ApiRequest, and writes the
ApiResponse back. Requests on a connection are answered in order (pipelining comes free: what
the client sent ahead waits in the connection's buffer). Limits are enforced here, before the
API sees anything: header size (431), body size (413, before the body is read in full), a
client that stalls (408), malformed HTTP (400, then the connection is closed), a request with
both Content-Length and Transfer-Encoding (400 and close: RFC 9112 6.3, request smuggling), an
HTTP version other than 1.0 or 1.1 (505 and close).

Requests are read by h11, but for the plain ones most clients send: a request whole in what
was read, in the strict subset simple.py reads exactly as h11 would (no chunked body, no
Expect, one Content-Length, ...), is taken from the bytes by simple.py, with no h11 connection
(that cost ~12-15 % of a hot call's server CPU). Anything else goes to h11 as it is, which
validates it and answers its errors. Responses are written here, not through h11 (its
per-response state machine, header normalisation and framing cost more than the rest of the
HTTP layer together: ~190 k of ~400 k instructions per request). So the connection keeps the
bytes the client sent past the last request; a request cycle that needs h11 has an h11
connection of its own, given those bytes. The response follows h11's rules where they apply
(a final status, header grammar, Content-Length framing, `Connection: close` when the client
does not keep the connection alive).

Nothing one connection does can end the server: a response that cannot be produced or written
(a function's answer HTTP cannot carry, a bug) ends that connection alone, with a 502 in its
place when the protocol state still allows one, and a log line naming the call.
"""

from __future__ import annotations

import http
import logging
import os
import re
from typing import TYPE_CHECKING

import h11
import trio

try:
    # trio.testing's own, from where trio.testing takes it: importing trio.testing imports
    # pytest where it is installed, 10 MiB of a server's memory.
    from trio._core import wait_all_tasks_blocked
except ImportError:  # (trio moved it)
    from trio.testing import wait_all_tasks_blocked

from ..api import ApiRequest, ApiResponse, error_response
from .simple import SimpleRequest, keeps_alive, parse_simple_request

if TYPE_CHECKING:
    from .server import HttpServer

log = logging.getLogger("hotfn.http.server")  # named as before the move: operators filter on it

RECEIVE_SIZE = 64 * 1024
# A response goes out in parts of this size, each within the send timeout: a slow reader that
# keeps reading is served; one that stops is cut off. Smaller responses go in one write.
SEND_CHUNK = 1024 * 1024
_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}
# Status lines, made once: "HTTP/1.1 200 OK\r\n".
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# The header grammar h11 enforces on what it sends (RFC 9110 5.1, 5.5).
_FIELD_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")



_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
# Response header names already encoded and checked: the same few come with every response.
_checked_names: dict[str, bytes] = {}
_CHECKED_NAMES = 1024  # at most: names come from functions, which may make up any
# Seconds a refused connection's next request may wait for the server to have nothing else to do.
REFUSED_WAIT = 0.1
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

    import ast  # here: only a malformed request's message needs it

    def show(match: re.Match) -> str:
        try:
            return _show_bytes(ast.literal_eval(match.group(1) or match.group(3)))
        except (ValueError, SyntaxError):
            return match.group(0)

    return _BYTES_REPR.sub(show, str(exc))


def _after(response: ApiResponse) -> None:
    """The response's ``after`` work (its call's bookkeeping), whatever became of the response."""
    if response.after is not None:
        after, response.after = response.after, None
        try:
            after()
        except Exception:
            log.exception("error after a response (%s)", _call_id_of(response) or "no call id")


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


def _decode_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Names as latin-1 (they are tokens), values as UTF-8, or latin-1 where they are not."""
    try:
        # All at once, no call per header: the common case, every value UTF-8 (ASCII mostly).
        return [(name.decode("latin-1"), value.decode("utf-8")) for name, value in headers]
    except UnicodeDecodeError:
        return [(name.decode("latin-1"), _decode_header_value(value)) for name, value in headers]


def _has_both_lengths(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name for name, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names



class HttpConnection:
    """One client connection: the one place where bytes meet h11 and simple.py."""

    def __init__(self, stream: trio.abc.Stream, server: "HttpServer") -> None:
        self.stream = stream
        self.server = server
        self.config = server.config
        # What the client sent past the last request (and whether it has closed its side):
        # the next request's first bytes, read by the fast path or handed to h11.
        self.buffer = b""
        self.closed = False
        self.conn: h11.Connection | None = None  # the h11 path's, for one request cycle
        self.responding = False  # a final response has begun: no other answer is possible
        # A TCP connection is read and written through its file descriptor: trio's socket
        # methods yield to the scheduler once more per receive and per send (a full pass of
        # its loop, an epoll_wait, each), which is a tenth of a hot call's cost here.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        # Cancelled by the server: a wait past its deadline, room needed at the limit, shutdown.
        self.scope = trio.CancelScope()
        self.accepted_at = trio.current_time()
        self.requests = 0  # answered on this connection
        self.dropped_large_response = False  # its memory is worth handing back to the OS

    def _new_h11(self) -> h11.Connection:
        """An h11 connection for this request cycle, given what the client sent so far."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_header_size)
        if self.buffer:
            conn.receive_data(self.buffer)
        if self.closed:
            conn.receive_data(b"")
        self.buffer = b""
        return conn

    async def _receive(self) -> bytes:
        """receive_some: what the client sent next (b"" at its EOF)."""
        fd = self._fd
        if fd < 0:
            return await self.stream.receive_some(RECEIVE_SIZE)
        while True:
            try:
                # Wait first: between requests (most reads) nothing is there yet.
                await trio.lowlevel.wait_readable(fd)
                return os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:  # ECONNRESET and the like
                raise trio.BrokenResourceError(str(exc)) from exc

    def _send_now(self, data: bytes) -> int:
        """As much of ``data`` as the socket takes without waiting; 0 where that is unknown."""
        if self._fd < 0:
            return 0
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:  # EPIPE, ECONNRESET
            raise trio.BrokenResourceError(str(exc)) from exc

    async def _write(self, data: bytes) -> None:
        """send_all, with the server's timer watching: each SEND_CHUNK within send_timeout."""
        sending = self.server.sending
        if len(data) <= SEND_CHUNK:
            sent = self._send_now(data)
            if sent == len(data):
                return  # the common case: no wait, so no timer either
            sending[self] = trio.current_time() + self.config.send_timeout
            try:
                await self.stream.send_all(memoryview(data)[sent:] if sent else data)
            finally:
                sending.pop(self, None)
            return
        view = memoryview(data)
        try:
            for start in range(0, len(view), SEND_CHUNK):
                sending.pop(self, None)  # to the back of the queue, which stays in deadline order
                sending[self] = trio.current_time() + self.config.send_timeout
                await self.stream.send_all(view[start:start + SEND_CHUNK])
        except BaseException:
            self.dropped_large_response = True
            raise
        finally:
            sending.pop(self, None)

    async def _next_event(self, deadline: float, too_slow: str) -> h11.Event:
        """The next event, reading as needed until ``deadline``; 408 after it."""
        conn = self.conn
        assert conn is not None
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            # A cancel scope only when we must wait: most requests arrive whole.
            with trio.move_on_at(deadline) as scope:
                data = await self._receive()
            if scope.cancelled_caught:
                raise _ClientError(408, too_slow)
            conn.receive_data(data)

    async def _wait_for_request(self) -> bytes | None:
        """The first bytes of the next request; None when the connection is to end instead."""
        server = self.server
        if self.requests:
            server.idle[self] = trio.current_time() + self.config.keepalive_timeout
            if server.room_wanted is not None:
                server.made_room()
        # (A new connection has been waiting in server.fresh since it was accepted.)
        try:
            data = await self._receive()
        finally:
            (server.idle if self.requests else server.fresh).pop(self, None)
        if self.scope.cancel_called:
            return None  # timed out, or closed to make room, as the bytes came: as if before
        return data

    async def _receive_request(self) -> SimpleRequest | None:
        """The next request, body and all; None when the client is done (or idle too long)."""
        waited = False
        if not self.buffer:
            if self.closed or self.server.stopping:
                return None
            data = await self._wait_for_request()
            if not data:  # the client closed its side, or the connection is to end
                return None
            self.buffer = data
            waited = True
        parsed = parse_simple_request(self.buffer, self.config.max_header_size)
        if parsed is None:
            return await self._receive_request_h11(waited)
        # A plain request, whole in what was read: no h11 connection, no wait, so no deadline;
        # the one limit left to apply is the body's (the head's is parse_simple_request's).
        request, consumed = parsed
        self.buffer = self.buffer[consumed:]
        if len(request.body) > self.config.max_body_size:
            raise _ClientError(413, f"request body of {len(request.body)} bytes exceeds the "
                                    f"limit of {self.config.max_body_size} bytes")
        return request

    async def _receive_request_h11(self, waited: bool) -> SimpleRequest | None:
        """The next request read by h11 from the buffer and the socket, with every check and
        deadline; ``waited``: the buffer's bytes are the first the client sent since the last
        request."""
        conn = self.conn = self._new_h11()
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if self.server.stopping and not waited:
                return None
            # Part of a request is here: the rest must come within the request timeout, and the
            # head within the header timeout, counted for a new connection from its connect (a
            # client cannot hold one by trickling a byte now and then).
            now = trio.current_time()
            deadline = now + self.config.request_timeout
            head_began = now if self.requests else self.accepted_at
            head_deadline = min(deadline, head_began + self.config.header_timeout)
            event = await self._next_event(head_deadline, "request head not received in time")
        else:
            deadline = trio.current_time() + self.config.request_timeout
        if isinstance(event, h11.ConnectionClosed):
            return None
        assert isinstance(event, h11.Request), event
        headers = list(event.headers)  # (h11's Headers iterate slowly: once, here)
        # RFC 9112 2.3: h11 reads any d.d version as if it were 1.1; answer only what we speak.
        if event.http_version not in (b"1.0", b"1.1"):
            raise _ClientError(505, f"HTTP/{event.http_version.decode()} is not supported: "
                                    "this server speaks HTTP/1.1 and 1.0")
        # RFC 9112 6.3: a request with both may be read differently by a proxy in front of us
        # (request smuggling); refuse it, before its body, and close.
        if headers and _has_both_lengths(headers):
            raise _ClientError(400, "a request cannot have both Content-Length and "
                                    "Transfer-Encoding")
        # h11 caps only a head that arrives in pieces; one that arrives whole is checked here.
        size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in headers)
        if size > self.config.max_header_size:
            raise _ClientError(431, f"request head of {size} bytes exceeds the limit of "
                                    f"{self.config.max_header_size} bytes")
        body = await self._receive_body(headers, deadline)
        # What the client sent past this request goes back to the buffer, for the next one.
        self.buffer, self.closed = conn.trailing_data
        self.conn = None
        return SimpleRequest(event.method, event.target, headers, event.http_version, body,
                             keeps_alive(event.http_version, headers))

    async def _receive_body(self, headers: list[tuple[bytes, bytes]], deadline: float) -> bytes:
        length = None
        for name, value in headers:
            if name == b"content-length":
                length = int(value)
        if length is not None and length > self.config.max_body_size:
            raise _ClientError(413, f"request body of {length} bytes exceeds the limit of "
                                    f"{self.config.max_body_size} bytes")
        assert self.conn is not None
        if self.conn.they_are_waiting_for_100_continue:
            await self._write(_CONTINUE)
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

    def _encode_head(self, response: ApiResponse, keep_alive: bool) -> tuple[bytes, bool]:
        """The response's head and whether the connection stays open after it; raises, with
        nothing sent, when HTTP cannot carry the response."""
        status = response.status
        if not (isinstance(status, int) and 200 <= status <= 999):
            raise _UnsendableResponse(f"status {status!r} is not a final status (200 to 999)")
        if response.body and status in _NO_BODY_STATUSES:
            raise _UnsendableResponse(f"status {status} cannot have a body")
        lines = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        for name, value in response.headers:
            raw_name = _checked_names.get(name)
            if raw_name is None:
                raw_name = name.encode("latin-1")
                if not _FIELD_NAME.fullmatch(raw_name):
                    raise _UnsendableResponse(f"illegal header name {_show_bytes(raw_name)}")
                if len(_checked_names) < _CHECKED_NAMES:
                    _checked_names[name] = raw_name
            raw_value = value.encode("utf-8")
            if not _FIELD_VALUE.fullmatch(raw_value):
                raise _UnsendableResponse(f"illegal header value {_show_bytes(raw_value)}")
            if keep_alive and raw_name.lower() == b"connection" and b"close" in raw_value.lower():
                keep_alive = False
            lines += (raw_name, b": ", raw_value, b"\r\n")
        lines.append(b"content-length: %d\r\n" % len(response.body))
        if self.server.stopping:
            keep_alive = False
        if not keep_alive and not any(name.lower() == "connection" for name, _ in response.headers):
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines), keep_alive

    async def _respond(self, response: ApiResponse, head_only: bool, keep_alive: bool = False) -> bool:
        """Send ``response``; False when the connection must end after it (the client does
        not keep it alive, or the response could not be sent as it was, and a 502 went in its
        place)."""
        try:
            head, keep_open = self._encode_head(response, keep_alive)
        except Exception as exc:  # _UnsendableResponse, UnicodeEncodeError, a bug upstream
            call_id = _call_id_of(response)
            log.error("response%s could not be sent, 502 instead: %s",
                      f" to call {call_id}" if call_id else "", exc,
                      exc_info=not isinstance(exc, (h11.LocalProtocolError, UnicodeError, _UnsendableResponse)))
            response = error_response(502, f"the response could not be sent: {_readable(exc)}")
            if call_id:
                response.headers.append(("hotfn-call-id", call_id))
            response.headers.append(("connection", "close"))
            head, _ = self._encode_head(response, False)
            keep_open = False
        self.responding = True
        if head_only or not response.body:
            await self._write(head)
        elif len(response.body) <= SEND_CHUNK:
            # One write for a whole response: head and body cost one syscall, not two.
            await self._write(head + response.body)
        else:
            # A large body goes as it is, not copied into one buffer with its head: a client
            # that does not read holds one copy of it, not two.
            await self._write(head)
            await self._write(response.body)
        return keep_open

    async def _refuse(self, status: int, message: str) -> None:
        """An error response, if the protocol state still allows one; then the connection ends."""
        if not self.responding:
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
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def serve(self) -> None:
        try:
            with self.scope:
                await self._serve_requests()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self.server.fresh.pop(self, None)
            self.server.idle.pop(self, None)
            self.server.sending.pop(self, None)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()

    async def _serve_requests(self) -> None:
        while True:
            try:
                received = await self._receive_request()
                if received is None:
                    return
            except _ClientError as exc:
                await self._refuse(exc.status, str(exc))
                return
            except h11.RemoteProtocolError as exc:
                await self._refuse(exc.error_status_hint, f"malformed request: {_readable(exc)}")
                return
            request = ApiRequest(
                method=received.method.decode("ascii"),
                target=received.target.decode("ascii", "replace"),
                headers=_decode_headers(received.headers),
                body=received.body,
            )
            try:
                response = await self.server.handler(request)
            except Exception:
                log.exception("unhandled error serving %s %s", request.method, request.target)
                response = error_response(500, "internal server error")
            try:
                keep_open = await self._respond(response, head_only=request.method == "HEAD",
                                                keep_alive=received.keep_alive)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise
            except Exception:
                # The second line of defence (the invoker checks a function's answer first):
                # the response failed midway, and no other answer is possible.
                call_id = _call_id_of(response)
                log.exception("response%s could not be sent; closing its connection",
                              f" to call {call_id}" if call_id else "")
                return
            finally:
                _after(response)
            self.requests += 1
            if (not keep_open or self.server.stopping
                    or self.scope.cancel_called):  # (the send deadline passed as it ended)
                return
            self.responding = False
            if response.refused:
                # A client refused (a 429, a 404 for no such route) may ask again at once, and
                # a few such clients would take the whole event loop from the calls that run:
                # its next request is read once no other task can run, one refused connection
                # at a time, so that refusals use only the time the others leave. For
                # REFUSED_WAIT at most: a proxy may send another client's request on it next.
                with trio.move_on_after(REFUSED_WAIT):
                    async with self.server.refusal_turn:
                        await wait_all_tasks_blocked()
            elif self.buffer:
                # Pipelined requests are served without waiting for the socket, and responses
                # mostly go out without waiting either: let other connections have a turn.
                await trio.lowlevel.checkpoint()

