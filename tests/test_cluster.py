"""Several nodes through the real pieces: `hotfn serve` processes sharing one PostgreSQL
database (scripts/ensure-postgres) and one Docker engine, HAProxy in front (scripts/ensure-haproxy,
configured by `hotfn lb-config`), real containers.

- a route created, updated or deleted through one node is served so by every node within a second;
- invocations through the balancer stick to one node;
- a node SIGKILLed under load: the balancer routes around it, and another node finishes its
  async calls once their lease runs out;
- a rolling restart of every node under steady load fails no request.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import types

import pytest
import trio

from conftest import ROOT, Harness, _docker, containers_of, new_node_id
from httpclient import HttpClient, request
from test_durability import free_port

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"


# -- the lb-config generator: no processes -------------------------------------------------------


def haproxy_binary() -> str:
    result = subprocess.run([str(ROOT / "scripts" / "ensure-haproxy")], capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"no HAProxy: scripts/ensure-haproxy failed:\n{result.stderr}")
    return "haproxy"


def test_lb_config_is_valid_haproxy_and_refuses_hostile_addresses(tmp_path):
    from hotfn.cluster import lb

    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(lb.haproxy_config(lb.backends(["127.0.0.2:8080", "node-b.example:9000"])))
    check = subprocess.run([haproxy_binary(), "-c", "-q", "-f", str(cfg)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
    text = cfg.read_text()
    assert "balance uri depth 3" in text and "hash-type consistent" in text
    assert "retry-on conn-failure empty-response response-timeout 503" in text
    assert text.count("server node2 node-b.example:9000 check") == 2
    for hostile in ["127.0.0.1:8080\n    server evil 1.2.3.4:80", "host:0", "host:65536",
                    "host", ":80", "h st:80", "host:80 check backup", "a:1,a:1"]:
        with pytest.raises(lb.LbConfigError):
            lb.backends(hostile.split(","))
    with pytest.raises(lb.LbConfigError):
        lb.backends([])


async def test_lb_config_reads_the_live_nodes_from_the_registry(postgres_db, capsys):
    from hotfn.cluster import lb
    from hotfn.cli import main
    from hotfn.store import NodeInfo, open_store

    store = open_store(postgres_db)
    now = time.time()
    await store.register_node(NodeInfo("n1", "127.0.0.2:8080", 64, "x", False, now, now))
    await store.register_node(NodeInfo("gone", "127.0.0.9:8080", 64, "x", False, now, now - 60))
    await store.close()
    assert await trio.to_thread.run_sync(main, ["lb-config", "--db", postgres_db]) == 0
    text = capsys.readouterr().out
    assert "server n1 127.0.0.2:8080 check" in text and "127.0.0.9" not in text
    assert lb.run(types.SimpleNamespace(nodes="bad", db=None, bind="127.0.0.1:1",
                                        server_timeout=1.0, output=None)) == 2


# -- a cluster of processes ---------------------------------------------------------------------


class Node:
    """`python -m hotfn serve` on the shared database; started again on the same port."""

    def __init__(self, db: str, *extra: str) -> None:
        self.db = db
        self.node_id = new_node_id()
        self.port = free_port()
        self.extra = list(extra)
        self.process: trio.Process | None = None
        self.harness = Harness(types.SimpleNamespace(
            url=f"http://127.0.0.1:{self.port}", settings=types.SimpleNamespace(node_id=self.node_id)))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "hotfn", "serve", "--port", str(self.port), "--db", self.db,
             "--node-id", self.node_id, "--shutdown-grace", "10", "--log-level", "warning",
             "--async-lease-margin", "1", "--async-retry-delay", "0.2", *self.extra],
            stdout=subprocess.DEVNULL)
        with trio.fail_after(30):
            while True:
                try:
                    if (await self.harness.req("GET", "/health")).status == 200:
                        return
                except OSError:
                    pass
                assert self.process.returncode is None, "the node exited"
                await trio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(sig)
        with trio.fail_after(40):
            await self.process.wait()

    async def aclose(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.stop(signal.SIGTERM)
        # A node killed (and not started again) leaves its containers: ours to remove.
        left = containers_of(self.node_id)
        if left:
            _docker("rm", "-f", *left)


class Balancer:
    def __init__(self, nodes: list[Node], tmp_path) -> None:
        from hotfn.cluster import lb

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp_path / "haproxy.cfg"
        self.config.write_text(lb.haproxy_config(
            lb.backends([n.address for n in nodes], [n.node_id for n in nodes]),
            bind=f"127.0.0.1:{self.port}", server_timeout=60))
        self.process: trio.Process | None = None

    async def start(self) -> None:
        self.process = await trio.lowlevel.open_process(
            [haproxy_binary(), "-db", "-f", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with trio.fail_after(10):
            while True:
                try:
                    if (await request(self.url, "GET", "/health")).status == 200:
                        return
                except OSError:
                    pass
                assert self.process.returncode is None, "haproxy exited"
                await trio.sleep(0.05)

    async def aclose(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


class Cluster:
    def __init__(self, nodes: list[Node], balancer: Balancer) -> None:
        self.nodes = nodes
        self.balancer = balancer
        self.front = Harness(types.SimpleNamespace(
            url=balancer.url, settings=types.SimpleNamespace(node_id="balancer")))

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    async def served_by(self, app: str, call_id: str) -> str:
        """The node that ran ``call_id``, read from the first node (each node writes its
        records within about 100 ms of the answer)."""
        with trio.fail_after(5):
            while True:
                reply = await self.nodes[0].harness.req("GET", f"/v1/apps/{app}/calls/{call_id}")
                if reply.status == 200:
                    return reply.json()["call"]["node_id"]
                assert reply.status == 404, reply
                await trio.sleep(0.05)


@pytest.fixture
async def cluster(postgres_db, images, tmp_path):
    nodes = [Node(postgres_db, "--drain-time", "3"), Node(postgres_db, "--drain-time", "3")]
    balancer = Balancer(nodes, tmp_path)
    try:
        async with trio.open_nursery() as nursery:
            for node in nodes:
                nursery.start_soon(node.start)
        await balancer.start()
        yield Cluster(nodes, balancer)
    finally:
        with trio.CancelScope(shield=True):
            await balancer.aclose()
            async with trio.open_nursery() as nursery:
                for node in nodes:
                    nursery.start_soon(node.aclose)


async def eventually(check, timeout: float) -> float:
    """Seconds until ``await check()`` is true; fails after ``timeout``."""
    started = time.monotonic()
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.02)
    return time.monotonic() - started


async def test_a_route_changed_through_one_node_is_served_so_by_all_within_a_second(cluster):
    first, second = (n.harness for n in cluster.nodes)
    await first.create_app("demo")
    await first.create_route(path="/info", image=IMAGE, format="hot",
                             config={"CONFORMANCE_CONFIG": "v1"})

    async def config_is(server, value):
        reply = await server.call("demo", "/info", headers=[("x-hotfn-test", "info")])
        return reply.status == 200 and reply.json()["config_value"] == value

    # Served by the other node at once (its first call starts a container: not counted).
    await eventually(lambda: config_is(second, "v1"), 30)
    assert await config_is(first, "v1")
    reply = await second.req("PATCH", "/v1/apps/demo/routes/info",
                             json={"route": {"config": {"CONFORMANCE_CONFIG": "v2"}}})
    assert reply.status == 200
    # Its old containers are retired on both nodes; the new config is what runs.
    await eventually(lambda: config_is(first, "v2"), 30)
    await eventually(lambda: config_is(second, "v2"), 30)
    # Both have a warm container of the new version now: a call costs milliseconds, so the
    # time until the 404 is the time the delete takes to reach the other node.
    assert (await first.req("DELETE", "/v1/apps/demo/routes/info")).status == 200

    async def gone(server):
        return (await server.call("demo", "/info")).status == 404

    took = await eventually(lambda: gone(second), 10.0)
    print(f"the delete reached the other node in {took:.3f} s")
    assert took < 1.0
    nodes = (await second.req("GET", "/v1/nodes")).json()["nodes"]
    assert {n["id"] for n in nodes if n["alive"]} == {n.node_id for n in cluster.nodes}


async def test_a_route_created_through_one_node_is_served_at_once_by_another(cluster):
    first, second = (n.harness for n in cluster.nodes)
    await first.create_app("demo")
    for i in range(5):
        # No wait between: the other node reads the change feed on a miss.
        await first.create_route(path=f"/now{i}", image=IMAGE)
        reply = await second.call("demo", f"/now{i}", b"hi")
        assert reply.status == 200 and reply.body == b"hi", reply
    assert (await second.call("demo", "/never")).status == 404


async def test_invocations_through_the_balancer_stick_to_one_node_and_records_are_shared(cluster):
    front = cluster.front
    await front.create_app("demo")
    await front.create_route(path="/echo", image=IMAGE, format="hot", max_concurrency=4)
    client = await HttpClient.connect("127.0.0.1", cluster.balancer.port)
    ids = []
    for i in range(30):
        reply = await client.request("POST", "/r/demo/echo/", b"x%d" % i)
        assert reply.status == 200 and reply.body == b"x%d" % i, reply
        ids.append(reply.header("hotfn-call-id"))
    await client.aclose()
    # Any node reads any node's records (the recorder flushes them within a moment).
    served = {await cluster.served_by("demo", call_id) for call_id in ids}
    assert len(served) == 1, served


async def steady_load(url_port: int, target: str, clients: int, results: dict,
                      stop: trio.Event, failures: list | None = None) -> None:
    """``clients`` keep-alive clients calling ``target`` until ``stop``; counts by outcome, and
    puts each failed call's (sent, done) times on trio's clock in ``failures``."""

    async def one_client() -> None:
        client = None
        while not stop.is_set():
            sent = trio.current_time()
            try:
                if client is None:
                    client = await HttpClient.connect("127.0.0.1", url_port)
                reply = await client.request("POST", target, b"load")
                key = "ok" if reply.status == 200 else f"status {reply.status}"
                if reply.status != 200:
                    results.setdefault("bodies", []).append(reply.body[:200])
                if (reply.header("connection") or "").lower() == "close":
                    # As any client must: the balancer closes after an error answer.
                    await client.aclose()
                    client = None
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, Exception) as exc:
                key = f"error {type(exc).__name__}"
                if client is not None:
                    await client.aclose()
                client = None
            results[key] = results.get(key, 0) + 1
            if key != "ok" and failures is not None:
                failures.append((sent, trio.current_time()))
        if client is not None:
            await client.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(one_client)


async def test_a_node_killed_under_load_is_routed_around_and_its_async_calls_finish_elsewhere(cluster):
    front = cluster.front
    await front.create_app("demo")
    await front.create_route(path="/echo", image=IMAGE, format="hot", max_concurrency=4)
    await front.create_route(path="/job", image=IMAGE, format="hot", type="async",
                             max_concurrency=4, timeout=3, startup_timeout=5, queue_timeout=2)
    reply = await front.call("demo", "/echo", b"warm")
    victim = cluster.node(await cluster.served_by("demo", reply.header("hotfn-call-id")))
    survivor = next(n for n in cluster.nodes if n is not victim)

    # Async calls the victim accepted and is running when it dies.
    ids = []
    for i in range(4):
        reply = await victim.harness.call("demo", "/job", b"job %d" % i,
                                          headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "1500")])
        assert reply.status == 202, reply
        ids.append(reply.json()["call_id"])

    async def records():
        return [(await survivor.harness.req("GET", f"/v1/apps/demo/calls/{i}")).json()["call"]
                for i in ids]

    async def victim_runs_some():
        return any(r["status"] == "running" and r["node_id"] == victim.node_id
                   for r in await records())

    results: dict = {}
    failures: list = []
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(steady_load, cluster.balancer.port, "/r/demo/echo", 4, results, stop,
                           failures)
        await eventually(victim_runs_some, 20)
        before = dict(results)
        killed_at = trio.current_time()
        await victim.stop(signal.SIGKILL)
        gone_at = trio.current_time()
        cut_short = [r["id"] for r in await records()
                     if r["status"] == "running" and r["node_id"] == victim.node_id]
        await trio.sleep(4.0)
        stop.set()
    served_after = results.get("ok", 0) - before.get("ok", 0)
    assert served_after > 20, results
    # The balancer retries a refused connection on the other node, but not a POST the victim
    # had already taken: only calls sent before the victim was gone and still unanswered when
    # the kill began may fail. No call sent once it was gone may fail.
    caught_by_the_kill = [(sent, done) for sent, done in failures
                          if sent < gone_at and done >= killed_at]
    assert caught_by_the_kill == failures, (killed_at, gone_at, failures, results)

    async def all_done():
        return all(r["status"] == "success" for r in await records())

    # Once their lease (a second past the route's timeouts) runs out, the survivor takes them.
    await eventually(all_done, 40)
    assert cut_short
    for record in await records():
        if record["id"] in cut_short:
            assert record["node_id"] == survivor.node_id and record["attempts"] >= 2, record


async def test_a_rolling_restart_under_steady_load_fails_no_request(cluster):
    front = cluster.front
    await front.create_app("demo")
    await front.create_route(path="/echo", image=IMAGE, format="hot", max_concurrency=4)
    assert (await front.call("demo", "/echo", b"warm")).status == 200
    results: dict = {}
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(steady_load, cluster.balancer.port, "/r/demo/echo", 4, results, stop)
        for node in cluster.nodes:
            await trio.sleep(1.0)
            await node.stop(signal.SIGTERM)
            await node.start()
            # Back in the balancer (two good health checks) before the next one goes.
            await trio.sleep(3.0)
        await trio.sleep(1.0)
        stop.set()
    assert results.get("ok", 0) > 100, results
    assert set(results) == {"ok"}, results


async def test_a_saturated_node_spills_a_route_to_another_through_the_balancer(cluster):
    front = cluster.front
    await front.create_app("demo")
    # One container per node and no waiting: a second call at once is a 503 from that node,
    # which the balancer retries on the other one.
    await front.create_route(path="/slow", image=IMAGE, format="hot", max_concurrency=1,
                             min_warm=1, queue_timeout=0)

    async def both_warm():
        stats = [(await n.harness.req("GET", "/v1/stats")).json() for n in cluster.nodes]
        return all(s["routes"].get("demo/slow", {}).get("idle") == 1 for s in stats)

    await eventually(both_warm, 30)
    sleep = [("x-hotfn-test", "sleep"), ("x-sleep-ms", "1000")]
    replies = []

    async def call() -> None:
        replies.append(await front.call("demo", "/slow", headers=sleep))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.sleep(0.3)
        nursery.start_soon(call)
    assert [r.status for r in replies] == [200, 200], replies
    served = [await cluster.served_by("demo", r.header("hotfn-call-id")) for r in replies]
    assert len(set(served)) == 2, served
