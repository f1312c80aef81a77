"""Many calls in flight on one container (ready frame `concurrency`), on a real Docker engine,
with a function that speaks raw frames and answers out of order (tests/functions/juggler)."""

import pytest
import trio

pytestmark = pytest.mark.docker

IMAGE = "hotfn-test/juggler"


async def _calls(server, specs, path="/j"):
    """Calls at once, one per spec (headers); their replies in the same order."""
    replies = [None] * len(specs)

    async def one(i, headers):
        replies[i] = await server.call("demo", path, f"body-{i}".encode(), headers=headers)

    async with trio.open_nursery() as nursery:
        for i, headers in enumerate(specs):
            nursery.start_soon(one, i, headers)
            await trio.sleep(0.02)  # in this order
    return replies


async def _stats(server, path="/j"):
    return (await server.req("GET", "/v1/stats")).json()["routes"][f"demo{path}"]


async def test_one_container_serves_many_calls_at_once_and_answers_come_in_any_order(server):
    await server.create_app("demo")
    await server.create_route(path="/j", image=IMAGE, format="hot", max_concurrency=1,
                              config={"JUGGLER_CONCURRENCY": "8"}, timeout=10)
    assert (await server.call("demo", "/j", b"warm")).status == 200
    # The first call is answered last: each later one has a shorter delay.
    delays = [800, 600, 400, 200, 0]
    started = trio.current_time()
    replies = await _calls(server, [[("x-delay-ms", str(d))] for d in delays])
    took = trio.current_time() - started
    assert [r.status for r in replies] == [200] * 5, replies
    assert [r.body for r in replies] == [f"body-{i}".encode() for i in range(5)]
    assert len({r.header("x-instance") for r in replies}) == 1, "one container served them all"
    assert max(int(r.header("x-in-flight")) for r in replies) >= 4
    assert took < 2.0, "served at once, not one after another (2 s)"
    stats = await _stats(server)
    assert stats["workers"] == 1 and stats["in_flight"] == 0


async def test_a_container_that_asks_for_nothing_gets_one_call_at_a_time(server):
    await server.create_app("demo")
    await server.create_route(path="/j", image=IMAGE, format="hot", max_concurrency=1,
                              config={"JUGGLER_CONCURRENCY": "absent"}, queue_timeout=20)
    replies = await _calls(server, [[("x-delay-ms", "100")]] * 4)
    assert [r.status for r in replies] == [200] * 4
    assert {r.header("x-in-flight") for r in replies} == {"1"}


async def test_a_crash_mid_flight_fails_every_call_on_that_container_and_only_those(server):
    await server.create_app("demo")
    await server.create_route(path="/j", image=IMAGE, format="hot", max_concurrency=2,
                              min_warm=2, config={"JUGGLER_CONCURRENCY": "4"}, timeout=10)
    for _ in range(100):
        if (await _stats(server))["idle"] == 2:
            break
        await trio.sleep(0.1)
    # Calls 0-3 fill one container (its fourth crashes it), 4-7 the other.
    specs = [[("x-delay-ms", "1500")]] * 3 + [[("x-juggler", "crash"), ("x-delay-ms", "0")]]
    specs += [[("x-delay-ms", "300")]] * 4
    replies = await _calls(server, specs)
    statuses = [r.status for r in replies]
    assert statuses[:4] == [502] * 4, replies[:4]
    assert statuses[4:] == [200] * 4, replies[4:]
    assert "exit status 3" in replies[0].json()["error"]["message"]
    # The pool replaces the dead container and serves on.
    assert (await server.call("demo", "/j", b"after")).status == 200


async def test_an_answer_with_an_unknown_call_id_is_a_protocol_error(server):
    await server.create_app("demo")
    await server.create_route(path="/j", image=IMAGE, format="hot",
                              config={"JUGGLER_CONCURRENCY": "4"}, timeout=10)
    first = await server.call("demo", "/j", b"x")
    replies = await _calls(server, [[("x-delay-ms", "500")], [("x-juggler", "unknown-id")]])
    assert [r.status for r in replies] == [502, 502]
    assert "unexpected Response frame" in replies[1].json()["error"]["message"]
    after = await server.call("demo", "/j", b"y")
    assert after.status == 200 and after.header("x-instance") != first.header("x-instance")


@pytest.mark.parametrize("value", ["0", "-3", "100000"])
async def test_a_hostile_concurrency_is_refused_at_start(server, value):
    await server.create_app("demo")
    await server.create_route(path="/j", image=IMAGE, format="hot",
                              config={"JUGGLER_CONCURRENCY": value})
    reply = await server.call("demo", "/j", b"x")
    assert reply.status == 502
    assert "concurrency" in reply.json()["error"]["message"]


async def test_each_call_s_log_holds_what_was_written_while_it_was_in_flight(server):
    await server.create_app("demo")
    await server.create_route(path="/j", image=IMAGE, format="hot",
                              config={"JUGGLER_CONCURRENCY": "4"})
    replies = await _calls(server, [[("x-delay-ms", "300")], [("x-delay-ms", "0")]])
    for reply in replies:
        call_id = reply.header("hotfn-call-id")
        log = await server.req("GET", f"/v1/apps/demo/calls/{call_id}/log")
        assert f"answering {call_id}".encode() in log.body
