"""Benchmark function (Python): echo the request body; with `x-bench: sum`, parse the body as a
JSON array of numbers with a hand-written parser and answer their sum (the JIT/warm-up probe);
with `x-bench: sleep`, sleep `x-sleep-ms` first (a busy tenant that costs no CPU: hotfn_bench.auth)."""

import time


def json_sum(data: bytes) -> float:
    """Sum of a flat JSON array of numbers, scanned by hand (no json module: the same work as
    the JVM versions)."""
    total = 0.0
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 45 or 48 <= c <= 57:  # '-' or a digit: one number token
            start = i
            i += 1
            while i < n and data[i] in b"0123456789.eE+-":
                i += 1
            total += float(data[start:i])
        elif c in b"[], \t\r\n":
            i += 1
        else:
            raise ValueError(f"unexpected byte {chr(c)!r} at {i}")
    return total


def handler(request):
    if request.header("x-bench") == "sleep":
        time.sleep(int(request.header("x-sleep-ms", "0")) / 1000)
    if request.header("x-bench") == "sum":
        return repr(json_sum(request.body))
    return request.body
