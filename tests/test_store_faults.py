"""The store under faults, on a PostgreSQL server each test starts, stops and crashes itself
(private_postgres), never the shared one:

- an async call answered 202, and the claim that counts its attempt, survive an immediate
  crash of PostgreSQL even when the server commits asynchronously (synchronous_commit=off);
- a store that stops answering opens the circuit: requests fail fast (StoreUnreachable), the
  probe closes it once the server is back.
"""

from __future__ import annotations

import time

import pytest
import trio

from private_postgres import PrivatePostgres

# As the project's own test PostgreSQL (scripts/ensure-postgres) runs, and slower to write its
# WAL than the default: a commit that waits for nothing is lost in a crash for ten seconds.
ASYNC_COMMITS = {"synchronous_commit": "off", "wal_writer_delay": "10000ms",
                 "wal_writer_flush_after": "64MB"}


@pytest.fixture
async def crashable_postgres():
    server = PrivatePostgres(**ASYNC_COMMITS)
    try:
        await server.start()
        yield server
    finally:
        server.remove()


def _open(url: str):
    from hotfn.store import open_store

    return open_store(url)


def _call(n: int):
    from hotfn.models import Call, new_call_id

    return Call(id=new_call_id(), app="a", route=f"/r{n % 3}", mode="cold", type="async",
                created_at=time.time())


def _request():
    from hotfn.store import CallRequest

    return CallRequest(method="POST", url="http://x/r/a/r", path="/r", query=(), headers=(),
                       body=b"payload")


async def test_accepted_calls_and_their_claims_survive_an_immediate_crash_of_postgresql(crashable_postgres):
    store = await trio.to_thread.run_sync(_open, crashable_postgres.url)
    accepted = [_call(n) for n in range(6)]
    for call in accepted:
        await store.enqueue_call(call, _request())
    claimed = await store.claim_calls("node-a", "a", "/r0", 10, lease_until=time.time() + 60,
                                      now=time.time())
    assert claimed
    # One more accepted, as the crash comes (the others' WAL may have been written with it).
    accepted.append(_call(1))
    await store.enqueue_call(accepted[-1], _request())
    # At once: the 202s were sent, the claimed calls are running.
    await crashable_postgres.stop("immediate")
    await store.close()
    await crashable_postgres.start()
    store = await trio.to_thread.run_sync(_open, crashable_postgres.url)
    try:
        for call in accepted:
            assert (await store.get_call("a", call.id)).status in ("queued", "running"), call.id
        for one in claimed:
            # Its attempt was counted before it ran: a run after the crash is attempt 2.
            assert (await store.get_call("a", one.call.id)).attempts == 1
        assert await store.release_calls("node-a", time.time()) == len(claimed)
        again = await store.claim_calls("node-b", "a", "/r0", 10, lease_until=time.time() + 60,
                                        now=time.time())
        assert sorted(c.claim.attempt for c in again) == [2] * len(claimed)
    finally:
        await store.close()


async def test_the_enqueue_transaction_commits_synchronously_whatever_the_servers_default(crashable_postgres):
    import psycopg

    store = await trio.to_thread.run_sync(_open, crashable_postgres.url)
    seen = []
    run = store._run

    async def watching(work):
        def spy(db):
            result = work(db)
            seen.append(db.execute("SELECT current_setting('synchronous_commit')").fetchone()[0])
            return result

        return await run(spy)

    store._run = watching
    try:
        await store.enqueue_call(_call(0), _request())
        await store.save_calls([_call(1)], [])  # a record: fast, as the server's default
    finally:
        await store.close()
    assert seen == ["on", "off"]
    with psycopg.connect(crashable_postgres.url) as conn:  # the server's default is untouched
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"


async def test_a_store_that_stops_answering_fails_fast_until_the_probe_finds_it_back(crashable_postgres):
    from hotfn.store import StoreUnreachable

    store = await trio.to_thread.run_sync(_open, crashable_postgres.url)
    try:
        await store.probe()
        assert store.health.state == "ok"
        await crashable_postgres.stop("fast")
        with pytest.raises(StoreUnreachable):
            await store.list_apps()
        assert store.health.state == "unreachable"
        for _ in range(20):
            started = trio.current_time()
            with pytest.raises(StoreUnreachable, match="has not answered"):
                await store.list_apps()
            assert trio.current_time() - started < 0.1
        await store.probe()
        assert store.health.state == "unreachable"
        await crashable_postgres.start()
        with trio.fail_after(30):
            while store.health.state != "ok":
                await store.probe()
                await trio.sleep(0.1)
        assert await store.list_apps() == []
    finally:
        await store.close()


@pytest.mark.docker
async def test_a_call_running_when_its_node_and_postgresql_crash_runs_again_as_attempt_2(
        crashable_postgres, images, tmp_path):
    from test_durability import ServeProcess, wait_for_calls

    node = ServeProcess(tmp_path, "--async-retry-delay", "0.2", "--no-access-log",
                        db=crashable_postgres.url)
    try:
        server = await node.start()
        await server.create_app("demo")
        await server.create_route(path="/job", image="hotfn-test/conformance-python",
                                  format="hot", type="async", timeout=30, max_attempts=3)
        reply = await server.call("demo", "/job", b"once", headers=[("x-hotfn-test", "sleep"),
                                                                    ("x-sleep-ms", "3000")])
        assert reply.status == 202
        call_id = reply.json()["call_id"]
        with trio.fail_after(30):
            while (await server.req("GET", f"/v1/apps/demo/calls/{call_id}")
                   ).json()["call"]["status"] != "running":
                await trio.sleep(0.02)
        # Both at once, mid-call: the node (its run is cut short) and PostgreSQL (as a crash).
        node.process.kill()
        await crashable_postgres.stop("immediate")
        await node.process.wait()
        await crashable_postgres.start()
        server = await node.start()
        record = (await wait_for_calls(server, "demo", [call_id], timeout=60))[call_id]
        assert record["status"] == "success" and record["result"] == "once", record
        assert record["attempts"] == 2, record
    finally:
        with trio.CancelScope(shield=True):
            await node.aclose()
