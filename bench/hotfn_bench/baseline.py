"""The no-container baseline: hotfn's own HTTP front (hotfn.http.HttpServer, h11 over trio)
with a handler that echoes the body from memory. Same process model as `hotfn serve` (one
Python process, one trio loop), so client -> HTTP -> client costs the same as on the hot path,
minus everything behind the HTTP layer.

    python -m hotfn_bench.baseline --port 18123
"""

from __future__ import annotations

import argparse
import signal

import trio

from hotfn.api import ApiRequest, ApiResponse
from hotfn.http import HttpConfig, HttpServer


async def echo(request: ApiRequest) -> ApiResponse:
    # The same headers a hot echo answers with (content-type aside): hotfn-call-id.
    return ApiResponse(200, [("hotfn-call-id", "baseline")], request.body)


async def main(port: int) -> None:
    server = HttpServer(echo, HttpConfig())
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await nursery.start(server.serve, "127.0.0.1", port)
            print(f"baseline serving on 127.0.0.1:{port}", flush=True)
            async for _ in signals:
                server.stop()
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    trio.run(main, parser.parse_args().port)
