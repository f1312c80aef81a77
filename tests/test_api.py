"""The HTTP API over real sockets against a real server with real containers."""

import json
import subprocess
import time

import h11
import pytest
import trio

from conftest import new_node_id
from httpclient import HttpClient, raw_exchange

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"


async def test_app_and_route_lifecycle(server):
    created = await server.req("POST", "/v1/apps", json={"app": {"name": "shop", "config": {"A": "1"}}})
    assert created.status == 200 and created.json()["app"]["name"] == "shop"
    dup = await server.req("POST", "/v1/apps", json={"app": {"name": "shop"}})
    assert dup.status == 409 and "already exists" in dup.json()["error"]["message"]
    assert [a["name"] for a in (await server.req("GET", "/v1/apps")).json()["apps"]] == ["shop"]
    patched = await server.req("PATCH", "/v1/apps/shop", json={"app": {"config": {"B": "2", "A": ""}}})
    assert patched.json()["app"]["config"] == {"B": "2"}

    route = await server.req("POST", "/v1/apps/shop/routes", json={"route": {"path": "/cart", "image": IMAGE}})
    assert route.status == 200
    r = route.json()["route"]
    assert (r["format"], r["memory"], r["timeout"], r["idle_timeout"], r["max_concurrency"], r["type"]) == (
        "default", 128, 30, 30, 1, "sync")
    assert (await server.req("POST", "/v1/apps/shop/routes",
                             json={"route": {"path": "/cart", "image": IMAGE}})).status == 409
    got = await server.req("GET", "/v1/apps/shop/routes/cart")
    assert got.json()["route"]["image"] == IMAGE
    patched = await server.req("PATCH", "/v1/apps/shop/routes/cart", json={"route": {"format": "hot", "memory": 64}})
    assert patched.status == 200 and patched.json()["route"]["format"] == "hot"
    assert [x["path"] for x in (await server.req("GET", "/v1/apps/shop/routes")).json()["routes"]] == ["/cart"]
    call = await server.call("shop", "/cart", b"hi")
    assert call.status == 200 and call.body == b"hi"

    refused = await server.req("DELETE", "/v1/apps/shop")
    assert refused.status == 409 and "still has 1 route" in refused.json()["error"]["message"]
    assert (await server.req("DELETE", "/v1/apps/shop/routes/cart")).status == 200
    assert (await server.req("GET", "/v1/apps/shop/routes/cart")).status == 404
    await server.create_route("shop", path="/other", image=IMAGE)
    assert (await server.req("DELETE", "/v1/apps/shop?cascade=true")).status == 200
    assert (await server.req("GET", "/v1/apps/shop")).status == 404


@pytest.mark.parametrize("body, field", [
    ({"app": {"name": "bad name!"}}, "app.name"),
    ({"app": {"name": "ok", "config": {"1X": "v"}}}, "app.config.1X"),
    ({"app": {"name": "ok", "colour": "red"}}, "app.colour"),
])
async def test_app_validation_errors_name_the_field(server, body, field):
    reply = await server.req("POST", "/v1/apps", json=body)
    assert reply.status == 400
    assert reply.json()["error"]["field"] == field


@pytest.mark.parametrize("route, field", [
    ({"path": "/x"}, "route.image"),
    ({"path": "x", "image": IMAGE}, "route.path"),
    ({"path": "/x", "image": IMAGE, "format": "warm"}, "route.format"),
    ({"path": "/x", "image": IMAGE, "memory": 4}, "route.memory"),
    ({"path": "/x", "image": IMAGE, "timeout": "soon"}, "route.timeout"),
    ({"path": "/x", "image": IMAGE, "type": "later"}, "route.type"),
    ({"path": "/x", "image": IMAGE, "max_concurrency": 0}, "route.max_concurrency"),
    ({"path": "/x", "image": "hotfn-test/no-such-image"}, "route.image"),
])
async def test_route_validation_errors_name_the_field(server, route, field):
    await server.create_app("demo")
    reply = await server.req("POST", "/v1/apps/demo/routes", json={"route": route})
    assert reply.status == 400, reply
    assert reply.json()["error"]["field"] == field


async def test_missing_image_is_a_400_that_says_so(server):
    await server.create_app("demo")
    reply = await server.req("POST", "/v1/apps/demo/routes",
                             json={"route": {"path": "/x", "image": "hotfn-test/no-such-image"}})
    assert reply.status == 400
    assert "no-such-image" in reply.json()["error"]["message"]
    assert "not present" in reply.json()["error"]["message"]


async def test_error_statuses_have_json_bodies(server):
    await server.create_app("demo")
    cases = [
        (await server.req("POST", "/v1/apps", b"{not json",
                          headers=[("content-type", "application/json")]), 400),
        (await server.req("POST", "/v1/apps", json={"name": "x"}), 400),
        (await server.req("GET", "/v1/apps/nope"), 404),
        (await server.req("GET", "/r/nope/x"), 404),
        (await server.req("GET", "/r/demo/nothing-here"), 404),
        (await server.req("PUT", "/v1/apps"), 405),
        (await server.req("GET", "/v2/whatever"), 404),
    ]
    for reply, status in cases:
        assert reply.status == status, reply
        assert reply.header("content-type") == "application/json"
        assert reply.json()["error"]["message"]
    assert cases[5][0].header("allow") == "GET, POST"


async def test_limits_through_the_real_server(server_factory, images):
    server = await server_factory(max_body_size=1000, max_header_size=2000, request_timeout=0.5)
    raw = await raw_exchange(server.url, b"POST /r/a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 413 ")
    raw = await raw_exchange(server.url, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 3000 + b"\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 431 ")
    raw = await raw_exchange(server.url, b"GARBAGE\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ")
    raw = await raw_exchange(server.url, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert raw.startswith(b"HTTP/1.1 408 ")


async def test_keep_alive_and_pipelining_on_a_real_socket(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image=IMAGE, format="hot")
    host, port = server.url.removeprefix("http://").split(":")
    client = await HttpClient.connect(host, int(port))
    for i in range(3):
        assert (await client.request("POST", "/r/demo/hot", b"%d" % i)).body == b"%d" % i
    pipelined = b"".join(
        b"POST /r/demo/hot HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % i for i in range(5))
    await client.stream.send_all(pipelined)
    for i in range(5):
        client.conn.start_next_cycle()
        # h11 wants our side to have sent the request: replay it into the client state machine.
        client.conn.send(h11.Request(method="POST", target="/r/demo/hot",
                                     headers=[("host", "x"), ("content-length", "1")]))
        client.conn.send(h11.Data(data=b"%d" % i))
        client.conn.send(h11.EndOfMessage())
        reply = await client.read_reply()
        assert reply.body == b"%d" % i
    await client.aclose()


async def test_a_slow_client_does_not_stall_other_clients(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image=IMAGE, format="hot")
    host, port = server.url.removeprefix("http://").split(":")
    slow = await trio.open_tcp_stream(host, int(port))
    await slow.send_all(b"POST /r/demo/hot HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a bit")
    with trio.fail_after(10):
        for _ in range(20):
            assert (await server.call("demo", "/hot", b"fast")).body == b"fast"
    await slow.aclose()


@pytest.mark.parametrize("max_concurrency", [1, 3])
async def test_concurrent_calls_to_one_hot_route(server, max_concurrency):
    await server.create_app("demo")
    await server.create_route(path="/hot", image=IMAGE, format="hot", max_concurrency=max_concurrency)
    await server.call("demo", "/hot")  # one container warm
    containers: set[str] = set()
    enough = trio.Event()

    async def caller(i):
        # Six at once, again and again until the route has scaled as far as it will: how long
        # its containers take to start is the machine's business.
        while not enough.is_set():
            reply = await server.call("demo", "/hot", b"%d" % i,
                                      headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "300")])
            assert reply.status == 200 and reply.body == b"%d" % i, reply

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(caller, i)
        with trio.fail_after(60):
            while len(containers) < max_concurrency:
                calls = (await server.req("GET", "/v1/apps/demo/calls?limit=100")).json()["calls"]
                containers |= {c["container_id"] for c in calls}
                await trio.sleep(0.1)
        enough.set()
    calls = (await server.req("GET", "/v1/apps/demo/calls?limit=100")).json()["calls"]
    containers |= {c["container_id"] for c in calls}
    assert len(containers) == max_concurrency
    stats = (await server.req("GET", "/v1/stats")).json()
    assert stats["routes"]["demo/hot"]["workers"] == max_concurrency


async def test_store_survives_a_restart(server_factory, images, tmp_path):
    db = str(tmp_path / "persist.db")
    first = await server_factory(db=db)
    await first.create_app("keep", config={"K": "v"})
    await first.create_route("keep", path="/hot", image=IMAGE, format="hot")
    reply = await first.call("keep", "/hot", b"before")
    await server_factory.stop(first)
    second = await server_factory(db=db)
    assert (await second.req("GET", "/v1/apps/keep")).json()["app"]["config"] == {"K": "v"}
    assert (await second.call("keep", "/hot", b"after")).body == b"after"
    call = await second.req("GET", f"/v1/apps/keep/calls/{reply.header('hotfn-call-id')}")
    assert call.json()["call"]["status"] == "success"


async def test_restart_removes_containers_a_crashed_server_left(server_factory, images, tmp_path):
    node_id = new_node_id()
    left = subprocess.run(
        ["docker", "run", "-d", "--label", "hotfn=1", "--label", f"hotfn.node={node_id}",
         "--entrypoint", "sleep", IMAGE, "300"], capture_output=True, text=True, check=True).stdout.strip()
    await server_factory(db=str(tmp_path / "x.db"), node_id=node_id)
    gone = subprocess.run(["docker", "ps", "-aq", "--filter", f"id={left}"], capture_output=True, text=True)
    assert gone.stdout.strip() == ""


async def test_call_records_and_logs_for_hot_cold_failed_and_async_calls(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image=IMAGE, format="hot")
    await server.create_route(path="/cold", image=IMAGE)
    await server.create_route(path="/async", image=IMAGE, format="hot", type="async")
    hot = await server.call("demo", "/hot", b"h", headers=[("x-hotfn-test", "stderr")])
    cold = await server.call("demo", "/cold", b"c", headers=[("x-hotfn-test", "stderr")])
    failed = await server.call("demo", "/hot", headers=[("x-hotfn-test", "raise")])
    accepted = await server.call("demo", "/async", b"later", headers=[("x-hotfn-test", "stderr")])
    assert accepted.status == 202
    async_id = accepted.json()["call_id"]
    assert accepted.header("hotfn-call-id") == async_id
    with trio.fail_after(20):
        while True:
            record = (await server.req("GET", f"/v1/apps/demo/calls/{async_id}")).json()["call"]
            if record["status"] not in ("queued", "running"):
                break
            await trio.sleep(0.1)
    assert record["status"] == "success" and record["result"] == "later" and record["http_status"] == 200

    for reply, mode, status in ((hot, "hot", "success"), (cold, "cold", "success"), (failed, "hot", "error")):
        call_id = reply.header("hotfn-call-id")
        record = (await server.req("GET", f"/v1/apps/demo/calls/{call_id}")).json()["call"]
        assert record["mode"] == mode and record["status"] == status
        assert record["app"] == "demo" and record["container_id"]
        assert record["duration_ms"] is not None and record["started_at"] <= record["completed_at"]
    for reply in (hot, cold):
        log = await server.req("GET", f"/v1/apps/demo/calls/{reply.header('hotfn-call-id')}/log")
        assert log.body == b"log line\n"
    log = await server.req("GET", f"/v1/apps/demo/calls/{async_id}/log")
    assert log.body == b"log line\n"

    listed = (await server.req("GET", "/v1/apps/demo/calls")).json()["calls"]
    assert [c["id"] for c in listed] == sorted((c["id"] for c in listed), reverse=True)
    assert len(listed) == 4
    only_cold = (await server.req("GET", "/v1/apps/demo/calls?route=/cold")).json()["calls"]
    assert [c["route"] for c in only_cold] == ["/cold"]
    page = (await server.req("GET", "/v1/apps/demo/calls?limit=2")).json()
    rest = (await server.req("GET", f"/v1/apps/demo/calls?limit=2&cursor={page['next_cursor']}")).json()
    assert [c["id"] for c in page["calls"] + rest["calls"]] == [c["id"] for c in listed]
    future = (await server.req("GET", f"/v1/apps/demo/calls?from={time.time() + 60}")).json()["calls"]
    assert future == []


async def test_old_call_records_and_logs_are_purged(server_factory, images):
    server = await server_factory(log_retention=1.0)
    await server.create_app("demo")
    await server.create_route(path="/hot", image=IMAGE, format="hot")
    reply = await server.call("demo", "/hot", b"x")
    call_id = reply.header("hotfn-call-id")
    assert (await server.req("GET", f"/v1/apps/demo/calls/{call_id}")).status == 200
    with trio.fail_after(10):
        while (await server.req("GET", f"/v1/apps/demo/calls/{call_id}")).status != 404:
            await trio.sleep(0.25)
    assert (await server.req("GET", f"/v1/apps/demo/calls/{call_id}/log")).status == 404


async def test_path_parameters_reach_a_hot_function(server):
    await server.create_app("demo")
    await server.create_route(path="/users/:id/orders/:order", image=IMAGE, format="hot")
    await server.create_route(path="/users/me/orders/:order", image=IMAGE, format="hot")
    reply = await server.call("demo", "/users/7/orders/x%20y", headers=[("x-hotfn-test", "info")])
    info = json.loads(reply.body)
    assert info["params"] == {"id": "7", "order": "x y"}
    assert info["route"] == "/users/:id/orders/:order"
    mine = json.loads((await server.call("demo", "/users/me/orders/1", headers=[("x-hotfn-test", "info")])).body)
    assert mine["route"] == "/users/me/orders/:order" and mine["params"] == {"order": "1"}


async def test_function_status_and_headers_plus_route_headers(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image=IMAGE, format="hot",
                              headers={"x-route": "static", "x-custom": "overridden?"})
    reply = await server.call("demo", "/hot", headers=[("x-hotfn-test", "status"), ("x-status", "418")])
    assert reply.status == 418 and reply.body == b"status"
    assert reply.header("x-custom") == "yes"  # the function's own header wins
    assert reply.header("x-route") == "static"


async def test_subdomain_invocation(server_factory, images):
    server = await server_factory(domain="fn.example")
    await server.create_app("shop")
    await server.create_route("shop", path="/hot", image=IMAGE, format="hot")
    reply = await server.req("POST", "/hot", b"by host", headers=[("host", "shop.fn.example")])
    assert reply.status == 200 and reply.body == b"by host"


async def test_health_reports_docker(server):
    reply = await server.req("GET", "/health")
    assert reply.status == 200 and reply.json()["docker"] == "up"


async def test_app_and_route_lists_page_with_a_cursor(server):
    for name in ("c", "a", "b"):
        await server.create_app(name)
    for path in ("/z", "/x", "/y/:id"):
        await server.create_route("a", path=path, image=IMAGE)
    # Unpaged: the whole list, as before.
    assert [a["name"] for a in (await server.req("GET", "/v1/apps")).json()["apps"]] == ["a", "b", "c"]
    first = (await server.req("GET", "/v1/apps?per_page=2")).json()
    assert [a["name"] for a in first["apps"]] == ["a", "b"] and first["next_cursor"] == "b"
    rest = (await server.req("GET", f"/v1/apps?per_page=2&cursor={first['next_cursor']}")).json()
    assert [a["name"] for a in rest["apps"]] == ["c"] and rest["next_cursor"] is None
    pages, cursor = [], ""
    while cursor is not None:
        page = (await server.req("GET", f"/v1/apps/a/routes?per_page=1&cursor={cursor}")).json()
        pages += [r["path"] for r in page["routes"]]
        cursor = page["next_cursor"]
    assert pages == ["/x", "/y/:id", "/z"]
    for bad in ("per_page=0", "per_page=1001", "per_page=x", "per_page="):
        reply = await server.req("GET", f"/v1/apps/a/routes?{bad}")
        assert reply.status == 400 and "per_page" in reply.json()["error"]["message"], bad


async def test_nodes_register_and_a_stopping_node_drains_first(server_factory, images, tmp_path):
    db = str(tmp_path / "shared.db")
    first = await server_factory(db=db)
    second = await server_factory(db=db, drain_time=1.0)
    nodes = (await first.req("GET", "/v1/nodes")).json()["nodes"]
    assert {n["id"] for n in nodes} == {first.node_id, second.node_id}
    mine = next(n for n in nodes if n["id"] == second.node_id)
    assert mine["alive"] and not mine["draining"] and mine["address"] == second.url.split("//")[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server_factory.stop, second)
        with trio.fail_after(5):
            while (await second.req("GET", "/health")).status != 503:
                await trio.sleep(0.05)
        health = await second.req("GET", "/health")
        assert health.json()["status"] == "draining"
        # Still serving meanwhile: only the balancer's health check is told to go away.
        assert (await second.req("GET", "/v1/apps")).status == 200
        draining = (await first.req("GET", "/v1/nodes")).json()["nodes"]
        assert next(n for n in draining if n["id"] == second.node_id)["draining"]
    assert [n["id"] for n in (await first.req("GET", "/v1/nodes")).json()["nodes"]] == [first.node_id]
