"""ColdStarts' decisions (hotfn/pool/coldstart.py) with a fake engine and a mock clock: which routes
get a parked container, when one is removed, and that none outlives the manager."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from hotfn.pool import ColdStarts
from hotfn.drivers import ContainerSpec, DriverError, NoShell
from hotfn.models import Route

_ids = itertools.count(1)


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


class FakeParked:
    def __init__(self, engine: "FakeEngine", spec: ContainerSpec) -> None:
        self.id = f"parked{next(_ids)}"
        self.spec = spec
        self.engine = engine
        self.dead = False

    def alive(self) -> bool:
        return not self.dead

    async def discard(self) -> None:
        self.engine.running.discard(self)


class FakeEngine:
    def __init__(self, park_delay: float = 0.1) -> None:
        self.park_delay = park_delay
        self.running: set[FakeParked] = set()
        self.parks = 0
        self.fail: type[Exception] | None = None

    async def park(self, spec: ContainerSpec) -> FakeParked:
        self.parks += 1
        await trio.sleep(self.park_delay)
        if self.fail is not None:
            raise self.fail(f"cannot park {spec.image}")
        parked = FakeParked(self, spec)
        self.running.add(parked)
        return parked


def spec_for(route: Route) -> ContainerSpec:
    return ContainerSpec(image=route.image, env=dict(route.config), labels={"hotfn.route": route.path})


def cold(path: str, **kw) -> Route:
    return Route(app="demo", path=path, image=kw.pop("image", "img"), format="default", **kw)


def manager(engine: FakeEngine, may_park=lambda route: True, **kw) -> ColdStarts:
    return ColdStarts(engine, spec_for, may_park, **kw)


async def test_one_per_cold_route_within_the_bound(autojump_clock):
    engine = FakeEngine()
    starts = manager(engine, max_parked=2)
    await starts.sync([cold("/a"), cold("/b"), cold("/c")])
    assert len(engine.running) == 2 and set(starts.parked) == {("demo", "/a"), ("demo", "/b")}
    await starts.sync([cold("/a"), cold("/b"), cold("/c")])
    assert engine.parks == 2  # nothing more, nothing again


async def test_taken_by_a_call_of_the_same_spec_only(autojump_clock):
    engine = FakeEngine()
    starts = manager(engine)
    route = cold("/a")
    await starts.sync([route])
    assert await starts.take(cold("/a", config={"K": "v"}), spec_for(cold("/a", config={"K": "v"}))) is None
    parked = await starts.take(route, spec_for(route))
    assert parked is not None and parked in engine.running and not starts.parked
    assert await starts.take(route, spec_for(route)) is None


async def test_route_change_delete_and_staleness_remove_it(autojump_clock):
    engine = FakeEngine()
    starts = manager(engine, keep_for=60)
    await starts.sync([cold("/a"), cold("/b")])
    (old_a,) = [p for p in engine.running if p.spec.labels["hotfn.route"] == "/a"]
    await starts.sync([cold("/a", config={"K": "2"})])  # /a changed, /b deleted
    assert old_a not in engine.running and len(engine.running) == 1
    (new_a,) = engine.running
    assert new_a.spec.env == {"K": "2"}
    await trio.sleep(61)  # neither called nor seen new for keep_for
    await starts.sync([cold("/a", config={"K": "2"})])
    assert not engine.running


async def test_a_dead_one_is_replaced(autojump_clock):
    engine = FakeEngine()
    starts = manager(engine)
    await starts.sync([cold("/a")])
    (first,) = engine.running
    first.dead = True
    await starts.sync([cold("/a")])
    assert first not in engine.running and len(engine.running) == 1


async def test_no_parking_while_a_call_runs_nor_when_the_route_may_not_start_one(autojump_clock):
    engine = FakeEngine()
    room = [False]
    starts = manager(engine, may_park=lambda route: room[0])
    await starts.sync([cold("/a")])
    assert not engine.running
    room[0] = True
    with starts.calling(cold("/a")):
        await starts.sync([cold("/a")])
        assert not engine.running
    await starts.sync([cold("/a")])
    assert len(engine.running) == 1


async def test_a_call_waits_for_the_container_being_parked(autojump_clock):
    engine = FakeEngine(park_delay=0.3)
    starts = manager(engine, park_wait=0.5)
    route = cold("/a")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(starts.sync, [route])
        await trio.sleep(0.1)
        started = trio.current_time()
        taken = []

        async def take() -> None:
            taken.append(await starts.take(route, spec_for(route)))

        nursery.start_soon(take)
        await trio.testing.wait_all_tasks_blocked()
        # A second call of the burst does not wait: only one of them can have it.
        assert await starts.take(route, spec_for(route)) is None
        assert trio.current_time() - started == 0
    assert taken[0] is not None and trio.current_time() - started == pytest.approx(0.2)


async def test_an_image_without_a_shell_is_never_parked_and_failures_back_off(autojump_clock):
    engine = FakeEngine()
    engine.fail = NoShell
    starts = manager(engine, retry_after=30)
    await starts.sync([cold("/a", image="scratch")])
    await trio.sleep(60)
    await starts.sync([cold("/a", image="scratch")])
    assert engine.parks == 1
    engine.fail = DriverError
    await starts.sync([cold("/b", image="flaky")])
    await starts.sync([cold("/b", image="flaky")])
    assert engine.parks == 2  # backing off
    await trio.sleep(31)
    engine.fail = None
    await starts.sync([cold("/b", image="flaky")])
    assert engine.parks == 3 and len(engine.running) == 1


async def test_run_removes_everything_when_cancelled_even_mid_park(autojump_clock):
    engine = FakeEngine(park_delay=5)
    starts = manager(engine)
    routes = [cold("/a")]
    async with trio.open_nursery() as nursery:
        await nursery.start(starts.run, lambda: routes)
        await trio.sleep(6)
        assert len(engine.running) == 1
        routes.append(cold("/b"))
        starts.wake()
        await trio.sleep(1)  # /b is being parked
        nursery.cancel_scope.cancel()
    assert not engine.running and not starts.parked
    await starts.sync([cold("/c")])  # closed: parks nothing more
    assert not engine.running
