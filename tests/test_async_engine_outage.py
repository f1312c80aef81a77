"""Async calls and an engine that does not answer (issue 21.4), and how a call that always times
out ends (21.13).

The server reaches the real engine through a unix-socket proxy of the test's own (its
DOCKER_HOST), which the test closes and opens again: for the server, the engine is gone and back,
while the shared engine, and every other test on it, never notices.

- An async call that finds the engine down has not run: it spends no attempt, and waits in the
  queue until the engine answers again (then it runs once, attempt 1);
- that wait ends after --async-engine-wait: the call ends in error, saying so;
- a call whose every attempt timed out ends "timeout", not "error".
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import types

import pytest
import trio

from conftest import Harness, containers_of, _docker, new_node_id
from test_durability import free_port, wait_for_calls

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"
ENGINE = "/var/run/docker.sock"


class EngineProxy:
    """A unix socket that passes bytes to and from the engine's, while open."""

    def __init__(self, path: str, target: str = ENGINE) -> None:
        self.path = path
        self.target = target
        self._scope: trio.CancelScope | None = None

    async def open(self, nursery: trio.Nursery) -> None:
        await nursery.start(self._serve)

    async def close(self) -> None:
        """As an engine that stopped: new connections are refused, open ones cut."""
        assert self._scope is not None
        self._scope.cancel()
        self._scope = None
        await self._closed.wait()

    async def _serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._closed = trio.Event()
        with trio.CancelScope() as self._scope:
            with trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM) as sock:
                if os.path.exists(self.path):
                    os.unlink(self.path)
                await sock.bind(self.path)
                sock.listen(128)
                listener = trio.SocketListener(sock)
                try:
                    async with trio.open_nursery() as nursery:
                        task_status.started()
                        while True:
                            client = await listener.accept()
                            nursery.start_soon(self._pass, client)
                finally:
                    os.unlink(self.path)
                    self._closed.set()

    async def _pass(self, client: trio.SocketStream) -> None:
        async with client:
            try:
                engine = await trio.open_unix_socket(self.target)
            except OSError:
                return
            async with engine:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, client, engine)
                    nursery.start_soon(_pump, engine, client)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


class Node:
    """`hotfn serve` as a child process whose engine is at ``engine_socket``."""

    def __init__(self, tmp_path, engine_socket: str, *extra: str) -> None:
        self.node_id = new_node_id()
        self.port = free_port()
        self.args = [sys.executable, "-m", "hotfn", "serve", "--port", str(self.port),
                     "--db", str(tmp_path / "hotfn.db"), "--node-id", self.node_id,
                     "--log-level", "warning", "--no-access-log", "--max-parked", "0", *extra]
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{engine_socket}"}
        self.process: trio.Process | None = None
        self.harness = Harness(types.SimpleNamespace(
            url=f"http://127.0.0.1:{self.port}", settings=types.SimpleNamespace(node_id=self.node_id)))

    async def start(self) -> Harness:
        self.process = await trio.lowlevel.open_process(self.args, env=self.env,
                                                        stdout=subprocess.DEVNULL)
        with trio.fail_after(30):
            while True:
                try:
                    if (await self.harness.req("GET", "/health")).status == 200:
                        return self.harness
                except OSError:
                    pass
                assert self.process.returncode is None, "the server exited"
                await trio.sleep(0.05)

    async def aclose(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(30):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        if left := containers_of(self.node_id):
            _docker("rm", "-f", *left)


@pytest.fixture
async def proxied_node(tmp_path, images, nursery):
    """(proxy, make_node): a node per call of make_node, all behind one engine proxy."""
    directory = tempfile.mkdtemp(prefix="hotfn-engine-")  # short: a socket path has ~100 bytes
    proxy = EngineProxy(os.path.join(directory, "engine.sock"))
    await proxy.open(nursery)
    nodes: list[Node] = []

    def make(*extra: str) -> Node:
        nodes.append(Node(tmp_path, proxy.path, *extra))
        return nodes[-1]

    try:
        yield proxy, nursery, make
    finally:
        with trio.CancelScope(shield=True):
            if proxy._scope is None:
                await proxy.open(nursery)  # for the nodes' own cleanup of their containers
            for node in nodes:
                await node.aclose()
            await proxy.close()
            await trio.sleep(0)
            shutil.rmtree(directory, ignore_errors=True)


async def _queue(server: Harness, n: int) -> list[str]:
    ids = []
    for i in range(n):
        reply = await server.call("demo", "/job", b"job %d" % i)
        assert reply.status == 202, reply
        ids.append(reply.json()["call_id"])
    return ids


async def _records(server: Harness, ids: list[str]) -> list[dict]:
    return [(await server.req("GET", f"/v1/apps/demo/calls/{i}")).json()["call"] for i in ids]


@pytest.mark.parametrize("kind", ["cold", "hot"])
async def test_async_calls_wait_for_an_engine_that_is_down_without_spending_attempts(proxied_node, kind):
    proxy, nursery, make = proxied_node
    node = make("--async-retry-delay", "0.2", "--async-engine-wait", "120")
    server = await node.start()
    await server.create_app("demo")
    # Hot: no container is warm yet (the engine goes before the first call).
    await server.create_route(path="/job", image=IMAGE, type="async", max_attempts=3,
                              **({"format": "hot", "queue_timeout": 2} if kind == "hot" else {}))

    await proxy.close()
    ids = await _queue(server, 12)

    async def tried():
        # A call found the engine down (or, as before the fix, gave up).
        return any(r["status"] == "error" or "container engine" in (r["error"] or "")
                   for r in await _records(server, ids))

    with trio.fail_after(60):
        while not await tried():
            await trio.sleep(0.1)
    # Held for longer than three attempts' retries would have taken (0.2 s, 0.4 s): all are
    # still queued, none spent an attempt; this node claims no more until the engine answers.
    with trio.move_on_after(2):
        while True:
            records = await _records(server, ids)
            assert all(r["status"] == "queued" and r["attempts"] == 0 for r in records), records
            await trio.sleep(0.1)
    detail = (await server.req("GET", "/health/detail")).json()
    assert detail["docker"] == "down"

    await proxy.open(nursery)
    records = await wait_for_calls(server, "demo", ids, timeout=120)
    assert [r["status"] for r in records.values()] == ["success"] * len(ids), records
    assert [r["attempts"] for r in records.values()] == [1] * len(ids)
    assert sorted(r["result"] for r in records.values()) == sorted("job %d" % i for i in range(12))


async def test_async_calls_end_in_error_once_the_engine_has_been_down_past_the_wait(proxied_node):
    proxy, nursery, make = proxied_node
    node = make("--async-retry-delay", "0.2", "--async-engine-wait", "1")
    server = await node.start()
    await server.create_app("demo")
    await server.create_route(path="/job", image=IMAGE, type="async", max_attempts=3)
    await proxy.close()
    ids = await _queue(server, 3)
    records = await wait_for_calls(server, "demo", ids, timeout=60)
    for record in records.values():
        assert record["status"] == "error" and record["attempts"] == 0, record
        assert "container engine has not answered" in record["error"], record
        assert "--async-engine-wait 1" in record["error"]


async def test_an_async_call_that_timed_out_on_every_attempt_ends_timeout(server_factory, images):
    server = await server_factory(async_retry_delay=0.1)
    await server.create_app("demo")
    await server.create_route(path="/slow", image=IMAGE, format="hot", type="async",
                              max_attempts=2, timeout=1)
    reply = await server.call("demo", "/slow", headers=[("x-hotfn-test", "sleep"),
                                                        ("x-sleep-ms", "5000")])
    assert reply.status == 202
    call_id = reply.json()["call_id"]
    record = (await wait_for_calls(server, "demo", [call_id], timeout=60))[call_id]
    assert record["status"] == "timeout" and record["attempts"] == 2, record
    assert "after 2 attempts" in record["error"] and "timeout" in record["error"]
