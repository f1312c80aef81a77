"""The stores, SQLite and PostgreSQL alike (each test runs against both): persistence,
conflicts, concurrent writers, paging, purging, the queue. Migrations of old SQLite files are
SQLite's own."""

import time

import pytest
import trio

from hotfn.models import App, Call, new_app, new_route
from hotfn.store import SCHEMA_VERSION, Conflict, NotFound, SqliteStore, open_store


@pytest.fixture
def db(store_location):
    return store_location


@pytest.fixture
def sqlite_db(tmp_path):
    return str(tmp_path / "store.db")


async def test_apps_and_routes_survive_reopening(db):
    store = open_store(db)
    await store.create_app(new_app({"name": "a", "config": {"K": "v"}}))
    await store.create_route(new_route("a", {"path": "/r/:id", "image": "img", "format": "hot"}))
    await store.close()
    again = open_store(db)
    assert (await again.get_app("a")).config == {"K": "v"}
    route = await again.get_route("a", "/r/:id")
    assert (route.image, route.format, route.memory) == ("img", "hot", 128)
    await again.close()


async def test_conflicts_and_missing_records(db):
    store = open_store(db)
    await store.create_app(new_app({"name": "a"}))
    with pytest.raises(Conflict):
        await store.create_app(new_app({"name": "a"}))
    with pytest.raises(NotFound):
        await store.create_route(new_route("nope", {"path": "/x", "image": "i"}))
    await store.create_route(new_route("a", {"path": "/x", "image": "i"}))
    with pytest.raises(Conflict, match="still has 1 route"):
        await store.delete_app("a")
    version = await store.routes_version()
    await store.delete_app("a", cascade=True)
    assert await store.routes_version() > version
    with pytest.raises(NotFound):
        await store.get_route("a", "/x")
    await store.close()


async def test_concurrent_writers_from_two_connections_lose_nothing(db):
    # Two stores on one file stand for two server processes (nodes) sharing a disk.
    first, second = open_store(db), open_store(db)

    async def writer(store, prefix):
        for i in range(40):
            await store.create_app(App(name=f"{prefix}{i}", created_at=i, updated_at=i))
            calls = [Call(id=f"{prefix}{i}-{j}", app="x", route="/r", mode="hot", created_at=time.time())
                     for j in range(5)]
            await store.save_calls(calls, [(c.id, "x", b"log") for c in calls])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer, first, "a")
        nursery.start_soon(writer, second, "b")
    assert len(await first.list_apps()) == 80
    assert len(await second.list_calls("x", limit=1000)) == 400
    await first.close()
    await second.close()


async def test_calls_page_newest_first_and_purge(db):
    store = open_store(db)
    now = time.time()
    calls = [Call(id=f"c{i:02d}", app="a", route="/r" if i % 2 else "/s", mode="cold",
                  created_at=now - 100 + i) for i in range(10)]
    await store.save_calls(calls, [(c.id, "a", f"log {c.id}".encode()) for c in calls])
    page = await store.list_calls("a", limit=4)
    assert [c.id for c in page] == ["c09", "c08", "c07", "c06"]
    rest = await store.list_calls("a", limit=100, before_id="c06")
    assert [c.id for c in rest] == ["c05", "c04", "c03", "c02", "c01", "c00"]
    assert {c.route for c in await store.list_calls("a", route="/r")} == {"/r"}
    assert [c.id for c in await store.list_calls("a", since=now - 92)] == ["c09", "c08"]
    assert await store.get_log("a", "c03") == b"log c03"
    assert await store.purge(now - 95) == 5
    assert len(await store.list_calls("a")) == 5
    with pytest.raises(NotFound):
        await store.get_log("a", "c03")  # purged with its call
    assert await store.get_log("a", "c07") == b"log c07"
    await store.close()


async def test_a_call_saved_without_a_log_has_an_empty_one(db):
    store = open_store(db)
    await store.save_calls([Call(id="quiet", app="a", route="/r", mode="hot", created_at=time.time())], [])
    assert await store.get_log("a", "quiet") == b""
    with pytest.raises(NotFound):
        await store.get_log("a", "never-ran")
    with pytest.raises(NotFound):
        await store.get_log("b", "quiet")  # another app's call
    await store.close()


async def test_recorder_keeps_records_when_a_save_fails(db):
    from hotfn.invoke import CallRecorder

    store = open_store(db)
    real_save = store.save_calls
    failures = [RuntimeError("disk full")]

    async def flaky_save(calls, logs):
        if failures:
            raise failures.pop()
        await real_save(calls, logs)

    store.save_calls = flaky_save
    recorder = CallRecorder(store)
    recorder.record(Call(id="c1", app="a", route="/r", mode="hot", created_at=time.time()), b"log")
    with pytest.raises(RuntimeError):
        await recorder.flush()
    await recorder.flush()
    assert (await store.get_call("a", "c1")).id == "c1"
    assert await store.get_log("a", "c1") == b"log"
    await store.close()


async def test_recorder_writes_no_row_for_an_empty_log_but_keeps_a_retry_s(db):
    from hotfn.invoke import CallRecorder

    store = open_store(db)
    real_save = store.save_calls
    written: list[tuple[str, bytes]] = []

    async def save(calls, logs):
        logs = list(logs)
        written.extend((call_id, data) for call_id, _, data in logs)
        await real_save(calls, logs)

    store.save_calls = save
    recorder = CallRecorder(store)
    now = time.time()
    recorder.record(Call(id="quiet", app="a", route="/r", mode="hot", created_at=now, attempts=1), b"")
    recorder.record(Call(id="loud", app="a", route="/r", mode="hot", created_at=now, attempts=1), b"out")
    await recorder.flush()
    assert written == [("loud", b"out")]
    assert await store.get_log("a", "quiet") == b""
    # An async call's first run logged; its second run's empty log replaces that one.
    recorder.record(Call(id="quiet", app="a", route="/r", mode="async", created_at=now, attempts=1), b"boom")
    await recorder.flush()
    recorder.record(Call(id="quiet", app="a", route="/r", mode="async", created_at=now, attempts=2), b"")
    await recorder.flush()
    assert await store.get_log("a", "quiet") == b""
    await store.close()


async def test_a_version_1_database_is_migrated_without_losing_calls(sqlite_db):
    import json
    import sqlite3

    old = sqlite3.connect(sqlite_db)
    old.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1'), ('routes_version', '3');
        CREATE TABLE calls (id TEXT PRIMARY KEY, app TEXT NOT NULL, route TEXT NOT NULL,
                            record TEXT NOT NULL, created_at REAL NOT NULL);
    """)
    record = {"id": "c1", "app": "a", "route": "/r", "mode": "hot", "type": "sync", "status": "success",
              "http_status": 200, "container_id": "x", "error": None, "result": None,
              "created_at": 1.0, "started_at": 1.0, "completed_at": 2.5}
    old.execute("INSERT INTO calls VALUES (?, ?, ?, ?, ?)", ("c1", "a", "/r", json.dumps(record), 1.0))
    old.commit()
    old.close()
    store = SqliteStore(sqlite_db)
    assert (await store.get_call("a", "c1")).to_json()["duration_ms"] == 1500.0
    assert await store.routes_version() == 3
    await store.save_calls([Call(id="c2", app="a", route="/r", mode="cold", created_at=2.0)], [])
    assert [c.id for c in await store.list_calls("a")] == ["c2", "c1"]
    await store.close()


# -- the async-call queue ---------------------------------------------------------------------------


def _queued(call_id, created_at=1.0, route="/job"):
    from hotfn.store import CallRequest

    call = Call(id=call_id, app="a", route=route, mode="hot", type="async", created_at=created_at)
    request = CallRequest(method="POST", url="http://h/r/a/job?x=1", path="/job", query=(("x", "1"),),
                          headers=(("host", "h"), ("x-h", "\u00e9")), body=b"\x00body", params={"id": "7"})
    return call, request


async def test_enqueued_calls_are_claimed_oldest_first_with_their_request(db):
    store = open_store(db)
    for i in range(3):
        await store.enqueue_call(*_queued(f"c{i}", created_at=10.0 + i))
    assert (await store.get_call("a", "c0")).status == "queued"
    assert await store.due_routes(now=20.0) == [("a", "/job")]
    claimed = await store.claim_calls("n1", "a", "/job", 2, lease_until=50.0, now=20.0)
    assert [c.call.id for c in claimed] == ["c0", "c1"]
    first = claimed[0]
    assert (first.call.status, first.call.attempts, first.call.node_id) == ("running", 1, "n1")
    assert first.request == _queued("c0")[1]
    assert (first.claim.attempt, first.claim.lease_until) == (1, 50.0)
    stored = await store.get_call("a", "c0")
    assert (stored.status, stored.attempts, stored.node_id) == ("running", 1, "n1")
    await store.close()


async def test_a_claim_is_exclusive_across_two_connections(db):
    # Two stores on one file stand for two nodes sharing the queue.
    first, second = open_store(db), open_store(db)
    for i in range(40):
        await first.enqueue_call(*_queued(f"c{i:02d}"))
    got: dict[str, list[str]] = {"first": [], "second": []}

    async def node(name, store):
        while claimed := await store.claim_calls(name, "a", "/job", 3, lease_until=100.0, now=5.0):
            got[name] += [c.call.id for c in claimed]
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(node, "first", first)
        nursery.start_soon(node, "second", second)
    assert sorted(got["first"] + got["second"]) == [f"c{i:02d}" for i in range(40)]
    assert not set(got["first"]) & set(got["second"])
    assert await first.due_routes(now=99.0) == []
    await first.close()
    await second.close()


async def test_an_expired_lease_makes_a_call_claimable_again_and_fences_the_old_claim(db):
    store = open_store(db)
    await store.enqueue_call(*_queued("c1"))
    (old,) = await store.claim_calls("n1", "a", "/job", 5, lease_until=30.0, now=20.0)
    assert await store.claim_calls("n2", "a", "/job", 5, lease_until=90.0, now=29.0) == []
    (new,) = await store.claim_calls("n2", "a", "/job", 5, lease_until=90.0, now=31.0)
    assert (new.claim.attempt, new.call.node_id) == (2, "n2")
    # n1 comes back late: its claim no longer counts.
    old.call.status = "success"
    assert await store.finish_call(old.call, old.claim) is False
    assert (await store.get_call("a", "c1")).status == "running"
    new.call.status, new.call.result = "success", "done"
    assert await store.finish_call(new.call, new.claim) is True
    record = await store.get_call("a", "c1")
    assert (record.status, record.attempts, record.node_id, record.result) == ("success", 2, "n2", "done")
    assert await store.due_routes(now=1000.0) == []
    await store.close()


async def test_requeue_with_back_off_and_release_at_restart(db):
    store = open_store(db)
    await store.enqueue_call(*_queued("c1"))
    await store.enqueue_call(*_queued("c2"))
    claimed = await store.claim_calls("n1", "a", "/job", 5, lease_until=100.0, now=10.0)
    first, second = claimed
    first.call.status, first.call.error = "queued", "attempt 1 failed: boom"
    assert await store.requeue_call(first.call, first.claim, available_at=15.0) is True
    assert await store.claim_calls("n1", "a", "/job", 5, lease_until=100.0, now=14.0) == []
    # The node restarts: what it had claimed is due again at once, its attempts counted.
    assert await store.release_calls("n1", now=14.0) == 1
    assert (await store.get_call("a", "c2")).status == "queued"
    again = await store.claim_calls("n1", "a", "/job", 5, lease_until=100.0, now=14.0)
    assert [(c.call.id, c.claim.attempt) for c in again] == [("c2", 2)]
    again = await store.claim_calls("n1", "a", "/job", 5, lease_until=100.0, now=15.0)
    assert [(c.call.id, c.claim.attempt, c.call.error) for c in again] == [("c1", 2, "attempt 1 failed: boom")]
    await store.close()


async def test_purge_keeps_calls_still_in_the_queue(db):
    store = open_store(db)
    await store.enqueue_call(*_queued("c1", created_at=1.0))
    await store.save_calls([Call(id="c2", app="a", route="/r", mode="hot", created_at=1.0)], [])
    assert await store.purge(older_than=100.0) == 1
    assert (await store.get_call("a", "c1")).status == "queued"
    await store.close()


async def test_a_version_2_database_is_migrated_without_losing_data(sqlite_db):
    import sqlite3

    old = sqlite3.connect(sqlite_db)
    old.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE apps (
            name TEXT PRIMARY KEY, config TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE routes (
            app TEXT NOT NULL REFERENCES apps(name), path TEXT NOT NULL, spec TEXT NOT NULL,
            PRIMARY KEY (app, path));
        CREATE TABLE calls (
            id TEXT PRIMARY KEY, app TEXT NOT NULL, route TEXT NOT NULL, mode TEXT NOT NULL,
            type TEXT NOT NULL, status TEXT NOT NULL, http_status INTEGER, container_id TEXT,
            error TEXT, result TEXT, created_at REAL NOT NULL, started_at REAL, completed_at REAL);
        CREATE INDEX calls_by_app_time ON calls (app, created_at DESC, id DESC);
        CREATE INDEX calls_by_time ON calls (created_at);
        CREATE TABLE logs (
            call_id TEXT PRIMARY KEY, app TEXT NOT NULL, created_at REAL NOT NULL, data BLOB NOT NULL);
        CREATE INDEX logs_by_time ON logs (created_at);
        INSERT INTO meta VALUES ('schema_version', '2'), ('routes_version', '7');
        INSERT INTO apps VALUES ('a', '{"K": "v"}', 1.0, 1.0);
        INSERT INTO routes VALUES ('a', '/job', '{"app": "a", "path": "/job", "image": "img", "type": "async"}');
        INSERT INTO calls VALUES ('c1', 'a', '/job', 'hot', 'sync', 'success', 200, 'x', NULL, NULL, 1.0, 1.0, 2.5);
        INSERT INTO calls VALUES ('c2', 'a', '/job', 'hot', 'async', 'running', NULL, NULL, NULL, NULL, 2.0, 2.0, NULL);
        INSERT INTO logs VALUES ('c1', 'a', 1.0, CAST('log of c1' AS BLOB));
    """)
    old.commit()
    old.close()
    store = SqliteStore(sqlite_db)
    assert (await store.get_app("a")).config == {"K": "v"}
    route = await store.get_route("a", "/job")
    assert (route.type, route.max_attempts) == ("async", 3)
    assert await store.routes_version() == 7
    done = await store.get_call("a", "c1")
    assert (done.status, done.attempts, done.to_json()["duration_ms"]) == ("success", 1, 1500.0)
    assert await store.get_log("a", "c1") == b"log of c1"
    # Its request was only in the old server's memory: it can never run, and says so.
    lost = await store.get_call("a", "c2")
    assert lost.status == "error" and "lost" in lost.error
    await store.enqueue_call(*_queued("c3"))
    assert [c.call.id for c in await store.claim_calls("n", "a", "/job", 5, 100.0, 50.0)] == ["c3"]
    await store.close()
    reopened = sqlite3.connect(sqlite_db)
    assert reopened.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    reopened.close()


# -- PostgreSQL's own failure modes ------------------------------------------------------------------


async def test_a_postgres_store_that_goes_away_fails_cleanly_and_hides_the_password(postgres_server):
    import psycopg

    from hotfn.store import StoreError, StoreUnavailable
    from hotfn.store.postgres import PostgresStore

    with pytest.raises(StoreError) as refused:
        PostgresStore("postgresql://hotfn:s3cret@127.0.0.1:1/none", connect_timeout=1)
    assert "s3cret" not in str(refused.value) and "***" in str(refused.value)

    name = f"hotfn_test_gone_{time.time_ns()}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    store = PostgresStore(postgres_server.rsplit("/", 1)[0] + "/" + name, connect_timeout=2)
    await store.create_app(new_app({"name": "a"}))
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    with pytest.raises(StoreUnavailable, match="is failing"):
        await store.create_app(new_app({"name": "b"}))
    with pytest.raises(StoreUnavailable):
        await store.check()
    await store.close()


async def test_a_column_added_later_is_added_to_an_older_store_once(db, monkeypatch):
    from hotfn.store import schema

    store = open_store(db)
    await store.create_app(new_app({"name": "a"}))
    await store.close()
    monkeypatch.setattr(schema, "ADDED_COLUMNS", [("apps", "later INTEGER NOT NULL DEFAULT 7"),
                                                  ("calls", "note TEXT")])
    for _ in range(2):  # the second opening finds them there
        store = open_store(db)
        assert (await store.get_app("a")).name == "a"
        rows = await store._run(lambda conn: conn.execute("SELECT later FROM apps").fetchall())
        assert [tuple(r) for r in rows] == [(7,)]
        await store.close()


# -- what other features keep in the store, on both ----------------------------------------------------


async def test_tokens_and_app_quotas_and_secrets_on_both_stores(db):
    from hotfn.models import hash_secret, new_token

    store = open_store(db)
    token, secret = new_token({"name": "ci", "scope": "deploy", "apps": ["a"]})
    await store.create_token(token)
    with pytest.raises(Conflict):
        await store.create_token(token)
    assert await store.find_token(hash_secret(secret)) == token
    assert await store.find_token(hash_secret("nope")) is None
    assert [t.id for t in await store.list_tokens()] == [token.id]
    await store.delete_token(token.id)
    with pytest.raises(NotFound):
        await store.delete_token(token.id)
    assert await store.find_token(hash_secret(secret)) is None

    app = new_app({"name": "q", "config": {"K": "v"}, "max_containers": 3, "max_memory_mb": 512,
                   "rate_limit": 2.5, "burst": 5, "secrets": {"API_KEY": "s"}})
    await store.create_app(app)
    again = await store.get_app("q")
    assert (again.max_containers, again.max_memory_mb, again.rate_limit, again.burst,
            dict(again.secrets)) == (3, 512, 2.5, 5, {"API_KEY": "s"})
    await store.close()


async def test_the_node_registry_keeps_one_row_per_node_and_skips_malformed_ones(db):
    from hotfn.store import NodeInfo

    store = open_store(db)
    await store.register_node(NodeInfo("n1", "127.0.0.2:8080", 64, "1.0", False, 1.0, 2.0))
    await store.register_node(NodeInfo("n1", "127.0.0.2:8080", 64, "1.0", True, 1.0, 3.0))
    await store.register_node(NodeInfo("n2", "127.0.0.3:8080", 64, "1.0", False, 1.0, 3.0))
    assert [(n.id, n.draining, n.heartbeat_at) for n in await store.list_nodes()] == [
        ("n1", True, 3.0), ("n2", False, 3.0)]
    if isinstance(store, SqliteStore):  # PostgreSQL's column types refuse such a row
        await store._run(lambda conn: conn.execute("UPDATE nodes SET capacity = 'lots' WHERE id = 'n2'"))
    await store.remove_node("n1")
    assert [n.id for n in await store.list_nodes()] == ([] if isinstance(store, SqliteStore) else ["n2"])


async def test_a_call_keeps_its_traceparent(db):
    store = open_store(db)
    await store.save_calls([Call(id="c1", app="a", route="/r", mode="hot", created_at=1.0)], [])
    assert (await store.get_call("a", "c1")).traceparent is None
    traced = Call(id="c2", app="a", route="/r", mode="hot", created_at=2.0,
                  traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    await store.save_calls([traced], [])
    assert (await store.get_call("a", "c2")).traceparent == traced.traceparent
    await store.close()


async def test_queue_stats_count_queued_and_claimed_calls_per_route(db):
    store = open_store(db)
    assert await store.queue_stats() == []
    await store.enqueue_call(*_queued("c1", created_at=5.0))
    await store.enqueue_call(*_queued("c2", created_at=7.0))
    await store.enqueue_call(*_queued("c3", created_at=6.0, route="/other"))
    await store.claim_calls("n", "a", "/job", 1, lease_until=100.0, now=50.0)
    assert sorted(await store.queue_stats()) == [("a", "/job", 2, 5.0), ("a", "/other", 1, 6.0)]
    await store.close()


    await store.close()


def test_batches_of_any_size_use_a_few_statement_sizes():
    """Each chunk size is one prepared statement kept by the connection: batches of every size
    from 1 to 2,000 rows must need only a few (SQLite held one per batch size, ~17 MB)."""
    from hotfn.store.sql import _chunks

    sizes = set()
    for n in range(1, 2001):
        rows = list(range(n))
        chunks = list(_chunks(rows))
        assert [r for chunk in chunks for r in chunk] == rows
        assert len(chunks) <= n // 256 + 2
        sizes.update(len(chunk) for chunk in chunks)
    assert len(sizes) <= 31


async def test_a_batch_of_odd_size_is_saved_whole(db):
    store = open_store(db)
    calls = [Call(id=f"c{i:04d}", app="a", route="/r", mode="hot", created_at=float(i))
             for i in range(531)]  # 256 + 256 + 16 + 3
    await store.save_calls(calls, [(c.id, "a", c.id.encode()) for c in calls])
    assert (await store.get_call("a", "c0530")).created_at == 530.0
    assert await store.get_log("a", "c0272") == b"c0272"
    await store.close()
