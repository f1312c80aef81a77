"""What hotfn and a hot container say to each other, sans I/O: bytes in, events out.

- ``frames``: the msgpack frame protocol, version 1 (docs/protocol.md); its names are offered
  here. The only msgpack importer.
- ``httpformat``: the ``http`` hot format (IronFunctions'), h11 as the client of a container's
  stdio. Imported by its own name (``hotfn.protocol.httpformat``), so that h11 is loaded only
  where that format is spoken.

May import: ``hotfn.models`` (header names as environment names), and nothing else of hotfn.
"""

from .frames import (
    CLOSED,
    DEFAULT_MAX_FRAME_SIZE,
    MAX_CONCURRENCY,
    NEED_DATA,
    PROTOCOL_VERSION,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    HandlerError,
    MalformedFrame,
    Pairs,
    ProtocolError,
    Ready,
    Request,
    Response,
    Sentinel,
    decode_payload,
    encode_frame,
)

__all__ = [
    "CLOSED", "DEFAULT_MAX_FRAME_SIZE", "MAX_CONCURRENCY", "NEED_DATA", "PROTOCOL_VERSION", "Frame",
    "FrameDecoder", "FrameTooLarge", "HandlerError", "MalformedFrame", "Pairs", "ProtocolError",
    "Ready", "Request", "Response", "Sentinel", "decode_payload", "encode_frame",
]
