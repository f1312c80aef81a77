"""Noisy neighbours (issue 21.7): every container gets a CPU limit, its route's ``cpus`` or the
node's ``--default-cpus``, and a CPU weight that follows that limit, not its memory (a 2048 MiB
route had 16 times the weight of the others, and a fork bomb in it starved them). What the limit
buys under a fork bomb is measured by ``bench/hotfn_bench/neighbours.py``; these tests check the
engine really holds each container to it, and that a bad value is refused where it enters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import trio

from conftest import containers_of
from hotfn.server import StartupError

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def host_config(container_id: str) -> dict:
    return json.loads(docker("inspect", "--format", "{{json .HostConfig}}", container_id))


def cfs_quota_inside(container_id: str) -> tuple[int, int]:
    """(quota, period) in µs, as the container's own cgroup says (v1 or v2)."""
    out = docker("exec", container_id, "sh", "-c",
                 "cat /sys/fs/cgroup/cpu.max 2>/dev/null || "
                 "echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)")
    quota, period = out.split()
    return int(quota), int(period)


async def warm_container(server, path: str) -> str:
    reply = await server.call("demo", path, b"hi")
    assert reply.status == 200, reply
    (container,) = containers_of(server.node_id, all=False, route=path)
    return container


async def test_each_container_is_held_to_its_routes_cpus_or_the_nodes_default(server_factory, images):
    server = await server_factory(default_cpus=1.0)
    await server.create_app("demo")
    # The finding: 2048 MiB made a weight of 16384 against 1024 for 128 MiB.
    await server.create_route(path="/big", image=IMAGE, format="hot", memory=2048)
    await server.create_route(path="/half", image=IMAGE, format="hot", cpus=0.5)
    # More cores than this machine has: the engine would refuse it, so the node caps it.
    await server.create_route(path="/greedy", image=IMAGE, format="hot", cpus=512)

    big = await warm_container(server, "/big")
    config = host_config(big)
    assert (config["NanoCpus"], config["CpuShares"]) == (1_000_000_000, 1024), config
    assert cfs_quota_inside(big) == (100_000, 100_000)

    half = await warm_container(server, "/half")
    config = host_config(half)
    assert (config["NanoCpus"], config["CpuShares"]) == (500_000_000, 512), config
    assert cfs_quota_inside(half) == (50_000, 100_000)

    greedy = host_config(await warm_container(server, "/greedy"))
    assert greedy["NanoCpus"] == len(os.sched_getaffinity(0)) * 1_000_000_000

    route = (await server.req("GET", "/v1/apps/demo/routes/half")).json()["route"]
    assert route["cpus"] == 0.5
    assert (await server.req("GET", "/v1/apps/demo/routes/big")).json()["route"]["cpus"] is None

    # A change of cpus is a new revision: the warm container goes, the next one has the new
    # limit; null goes back to the node's default.
    reply = await server.req("PATCH", "/v1/apps/demo/routes/half", json={"route": {"cpus": None}})
    assert reply.status == 200 and reply.json()["route"]["cpus"] is None, reply
    with trio.fail_after(30):
        while half in containers_of(server.node_id, all=False, route="/half"):
            await trio.sleep(0.1)
    assert host_config(await warm_container(server, "/half"))["NanoCpus"] == 1_000_000_000


async def test_a_cold_container_gets_the_limit_too(server_factory, images):
    server = await server_factory(default_cpus=1.0, max_parked=0)
    await server.create_app("demo")
    await server.create_route(path="/cold", image=IMAGE, format="default", cpus=0.25)
    seen: list[dict] = []

    async def watch() -> None:
        while not seen:
            for container in containers_of(server.node_id, route="/cold"):
                try:
                    seen.append(host_config(container))
                except subprocess.CalledProcessError:
                    pass  # already removed
            await trio.sleep(0.02)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        with trio.fail_after(60):
            while not seen:
                reply = await server.call("demo", "/cold", b"hi",
                                          headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "500")])
                assert reply.status == 200, reply
    assert (seen[0]["NanoCpus"], seen[0]["CpuShares"]) == (250_000_000, 256), seen[0]


@pytest.mark.parametrize("value", [0, 0.001, -1, 1025, "1", True, [], {"n": 1}])
async def test_a_bad_cpus_is_a_400_naming_the_field(server, value):
    await server.create_app("demo")
    reply = await server.req("POST", "/v1/apps/demo/routes",
                             json={"route": {"path": "/p", "image": IMAGE, "cpus": value}})
    assert reply.status == 400, reply
    error = reply.json()["error"]
    assert error["field"] == "route.cpus", error
    assert error["message"] == "must be a number of cores from 0.01 to 1024, or null (the node's default)"
    await server.create_route(path="/p", image=IMAGE, cpus=2)
    reply = await server.req("PATCH", "/v1/apps/demo/routes/p", json={"route": {"cpus": value}})
    assert reply.status == 400 and reply.json()["error"]["field"] == "route.cpus", reply
    assert (await server.req("GET", "/v1/apps/demo/routes/p")).json()["route"]["cpus"] == 2


async def test_nan_cpus_is_a_400_too(server):
    # Python's json (the server's parser) takes NaN and Infinity, which JSON has not.
    await server.create_app("demo")
    for value in (b"NaN", b"Infinity"):
        reply = await server.req("POST", "/v1/apps/demo/routes", b'{"route": {"path": "/p", "image": "'
                                 + IMAGE.encode() + b'", "cpus": ' + value + b"}}",
                                 headers=[("content-type", "application/json")])
        assert reply.status == 400 and reply.json()["error"]["field"] == "route.cpus", reply


async def test_default_cpus_outside_the_machine_refuses_to_start(server_factory):
    for value in (0.0, 10_000.0):
        with pytest.raises(StartupError, match="--default-cpus must be from 0.01"):
            await server_factory(default_cpus=value)


async def test_the_cli_takes_cpus_where_it_takes_route_fields(server):
    await server.create_app("demo")

    async def hotfn(*args: str) -> subprocess.CompletedProcess:
        return await trio.run_process([sys.executable, "-m", "hotfn", "--server", server.url, *args],
                                      capture_stdout=True, capture_stderr=True, check=False)

    done = await hotfn("routes", "create", "demo", "/c", "--image", IMAGE, "--cpus", "1.5")
    assert done.returncode == 0, done.stderr
    assert (await server.req("GET", "/v1/apps/demo/routes/c")).json()["route"]["cpus"] == 1.5
    bad = await hotfn("routes", "update", "demo", "/c", "--cpus", "0")
    assert bad.returncode != 0 and b"--cpus: must be a number of cores" in bad.stderr, bad.stderr


async def test_hotfn_serve_runs_at_its_niceness_every_thread(tmp_path, images):
    """The server's headroom: its threads outweigh a container's when the CPU is contended."""
    import signal

    from test_durability import ServeProcess

    process = ServeProcess(tmp_path, "--server-nice", "-3")
    try:
        server = await process.start()
        await server.create_app("demo")
        await server.create_route(path="/p", image=IMAGE, format="hot")
        assert (await server.call("demo", "/p", b"hi")).status == 200  # worker threads started
        pid = process.process.pid
        nice = {}
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                nice[task] = int(stat.read().rsplit(")", 1)[1].split()[16])
        assert len(nice) > 1 and set(nice.values()) == {-3}, nice
    finally:
        if process.process is not None and process.process.returncode is None:
            await process.stop(signal.SIGTERM)
    with trio.fail_after(60):  # refused before it starts
        bad = await trio.run_process([sys.executable, "-m", "hotfn", "serve", "--port", "0",
                                      "--db", str(tmp_path / "x.db"), "--server-nice", "42"],
                                     capture_stdout=True, capture_stderr=True, check=False)
    assert bad.returncode != 0 and b"--server-nice must be from -20 to 19" in bad.stderr, bad.stderr


@pytest.mark.parametrize("stored", [0, -1, "2", True, 5000, [1]])
def test_a_cpus_the_store_gives_back_damaged_is_the_nodes_default(stored, caplog):
    from hotfn.models import route_from_record

    route = route_from_record({"app": "a", "path": "/p", "image": "i", "cpus": stored})
    assert route.cpus is None and "stored cpus" in caplog.text
