"""Warm pools under load and faults, on the real engine."""

from __future__ import annotations

import functools
import math
import subprocess

import pytest
import trio

from conftest import containers_of

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"


def containers(server, route: str | None = None) -> list[str]:
    """The running containers of ``server``'s node (of one route)."""
    return containers_of(server.node_id, all=False, route=route)


async def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Poll ``predicate`` (plain or async) until it returns something true."""
    with trio.fail_after(timeout):
        while True:
            result = predicate()
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return result
            await trio.sleep(interval)


def sleep_headers(ms: int) -> list[tuple[str, str]]:
    return [("x-hotfn-test", "sleep"), ("x-sleep-ms", str(ms))]


async def test_saturated_route_serves_waiters_in_order_sheds_the_rest_and_spares_others(server):
    await server.create_app("demo")
    await server.create_route(path="/busy", image=IMAGE, format="hot", queue_timeout=2.5)
    await server.create_route(path="/other", image=IMAGE, format="hot")
    await server.call("demo", "/busy")
    await server.call("demo", "/other")
    finished: list[tuple[int, int]] = []
    shed = []
    other_latencies = []

    async def busy_call(i: int) -> None:
        reply = await server.call("demo", "/busy", b"%d" % i, headers=sleep_headers(1000))
        if reply.status == 503:
            shed.append((i, reply))
        else:
            assert reply.status == 200, reply
            finished.append(i)

    async def other_calls() -> None:
        await trio.sleep(0.5)
        for _ in range(10):
            start = trio.current_time()
            assert (await server.call("demo", "/other", b"o")).status == 200
            other_latencies.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(busy_call, i)
            await trio.sleep(0.1)
        nursery.start_soon(other_calls)
    assert finished == [0, 1, 2], "waiters are served first come, first served"
    assert [i for i, _ in shed] == [3, 4]
    for _, reply in shed:
        assert reply.header("retry-after") == "1"
        assert "queue timeout of 2.5 s" in reply.json()["error"]["message"]
    assert max(other_latencies) < 0.5, "another route stays fast while one is saturated"


async def test_idle_container_is_stopped_after_idle_timeout(server):
    await server.create_app("demo")
    await server.create_route(path="/idle", image=IMAGE, format="hot", idle_timeout=1)
    await server.call("demo", "/idle")
    assert containers(server, "/idle")
    await wait_until(lambda: not containers(server, "/idle"), timeout=10)


async def test_min_warm_is_kept_even_after_docker_kill(server):
    await server.create_app("demo")
    await server.create_route(path="/warm", image=IMAGE, format="hot", min_warm=1, idle_timeout=1)
    first = await wait_until(lambda: containers(server, "/warm"))
    await trio.sleep(2.5)  # past idle_timeout: min_warm keeps it anyway
    assert containers(server, "/warm") == first
    subprocess.run(["docker", "kill", first[0]], capture_output=True, check=True)
    replaced = await wait_until(lambda: (c := containers(server, "/warm")) and c != first and c, timeout=20)
    assert len(replaced) == 1
    assert (await server.call("demo", "/warm", b"x")).body == b"x"


async def test_first_request_with_min_warm_finds_a_ready_container(server):
    await server.create_app("demo")
    await server.create_route(path="/warm", image=IMAGE, format="hot", min_warm=1)
    await wait_until(lambda: idle_containers(server, "demo/warm"))
    reply = await server.call("demo", "/warm", b"first")
    assert reply.status == 200
    call = (await server.req("GET", f"/v1/apps/demo/calls/{reply.header('hotfn-call-id')}")).json()["call"]
    assert call["duration_ms"] < 200, "no container start on the first request"


async def idle_containers(server, key: str) -> int:
    stats = (await server.req("GET", "/v1/stats")).json()
    return stats["routes"].get(key, {}).get("idle", 0)


async def test_container_killed_while_idle_is_replaced_without_an_error(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image=IMAGE, format="hot")
    await server.call("demo", "/hot")
    (victim,) = containers(server, "/hot")
    subprocess.run(["docker", "kill", victim], capture_output=True, check=True)
    reply = await server.call("demo", "/hot", b"after")
    assert reply.status == 200 and reply.body == b"after"


@pytest.mark.parametrize("mode, message", [
    ("no-ready", "no ready frame within its start-up timeout of 2 s"),
    ("exit-before-ready", "cannot load the handler"),
    ("bad-version", "speaks protocol version 2"),
])
async def test_start_up_failures_are_clear_502s(server, mode, message):
    await server.create_app("demo")
    await server.create_route(path="/bad", image="hotfn-test/rogue", format="hot",
                              startup_timeout=2, config={"ROGUE_MODE": mode})
    with trio.fail_after(20):
        reply = await server.call("demo", "/bad")
    assert reply.status == 502, reply
    call_id = reply.header("hotfn-call-id")
    record = (await server.req("GET", f"/v1/apps/demo/calls/{call_id}")).json()["call"]
    assert message in record["error"]
    if mode == "exit-before-ready":
        # What the function wrote to stderr is its log, not the client's answer.
        assert reply.json()["error"]["message"] == (
            "function container exited (exit status 1); its stderr is in the call's log")
        log = await server.req("GET", f"/v1/apps/demo/calls/{call_id}/log")
        assert b"cannot load the handler" in log.body
    else:
        assert message in reply.json()["error"]["message"]
    await wait_until(lambda: not containers(server, "/bad"), timeout=10)


async def test_slow_start_is_waited_for_within_the_startup_timeout(server):
    await server.create_app("demo")
    await server.create_route(path="/slow", image="hotfn-test/rogue", format="hot", startup_timeout=10,
                              config={"ROGUE_MODE": "slow-start", "ROGUE_DELAY": "2"})
    with trio.fail_after(20):
        reply = await server.call("demo", "/slow", b"worth the wait")
    assert reply.status == 200 and reply.body == b"worth the wait"


async def test_out_of_memory_is_said_and_the_next_call_succeeds(server):
    await server.create_app("demo")
    await server.create_route(path="/hog", image="hotfn-test/hog", format="hot", memory=64)
    with trio.fail_after(60):
        reply = await server.call("demo", "/hog", headers=[("x-hog", "memory")])
    assert reply.status == 502
    assert "out of memory" in reply.json()["error"]["message"]
    assert (await server.call("demo", "/hog")).body == b"ok"


async def test_limits_contain_a_fork_bomb_and_keep_root_read_only_and_network_off(server):
    await server.create_app("demo")
    # Memory high enough that the process limit, not the memory limit, is what stops it.
    await server.create_route(path="/hog", image="hotfn-test/hog", format="hot", memory=1024)
    with trio.fail_after(60):
        fork = await server.call("demo", "/hog", headers=[("x-hog", "fork")])
    assert fork.status == 200 and fork.body.startswith(b"fork refused after"), fork
    assert int(fork.body.split()[3]) < 256
    root = await server.call("demo", "/hog", headers=[("x-hog", "write-root")])
    assert root.status == 200 and b"/tmp writable" in root.body, root
    net = await server.call("demo", "/hog", headers=[("x-hog", "network")])
    assert net.body == b"lo"


async def test_route_update_mid_traffic_loses_no_request(server):
    await server.create_app("demo")
    await server.create_route(path="/v", image=IMAGE, format="hot", max_concurrency=2,
                              config={"CONFORMANCE_CONFIG": "v1"})
    seen: list[tuple[float, str]] = []
    updated_at = math.inf
    stop = trio.Event()

    async def client() -> None:
        while not stop.is_set():
            started = trio.current_time()
            reply = await server.call("demo", "/v", headers=[("x-hotfn-test", "info")])
            assert reply.status == 200, reply
            seen.append((started, reply.json()["config_value"]))

    async def until_seen(count: int, since: float) -> None:
        with trio.fail_after(60):
            while sum(t > since for t, _ in seen) < count:
                await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(client)
        await until_seen(6, since=-math.inf)
        patched = await server.req("PATCH", "/v1/apps/demo/routes/v",
                                   json={"route": {"config": {"CONFORMANCE_CONFIG": "v2"}}})
        assert patched.status == 200
        updated_at = trio.current_time()
        await until_seen(6, since=updated_at)
        stop.set()
    values = [v for _, v in seen]
    assert "v1" in values and "v2" in values
    assert all(v == "v2" for t, v in seen if t > updated_at), "calls begun after the update see it"
    await wait_until(lambda: len(containers(server, "/v")) <= 2, timeout=10)


async def test_full_server_stops_idle_containers_of_other_routes(server_factory, images):
    server = await server_factory(max_containers=1)
    await server.create_app("demo")
    await server.create_route(path="/a", image=IMAGE, format="hot")
    await server.create_route(path="/b", image=IMAGE, format="hot")
    assert (await server.call("demo", "/a", b"a")).body == b"a"
    assert (await server.call("demo", "/b", b"b")).body == b"b"
    await wait_until(lambda: len(containers(server)) == 1, timeout=10)
    assert containers(server, "/b")


async def test_full_server_makes_requests_wait_then_503(server_factory, images):
    server = await server_factory(max_containers=1)
    await server.create_app("demo")
    await server.create_route(path="/a", image=IMAGE, format="hot")
    await server.create_route(path="/b", image=IMAGE, format="hot", queue_timeout=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(server.call, "demo", "/a", headers=sleep_headers(3000)))
        await trio.sleep(1.0)
        reply = await server.call("demo", "/b")
    assert reply.status == 503 and reply.header("retry-after")
