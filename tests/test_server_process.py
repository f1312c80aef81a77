"""`hotfn serve` as a process: signals and graceful shutdown."""

import contextlib
import signal
import socket
import subprocess
import sys
import types

import h11
import pytest
import trio

from conftest import Harness, containers_of, new_node_id

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"


class _Address:
    def __init__(self, port: int, node_id: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.settings = types.SimpleNamespace(node_id=node_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serve_process(tmp_path, grace: int = 10, *args: str, db: str | None = None,
                        node_id: str | None = None):
    """`hotfn serve` in a child process, answering /health; killed if the test leaves it up.
    ``args``: more options for `hotfn serve`. Its stderr goes to ``server.log_path``: a pipe
    nobody reads would stall a chatty server."""
    port = free_port()
    node_id = node_id or new_node_id()
    log_path = tmp_path / f"server-{node_id}.log"
    with open(log_path, "wb") as log_file:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "hotfn", "serve", "--port", str(port),
             "--db", db or str(tmp_path / "s.db"), "--node-id", node_id,
             "--shutdown-grace", str(grace), "--log-level", "warning", *args],
            stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        server = Harness(_Address(port, node_id))
        server.log_path = log_path
        with trio.fail_after(20):
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"hotfn serve exited with {process.returncode}: "
                                         f"{log_path.read_text()[-2000:]}")
                try:
                    if (await server.req("GET", "/health")).status == 200:
                        break
                except OSError:
                    await trio.sleep(0.1)
        yield process, server
    finally:
        # Stopped as an operator would, so that it removes its containers; a server that does
        # not stop in time is killed, and what it left is removed here.
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(30):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            left = containers_of(node_id)
            if left:
                subprocess.run(["docker", "rm", "-f", *left], capture_output=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_lets_calls_in_flight_finish_then_removes_every_container(images, tmp_path, sig):
    async with serve_process(tmp_path, grace=10) as (process, server):
        await server.create_app("demo")
        await server.create_route(path="/slow", image=IMAGE, format="hot", max_concurrency=2)
        await server.call("demo", "/slow")
        results = []

        async def slow_call():
            results.append(await server.call("demo", "/slow", b"finished",
                                             headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "1500")]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_call)
            await trio.sleep(0.5)
            process.send_signal(sig)
            await trio.sleep(0.3)
            with pytest.raises(OSError):  # no longer accepting
                await server.req("GET", "/health")
        assert results[0].status == 200 and results[0].body == b"finished"
        with trio.fail_after(30):
            assert await process.wait() == 0
        assert containers_of(server.node_id) == []


async def test_second_signal_stops_at_once_and_still_removes_containers(images, tmp_path):
    async with serve_process(tmp_path, grace=30) as (process, server):
        await server.create_app("demo")
        await server.create_route(path="/slow", image=IMAGE, format="hot")
        async with trio.open_nursery() as nursery:
            async def slow_call():
                try:
                    await server.call("demo", "/slow", headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "60000")])
                except (ConnectionError, OSError, h11.RemoteProtocolError):
                    pass  # the server went away mid-call: that is what a second signal means

            nursery.start_soon(slow_call)
            await trio.sleep(1.0)
            process.send_signal(signal.SIGTERM)
            await trio.sleep(0.5)
            process.send_signal(signal.SIGINT)
            with trio.fail_after(20):
                code = await process.wait()
            nursery.cancel_scope.cancel()
        assert code == 0
        assert "Traceback" not in server.log_path.read_text()
        assert containers_of(server.node_id) == []


IDLE_SERVER = """
import sys, trio
from hotfn.config import Settings
from hotfn.server import Server
from httpclient import request

async def main():
    server = Server(Settings(port=0, db=sys.argv[1], node_id=sys.argv[2]))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        health = await request(server.url, "GET", "/health")
        print(health.status, "docker" in sys.modules, "requests" in sys.modules, flush=True)
        server.stop()

trio.run(main)
"""


def test_an_idle_server_talks_to_the_engine_without_loading_the_docker_sdk(tmp_path, images):
    # The SDK (and requests, urllib3, ...) is ~9 MiB of the server's memory: it is loaded only
    # once a container is to be started.
    ran = subprocess.run([sys.executable, "-c", IDLE_SERVER, str(tmp_path / "x.db"), new_node_id()],
                         capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "PYTHONPATH": "tests"})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["200", "False", "False"], ran.stdout
