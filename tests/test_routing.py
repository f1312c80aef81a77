"""The route table follows the store change by change, on both stores: after any sequence of
changes (made through this node or another one) it equals a table loaded from scratch, and
it touched only what changed."""

from __future__ import annotations

import time

from hotfn.models import new_app, new_route, patch_app
from hotfn.cluster import RouteSync, RouteTable
from hotfn.store import open_store
from hotfn.store.sql import CHANGES_PER_READ


class RecordingPools:
    """Stands for the PoolManager: what the sync told it."""

    def __init__(self) -> None:
        self.changed: list[tuple[str, str]] = []
        self.removed: list[tuple[str, str | None]] = []

    def route_changed(self, route) -> None:
        self.changed.append((route.app, route.path))

    def route_removed(self, app, path=None) -> None:
        self.removed.append((app, path))


def snapshot(table: RouteTable) -> dict:
    return {(r.app, r.path): (r.image, dict(r.config), r.format) for r in table.all_routes()}


async def fresh(store) -> dict:
    return snapshot(RouteTable(await store.list_apps(), await store.list_routes(),
                               await store.routes_version()))


async def test_changes_by_another_node_are_applied_one_by_one(store_location):
    ours, theirs = open_store(store_location), open_store(store_location)
    pools = RecordingPools()
    sync = RouteSync(ours, pools)
    await theirs.create_app(new_app({"name": "a", "config": {"K": "app"}}))
    await theirs.create_route(new_route("a", {"path": "/x", "image": "i1", "format": "hot"}))
    await sync.refresh()
    assert sync.full_reloads == 1 and snapshot(sync.table) == await fresh(theirs)

    # Later changes come from the feed: no full reload, only the touched routes' pools.
    pools.changed.clear()
    await theirs.create_route(new_route("a", {"path": "/users/:id", "image": "i2", "format": "hot"}))
    await theirs.create_route(new_route("a", {"path": "/users/me", "image": "i3"}))
    await sync.refresh()
    assert sync.full_reloads == 1
    assert pools.changed == [("a", "/users/:id")] and ("a", "/users/me") in pools.removed
    assert sync.table.match("a", "/users/me")[0].image == "i3"
    assert sync.table.match("a", "/users/7") == (sync.table.get("a", "/users/:id"), {"id": "7"})

    # An app's config reaches its routes; a route deleted stops being served.
    app = patch_app(await theirs.get_app("a"), {"config": {"K": "new"}})
    await theirs.update_app(app)
    await theirs.delete_route("a", "/x")
    await sync.refresh()
    assert sync.table.match("a", "/x") is None and ("a", "/x") in pools.removed
    assert sync.table.get("a", "/users/:id").config == {"K": "new"}
    assert snapshot(sync.table) == await fresh(theirs)

    # An app deleted with its routes, recreated with other ones, in one batch.
    await theirs.delete_app("a", cascade=True)
    await theirs.create_app(new_app({"name": "a"}))
    await theirs.create_route(new_route("a", {"path": "/y", "image": "i4"}))
    await theirs.create_app(new_app({"name": "b"}))
    await sync.refresh()
    assert sync.full_reloads == 1
    assert snapshot(sync.table) == await fresh(theirs)
    assert set(snapshot(sync.table)) == {("a", "/y")}
    assert sync.table.version == await theirs.routes_version()
    await ours.close()
    await theirs.close()


async def test_a_node_too_far_behind_reloads_everything(store_location):
    store = open_store(store_location)
    sync = RouteSync(store, RecordingPools())
    await sync.refresh()
    await store.create_app(new_app({"name": "a"}))
    for i in range(CHANGES_PER_READ + 1):
        await store.create_route(new_route("a", {"path": f"/r{i}", "image": "i"}))
    await sync.refresh()
    assert sync.full_reloads == 2 and len(sync.table.all_routes()) == CHANGES_PER_READ + 1
    await store.close()


async def test_the_change_feed_numbers_every_change(store_location):
    store = open_store(store_location)
    start = await store.routes_version()
    await store.create_app(new_app({"name": "a"}))
    await store.create_route(new_route("a", {"path": "/x", "image": "i"}))
    await store.delete_route("a", "/x")
    feed = await store.changes_since(start)
    assert feed.complete and feed.latest == start + 3
    assert [(c.app, c.path) for c in feed.changes] == [("a", None), ("a", "/x"), ("a", "/x")]
    assert [c.seq for c in feed.changes] == [start + 1, start + 2, start + 3]
    assert (await store.changes_since(feed.latest)).changes == []
    # Purging keeps the newest changes.
    await store.purge(time.time())
    assert (await store.changes_since(start)).complete
    await store.close()
