"""Cold containers started ahead of their calls (hotfn/pool/coldstart.py), against the real engine:
a call takes one, gets its own environment, and none is left behind."""

import json
import subprocess

import pytest
import trio

from conftest import _docker, containers_of
from hotfn.drivers.docker.parked import render_env

ECHO = "hotfn-test/conformance-python"


def parked_of(node_id: str, route: str | None = None) -> list[str]:
    """Running parked containers (one a call has used runs no more, or not for long)."""
    out = _docker("ps", "--filter", "label=hotfn.parked=1", "--filter", "status=running", "--format",
                  '{{.ID}} {{.Label "hotfn.node"}} {{.Label "hotfn.route"}}').stdout.split("\n")
    rows = [line.split(" ") for line in out if line.strip()]
    return [r[0] for r in rows if r[1] == node_id and (route is None or r[2] == route)]


async def wait_parked(node_id: str, route: str | None = None, count: int = 1, not_in=()) -> list[str]:
    with trio.fail_after(30):
        while len(found := [c for c in parked_of(node_id, route) if c not in not_in]) < count:
            await trio.sleep(0.1)
    return found


async def test_a_cold_call_takes_the_parked_container_and_gets_its_own_environment(server):
    await server.create_app("demo", config={"CONFORMANCE_CONFIG": "from-app"})
    await server.create_route(path="/items/:id", image=ECHO, format="default")
    (parked,) = await wait_parked(server.node_id, "/items/:id")
    hostile = "it's $HOME `id` \\ \"q\" ${x} é"
    reply = await server.call("demo", "/items/7?a=1", b"body", method="PUT",
                              headers=[("x-echo-a", hostile), ("x-hotfn-test", "info")])
    assert reply.status == 200, reply
    info = json.loads(reply.body)
    assert info["method"] == "PUT" and info["params"] == {"id": "7"} and info["query"] == [["a", "1"]]
    assert ["x-echo-a", hostile] in info["headers"]
    assert info["config_value"] == "from-app" and info["body_length"] == 4
    record = (await server.req("GET", f"/v1/apps/demo/calls/{reply.header('hotfn-call-id')}")).json()
    assert parked.startswith(record["call"]["container_id"][:12])
    # After the call: a new one, and the used one is removed.
    await wait_parked(server.node_id, "/items/:id", not_in=[parked])
    with trio.fail_after(10):
        while parked in containers_of(server.node_id):
            await trio.sleep(0.1)


async def test_exit_statuses_and_logs_still_come_from_the_function(server):
    await server.create_app("demo")
    await server.create_route(path="/c", image=ECHO, format="default")
    await wait_parked(server.node_id, "/c")
    reply = await server.call("demo", "/c", headers=[("x-hotfn-test", "exit")])
    assert reply.status == 502 and "exit status 3" in reply.json()["error"]["message"], reply
    await wait_parked(server.node_id, "/c")
    reply = await server.call("demo", "/c", b"x", headers=[("x-hotfn-test", "stderr")])
    assert reply.status == 200 and reply.body == b"x"
    log = await server.req("GET", f"/v1/apps/demo/calls/{reply.header('hotfn-call-id')}/log")
    assert b"log line" in log.body


async def test_route_change_and_delete_remove_its_parked_container(server):
    await server.create_app("demo")
    await server.create_route(path="/c", image=ECHO, format="default")
    (first,) = await wait_parked(server.node_id, "/c")
    reply = await server.req("PATCH", "/v1/apps/demo/routes/c", json={"route": {"config": {"K": "v2"}}})
    assert reply.status == 200, reply
    (second,) = await wait_parked(server.node_id, "/c", not_in=[first])
    with trio.fail_after(10):
        while first in containers_of(server.node_id):
            await trio.sleep(0.1)
    assert (await server.req("DELETE", "/v1/apps/demo/routes/c")).status == 200
    with trio.fail_after(10):
        while containers_of(server.node_id):
            await trio.sleep(0.1)


async def test_parked_containers_are_bounded_and_removed_at_shutdown(server_factory, images):
    harness = await server_factory(max_parked=2)
    await harness.create_app("demo")
    for i in range(3):
        await harness.create_route(path=f"/c{i}", image=ECHO, format="default")
    await wait_parked(harness.node_id, count=2)
    await trio.sleep(1.5)  # a few rounds of housekeeping: still two
    assert len(parked_of(harness.node_id)) == 2
    await server_factory.stop(harness)
    assert containers_of(harness.node_id) == []


async def test_no_parking_when_turned_off(server_factory, images):
    harness = await server_factory(max_parked=0)
    await harness.create_app("demo")
    await harness.create_route(path="/c", image=ECHO, format="default")
    reply = await harness.call("demo", "/c", b"x")
    assert reply.status == 200 and reply.body == b"x"
    await trio.sleep(1.5)
    assert parked_of(harness.node_id) == []


async def test_a_parked_container_killed_from_outside_is_not_used(server):
    await server.create_app("demo")
    await server.create_route(path="/c", image=ECHO, format="default")
    (parked,) = await wait_parked(server.node_id, "/c")
    subprocess.run(["docker", "kill", parked], capture_output=True, check=True)
    reply = await server.call("demo", "/c", b"still works")
    assert reply.status == 200 and reply.body == b"still works", reply
    # Housekeeping also notices a dead one by itself, and parks another.
    (second,) = await wait_parked(server.node_id, "/c", not_in=[parked])
    subprocess.run(["docker", "kill", second], capture_output=True, check=True)
    await wait_parked(server.node_id, "/c", not_in=[parked, second])


def test_environment_rendering_quotes_values_and_refuses_what_a_shell_cannot_take():
    assert render_env({"A": "it's", "B": "x\ny"}) == b"A='it'\\''s'\nB='x\ny'\nHOTFN_GO=1\n"
    for bad in ({"é": "1"}, {"1A": "1"}, {"A-B": "1"}, {"HOTFN_GO": "1"}, {"A": "a\0b"}):
        with pytest.raises(ValueError):
            render_env(bad)


async def test_no_parked_container_for_an_image_the_policy_no_longer_allows(server_factory, images, tmp_path):
    db = str(tmp_path / "policy.db")
    first = await server_factory(db=db)
    await first.create_app("demo")
    await first.create_route(path="/c", image=ECHO, format="default")
    await wait_parked(first.node_id, "/c")
    await server_factory.stop(first)
    second = await server_factory(db=db, allowed_images="hotfn-fn/*")
    await trio.sleep(2.0)  # two rounds of housekeeping
    assert parked_of(second.node_id) == []
    assert (await second.call("demo", "/c", b"x")).status == 403


async def test_a_networked_cold_route_parks_on_its_own_network_as_the_functions_user(server):
    await server.create_app("demo")
    await server.create_route(path="/net", image=ECHO, format="default", network=True)
    (parked,) = await wait_parked(server.node_id, "/net")
    inspected = json.loads(_docker("inspect", parked).stdout)[0]
    assert inspected["HostConfig"]["NetworkMode"] not in ("none", "default", "bridge")
    assert inspected["Config"]["User"] == "1000:1000"
    reply = await server.call("demo", "/net", b"over the network")
    assert reply.status == 200 and reply.body == b"over the network", reply
