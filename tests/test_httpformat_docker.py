"""format "http" (IronFunctions' hot format) through the real server and real containers, with
functions written the way IronFunctions' hot-function docs show, in Python and in shell."""

from __future__ import annotations

import json

import pytest

from conftest import containers_of

pytestmark = pytest.mark.docker

PY = "hotfn-test/ironhttp-python"
SH = "hotfn-test/ironhttp-sh"


def info(reply) -> dict:
    assert reply.status == 200, reply
    return reply.json()


async def test_one_container_serves_many_calls_python(server):
    await server.create_route("iron", path="/users/:id", image=PY, format="http",
                              config={"db-url": "postgres://db", "plain": "p"},
                              headers={"X-Route": ["static"]})
    seen = []
    for i in range(20):
        reply = await server.call("iron", f"/users/{i}?q=a%20b", b"body %d" % i,
                                  headers=[("x-one", "1"), ("x-one", "2")])
        seen.append(info(reply))
        assert reply.header("x-route") == "static"
    assert len({s["pid"] for s in seen}) == 1 and [s["served"] for s in seen] == list(range(1, 21))
    assert len(containers_of(server.node_id, route="/users/:id")) == 1
    last = seen[-1]
    assert (last["method"], last["target"], last["body"]) == ("POST", "/users/19?q=a%20b", "body 19")
    headers = last["headers"]
    # What IronFunctions gave a hot function as headers, and the client's own headers.
    assert headers["method"] == "POST" and headers["route"] == "/users/:id"
    assert headers["request_url"].endswith("/r/iron/users/19?q=a%20b")
    assert headers["param_id"] == "19" and headers["header_x_one"] == "1, 2"
    assert headers["content-length"] == "7" and headers["x-one"] in ("1", "2")
    assert headers["task-id"] == headers["hotfn-call-id"] == reply.header("hotfn-call-id")
    # Config in the container's environment under IronFunctions' names.
    assert last["env"] == {"DB_URL": "postgres://db", "PLAIN": "p", "APP_NAME": "iron",
                           "FN_FORMAT": "http"}


async def test_one_container_serves_many_calls_shell(server):
    await server.create_route("iron", path="/sh", image=SH, format="http")
    bodies = []
    for i in range(10):
        reply = await server.call("iron", "/sh", b"call%d" % i)
        assert reply.status == 200, reply
        bodies.append(reply.body.decode())
    pids = {b.split(" from shell ")[1].split(" ")[0] for b in bodies}
    assert len(pids) == 1, bodies
    assert bodies[3] == f"Hello call3 from shell {pids.pop()} (POST)\n"
    get = await server.call("iron", "/sh", method="GET")
    assert get.status == 200 and get.body.startswith(b"Hello  from shell") and b"(GET)" in get.body
    assert len(containers_of(server.node_id, route="/sh")) == 1


async def test_status_and_headers_pass_through_and_head_gets_no_body(server):
    await server.create_route("iron", path="/py", image=PY, format="http")
    made = await server.call("iron", "/py", headers=[("x-mode", "status")])
    assert made.status == 201 and made.body == b"made" and made.header("x-id") == "42"
    head = await server.call("iron", "/py", method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.header("content-length")) > 0


@pytest.mark.parametrize("mode, says", [
    ("garbage", "function container sent a malformed HTTP response: not a well-formed"),
    ("no-length", "neither Content-Length nor Transfer-Encoding: chunked"),
    ("exit", "function container exited (exit status 3)"),
])
async def test_a_broken_answer_kills_the_container_with_a_clear_502(server, mode, says):
    await server.create_route("iron", path="/py", image=PY, format="http")
    assert info(await server.call("iron", "/py"))["served"] == 1
    reply = await server.call("iron", "/py", headers=[("x-mode", mode)])
    assert reply.status == 502 and says in reply.json()["error"]["message"], reply
    after = info(await server.call("iron", "/py"))
    assert after["served"] == 1, "a fresh container serves the next call"
    assert len(containers_of(server.node_id, route="/py", all=False)) == 1


async def test_a_timeout_kills_the_container_and_answers_504(server):
    await server.create_route("iron", path="/py", image=PY, format="http", timeout=1)
    info(await server.call("iron", "/py"))
    reply = await server.call("iron", "/py", headers=[("x-mode", "sleep"), ("x-seconds", "30")])
    assert reply.status == 504 and "timeout of 1 s" in reply.json()["error"]["message"], reply
    assert info(await server.call("iron", "/py"))["served"] == 1
    assert len(containers_of(server.node_id, route="/py", all=False)) == 1


async def test_connection_close_answers_then_retires_the_container(server):
    await server.create_route("iron", path="/py", image=PY, format="http")
    first = info(await server.call("iron", "/py"))
    last = await server.call("iron", "/py", headers=[("x-mode", "close")])
    assert last.status == 200 and last.body == b"last one"
    again = info(await server.call("iron", "/py"))
    assert again["served"] == 1 and first["served"] == 1, "a fresh container after the close"


async def test_a_parameter_http_cannot_carry_is_a_400_and_harms_nothing(server):
    await server.create_route("iron", path="/p/:id", image=PY, format="http")
    reply = await server.call("iron", "/p/a%0d%0aX-Injected:%201")
    assert reply.status == 400 and "cannot be written as HTTP/1.1" in reply.json()["error"]["message"]
    assert info(await server.call("iron", "/p/fine"))["headers"]["param_id"] == "fine"


async def test_the_functions_log_is_kept_per_call(server):
    await server.create_route("iron", path="/py", image=PY, format="http")
    reply = await server.call("iron", "/py")
    call_id = reply.header("hotfn-call-id")
    log = await server.req("GET", f"/v1/apps/iron/calls/{call_id}/log")
    assert f"call {call_id} mode info".encode() in log.body


async def test_cold_config_env_names_as_ironfunctions_made_them(server):
    await server.create_app("iron", config={"db-url": "from-app", "Mixed-Case_key": "m"})
    await server.create_route("iron", path="/cold/:id", image=PY, config={"plain": "p"})
    reply = await server.call("iron", "/cold/7", b"in", headers=[("x-one", "1")])
    assert reply.status == 200, reply
    got = reply.json()
    assert got["body"] == "in"
    assert got["env"] == {"DB_URL": "from-app", "PLAIN": "p", "MIXED_CASE_KEY": "m", "METHOD": "POST",
                          "ROUTE": "/cold/:id", "REQUEST_URL": got["env"]["REQUEST_URL"],
                          "HEADER_X_ONE": "1", "PARAM_ID": "7"}
    # A route's key wins over the app's spelling of the same variable.
    await server.req("PATCH", "/v1/apps/iron/routes/cold/:id", json={"route": {"config": {"DB_URL": "route"}}})
    assert json.loads((await server.call("iron", "/cold/7")).body)["env"]["DB_URL"] == "route"


async def test_async_calls_run_in_the_http_format_too(server):
    import trio

    await server.create_route("iron", path="/job", image=SH, format="http", type="async")
    ids = []
    for i in range(3):
        reply = await server.call("iron", "/job", b"job%d" % i)
        assert reply.status == 202, reply
        ids.append(reply.json()["call_id"])
    with trio.fail_after(30):
        while True:
            records = [(await server.req("GET", f"/v1/apps/iron/calls/{i}")).json()["call"] for i in ids]
            if all(r["status"] not in ("queued", "running") for r in records):
                break
            await trio.sleep(0.2)
    assert [r["status"] for r in records] == ["success"] * 3
    assert [r["result"].split(" from ")[0] for r in records] == ["Hello job0", "Hello job1", "Hello job2"]


async def test_the_first_call_waits_for_a_slow_start_within_startup_timeout(server):
    # No ready frame: the first request waits in the pipe while the function starts, on the
    # route's startup_timeout; later calls have only the call timeout.
    await server.create_route("iron", path="/slow", image=PY, format="http", timeout=1,
                              startup_timeout=10, config={"slow-start": "2"})
    first = await server.call("iron", "/slow")
    assert info(first)["served"] == 1
    assert info(await server.call("iron", "/slow"))["served"] == 2
    late = await server.call("iron", "/slow", headers=[("x-mode", "sleep"), ("x-seconds", "2")])
    assert late.status == 504, late


async def test_every_byte_value_and_a_large_body_round_trip(server):
    await server.create_route("iron", path="/echo", image=PY, format="http")
    for body in (bytes(range(256)) * 4, bytes(range(256)) * 4096 * 5):  # 1 KiB, 5 MiB
        reply = await server.call("iron", "/echo", body, headers=[("x-mode", "echo")])
        assert reply.status == 200 and reply.body == body, reply
