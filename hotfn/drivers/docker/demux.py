"""Docker's multiplexed attach stream, sans I/O.

Without a TTY, the attach stream carries stdout and stderr as chunks, each behind an 8-byte
header: stream id (1 stdout, 2 stderr; 0 stdin is never sent to us), three zero bytes, then a
big-endian uint32 chunk length. A read from the socket can end inside a header or a chunk, or
hold several chunks; the demultiplexer hands payload bytes out as soon as they arrive rather
than waiting for a whole chunk, so a large stdout frame is never buffered twice.
"""

from __future__ import annotations

import struct

STDOUT = 1
STDERR = 2
_HEADER = struct.Struct(">B3sI")


class DemuxError(Exception):
    """The attach stream is not in Docker's multiplexed format."""


class Demultiplexer:
    def __init__(self) -> None:
        self._header = bytearray()
        self._stream = 0
        self._left = 0  # payload bytes still to come in the current chunk
        self._error: DemuxError | None = None

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Everything ``data`` completes: (stdout bytes, stderr bytes)."""
        if self._error is not None:
            raise self._error
        out: list[bytes] = []
        err: list[bytes] = []
        view = memoryview(data)
        while view:
            if self._left:
                piece = view[: self._left]
                (out if self._stream == STDOUT else err).append(bytes(piece))
                self._left -= len(piece)
                view = view[len(piece):]
                continue
            need = _HEADER.size - len(self._header)
            self._header += view[:need]
            view = view[need:]
            if len(self._header) < _HEADER.size:
                break
            stream, padding, size = _HEADER.unpack(self._header)
            self._header.clear()
            if stream not in (STDOUT, STDERR) or padding != b"\0\0\0":
                self._error = DemuxError(
                    f"bad chunk header in attach stream: stream {stream}, padding {padding!r}"
                )
                raise self._error
            self._stream, self._left = stream, size
        return b"".join(out), b"".join(err)

    def at_eof(self) -> bool:
        """True when the stream may end here: not inside a header or a chunk."""
        return not self._header and not self._left
