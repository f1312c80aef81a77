"""The SQLite store: persistence, conflicts, concurrent writers, paging and purging."""

import time

import pytest
import trio

from hotfn.models import App, Call, new_app, new_route
from hotfn.store import Conflict, NotFound, SqliteStore


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "store.db")


async def test_apps_and_routes_survive_reopening(db):
    store = SqliteStore(db)
    await store.create_app(new_app({"name": "a", "config": {"K": "v"}}))
    await store.create_route(new_route("a", {"path": "/r/:id", "image": "img", "format": "hot"}))
    await store.close()
    again = SqliteStore(db)
    assert (await again.get_app("a")).config == {"K": "v"}
    route = await again.get_route("a", "/r/:id")
    assert (route.image, route.format, route.memory) == ("img", "hot", 128)
    await again.close()


async def test_conflicts_and_missing_records(db):
    store = SqliteStore(db)
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
    first, second = SqliteStore(db), SqliteStore(db)

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
    store = SqliteStore(db)
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


async def test_recorder_keeps_records_when_a_save_fails(db):
    from hotfn.calls import CallRecorder

    store = SqliteStore(db)
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


async def test_a_version_1_database_is_migrated_without_losing_calls(db):
    import json
    import sqlite3

    old = sqlite3.connect(db)
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
    store = SqliteStore(db)
    assert (await store.get_call("a", "c1")).to_json()["duration_ms"] == 1500.0
    assert await store.routes_version() == 3
    await store.save_calls([Call(id="c2", app="a", route="/r", mode="cold", created_at=2.0)], [])
    assert [c.id for c in await store.list_calls("a")] == ["c2", "c1"]
    await store.close()
