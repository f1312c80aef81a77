"""Fixtures for the tests. The Docker tests run against a real engine and real images:
scripts/test (and CI) start dockerd and build the runtime images before pytest runs."""

from __future__ import annotations

import itertools
import os
import pathlib
import subprocess
import uuid
from typing import Any

import pytest
import trio

from httpclient import Reply, request

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Servers the tests start (in process or as `hotfn serve`) stop without draining, unless a
# test asks for it (--drain-time): no balancer is in front of them.
os.environ.setdefault("HOTFN_DRAIN_TIME", "0")
FUNCTIONS = pathlib.Path(__file__).resolve().parent / "functions"

TEST_IMAGES = {
    "hotfn-test/conformance-python": ROOT / "runtime-shims" / "python" / "conformance",
    "hotfn-test/rogue": FUNCTIONS / "rogue",
    "hotfn-test/hog": FUNCTIONS / "hog",
    "hotfn-test/juggler": FUNCTIONS / "juggler",
    "hotfn-test/probe": FUNCTIONS / "probe",
    "hotfn-test/escape": FUNCTIONS / "escape",
    "hotfn-test/ironhttp-python": FUNCTIONS / "ironhttp-python",
    "hotfn-test/ironhttp-sh": FUNCTIONS / "ironhttp-sh",
}


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    try:
        ok = _docker("info").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        pytest.fail("no Docker engine answers: run scripts/ensure-docker (scripts/test does it)")
    missing = [r for r in ("hotfn/python",) if _docker("image", "inspect", r).returncode != 0]
    if missing:
        pytest.fail(f"runtime images missing ({', '.join(missing)}): run scripts/build-images")


GVISOR_UNAVAILABLE = pathlib.Path(os.environ.get("HOTFN_STATE_DIR", "/var/lib/hotfn")) / "gvisor-unavailable"


@pytest.fixture(scope="session")
def gvisor(docker_engine: None) -> None:
    """gVisor registered with the engine. Skips only where scripts/ensure-sandbox said it could
    not be had on this machine (and why); otherwise its absence is a failure."""
    runtimes = _docker("info", "--format", "{{json .Runtimes}}").stdout
    if '"runsc"' in runtimes:
        return
    if GVISOR_UNAVAILABLE.exists():
        pytest.skip(f"no gVisor on this machine: {GVISOR_UNAVAILABLE.read_text().strip()}")
    pytest.fail("gVisor's runsc is not registered with the Docker engine: run scripts/ensure-sandbox")


@pytest.fixture(scope="session")
def images(docker_engine: None) -> dict[str, str]:
    from hotfn.functions import build_function

    for tag, directory in TEST_IMAGES.items():
        build_function(str(directory), tag=tag)
    return {name.split("/", 1)[1]: name for name in TEST_IMAGES}


# Every server the tests start is a node of its own, named NODE_ID-<n>: servers never share a
# node id (its lock, containers and FIFO directory), and this session's containers are found by
# the prefix, leaving other runs' containers on the same engine alone.
NODE_ID = f"test-{uuid.uuid4().hex[:8]}"
_node_ids = itertools.count(1)


def new_node_id() -> str:
    return f"{NODE_ID}-{next(_node_ids)}"


def containers_of(node_prefix: str, *, all: bool = True, route: str | None = None) -> list[str]:
    """Ids of the containers whose hotfn.node is ``node_prefix`` or starts with it plus '-'."""
    args = ["ps", "--format", '{{.ID}} {{.Label "hotfn.node"}} {{.Label "hotfn.route"}}',
            "--filter", "label=hotfn"]
    if all:
        args.append("-a")
    out = _docker(*args).stdout.split("\n")
    rows = [line.split(" ") for line in out if line.strip()]
    return [r[0] for r in rows if len(r) >= 2 and (r[1] == node_prefix or r[1].startswith(node_prefix + "-"))
            and (route is None or (len(r) >= 3 and r[2] == route))]


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind():
    yield
    try:
        left = containers_of(NODE_ID)
    except (OSError, subprocess.TimeoutExpired):
        return
    if left:
        _docker("rm", "-f", *left)
        pytest.fail(f"{len(left)} container(s) labelled hotfn were left behind by the tests")
    networks = networks_of(NODE_ID)
    if networks:
        _docker("network", "rm", *networks)
        pytest.fail(f"{len(networks)} function network(s) were left behind by the tests")


def networks_of(node_prefix: str) -> list[str]:
    """Names of the function networks whose hotfn.node is ``node_prefix`` or starts with it plus '-'."""
    out = _docker("network", "ls", "--filter", "label=hotfn.network",
                  "--format", '{{.Name}} {{.Label "hotfn.node"}}').stdout.split("\n")
    rows = [line.split(" ") for line in out if line.strip()]
    return [r[0] for r in rows if len(r) >= 2 and (r[1] == node_prefix or r[1].startswith(node_prefix + "-"))]


class Harness:
    """A running server and the calls the tests make to it."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = server.url
        self.node_id = server.settings.node_id

    async def req(self, method: str, target: str, body: bytes | None = None, **kw: Any) -> Reply:
        return await request(self.url, method, target, body, **kw)

    async def create_app(self, name: str = "demo", config: dict | None = None) -> Reply:
        reply = await self.req("POST", "/v1/apps", json={"app": {"name": name, "config": config or {}}})
        assert reply.status == 200, reply
        return reply

    async def create_route(self, app: str = "demo", **route: Any) -> Reply:
        reply = await self.req("POST", f"/v1/apps/{app}/routes", json={"route": route})
        assert reply.status == 200, reply
        return reply

    async def call(self, app: str, path: str, body: bytes = b"", *, method: str = "POST",
                   headers: list[tuple[str, str]] | None = None) -> Reply:
        return await self.req(method, f"/r/{app}{path}", body, headers=headers)


@pytest.fixture
async def server_factory(tmp_path: pathlib.Path, nursery: trio.Nursery):
    """Start servers on free ports; each stops gracefully when the test ends."""
    from hotfn.config import Settings
    from hotfn.server import Server

    started: list[tuple[Server, trio.Event]] = []

    async def start(db: str | None = None, node_id: str | None = None, access_log_stream: Any = None,
                    **overrides: Any) -> Harness:
        settings = Settings(port=0, db=db or str(tmp_path / "hotfn.db"),
                            node_id=node_id or new_node_id(), shutdown_grace=5.0,
                            **{"drain_time": 0.0, **overrides})
        server = Server(settings, access_log_stream=access_log_stream)
        done = trio.Event()

        async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
            try:
                await server.run(task_status=task_status)
            finally:
                done.set()

        await nursery.start(run)
        started.append((server, done))
        return Harness(server)

    async def stop(harness: Harness) -> None:
        for server, done in started:
            if server is harness.server:
                server.stop()
                await done.wait()

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for server, done in started:
        server.stop()
        await done.wait()


@pytest.fixture
async def server(server_factory, images) -> Harness:
    harness = await server_factory()
    yield harness
    await server_factory.stop(harness)


# -- PostgreSQL ------------------------------------------------------------------------------------
# scripts/ensure-postgres installs and starts a private server (idempotent; scripts/test runs it
# too); every test that wants PostgreSQL gets a database of its own, dropped after it.


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the server's maintenance database."""
    result = subprocess.run([str(ROOT / "scripts" / "ensure-postgres")], capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"no PostgreSQL: scripts/ensure-postgres failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def postgres_db(postgres_server: str):
    """The URL of a new, empty database, dropped after the test."""
    import psycopg

    name = f"hotfn_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request, tmp_path: pathlib.Path) -> str:
    """Where a store lives, for each implementation: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_db")
