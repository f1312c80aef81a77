"""Pool decisions with a fake driver and a fake clock: fast, exact, no Docker."""

from __future__ import annotations

import dataclasses

import pytest
import trio
import trio.testing

from fakes import FakeDriver
from hotfn import protocol
from hotfn.invoke import Limits, container_spec
from hotfn.models import Route
from hotfn.pool import SCALE_AFTER, CallTimeout, PoolClosed, PoolManager, QueueTimeout, StartFailed


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


def route(path: str = "/r", **kw) -> Route:
    return Route(app="a", path=path, image="fake/image", format="hot", **kw)


def request(call_id: str = "c", delay: float = 0.0) -> protocol.Request:
    return protocol.Request(call_id, "POST", "http://x/r/a/r", "/r", (), (("x-delay", str(delay)),),
                            b"body", 0, "a", "/r", {})


class World:
    def __init__(self, nursery: trio.Nursery, **kw) -> None:
        self.driver = FakeDriver(nursery)
        self.pools = PoolManager(self.driver, nursery, spec_for=lambda r: container_spec(r, Limits()), **kw)

    async def call(self, r: Route, delay: float = 0.0, call_id: str = "c") -> str:
        pool = self.pools.pool_for(r)
        worker = await pool.acquire()
        try:
            frame, _ = await worker.call(request(call_id, delay), trio.current_time() + r.timeout)
        finally:
            pool.release(worker)
        return dict(frame.headers)["x-container"]


async def test_warm_worker_is_reused(nursery, autojump_clock):
    world = World(nursery)
    r = route()
    first = await world.call(r)
    assert await world.call(r) == first
    assert world.driver.started == 1


async def test_waiters_are_served_first_come_first_served(nursery, autojump_clock):
    world = World(nursery)
    r = route(max_concurrency=1, queue_timeout=100)
    order = []

    async def one(i):
        await world.call(r, delay=1.0)
        order.append(i)

    async with trio.open_nursery() as n:
        for i in range(6):
            n.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
    assert order == list(range(6))
    assert world.driver.started == 1


async def test_over_waiters_get_queue_timeout(nursery, autojump_clock):
    world = World(nursery)
    r = route(max_concurrency=1, queue_timeout=2.5)
    results = []

    async def one(i):
        try:
            await world.call(r, delay=1.0)
            results.append((i, "ok"))
        except QueueTimeout:
            results.append((i, "timeout"))

    async with trio.open_nursery() as n:
        for i in range(5):
            n.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
    # Served at t=1, 2, 3 (waited 0, 1, 2 s); the 4th and 5th would wait 3 and 4 s.
    assert sorted(results) == [(0, "ok"), (1, "ok"), (2, "ok"), (3, "timeout"), (4, "timeout")]


async def test_scales_up_to_max_concurrency(nursery, autojump_clock):
    world = World(nursery)
    r = route(max_concurrency=3)
    async with trio.open_nursery() as n:
        for i in range(9):
            n.start_soon(world.call, r, 1.0)
    assert world.driver.started == 3
    assert len(world.pools.pool_for(r).idle) == 3


async def test_cancelled_waiter_leaves_the_pool_consistent(nursery, autojump_clock):
    world = World(nursery)
    r = route(max_concurrency=1, queue_timeout=100)
    pool = world.pools.pool_for(r)
    async with trio.open_nursery() as n:
        n.start_soon(world.call, r, 2.0)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1):
            await world.call(r)  # waits, then is cancelled
    assert not pool.waiters
    assert len(pool.idle) == 1 and pool.stats()["workers"] == 1
    assert await world.call(r)  # and the worker still serves


async def test_cancelled_call_kills_its_container(nursery, autojump_clock):
    world = World(nursery)
    r = route()
    first = await world.call(r)
    with trio.move_on_after(0.5):
        await world.call(r, delay=5.0)
    await trio.testing.wait_all_tasks_blocked()
    assert first not in {c.id for c in world.driver.running}
    assert await world.call(r) != first


async def test_idle_containers_stop_after_idle_timeout_but_min_warm_stay(nursery, autojump_clock):
    world = World(nursery)
    nursery.start_soon(world.pools.run_housekeeping)
    r = route(max_concurrency=3, min_warm=1, idle_timeout=10)
    world.pools.route_changed(r)
    async with trio.open_nursery() as n:
        for _ in range(3):
            n.start_soon(world.call, r, 1.0)
    assert len(world.driver.running) == 3
    await trio.sleep(12)
    assert len(world.driver.running) == 1


async def test_min_warm_is_started_and_restored(nursery, autojump_clock):
    world = World(nursery)
    nursery.start_soon(world.pools.run_housekeeping)
    r = route(max_concurrency=2, min_warm=2)
    world.pools.route_changed(r)
    await trio.sleep(0.1)
    assert len(world.driver.running) == 2
    victim = next(iter(world.driver.running))
    victim.crash(137)
    await trio.sleep(2)
    assert len(world.driver.running) == 2 and victim not in world.driver.running


async def test_full_server_stops_idle_containers_of_other_routes(nursery, autojump_clock):
    world = World(nursery, max_containers=2)
    a, b = route("/a", max_concurrency=2), route("/b")
    async with trio.open_nursery() as n:
        n.start_soon(world.call, a, 1.0)
        n.start_soon(world.call, a, 1.0)
    assert len(world.driver.running) == 2
    await world.call(b)  # evicts the oldest idle container of /a
    await trio.testing.wait_all_tasks_blocked()
    assert len(world.driver.running) == 2
    assert world.pools.capacity.containers == 2


async def test_full_server_makes_other_routes_wait_then_serves_them(nursery, autojump_clock):
    world = World(nursery, max_containers=1)
    a, b = route("/a", queue_timeout=100), route("/b", queue_timeout=100)
    done = []

    async def call(r, delay):
        await world.call(r, delay)
        done.append((r.path, trio.current_time()))

    async with trio.open_nursery() as n:
        n.start_soon(call, a, 3.0)
        await trio.testing.wait_all_tasks_blocked()
        n.start_soon(call, b, 0.0)
    assert [p for p, _ in done] == ["/a", "/b"]
    assert done[1][1] >= 3.0


async def test_memory_cap_counts_route_memory(nursery, autojump_clock):
    world = World(nursery, max_memory_mb=256)
    big = route("/big", memory=200, queue_timeout=1)
    small = route("/small", memory=100, queue_timeout=1)
    async with trio.open_nursery() as n:
        n.start_soon(world.call, big, 5.0)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(QueueTimeout):
            await world.call(small)


async def test_route_update_retires_old_containers_after_their_call(nursery, autojump_clock):
    world = World(nursery)
    r1 = route(config={"V": "1"})
    r2 = dataclasses.replace(r1, config={"V": "2"})
    results = []

    async def slow():
        results.append(await world.call(r1, delay=2.0))

    async with trio.open_nursery() as n:
        n.start_soon(slow)
        await trio.sleep(0.5)
        new = await world.call(r2)  # a new pool, a new container, while the old one finishes
    assert results and results[0] != new
    await trio.testing.wait_all_tasks_blocked()
    assert {c.id for c in world.driver.running} == {new}


async def test_waiters_of_a_retired_pool_are_told_to_retry(nursery, autojump_clock):
    world = World(nursery)
    r1 = route(max_concurrency=1, queue_timeout=100)
    r2 = dataclasses.replace(r1, memory=256)
    errors = []

    async def waiting():
        try:
            await world.call(r1)
        except PoolClosed as exc:
            errors.append(exc)

    async with trio.open_nursery() as n:
        n.start_soon(world.call, r1, 2.0)
        await trio.testing.wait_all_tasks_blocked()
        n.start_soon(waiting)
        await trio.testing.wait_all_tasks_blocked()
        world.pools.pool_for(r2)
    assert len(errors) == 1 and errors[0].retryable


async def test_slow_start_times_out_as_start_failure(nursery, autojump_clock):
    world = World(nursery)
    world.driver.startup_delay = 100
    r = route(startup_timeout=5, queue_timeout=50)
    with pytest.raises(StartFailed, match="start-up timeout of 5 s"):
        await world.call(r)
    await trio.testing.wait_all_tasks_blocked()
    assert not world.driver.running
    assert world.pools.capacity.containers == 0


async def test_close_waits_for_calls_in_flight_then_removes_everything(nursery, autojump_clock):
    world = World(nursery)
    r = route(max_concurrency=2)
    finished = []

    async def call():
        finished.append(await world.call(r, delay=3.0))

    async with trio.open_nursery() as n:
        n.start_soon(call)
        await trio.sleep(1)
        await world.pools.close(grace=10)
    assert len(finished) == 1
    assert not world.driver.running and world.pools.capacity.containers == 0


async def test_a_burst_that_the_warm_container_clears_starts_no_other(nursery, autojump_clock):
    world = World(nursery)
    r = route(max_concurrency=8, queue_timeout=100)
    await world.call(r)  # one warm
    async with trio.open_nursery() as n:
        for i in range(8):
            n.start_soon(world.call, r, 0.001)  # 8 ms of work in all: below SCALE_AFTER
    assert world.driver.started == 1


async def test_scaling_out_starts_at_most_two_containers_at_once(nursery, autojump_clock):
    world = World(nursery)
    world.driver.startup_delay = 1.0
    r = route(max_concurrency=8, queue_timeout=100)
    await world.call(r)
    pool = world.pools.pool_for(r)
    peak = 0
    async with trio.open_nursery() as n:
        for i in range(8):
            n.start_soon(world.call, r, 5.0)
        for _ in range(200):
            await trio.sleep(0.05)
            peak = max(peak, pool.starting)
    assert peak == 2
    assert world.driver.started == 8


class RecordedEvents:
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def container_starting(self, route):
        self.seen.append(("starting", route.path))

    def container_ready(self, route, seconds):
        self.seen.append(("ready", route.path, seconds))

    def container_ended(self, route, cause):
        self.seen.append(("ended", route.path, cause))


async def test_the_pool_reports_starts_and_why_each_container_ended(nursery, autojump_clock):
    events = RecordedEvents()
    world = World(nursery, events=events)
    world.driver.startup_delay = 0.25
    r = route(idle_timeout=5, timeout=1)
    housekeeping = trio.CancelScope()

    async def keep_house():
        with housekeeping:
            await world.pools.run_housekeeping()

    nursery.start_soon(keep_house)
    await world.call(r)
    assert events.seen == [("starting", "/r"), ("ready", "/r", 0.25)]
    await trio.sleep(7)  # idle past its idle_timeout
    assert events.seen[-1] == ("ended", "/r", "idle")
    with pytest.raises(Exception):
        await world.call(r, delay=5)  # past its timeout: killed
    await trio.testing.wait_all_tasks_blocked()
    assert events.seen[-1] == ("ended", "/r", "timeout")
    await world.call(r)
    next(iter(world.driver.running)).crash(3)  # exits by itself: a crash
    await trio.testing.wait_all_tasks_blocked()
    assert events.seen[-1] == ("ended", "/r", "crash")
    await world.call(r)
    world.pools.route_changed(dataclasses.replace(r, memory=256))  # a new revision: retired
    await trio.testing.wait_all_tasks_blocked()
    assert events.seen[-1] == ("ended", "/r", "retired")
    world.driver.images.clear()
    with pytest.raises(StartFailed):
        await world.call(dataclasses.replace(r, image="fake/gone"))
    await trio.testing.wait_all_tasks_blocked()
    assert events.seen[-1] == ("ended", "/r", "start_failed")
    housekeeping.cancel()


async def test_a_stale_route_never_brings_an_old_revision_back(nursery, autojump_clock):
    world = World(nursery)
    r1 = route(config={"V": "1"}, updated_at=1.0)
    r2 = dataclasses.replace(r1, config={"V": "2"}, updated_at=2.0)
    new_pool = world.pools.pool_for(r2)
    # A call that looked its route up before the update asks with the old one (its retry after
    # "retired while waiting"): it gets the new pool, and the new pool keeps its route.
    assert world.pools.pool_for(r1) is new_pool
    assert new_pool.route is r2 and not new_pool.retired
    r2_timeout = dataclasses.replace(r2, timeout=5.0, updated_at=3.0)
    assert world.pools.pool_for(r2_timeout) is new_pool and new_pool.route is r2_timeout
    assert world.pools.pool_for(r2) is new_pool and new_pool.route is r2_timeout


async def test_a_call_past_its_deadline_times_out_then_and_only_it(nursery, autojump_clock):
    """Deadlines are timed by one task (CallDeadlines), not a cancel scope per call: each call
    ends at its own deadline, whatever the order they were made in, and only its container goes."""
    world = World(nursery)
    slow, quick = route("/slow", timeout=30, max_concurrency=2), route("/quick", timeout=2)
    ended: dict[str, tuple[str, float]] = {}

    async def one(r: Route, delay: float, name: str) -> None:
        started = trio.current_time()
        try:
            await world.call(r, delay=delay, call_id=name)
            ended[name] = ("ok", trio.current_time() - started)
        except CallTimeout:
            ended[name] = ("timeout", trio.current_time() - started)

    async with trio.open_nursery() as calls:
        calls.start_soon(one, slow, 100, "slow")  # registered first, due last
        await trio.sleep(1)
        calls.start_soon(one, quick, 100, "quick")  # an earlier deadline, added later
        calls.start_soon(one, slow, 5, "fine")  # answers before its deadline
    assert ended["quick"] == ("timeout", pytest.approx(2, abs=0.01))
    assert ended["slow"] == ("timeout", pytest.approx(30, abs=0.01))
    assert ended["fine"] == ("ok", pytest.approx(5 + SCALE_AFTER, abs=0.01))  # (a second container)
    assert world.pools.deadlines.expired(trio.current_time()) == []  # nothing left behind
    # The timed-out containers were replaced; the route still serves.
    assert await world.call(quick, call_id="after")


async def test_a_closed_manager_leaves_its_nursery_free_to_end(autojump_clock):
    """The deadline task must not keep its nursery open once the manager is closed (hotfn
    deploy's start check and `hotfn run` wait for theirs to end)."""
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            world = World(nursery)
            assert await world.call(route())
            await world.pools.close(grace=1)
