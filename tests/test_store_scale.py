"""A store that stays fast as it grows, on both stores: paging through many call records costs
the same at any depth (the keyset cursor is the index's bound, not a filter), and so do route
and app pages. Sizes are modest so that CI stays fast; bench/ measures bigger ones."""

from __future__ import annotations

import statistics
import time

from hotfn.models import Call, new_app, new_route
from hotfn.store import open_store

CALLS = 50_000


async def median_time(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def test_a_page_of_calls_costs_the_same_at_any_depth(store_location):
    store = open_store(store_location)
    base = 1_700_000_000.0
    # Several calls share a created_at, so that the id breaks ties across page boundaries.
    calls = [Call(id=f"c{i:06d}", app="a" if i % 10 else "b", route=f"/r{i % 3}", mode="hot",
                  created_at=base + i // 4) for i in range(CALLS)]
    for start in range(0, CALLS, 5_000):
        await store.save_calls(calls[start:start + 5_000], [])
    if store_location.startswith("postgresql://"):
        # What autovacuum does within a minute of a bulk load: without statistics the planner
        # guesses a few rows per app and sorts them all for the first page.
        import psycopg

        with psycopg.connect(store_location, autocommit=True) as conn:
            conn.execute("ANALYZE calls")

    newest = await store.list_calls("a", limit=50)
    assert [c.id for c in newest][:3] == ["c049999", "c049998", "c049997"]
    deep_cursor = "c000409"  # about 400 calls of "a" from the oldest end
    deep = await store.list_calls("a", limit=50, before_id=deep_cursor)
    assert len(deep) == 50 and all((c.created_at, c.id) < (base + 409 // 4, deep_cursor) for c in deep)

    # Walking a few pages loses no call and repeats none (ties at created_at included).
    seen, cursor = [], None
    for _ in range(5):
        page = await store.list_calls("a", limit=37, before_id=cursor)
        seen += [c.id for c in page]
        cursor = page[-1].id
    expected = sorted((c for c in calls if c.app == "a"), key=lambda c: (c.created_at, c.id),
                      reverse=True)[:185]
    assert seen == [c.id for c in expected]

    shallow_cost = await median_time(lambda: store.list_calls("a", limit=50))
    deep_cost = await median_time(lambda: store.list_calls("a", limit=50, before_id=deep_cursor))
    route_cost = await median_time(lambda: store.list_calls("a", route="/r1", limit=50,
                                                            before_id=deep_cursor))
    # Flat: a filter instead of an index bound would read ~45,000 rows for the deep page.
    assert deep_cost < 3 * shallow_cost + 0.005, (shallow_cost, deep_cost)
    assert route_cost < 3 * shallow_cost + 0.005, (shallow_cost, route_cost)
    await store.close()


async def test_route_and_app_pages_cost_the_same_at_any_depth(store_location):
    store = open_store(store_location)
    for i in range(200):
        await store.create_app(new_app({"name": f"app{i:04d}"}))
    await store.create_app(new_app({"name": "big"}))
    routes = [new_route("big", {"path": f"/r{i:05d}", "image": "img"}) for i in range(1_000)]
    for route in routes:
        await store.create_route(route)
    first = await store.list_routes("big", limit=100)
    last = await store.list_routes("big", after="/r00899", limit=100)
    assert [r.path for r in first][0] == "/r00000" and [r.path for r in last][-1] == "/r00999"
    assert [a.name for a in await store.list_apps(after="app0198", limit=5)] == ["app0199", "big"]
    first_cost = await median_time(lambda: store.list_routes("big", limit=100))
    last_cost = await median_time(lambda: store.list_routes("big", after="/r00899", limit=100))
    assert last_cost < 3 * first_cost + 0.005, (first_cost, last_cost)
    await store.close()
