"""A PostgreSQL outage behind HAProxy, as it was found (issue 21.5): two `hotfn serve` nodes on
one PostgreSQL server of the test's own (private_postgres), HAProxy in front configured by
`hotfn lb-config`, warm calls under steady load, and the PostgreSQL server stopped, then started.

While the store is down, the balancer's check (/health) stays 200, so HAProxy keeps both nodes
and every warm call is served; admin requests fail fast with a 503 that says why; the
operator's status (/health/detail) says "degraded". Once it is back, the admin API is too.
"""

from __future__ import annotations

import time
import types

import pytest
import trio

from conftest import Harness
from httpclient import HttpClient, request
from private_postgres import PrivatePostgres
from test_cluster import IMAGE, Balancer, Node

pytestmark = pytest.mark.docker

ROUTES = 4
CLIENTS_PER_ROUTE = 2
# An outage this long, at least, once both nodes know: HAProxy checks every second and takes a
# node out after two failed checks, so by then any node that failed them would be out.
OUTAGE_OBSERVED = 4.0
FAIL_FAST = 1.0  # seconds an admin request may take once the store is known down


class Load:
    """Keep-alive clients calling the warm routes through the balancer, counting outcomes in
    the phase current at each answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.phase = "before"
        self.counts: dict[str, dict[str, int]] = {}
        self.stop = trio.Event()

    def count(self, key: str) -> None:
        phase = self.counts.setdefault(self.phase, {})
        phase[key] = phase.get(key, 0) + 1

    def ok(self, phase: str) -> int:
        return self.counts.get(phase, {}).get("ok", 0)

    async def client(self, target: str) -> None:
        client = None
        while not self.stop.is_set():
            try:
                if client is None:
                    client = await HttpClient.connect("127.0.0.1", self.port)
                reply = await client.request("POST", target, b"load")
                self.count("ok" if reply.status == 200 else f"status {reply.status}")
                if (reply.header("connection") or "").lower() == "close":
                    await client.aclose()
                    client = None
            except Exception as exc:
                self.count(f"error {type(exc).__name__}")
                if client is not None:
                    await client.aclose()
                client = None
                await trio.sleep(0.05)  # a refused connection must not spin
        if client is not None:
            await client.aclose()


async def _until(check, timeout: float) -> float:
    started = time.monotonic()
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.05)
    return time.monotonic() - started


class _NoReply:
    def __init__(self, exc: Exception) -> None:
        self.status = f"no answer ({type(exc).__name__})"


async def _timed(url: str, method: str, target: str, **kw):
    """(the reply, or what stood for it, and the seconds it took)."""
    started = time.monotonic()
    try:
        reply = await request(url, method, target, **kw)
    except Exception as exc:  # counted, and failed on below
        reply = _NoReply(exc)
    return reply, time.monotonic() - started


async def test_a_postgresql_outage_behind_haproxy_serves_warm_calls_and_fails_admin_fast(images, tmp_path):
    postgres = PrivatePostgres()
    nodes = [Node(postgres.url, "--drain-time", "0", "--no-access-log") for _ in range(2)]
    balancer = Balancer(nodes, tmp_path)
    try:
        await postgres.start()
        async with trio.open_nursery() as nursery:
            for node in nodes:
                nursery.start_soon(node.start)
        await balancer.start()
        front = Harness(types.SimpleNamespace(
            url=balancer.url, settings=types.SimpleNamespace(node_id="balancer")))
        await front.create_app("demo")
        for i in range(ROUTES):
            await front.create_route(path=f"/echo{i}", image=IMAGE, format="hot", max_concurrency=4)
            warm = await front.call("demo", f"/echo{i}", b"warm")
            assert warm.status == 200, warm

        load = Load(balancer.port)
        report: dict = {}
        async with trio.open_nursery() as nursery:
            for i in range(ROUTES):
                for _ in range(CLIENTS_PER_ROUTE):
                    nursery.start_soon(load.client, f"/r/demo/echo{i}")
            await _until(lambda: _true(load.ok("before") >= 100), 60)

            load.phase = "stopping"
            await postgres.stop("fast")

            async def both_know():
                for node in nodes:
                    detail = await node.harness.req("GET", "/health/detail")
                    if detail.status != 503 or detail.json().get("store") != "unreachable":
                        return False
                return True

            report["known down after (s)"] = round(await _until(both_know, 30), 2)
            load.phase = "outage"
            outage_began = time.monotonic()
            admin_times, admin_replies, health, details = [], [], [], []
            while ((time.monotonic() - outage_began < OUTAGE_OBSERVED or load.ok("outage") < 100)
                   and time.monotonic() - outage_began < 20):
                for method, target, kw in (("GET", "/v1/apps", {}),
                                           ("POST", "/v1/apps", {"json": {"app": {"name": "x"}}}),
                                           ("GET", "/v1/apps/demo/calls", {})):
                    reply, took = await _timed(balancer.url, method, target, **kw)
                    admin_times.append(took)
                    admin_replies.append(reply)
                health.append(await _timed(balancer.url, "GET", "/health"))
                details.append(await _timed(nodes[0].harness.url, "GET", "/health/detail"))
                await trio.sleep(0.2)
            report["outage observed (s)"] = round(time.monotonic() - outage_began, 2)

            load.phase = "recovery"
            await postgres.start()
            restarted = time.monotonic()

            async def admin_back():
                for node in nodes:
                    if (await node.harness.req("GET", "/v1/apps")).status != 200:
                        return False
                return True

            await _until(admin_back, 30)
            report["admin back after restart (s)"] = round(time.monotonic() - restarted, 2)
            load.phase = "after"
            created = await front.req("POST", "/v1/apps", json={"app": {"name": "after"}})
            await _until(lambda: _true(load.ok("after") >= 50), 60)
            load.stop.set()

        report["warm calls by phase"] = load.counts
        report["admin during the outage"] = {
            "requests": len(admin_replies),
            "statuses": sorted({str(r.status) for r in admin_replies}),
            "slowest (s)": round(max(admin_times), 3)}
        report["/health via HAProxy during the outage"] = sorted({str(r.status) for r, _ in health})
        report["/health/detail during the outage"] = sorted({str(r.status) for r, _ in details})
        print("\nPostgreSQL outage behind HAProxy:", report)

        # Every warm call through the balancer was served, during the outage too.
        for phase, counts in load.counts.items():
            assert set(counts) == {"ok"}, (phase, counts)
        assert load.ok("outage") >= 100
        # The balancer's check stayed 200; the operator's status said why it is degraded.
        assert {r.status for r, _ in health} == {200}
        assert {r.status for r, _ in details} == {503}
        assert all(r.json()["status"] == "degraded" and r.json()["store"] == "unreachable"
                   for r, _ in details)
        assert max(took for _, took in health + details) <= FAIL_FAST
        # Admin requests: a fast 503 in JSON that says the store is away.
        assert {r.status for r in admin_replies} == {503}
        for reply in admin_replies:
            assert "store" in reply.json()["error"]["message"], reply
        assert max(admin_times) <= FAIL_FAST, admin_times
        # And after: the admin API works again.
        assert created.status == 200, created
        assert (await front.req("GET", "/v1/apps/after")).status == 200
    finally:
        with trio.CancelScope(shield=True):
            await balancer.aclose()
            async with trio.open_nursery() as nursery:
                for node in nodes:
                    nursery.start_soon(node.aclose)
            postgres.remove()


async def _true(value: bool) -> bool:
    return value
