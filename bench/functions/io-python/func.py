"""Benchmark function (Python, async): wait x-wait-ms (default 10) as if on I/O, then echo the
body. With HOTFN_CONCURRENCY=N the shim overlaps N such waits (the concurrency bench)."""

import asyncio


async def handler(request):
    await asyncio.sleep(int(request.header("x-wait-ms", "10")) / 1000)
    return request.body
