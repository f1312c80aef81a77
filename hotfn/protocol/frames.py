"""The hot-container frame protocol, version 1 (docs/protocol.md), sans I/O.

Bytes in, frames out; frames in, bytes out. Nothing here reads or writes a stream, so the codec
is tested byte by byte and serves any transport. This is the only module that imports msgpack.

Invariants:
- A frame is a big-endian uint32 payload length followed by one msgpack map.
- A length over ``max_frame_size`` is refused as soon as the 4 length bytes are in, before any
  payload is buffered for it.
- Any error leaves the decoder broken: a peer that sent one bad frame is never read again.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

import msgpack

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_SIZE = 6 * 1024 * 1024
# The most requests one container may ask to have in flight at once (ready frame's
# `concurrency`): beyond it a container's claim is refused as malformed, not trusted.
MAX_CONCURRENCY = 1024
_LENGTH = struct.Struct(">I")

Pairs = tuple[tuple[str, str], ...]


class ProtocolError(Exception):
    """The peer broke the frame protocol; the stream cannot be trusted any more."""


class FrameTooLarge(ProtocolError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


class MalformedFrame(ProtocolError):
    pass


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"


NEED_DATA = Sentinel.NEED_DATA
CLOSED = Sentinel.CLOSED


@dataclass(frozen=True, slots=True)
class Ready:
    version: int
    runtime: str
    concurrency: int = 1  # requests the container takes in flight at once; absent means 1


@dataclass(frozen=True, slots=True)
class Request:
    call_id: str
    method: str
    url: str
    path: str
    query: Pairs
    headers: Pairs
    body: bytes
    deadline: int  # ms since the Unix epoch
    app: str
    route: str
    params: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 1  # async calls run again after a failure or a crash: 2, 3, ...


@dataclass(frozen=True, slots=True)
class Response:
    call_id: str
    status: int
    headers: Pairs
    body: bytes


@dataclass(frozen=True, slots=True)
class HandlerError:
    call_id: str
    error_type: str
    message: str
    trace: str


Frame = Union[Ready, Request, Response, HandlerError]


def _to_map(frame: Frame) -> dict[str, Any]:
    if isinstance(frame, Request):
        # (msgpack packs tuples as arrays: the pairs go as they are, not copied into lists.)
        out = {
            "type": "request",
            "call_id": frame.call_id,
            "method": frame.method,
            "url": frame.url,
            "path": frame.path,
            "query": frame.query,
            "headers": frame.headers,
            "body": bytes(frame.body),
            "deadline": frame.deadline,
            "app": frame.app,
            "route": frame.route,
            "params": frame.params if type(frame.params) is dict else dict(frame.params),
        }
        # Optional, absent meaning 1: a first attempt's frame is what it was before the key.
        if frame.attempt != 1:
            out["attempt"] = frame.attempt
        return out
    if isinstance(frame, Response):
        return {
            "type": "response",
            "call_id": frame.call_id,
            "status": frame.status,
            "headers": frame.headers,
            "body": bytes(frame.body),
        }
    if isinstance(frame, HandlerError):
        return {
            "type": "error",
            "call_id": frame.call_id,
            "error_type": frame.error_type,
            "message": frame.message,
            "trace": frame.trace,
        }
    if isinstance(frame, Ready):
        out = {"type": "ready", "version": frame.version, "runtime": frame.runtime}
        if frame.concurrency != 1:  # optional, absent meaning 1: old servers ignore it
            out["concurrency"] = frame.concurrency
        return out
    raise TypeError(f"not a frame: {frame!r}")


def encode_frame(frame: Frame, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """The wire bytes of ``frame``; FrameTooLarge if its payload would exceed the limit."""
    payload = msgpack.packb(_to_map(frame), use_bin_type=True)
    if len(payload) > max_frame_size:
        raise FrameTooLarge(len(payload), max_frame_size)
    return _LENGTH.pack(len(payload)) + payload


# -- decoding -------------------------------------------------------------------------------


def _field(m: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    try:
        value = m[key]
    except KeyError:
        raise MalformedFrame(f"{m.get('type')} frame lacks {key!r}") from None
    # bool is an int in Python, never a valid int field here.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedFrame(
            f"{m.get('type')} frame field {key!r} must be {_kind_name(kind)}, "
            f"not {type(value).__name__}"
        )
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "str", bytes: "bin", int: "int", list: "array", dict: "map"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _pairs(m: Mapping[str, Any], key: str) -> Pairs:
    raw = _field(m, key, list)
    out = []
    for item in raw:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
        ):
            raise MalformedFrame(f"{m['type']} frame field {key!r} must hold [str, str] pairs")
        out.append((item[0], item[1]))
    return tuple(out)


def _from_map(m: Any) -> Frame:
    if not isinstance(m, dict):
        raise MalformedFrame(f"frame payload must be a map, not {type(m).__name__}")
    kind = m.get("type")
    if kind == "response":
        status = _field(m, "status", int)
        return Response(
            call_id=_field(m, "call_id", str),
            status=status,
            headers=_pairs(m, "headers"),
            body=_field(m, "body", bytes),
        )
    if kind == "error":
        return HandlerError(
            call_id=_field(m, "call_id", str),
            error_type=_field(m, "error_type", str),
            message=_field(m, "message", str),
            trace=_field(m, "trace", str),
        )
    if kind == "ready":
        concurrency = _field(m, "concurrency", int) if "concurrency" in m else 1
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise MalformedFrame(f"ready frame field 'concurrency' must be 1 to {MAX_CONCURRENCY}, "
                                 f"not {concurrency}")
        return Ready(version=_field(m, "version", int), runtime=_field(m, "runtime", str),
                     concurrency=concurrency)
    if kind == "request":
        params = _field(m, "params", dict)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
            raise MalformedFrame("request frame field 'params' must map str to str")
        return Request(
            call_id=_field(m, "call_id", str),
            method=_field(m, "method", str),
            url=_field(m, "url", str),
            path=_field(m, "path", str),
            query=_pairs(m, "query"),
            headers=_pairs(m, "headers"),
            body=_field(m, "body", bytes),
            deadline=_field(m, "deadline", int),
            app=_field(m, "app", str),
            route=_field(m, "route", str),
            params=params,
            attempt=_field(m, "attempt", int) if "attempt" in m else 1,
        )
    raise MalformedFrame(f"unknown frame type {kind!r}")


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MalformedFrame(f"msgpack ext type {code} is not allowed in frames")


def decode_payload(payload: bytes) -> Frame:
    """One frame from one complete payload (the bytes after the length prefix)."""
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True, ext_hook=_refuse_ext)
    except MalformedFrame:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # ExtraData, FormatError, StackError, UnicodeDecodeError (a ValueError), ...
        raise MalformedFrame(f"payload is not one msgpack map: {exc}") from None
    return _from_map(obj)


class FrameDecoder:
    """Turns a byte stream into frames.

    ``receive_data(b"")`` marks EOF. ``next_frame()`` returns a frame, ``NEED_DATA`` or, after a
    clean EOF between frames, ``CLOSED``. It raises ProtocolError for an oversized, malformed or
    truncated frame, and again on every later call.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._eof = False
        self._error: ProtocolError | None = None
        self._need = 0  # payload length of the frame being read, once its prefix is in

    def receive_data(self, data: bytes) -> None:
        if self._eof and data:
            raise RuntimeError("data received after EOF")
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_frame(self) -> Frame | Sentinel:
        if self._error is not None:
            raise self._error
        try:
            return self._next_frame()
        except ProtocolError as exc:
            self._error = exc
            self._buf.clear()
            raise

    def _next_frame(self) -> Frame | Sentinel:
        if not self._need:
            if len(self._buf) < _LENGTH.size:
                return self._at_short_buffer()
            (size,) = _LENGTH.unpack_from(self._buf)
            if size == 0:
                raise MalformedFrame("frame length 0")
            if size > self.max_frame_size:
                raise FrameTooLarge(size, self.max_frame_size)
            del self._buf[: _LENGTH.size]
            self._need = size
        if len(self._buf) < self._need:
            return self._at_short_buffer()
        payload = bytes(self._buf[: self._need])
        del self._buf[: self._need]
        self._need = 0
        return decode_payload(payload)

    def _at_short_buffer(self) -> Sentinel:
        if not self._eof:
            return NEED_DATA
        if self._buf or self._need:
            raise MalformedFrame("stream ended inside a frame")
        return CLOSED
