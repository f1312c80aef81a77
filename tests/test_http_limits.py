"""What a client may cost the server, tried as a client would: a real `hotfn serve` process and
real sockets. Each figure these tests measure is printed (pytest -s shows it)."""

from __future__ import annotations

import resource
import socket
import time

import pytest
import trio

from httpclient import raw_exchange
from test_server_process import serve_process

pytestmark = pytest.mark.docker
ECHO = "hotfn-test/conformance-python"
MB = 1024 * 1024


def raise_own_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this (never written, never read) connection."""
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def test_2000_silent_connections_past_the_limit_leave_health_prompt(images, tmp_path):
    raise_own_open_file_limit()
    async with serve_process(tmp_path, 10, "--max-connections", "200") as (process, server):
        await server.create_app("demo")
        await server.create_route(path="/echo", image=ECHO, format="hot")
        assert (await server.call("demo", "/echo", b"warm")).body == b"warm"
        port = int(server.url.rsplit(":", 1)[1])
        silent: list[socket.socket] = []
        health_ms: list[float] = []

        async def knock() -> None:
            # 2,000 connections that never send a byte, 100 every 100 ms.
            for _ in range(20):
                for _ in range(100):
                    sock = socket.socket()
                    sock.setblocking(False)
                    sock.connect_ex(("127.0.0.1", port))
                    silent.append(sock)
                await trio.sleep(0.1)

        async def check_health() -> None:
            await trio.sleep(0.05)
            for _ in range(12):
                start = time.perf_counter()
                reply = await server.req("GET", "/health")
                health_ms.append((time.perf_counter() - start) * 1000)
                assert reply.status == 200, reply
                await trio.sleep(0.15)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(knock)
                nursery.start_soon(check_health)
            await trio.sleep(0.3)
            closed = sum(closed_by_server(sock) for sock in silent)
            print(f"\n/health during 2,000 silent connections past a limit of 200: "
                  f"{', '.join(f'{ms:.1f}' for ms in health_ms)} ms (max {max(health_ms):.1f}); "
                  f"{closed} of {len(silent)} closed by the server")
            assert len(health_ms) == 12 and max(health_ms) < 100, health_ms
            assert closed >= len(silent) - 200
            # Calls still work, on new connections and on the keep-alive pool of the client.
            assert (await server.req("GET", "/v1/apps")).status == 200
            assert (await server.call("demo", "/echo", b"still here")).body == b"still here"
        finally:
            for sock in silent:
                sock.close()
        assert process.returncode is None


async def test_40_clients_not_reading_5_mb_responses_give_their_memory_back(images, tmp_path):
    send_timeout = 2.0
    async with serve_process(tmp_path, 10, "--send-timeout", str(send_timeout)) as (process, server):
        await server.create_app("demo")
        await server.create_route(path="/echo", image=ECHO, format="hot", max_concurrency=4)
        body = b"m" * (5 * MB)
        for _ in range(2):  # warm-up: containers, buffers, one 5 MB round trip each way
            assert (await server.call("demo", "/echo", body)).body == body
        start = rss_mb(process.pid)
        port = int(server.url.rsplit(":", 1)[1])
        clients: list[trio.SocketStream] = []
        peak = start

        async def non_reading_client() -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            clients.append(stream)
            await stream.send_all(b"POST /r/demo/echo HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
            # ... and never reads the answer.

        try:
            async with trio.open_nursery() as nursery:
                for _ in range(40):
                    nursery.start_soon(non_reading_client)
            # Every answer is on its way (or stuck): sample until the send timeout has passed
            # for all of them, then a little more for the memory to be handed back.
            deadline = trio.current_time() + 30
            after = peak
            while trio.current_time() < deadline:
                await trio.sleep(0.2)
                now = rss_mb(process.pid)
                peak = max(peak, now)
                if peak > start + 100 and now < start + 20:
                    after = now
                    break
            else:
                after = rss_mb(process.pid)
            print(f"\nRSS with 40 clients not reading 5 MB answers (--send-timeout {send_timeout:g}): "
                  f"start {start:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB")
            assert peak > start + 100, "the answers never piled up: the test measures nothing"
            assert after < start + 20
            assert (await server.call("demo", "/echo", b"still here")).body == b"still here"
        finally:
            for stream in clients:
                await stream.aclose()


async def test_content_length_with_transfer_encoding_is_refused_and_the_smuggled_request_not_served(tmp_path):
    async with serve_process(tmp_path) as (process, server):
        smuggled = b'{"app": {"name": "smuggled"}}'
        start = time.perf_counter()
        raw = await raw_exchange(server.url, (
            b"POST /v1/apps HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n"
            b"POST /v1/apps HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled))
        assert time.perf_counter() - start < 3, "the server did not close the connection"
        assert raw.startswith(b"HTTP/1.1 400 ") and raw.count(b"HTTP/1.1 ") == 1, raw
        assert b"both Content-Length and Transfer-Encoding" in raw
        assert (await server.req("GET", "/v1/apps/smuggled")).status == 404


async def test_http_2_request_line_is_505(tmp_path):
    async with serve_process(tmp_path) as (process, server):
        start = time.perf_counter()
        raw = await raw_exchange(server.url, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
        assert time.perf_counter() - start < 3, "the server did not close the connection"
        assert raw.startswith(b"HTTP/1.1 505 ") and b"HTTP/2.0 is not supported" in raw, raw


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(tmp_path):
    async with serve_process(tmp_path, 10, "--header-timeout", "1") as (process, server):
        start = time.perf_counter()
        raw = await raw_exchange(server.url, b"", read_timeout=10)
        waited = time.perf_counter() - start
        print(f"\nsilent connection closed after {waited:.2f} s (--header-timeout 1)")
        assert raw == b"" and 0.9 < waited < 3
