"""hotfn's own time per hot call: msgpack frames against the http format, side by side, one run.

    PYTHONPATH=bench python -m hotfn_bench.formats [--calls 1000] [--rounds 4]

Two routes of one server serve a Python echo of a 5-byte body: ``format: "hot"``
(bench/functions/echo-python, msgpack frames through the Python shim) and ``format: "http"``
(bench/functions/echo-http-python, IronFunctions style, HTTP/1.1 on stdin and stdout). For each:

- **through HTTP**: sequential keep-alive calls by the bench's latency client (a separate
  process), in alternating rounds so that both formats see the same machine;
- **direct**: the same image in a container started by hotfn's own DockerDriver with the spec
  the server would give it (FIFO stdio), a pre-encoded request written to its stdin and the
  answer read from its stdout by plain byte counting: the function's and the pipes' share;
- **hotfn's own time** = through HTTP minus direct (medians): HTTP front, API, invoker, pool,
  codec. The codecs alone are also timed in-process (encode a request, decode an answer).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import trio

from . import functions, server as server_mod, worker as worker_mod
from .client import Call, ClientProcess
from .functions import FUNCTIONS_DIR, REPO_DIR
from .server import HotfnServer, free_port

if not os.path.exists(functions.PYTHON):  # a worktree without its own .venv
    server_mod.PYTHON = worker_mod.PYTHON = sys.executable

APP = "formats"
BODY = b"hello"
IMAGES = {"hot": "hotfn-bench/echo-python:latest", "http": "hotfn-bench/echo-http-python:latest"}


def build_images() -> None:
    subprocess.run([sys.executable, "-m", "hotfn", "build", os.path.join(FUNCTIONS_DIR, "echo-python"),
                    "--tag", IMAGES["hot"]], cwd=REPO_DIR, check=True, capture_output=True)
    subprocess.run(["docker", "build", "-q", "-t", IMAGES["http"],
                    os.path.join(FUNCTIONS_DIR, "echo-http-python")], check=True, capture_output=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- direct round trips ----------------------------------------------------------------------------


async def direct_round_trips(fmt: str, n: int, node_id: str) -> list[float]:
    from hotfn import protocol
    from hotfn.drivers.docker import DockerDriver
    from hotfn.invoke import Limits, container_spec
    from hotfn.models import Route

    driver = DockerDriver.from_env(io_dir=os.path.join("/run/hotfn", node_id))
    route = Route(app=APP, path="/direct", image=IMAGES[fmt], format=fmt)
    spec = container_spec(route, Limits(node_id=node_id))
    spec = dataclasses.replace(spec, labels={**spec.labels, "hotfn.bench": node_id})
    container = await driver.start(spec)
    buf = bytearray()

    async def read_until(done) -> None:
        while (size := done(buf)) is None:
            data = await container.receive_stdout()
            if data is None:
                raise RuntimeError("the container closed its stdout")
            buf.extend(data)
        del buf[:size]

    def frame_size(data: bytearray) -> int | None:
        if len(data) < 4:
            return None
        size = 4 + int.from_bytes(data[:4], "big")
        return size if len(data) >= size else None

    def http_size(data: bytearray) -> int | None:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        length = int(data[:end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
        size = end + 4 + length
        return size if len(data) >= size else None

    latencies = []
    try:
        async with trio.open_nursery() as nursery:
            async def drain_stderr() -> None:
                while await container.receive_some() is not None:
                    pass
            nursery.start_soon(drain_stderr)
            with trio.fail_after(120):
                request = protocol.Request(
                    call_id="direct", method="POST", url=f"http://127.0.0.1/r/{APP}/direct",
                    path="/direct", query=(), headers=(("host", "127.0.0.1"),
                                                       ("content-length", str(len(BODY)))),
                    body=BODY, deadline=int(time.time() * 1000) + 600_000, app=APP,
                    route="/direct", params={})
                if fmt == "hot":
                    await read_until(frame_size)  # the ready frame
                    data, answered = protocol.encode_frame(request), frame_size
                else:
                    from hotfn.protocol.httpformat import HttpChannel
                    data, answered = HttpChannel().send_request(request), http_size
                for _ in range(n):
                    t0 = time.perf_counter_ns()
                    await container.send_all(data)
                    await read_until(answered)
                    latencies.append((time.perf_counter_ns() - t0) / 1e6)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await container.kill()
    return latencies


# -- the codecs alone --------------------------------------------------------------------------------


def codec_us(fmt: str, n: int = 20000) -> float:
    """Microseconds to encode one request and decode its answer, in this process."""
    from hotfn import protocol
    from hotfn.protocol.httpformat import HttpChannel

    request = protocol.Request(
        call_id="c", method="POST", url="http://127.0.0.1:8080/r/formats/x", path="/x", query=(),
        headers=(("host", "127.0.0.1:8080"), ("content-length", "5"), ("user-agent", "bench")),
        body=BODY, deadline=0, app=APP, route="/x", params={})
    if fmt == "hot":
        answer = protocol.encode_frame(protocol.Response("c", 200, (), BODY))
        decoder = protocol.FrameDecoder()
        t0 = time.perf_counter()
        for _ in range(n):
            protocol.encode_frame(request)
            decoder.receive_data(answer)
            decoder.next_frame()
    else:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        channel = HttpChannel()
        t0 = time.perf_counter()
        for _ in range(n):
            channel.send_request(request)
            channel.receive_data(answer)
            channel.next_frame()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per format per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:8]
    node_id = f"bench-formats-{run_id}"
    build_images()
    tmp = tempfile.mkdtemp(prefix="hotfn-formats-")
    server = HotfnServer(port=free_port(), db=os.path.join(tmp, "bench.db"), node_id=node_id,
                         log_path=os.path.join(tmp, "server.log"))
    client = ClientProcess()
    through: dict[str, list[float]] = {"hot": [], "http": []}
    try:
        server.admin("POST", "/v1/apps", {"app": {"name": APP}})
        for fmt in ("hot", "http"):
            server.create_route(APP, f"/{fmt}", IMAGES[fmt], format=fmt)
        calls = {fmt: Call(port=server.port, path=f"/r/{APP}/{fmt}", body=BODY, expect_body=BODY)
                 for fmt in ("hot", "http")}
        for fmt in ("hot", "http"):
            client.run(calls[fmt], 200)  # start the container, warm the paths
        for r in range(args.rounds):
            for fmt in (("hot", "http") if r % 2 == 0 else ("http", "hot")):
                result = client.run(calls[fmt], args.calls)
                if result.failed:
                    raise SystemExit(f"{fmt}: {result.failed} calls failed: {result.errors}")
                through[fmt] += result.latencies_ms
    finally:
        client.close()
        server.stop()
    direct = {fmt: trio.run(direct_round_trips, fmt, args.calls * 2, f"{node_id}-direct")
              for fmt in ("hot", "http")}
    codec = {fmt: codec_us(fmt) for fmt in ("hot", "http")}
    rows = {}
    print(f"{'format':6} {'through HTTP p50':>17} {'p99':>8} {'direct p50':>11} "
          f"{'hotfn own p50':>14} {'codec':>9}")
    for fmt in ("hot", "http"):
        p50 = statistics.median(through[fmt])
        own = p50 - statistics.median(direct[fmt])
        rows[fmt] = {"through_p50_ms": p50, "through_p99_ms": pct(through[fmt], 0.99),
                     "direct_p50_ms": statistics.median(direct[fmt]), "own_p50_ms": own,
                     "codec_us": codec[fmt], "calls": len(through[fmt])}
        print(f"{fmt:6} {p50:15.3f}ms {rows[fmt]['through_p99_ms']:6.3f}ms "
              f"{rows[fmt]['direct_p50_ms']:9.3f}ms {own:12.3f}ms {codec[fmt]:7.1f}us")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
