"""The core engine end to end on a real Docker engine: hot and cold calls of a Python function."""

import json

import pytest
import trio

pytestmark = pytest.mark.docker

EVERY_BYTE = bytes(range(256))


async def test_hot_and_cold_round_trip_every_byte_value(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/conformance-python", format="hot")
    await server.create_route(path="/cold", image="hotfn-test/conformance-python", format="default")
    for path in ("/hot", "/cold"):
        reply = await server.call("demo", path, EVERY_BYTE * 4)
        assert reply.status == 200, reply
        assert reply.body == EVERY_BYTE * 4
        assert reply.header("hotfn-call-id")


async def test_five_mib_body_round_trips_hot_and_cold(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/conformance-python", format="hot")
    await server.create_route(path="/cold", image="hotfn-test/conformance-python")
    body = EVERY_BYTE * (5 * 1024 * 4)
    assert len(body) == 5 * 1024 * 1024
    for path in ("/hot", "/cold"):
        reply = await server.call("demo", path, body)
        assert reply.status == 200, reply
        assert reply.body == body


async def test_hot_container_serves_request_after_request(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/rogue", format="hot")
    served = []
    for i in range(5):
        reply = await server.call("demo", "/hot", b"%d" % i)
        assert reply.status == 200
        assert reply.body == b"%d" % i
        served.append((reply.header("x-pid"), reply.header("x-served")))
    assert len({pid for pid, _ in served}) == 1, "one warm container serves every call"
    assert [n for _, n in served] == ["1", "2", "3", "4", "5"]


async def test_print_to_stdout_does_not_corrupt_the_response(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/conformance-python", format="hot")
    await server.create_route(path="/cold", image="hotfn-test/conformance-python")
    for path in ("/hot", "/cold"):
        reply = await server.call("demo", path, b"clean", headers=[("x-hotfn-test", "print")])
        assert reply.status == 200, reply
        assert reply.body == b"clean"
        log = await server.req("GET", f"/v1/apps/demo/calls/{reply.header('hotfn-call-id')}/log")
        assert b"noise" in log.body


async def test_handler_exception_is_a_clear_error_and_the_container_keeps_serving(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/conformance-python", format="hot")
    ok = await server.call("demo", "/hot", b"a")
    failed = await server.call("demo", "/hot", headers=[("x-hotfn-test", "raise")])
    assert failed.status == 502
    # The client hears what kind of failure, and the call id; the function's own words (its
    # message, its trace) are in the call's record and log only.
    call_id = failed.header("hotfn-call-id")
    assert failed.json() == {"error": {"message": "function raised RuntimeError", "call_id": call_id}}
    assert b"boom" not in failed.body and b"Traceback" not in failed.body
    record = (await server.req("GET", f"/v1/apps/demo/calls/{call_id}")).json()["call"]
    assert record["error"] == "function raised RuntimeError: boom"
    again = await server.call("demo", "/hot", b"b")
    assert again.status == 200 and again.body == b"b"
    calls = (await server.req("GET", "/v1/apps/demo/calls")).json()["calls"]
    containers = {c["container_id"] for c in calls}
    assert len(containers) == 1, "the same container served before and after the exception"
    log = await server.req("GET", f"/v1/apps/demo/calls/{failed.header('hotfn-call-id')}/log")
    assert b"RuntimeError: boom" in log.body and b"Traceback" in log.body
    assert ok.status == 200


async def _container_of(server, reply):
    call = await server.req("GET", f"/v1/apps/demo/calls/{reply.header('hotfn-call-id')}")
    return call.json()["call"]["container_id"]


async def test_function_that_exits_mid_call_gives_502_and_a_fresh_container(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/conformance-python", format="hot")
    first = await server.call("demo", "/hot", b"x")
    died = await server.call("demo", "/hot", headers=[("x-hotfn-test", "exit")])
    assert died.status == 502
    assert "exit status 3" in died.json()["error"]["message"]
    after = await server.call("demo", "/hot", b"y")
    assert after.status == 200 and after.body == b"y"
    assert await _container_of(server, after) != await _container_of(server, first)


async def test_function_that_hangs_past_its_timeout_gives_504_and_a_fresh_container(server):
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/conformance-python", format="hot", timeout=1)
    await server.create_route(path="/cold", image="hotfn-test/conformance-python", timeout=1)
    first = await server.call("demo", "/hot", b"x")
    asked = trio.current_time()
    with trio.fail_after(10):
        hung = await server.call("demo", "/hot", headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "60000")])
    assert hung.status == 504
    # At its deadline, not once the container is removed: the waiting call is woken at once.
    assert trio.current_time() - asked < 2.5
    assert "timeout of 1 s" in hung.json()["error"]["message"]
    after = await server.call("demo", "/hot", b"y")
    assert after.status == 200 and after.body == b"y"
    assert await _container_of(server, after) != await _container_of(server, first)
    with trio.fail_after(10):
        cold = await server.call("demo", "/cold", headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "60000")])
    assert cold.status == 504


@pytest.mark.parametrize("mode, status, message", [
    ("garbage", 502, "malformed frame"),
    ("oversized", 502, "exceeds"),
    ("wrong-call-id", 502, "unexpected Response frame"),
    # Docker's attach stream ends only when stdout and stderr both close, so a process that
    # closes stdout and lives on looks like a slow one: it is caught by its call timeout.
    ("close-stdout", 504, "timeout"),
])
async def test_function_that_breaks_the_protocol_gives_an_error_and_a_fresh_container(
        server, mode, status, message):
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/rogue", format="hot",
                              config={"ROGUE_MODE": mode}, timeout=3)
    with trio.fail_after(20):
        broken = await server.call("demo", "/hot", b"x")
    assert broken.status == status, broken
    assert message in broken.json()["error"]["message"]
    first_container = await _container_of(server, broken)
    # The next call gets a new container (which misbehaves the same way, being the same image).
    with trio.fail_after(20):
        again = await server.call("demo", "/hot", b"x")
    assert again.status == status
    assert await _container_of(server, again) != first_container


async def test_cold_call_gets_ironfunctions_environment(server):
    await server.create_app("demo", config={"CONFORMANCE_CONFIG": "from-app"})
    await server.create_route(path="/users/:id", image="hotfn-test/conformance-python")
    reply = await server.call("demo", "/users/42?x=1&x=2", b"abc",
                              headers=[("x-hotfn-test", "info"), ("x-echo-name", "Zoë")])
    assert reply.status == 200, reply
    info = json.loads(reply.body)
    assert info["method"] == "POST"
    assert info["path"] == "/users/42"
    assert info["params"] == {"id": "42"}
    assert info["query"] == [["x", "1"], ["x", "2"]]
    assert info["app"] == "demo" and info["route"] == "/users/:id"
    assert ["x-echo-name", "Zoë"] in info["headers"]
    assert info["body_length"] == 3
    assert info["config_value"] == "from-app"
    assert info["call_id"] == reply.header("hotfn-call-id")


async def test_cold_nonzero_exit_is_502_with_json_error(server):
    await server.create_app("demo")
    await server.create_route(path="/cold", image="hotfn-test/conformance-python")
    reply = await server.call("demo", "/cold", headers=[("x-hotfn-test", "exit")])
    assert reply.status == 502
    assert reply.json()["error"]["message"] == "function failed: exit status 3"


@pytest.mark.parametrize("mode, status", [("echo", 200), ("garbage", 502), ("die-after-one", 502)])
async def test_hot_containers_over_the_attach_stream(server_factory, images, mode, status):
    """--io-dir '': frames travel over Docker's attach stream (an engine on another host)."""
    server = await server_factory(io_dir="")
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/rogue", format="hot",
                              config={"ROGUE_MODE": mode}, timeout=5)
    first = await server.call("demo", "/hot", EVERY_BYTE * 4)
    if mode == "garbage":
        assert first.status == 502 and "malformed frame" in first.json()["error"]["message"]
        return
    assert first.status == 200 and first.body == EVERY_BYTE * 4
    big = EVERY_BYTE * (5 * 1024 * 4)
    second = await server.call("demo", "/hot", big)
    assert second.status == status
    if status == 200:
        assert second.body == big
    else:
        assert "exit status 7" in second.json()["error"]["message"]
