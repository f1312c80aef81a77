"""Tenants' shares through a real server with real containers: rate limits, container and
memory caps, and one app's load not reaching another app's latency."""

from __future__ import annotations

import statistics
import time

import pytest
import trio

from conftest import containers_of
from hotfn.models import App
from hotfn.access import RateLimiter

IMAGE = "hotfn-test/conformance-python"


def test_the_bucket_refills_continuously_up_to_its_burst():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    app = App("a", rate_limit=2.0, burst=3)
    assert [limiter.acquire(app) for _ in range(4)] == [None, None, None, pytest.approx(0.5)]
    now[0] = 0.25
    assert limiter.acquire(app) == pytest.approx(0.25)
    now[0] = 0.5
    assert limiter.acquire(app) is None
    now[0] = 100.0  # a long pause fills it to the burst, not beyond
    assert [limiter.acquire(app) is None for _ in range(4)] == [True, True, True, False]
    assert limiter.acquire(App("b")) is None  # no limit
    # New limits apply at once: the empty bucket refills at the new rate.
    now[0] += 0.002
    assert limiter.acquire(App("a", rate_limit=1000.0, burst=1)) is None


@pytest.mark.docker
async def test_a_rate_limit_429s_at_its_rate_while_another_app_is_unaffected(server):
    rate, burst, seconds = 20, 5, 3.0
    await server.req("POST", "/v1/apps", json={"app": {"name": "limited", "rate_limit": rate, "burst": burst}})
    await server.create_app("free")
    for app in ("limited", "free"):
        await server.create_route(app, path="/echo", image=IMAGE, format="hot")
        assert (await server.call(app, "/echo", b"warm")).status == 200
    await trio.sleep(burst / rate)  # the bucket full again
    counts = {200: 0, 429: 0}
    free_statuses = []
    refusal = None

    async def hammer(until: float) -> None:
        nonlocal refusal
        while time.monotonic() < until:
            reply = await server.call("limited", "/echo", b"x")
            counts[reply.status] = counts.get(reply.status, 0) + 1
            if reply.status == 429:
                refusal = reply

    async def steady(until: float) -> None:
        while time.monotonic() < until:
            free_statuses.append((await server.call("free", "/echo", b"y")).status)

    until = time.monotonic() + seconds
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(hammer, until)
        nursery.start_soon(steady, until)
    expected = rate * seconds + burst
    assert 0.8 * expected <= counts[200] <= 1.2 * expected, counts
    assert counts[429] > counts[200], counts  # it was really pushed past its rate
    assert set(counts) == {200, 429}
    assert int(refusal.header("retry-after")) >= 1
    assert "rate limit of 20 calls/s" in refusal.json()["error"]["message"]
    assert free_statuses and set(free_statuses) == {200}


async def _concurrent(server, app, path, n, sleep_ms):
    replies = []

    async def one():
        replies.append(await server.call(app, path, b"", headers=[("x-hotfn-test", "sleep"),
                                                                  ("x-sleep-ms", str(sleep_ms))]))

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    return replies


@pytest.mark.docker
@pytest.mark.parametrize("quota", [{"max_containers": 1}, {"max_memory_mb": 100}])
async def test_an_app_at_its_cap_waits_then_503s_while_another_app_runs(server, quota):
    await server.req("POST", "/v1/apps", json={"app": {"name": "capped", **quota}})
    await server.create_app("other")
    await server.create_route("capped", path="/slow", image=IMAGE, format="hot", memory=64,
                              max_concurrency=3, queue_timeout=2)
    # Generous: starting three containers at once on a busy machine may take seconds.
    await server.create_route("other", path="/slow", image=IMAGE, format="hot", memory=64,
                              max_concurrency=3, queue_timeout=30)
    # Its one container warm, so that what is timed below is waiting for it, not its start.
    assert (await server.call("capped", "/slow", b"warm")).status == 200
    peak = 0

    async def watch(cancel_scope_holder):
        nonlocal peak
        with trio.CancelScope() as scope:
            cancel_scope_holder.append(scope)
            while True:
                peak = max(peak, len(containers_of(server.node_id, all=False, route="/slow")))
                await trio.sleep(0.1)

    holder: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, holder)
        capped = await _concurrent(server, "capped", "/slow", 3, 1500)
        holder[0].cancel()
    statuses = sorted(r.status for r in capped)
    # One container at a time: the second call waits for the first, the third past its queue
    # timeout, which says why.
    assert statuses[0] == 200 and statuses[-1] == 503, capped
    refused = [r for r in capped if r.status == 503]
    assert all("app capped is at its max_containers or max_memory_mb" in r.json()["error"]["message"]
               for r in refused)
    assert peak <= 1
    # The other app, unlimited, runs its three calls at once on three containers.
    other = await _concurrent(server, "other", "/slow", 3, 1500)
    assert [r.status for r in other] == [200, 200, 200]
    stats = (await server.req("GET", "/v1/stats")).json()
    assert stats["routes"]["other/slow"]["workers"] == 3
    assert stats["routes"]["capped/slow"]["workers"] <= 1
    assert stats["apps"]["capped"]["containers"] <= 1
    assert stats["apps"]["capped"]["max_containers" if "max_containers" in quota else "max_memory_mb"] == next(iter(quota.values()))
    assert stats["apps"]["other"]["containers"] == 3 and stats["apps"]["other"]["max_containers"] is None


@pytest.mark.docker
async def test_under_its_cap_an_app_takes_room_from_its_own_idle_containers(server):
    await server.req("POST", "/v1/apps", json={"app": {"name": "one", "max_containers": 1}})
    for path in ("/a", "/b"):
        await server.create_route("one", path=path, image=IMAGE, format="hot", queue_timeout=5)
    assert (await server.call("one", "/a", b"1")).status == 200
    # /a's container is idle: /b stops it rather than wait for it to idle out.
    assert (await server.call("one", "/b", b"2")).status == 200
    assert (await server.call("one", "/a", b"3")).status == 200
    stats = (await server.req("GET", "/v1/stats")).json()
    assert stats["routes"]["one/a"]["workers"] + stats["routes"]["one/b"]["workers"] <= 1


@pytest.mark.docker
async def test_a_saturated_app_does_not_slow_another_app(server):
    await server.req("POST", "/v1/apps", json={"app": {"name": "noisy", "max_containers": 1}})
    await server.create_app("quiet")
    await server.create_route("noisy", path="/slow", image=IMAGE, format="hot", max_concurrency=4,
                              queue_timeout=1)
    await server.create_route("quiet", path="/echo", image=IMAGE, format="hot")
    assert (await server.call("quiet", "/echo", b"warm")).status == 200

    async def p50(n=40):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            assert (await server.call("quiet", "/echo", b"x")).status == 200
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    before = await p50()
    noisy_statuses = []

    async def noise(until):
        while time.monotonic() < until:
            reply = await server.call("noisy", "/slow", b"", headers=[("x-hotfn-test", "sleep"),
                                                                      ("x-sleep-ms", "200")])
            noisy_statuses.append(reply.status)

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(noise, time.monotonic() + 4)
        await trio.sleep(1)  # the noisy app at its cap, its queue full
        during = await p50()
    assert 503 in noisy_statuses and 200 in noisy_statuses
    # Generous: the machine is shared; a change in kind (waiting behind the noisy app's
    # queue, or for its capacity) would be seconds, not milliseconds.
    assert during <= max(3 * before, before + 0.02), (before, during)


def test_a_waiter_held_by_its_apps_cap_lets_the_others_pass():
    from hotfn.pool import Capacity

    capacity = Capacity(max_containers=3, max_memory_mb=1000)
    capacity.set_app_limits({"small": (1, None)})
    capacity.take(100, "small")
    granted = []
    capacity.wait(100, lambda: granted.append("small"), "small")
    capacity.wait(100, lambda: granted.append("big"), "big")
    capacity._wake()
    assert granted == ["big"]  # "small" waits for its own container, not the server's room
    capacity.give(100, "small")
    assert granted == ["big", "small"]
    assert capacity.app_usage == {"small": [1, 100], "big": [1, 100]}
    capacity.set_app_limits({})  # lifted: nothing of its own any more
    assert capacity.app_fits("small", 100)


@pytest.mark.docker
async def test_cold_calls_count_against_the_apps_cap(server):
    await server.req("POST", "/v1/apps", json={"app": {"name": "cold", "max_containers": 1}})
    await server.create_route("cold", path="/slow", image=IMAGE, queue_timeout=60)
    peak = 0
    done = trio.Event()

    async def watch():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, len(containers_of(server.node_id, all=False, route="/slow")))
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        replies = await _concurrent(server, "cold", "/slow", 3, 700)
        done.set()
    assert [r.status for r in replies] == [200, 200, 200]
    assert peak == 1  # one at a time: each waited for the one before to be removed
