"""The `http` hot format (IronFunctions' and early Fn's), sans I/O: docs/protocol.md section 6.

A container of a route with ``format: "http"`` reads each request as an HTTP/1.1 message on its
stdin and writes each answer as an HTTP/1.1 response on its stdout, container kept between
calls. hotfn is the *client* of that connection: h11 writes the requests and parses the
responses, so this module is, beside hotfn.http, the only other h11 importer.

It offers the frame decoder's interface (``receive_data``, ``next_frame``) so that a hot worker
drives either format the same way: a request goes in as a ``frames.Request``, an answer comes
out as a ``frames.Response``.

Invariants:
- One request in flight at a time; bytes on stdout while none is in flight are malformed.
- A response must say where it ends (Content-Length or chunked); one that does not, a 1xx, a
  head over MAX_HEAD_SIZE, a body over the response limit, anything h11 refuses: the channel is
  broken for good (every later call raises the same error) and its container must be killed.
- A response that closes the connection (``Connection: close``, HTTP/1.0) is a good answer,
  after which ``must_close`` is set: the container serves no further request.
"""

from __future__ import annotations

import h11

from ..models import header_env_name
from . import frames

# A response head larger than this is refused (h11 buffers at most this much of one event).
MAX_HEAD_SIZE = 64 * 1024

# Request headers that describe the client's connection to hotfn, not the request: the
# channel to the container has its own framing (Content-Length) and no upgrades.
_NOT_FORWARDED = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
    "upgrade", "expect", "proxy-connection",
})


class MalformedResponse(frames.ProtocolError):
    """The container's stdout is not a well-framed HTTP/1.1 response to the request in flight."""


class ResponseTooLarge(MalformedResponse):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"response body of {size} bytes exceeds the {limit}-byte limit")


class RequestNotWritable(ValueError):
    """The request cannot be carried in an HTTP/1.1 head (a path parameter that decodes to a
    control character, say): the client's fault, not the container's."""


def request_head(request: frames.Request) -> tuple[str, bytes, list[tuple[bytes, bytes]]]:
    """The request line's method and target and the headers a container is sent.

    The method is the client's, except HEAD (and CONNECT) go as GET: the function answers with
    a body as for GET, and hotfn's HTTP layer sends a HEAD client only the head. The target is
    the path within the app with the query, as the client sent them. Headers: Host, the
    client's own (less those about its connection), Content-Length, then the variables
    IronFunctions gave its hot functions as headers (METHOD, ROUTE, REQUEST_URL, HEADER_*,
    PARAM_*, Task-ID), then hotfn's (Hotfn-Call-Id, Hotfn-Deadline, Hotfn-Attempt).
    """
    method = "GET" if request.method in ("HEAD", "CONNECT") else request.method
    query = request.url.partition("?")[2]
    target = (request.path + ("?" + query if query else "")).encode("utf-8", "surrogateescape")
    host = "localhost"
    forwarded: list[tuple[bytes, bytes]] = []
    joined: dict[str, list[str]] = {}
    for name, value in request.headers:
        joined.setdefault(name, []).append(value)
        if name == "host":
            host = value
        elif name not in _NOT_FORWARDED:
            forwarded.append((name.encode("ascii"), _value(value)))
    headers = [(b"Host", _value(host)), *forwarded,
               (b"Content-Length", str(len(request.body)).encode()),
               (b"METHOD", _value(request.method)), (b"ROUTE", _value(request.route)),
               (b"REQUEST_URL", _value(request.url))]
    headers += [(f"HEADER_{header_env_name(name)}".encode("ascii"), _value(", ".join(values)))
                for name, values in joined.items()]
    headers += [(f"PARAM_{header_env_name(name)}".encode("ascii"), _value(value))
                for name, value in request.params.items()]
    headers += [(b"Task-ID", _value(request.call_id)), (b"Hotfn-Call-Id", _value(request.call_id)),
                (b"Hotfn-Deadline", str(request.deadline).encode()),
                (b"Hotfn-Attempt", str(request.attempt).encode())]
    return method, target, headers


def _value(text: str) -> bytes:
    # Header values reached hotfn as UTF-8 (or ISO-8859-1) text; they leave as UTF-8 bytes.
    return text.encode("utf-8", "surrogateescape")


class HttpChannel:
    """One hot container's stdin and stdout as an HTTP/1.1 connection, hotfn the client.

    ``send_request`` gives the bytes to write; ``receive_data`` takes what the container wrote
    (``b""`` at EOF); ``next_frame`` returns the answer as a ``frames.Response``,
    ``frames.NEED_DATA``, or ``frames.CLOSED`` after EOF between answers.
    """

    def __init__(self, max_response_size: int = frames.DEFAULT_MAX_FRAME_SIZE,
                 max_request_size: int = frames.DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_response_size = max_response_size
        self.max_request_size = max_request_size
        self.must_close = False
        self._conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
        self._call_id: str | None = None  # the request in flight's
        self._status = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._body = bytearray()
        self._received = 0  # bytes of the answer in flight so far
        self._eof = False
        self._error: frames.ProtocolError | None = None

    @property
    def in_flight(self) -> bool:
        return self._call_id is not None

    def send_request(self, request: frames.Request) -> bytes:
        """The wire bytes of ``request``. FrameTooLarge for a body over the limit,
        RequestNotWritable for one HTTP cannot carry; neither changes the channel."""
        if self._error is not None:
            raise self._error
        if self._call_id is not None or self.must_close or self._eof:
            raise RuntimeError("the channel cannot take a request now")
        if len(request.body) > self.max_request_size:
            raise frames.FrameTooLarge(len(request.body), self.max_request_size)
        method, target, headers = request_head(request)
        try:
            # Built before it is sent: a refused event leaves the connection as it was.
            head = h11.Request(method=method, target=target, headers=headers)
        except h11.LocalProtocolError as exc:
            raise RequestNotWritable(f"the request cannot be written as HTTP/1.1: {exc}") from None
        data = self._conn.send(head)
        if request.body:
            data += self._conn.send(h11.Data(data=request.body))
        data += self._conn.send(h11.EndOfMessage())
        self._call_id = request.call_id
        self._received = 0
        self._status, self._headers = 0, ()
        self._body.clear()
        return data

    def receive_data(self, data: bytes) -> None:
        if self._error is not None:
            return  # raised again by next_frame
        if self._eof and data:
            raise RuntimeError("data received after EOF")
        if not data:
            self._eof = True
        elif self._call_id is None:
            self._error = MalformedResponse(
                f"wrote {len(data)} bytes to stdout with no request in flight: {_brief(data)}")
            return
        self._received += len(data)
        self._conn.receive_data(data)

    def next_frame(self) -> frames.Response | frames.Sentinel:
        if self._error is not None:
            raise self._error
        try:
            return self._next_frame()
        except frames.ProtocolError as exc:
            self._error = exc
            raise

    def _next_frame(self) -> frames.Response | frames.Sentinel:
        while True:
            if self._call_id is None:
                return frames.CLOSED if self._eof else frames.NEED_DATA
            if self._eof and not self._received:
                # Ended without a byte of an answer: it exited (its exit status tells why),
                # rather than spoke badly.
                return frames.CLOSED
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise MalformedResponse(f"not a well-formed HTTP/1.1 response: {exc}") from None
            if event is h11.NEED_DATA:
                return frames.NEED_DATA
            if isinstance(event, h11.InformationalResponse):
                raise MalformedResponse(f"answered with an interim {event.status_code} response; "
                                        "the http format carries one final response per request")
            if isinstance(event, h11.Response):
                self._on_head(event)
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.max_response_size:
                    raise ResponseTooLarge(len(self._body), self.max_response_size)
            elif isinstance(event, h11.EndOfMessage):
                return self._on_end()
            else:
                raise MalformedResponse(f"unexpected {type(event).__name__}")

    def _on_head(self, event: h11.Response) -> None:
        length = None
        chunked = False
        for name, value in event.headers:
            if name == b"content-length":
                length = int(value)  # h11 has checked it is digits
            elif name == b"transfer-encoding":
                chunked = True  # h11 accepts only chunked
        if length is None and not chunked and event.status_code not in (204, 304):
            raise MalformedResponse(
                f"status {event.status_code} response has neither Content-Length nor "
                "Transfer-Encoding: chunked, so its end cannot be told (the container's stdout "
                "stays open between calls)")
        if length is not None and length > self.max_response_size:
            raise ResponseTooLarge(length, self.max_response_size)
        self._status = event.status_code
        self._headers = tuple((n.decode("ascii"), v.decode("latin-1")) for n, v in event.headers)

    def _on_end(self) -> frames.Response:
        assert self._call_id is not None
        answer = frames.Response(call_id=self._call_id, status=self._status,
                                   headers=self._headers, body=bytes(self._body))
        self._call_id = None
        self._body.clear()
        leftover, _ = self._conn.trailing_data
        if self._conn.their_state is h11.DONE and self._conn.our_state is h11.DONE:
            self._conn.start_next_cycle()
        else:  # Connection: close, or an HTTP/1.0 answer: no next request on this channel
            self.must_close = True
        if leftover:
            # The answer stands (as a msgpack answer followed by stray bytes does); the bytes
            # after it break the channel, raised by the next call.
            self._error = MalformedResponse(f"wrote {len(leftover)} bytes after its response: "
                                            f"{_brief(leftover)}")
        return answer


def _brief(data: bytes, limit: int = 40) -> str:
    text = repr(bytes(data[:limit]))
    return text + ("..." if len(data) > limit else "")
