"""The function side of hotfn protocol v1 (docs/protocol.md): read requests, write answers.

Standalone on purpose: a function image carries this package and msgpack, never hotfn itself.
"""

from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO

import msgpack

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME_SIZE = 6 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """hotfn sent something that is not a valid frame; the shim must stop."""


class FrameTooLarge(ProtocolError):
    pass


def max_frame_size_from_env() -> int:
    try:
        return int(os.environ.get("HOTFN_MAX_FRAME_SIZE", DEFAULT_MAX_FRAME_SIZE))
    except ValueError:
        return DEFAULT_MAX_FRAME_SIZE


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack ext type {code} is not allowed in frames")


def encode(frame: dict, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    payload = msgpack.packb(frame, use_bin_type=True)
    if len(payload) > max_frame_size:
        raise FrameTooLarge(
            f"{frame.get('type')} frame of {len(payload)} bytes exceeds the "
            f"{max_frame_size}-byte limit"
        )
    return _LENGTH.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> dict:
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True, ext_hook=_refuse_ext)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"payload is not one msgpack map: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame payload must be a map, not {type(obj).__name__}")
    if not isinstance(obj.get("type"), str):
        raise ProtocolError("frame lacks a 'type'")
    return obj


class FrameReader:
    """Reads whole frames from a blocking binary stream (the real stdin)."""

    def __init__(self, stream: BinaryIO, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._stream = stream
        self.max_frame_size = max_frame_size

    def _read_exactly(self, n: int, what: str) -> bytes | None:
        chunks = []
        remaining = n
        while remaining:
            chunk = self._stream.read(remaining)
            if not chunk:
                if remaining == n and what == "length":
                    return None  # clean EOF between frames
                raise ProtocolError(f"stdin ended inside a frame ({what})")
            chunks.append(chunk)
            remaining -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def read_frame(self) -> dict | None:
        """The next frame as a map, or None at EOF between frames."""
        prefix = self._read_exactly(_LENGTH.size, "length")
        if prefix is None:
            return None
        (size,) = _LENGTH.unpack(prefix)
        if size == 0:
            raise ProtocolError("frame length 0")
        if size > self.max_frame_size:
            raise FrameTooLarge(
                f"frame of {size} bytes exceeds the {self.max_frame_size}-byte limit"
            )
        return decode_payload(self._read_exactly(size, "payload"))
