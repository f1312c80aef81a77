"""A fast reader for the plain requests that are most of the traffic; pure, no I/O.

``parse_simple_request(buffer, max_header_size)`` reads one request that is whole in ``buffer``
(head and body) and returns it with the number of bytes it took, or None. It accepts only a
strict subset of HTTP/1.1 that it reads exactly as h11 does; for anything else (a request not
yet whole, a chunked body, ``Expect``, a repeated Content-Length, obs-fold, a bare LF, a control
character in a value, ...) it says None and the caller hands the same bytes to h11, which
validates them and gives every error its status. So the invariant is one-sided: where this
module answers, h11 would have answered the same (tests/test_http_simple.py checks it on
mutated inputs); where it does not, nothing is lost.

Why beside h11 at all: a keep-alive hot call spent ~12-15 % of the server's CPU in h11's reader
(a Connection, three events, header normalisation, the state machine) for a head that one
split and a regular expression per line read here.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# The grammar h11 reads with (RFC 9110 5.1, 5.5, 5.6.2; RFC 9112 3), narrowed where h11 is
# lenient: a value here is field-content proper (VCHAR and obs-text, spaces and tabs between),
# without the control characters h11 lets through; the version is 1.0 or 1.1 (h11 reads any
# d.d, which the server answers with 505).
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_REQUEST_LINE = re.compile(rb"(%s) ([\x21-\x7e]+) HTTP/(1\.[01])" % _TOKEN)
_FIELD_CONTENT = rb"[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*"
_HEADER_LINE = re.compile(rb"(%s):[ \t]*((?:%s)?)[ \t]*" % (_TOKEN, _FIELD_CONTENT))
# h11 refuses a longer Content-Length (CONTENT_LENGTH_MAX_DIGITS).
_MAX_LENGTH_DIGITS = 20


class SimpleRequest(NamedTuple):
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]  # names lower case, in order, repeats kept
    http_version: bytes  # b"1.1" or b"1.0"
    body: bytes
    keep_alive: bool  # the client keeps the connection open after this request


def says_close(connection_value: bytes) -> bool:
    """Whether a Connection header's value has the ``close`` option (compared as h11 does)."""
    return b"close" in [option.strip() for option in connection_value.lower().split(b",")]


def keeps_alive(http_version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the client keeps the connection open after this request (as h11 decides it:
    not with HTTP/1.0, not with ``Connection: close``)."""
    if http_version < b"1.1":
        return False
    return not any(name == b"connection" and says_close(value) for name, value in headers)


def parse_simple_request(buffer: bytes | bytearray,
                         max_header_size: int) -> tuple[SimpleRequest, int] | None:
    """The request at the start of ``buffer`` and how many bytes it took; None when it is not
    whole there or not in the subset read here (then h11 must read the same bytes)."""
    end = buffer.find(b"\r\n\r\n", 0, max_header_size)
    if end < 0:
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        return None
    method, target, http_version = match.groups()
    keep_alive = http_version == b"1.1"
    # The size the server caps a head at, counted as for a head h11 read (server.py).
    size = len(target)
    length = None
    hosts = 0
    headers = []
    for line in lines[1:]:
        # A stray CR or LF, a continuation line (obs-fold), a space before the colon: no match.
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            return None
        name, value = match.groups()
        name = name.lower()
        if name == b"content-length":
            # Only one, digits only: h11 also reads "5, 5" and repeats of one length, but
            # folds them into one header, which this reader would have to copy exactly.
            if length is not None or not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
                return None
            length = int(value)
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            if keep_alive and says_close(value):
                keep_alive = False
        elif name == b"transfer-encoding" or name == b"expect":
            return None  # a chunked body, 100-continue: h11's to read
        size += len(name) + len(value) + 4
        headers.append((name, value))
    # h11 refuses HTTP/1.1 without a Host header, and any request with more than one.
    if hosts > 1 or (hosts == 0 and http_version == b"1.1") or size > max_header_size:
        return None
    start = end + 4
    if not length:
        return SimpleRequest(method, target, headers, http_version, b"", keep_alive), start
    stop = start + length
    if len(buffer) < stop:
        return None  # the body is still on its way: h11 waits for it, within the deadlines
    return SimpleRequest(method, target, headers, http_version, bytes(buffer[start:stop]),
                         keep_alive), stop
