"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the ``traceparent`` a call carries.

A call keeps the traceparent its client sent when it is valid, so the function's spans join
the caller's trace. When there is none, or it is malformed, the call's id seeds a new one: a
ULID is 128 bits, exactly a trace id, so the trace id of such a call *is* its call id in hex,
and a trace can be found from a call record and the other way round. hotfn passes the value
on unchanged (it records no spans of its own, which the spec allows a participant to do).
"""

from __future__ import annotations

import hashlib
import re

# version 00: exactly four fields. A later version may add fields after a '-' (spec 4.3),
# and is read by its first four; version ff is invalid. Lower-case hex only.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
# A ULID's Crockford base-32 digits as the digits int(..., 32) reads.
_CROCKFORD_TO_BASE32 = str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", "0123456789abcdefghijklmnopqrstuv")
MAX_LENGTH = 512
_TRACE_HEADERS = ("traceparent", "tracestate")  # a header longer than this is not a traceparent we pass on


def parse(value: str | None) -> str | None:
    """``value`` if it is a valid traceparent (as the function should see it), else None."""
    if value is None or len(value) > MAX_LENGTH:
        return None
    match = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return match.group(0)


def from_call_id(call_id: str) -> str:
    """A new traceparent, sampled, whose trace id is the call id (a ULID) in hex and whose
    parent id is its low 64 (random) bits."""
    try:
        value = int(call_id.translate(_CROCKFORD_TO_BASE32), 32) & ((1 << 128) - 1)
    except ValueError:  # not a ULID (never, for ids hotfn makes): any stable 128 bits
        value = int.from_bytes(hashlib.blake2b(call_id.encode(), digest_size=16).digest(), "big")
    parent = value & ((1 << 64) - 1) or 1
    if value == 0:
        value = 1
    return f"00-{value:032x}-{parent:016x}-01"


def trace_id(traceparent: str | None) -> str | None:
    return traceparent[3:35] if traceparent else None


def resolve(headers: list[tuple[str, str]], call_id: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The call's traceparent and the request headers the function gets: the client's own
    when valid (passed on as sent), else a new one from ``call_id`` in place of any others."""
    found = None
    count = 0
    for name, value in headers:
        if name == "traceparent":
            count += 1
            found = value
    if count == 1:
        valid = parse(found)
        if valid is not None:
            return valid, tuple(headers)
    # Absent, malformed, or sent more than once (the spec: then it is invalid). A new trace
    # begins, and a tracestate of the old one means nothing in it.
    new = from_call_id(call_id)
    kept = [(k, v) for k, v in headers if k not in _TRACE_HEADERS]
    kept.append(("traceparent", new))
    return new, tuple(kept)
