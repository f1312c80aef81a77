"""Faults of the container engine and of what runs in it, as issue 21 found them: an engine
SIGKILLed under cold and hot calls, containers it leaves behind, FIFOs closed under a call, a
refused answer that held its container, Docker's own copy of every log, log floods, and a
function's start-up stderr in the server's log.

The engine that is killed is a private one the test starts itself (tests/engines.py,
scripts/ensure-engine); everything else runs on the shared engine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import subprocess
import sys

import pytest
import trio

from conftest import FUNCTIONS, containers_of, new_node_id
from hotfn.observe import logthrottle
from engines import private_engine
from test_pool_docker import sleep_headers, wait_until
from test_server_process import _Address, free_port
from conftest import Harness

pytestmark = pytest.mark.docker
ECHO = "hotfn-test/conformance-python"
FLOOD = "hotfn-test/flood"


@pytest.fixture(scope="module")
def flood_image(images) -> str:
    from hotfn.functions import build_function

    build_function(str(FUNCTIONS / "flood"), tag=FLOOD)
    return FLOOD


def assert_clear_error(reply) -> str:
    """A 502 or 503 whose JSON body says what went wrong; its message."""
    assert reply.status in (502, 503), reply
    message = reply.json()["error"]["message"]
    assert message, reply
    return message


# -- the engine SIGKILLed under load (21.1, 21.3, 21.10) ----------------------------------------


@pytest.fixture(scope="module")
def engine(images):
    with private_engine("faults", images=[ECHO]) as engine:
        yield engine


@contextlib.asynccontextmanager
async def serve_on(engine, tmp_path, node_id: str):
    """`hotfn serve` in a child process on ``engine``; its log at ``server.log_path``."""
    port = free_port()
    log_path = tmp_path / f"server-{node_id}.log"
    with open(log_path, "wb") as log_file:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "hotfn", "serve", "--port", str(port),
             "--db", str(tmp_path / "s.db"), "--node-id", node_id, "--io-dir", str(tmp_path / "io"),
             "--shutdown-grace", "5", "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=log_file, env=engine.env())
    server = Harness(_Address(port, node_id))
    server.log_path = log_path
    try:
        with trio.fail_after(30):
            while True:
                assert process.poll() is None, log_path.read_text()[-3000:]
                try:
                    if (await server.req("GET", "/health")).status == 200:
                        break
                except OSError:
                    await trio.sleep(0.1)
        yield process, server
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()
                with trio.move_on_after(30):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_an_engine_killed_under_cold_and_hot_calls_leaves_the_server_serving(engine, tmp_path):
    node = new_node_id()
    # A container of another node on the same engine: never ours to remove.
    foreign = engine.docker("create", "--label", "hotfn=1", "--label", f"hotfn.node={node}-other",
                            "--entrypoint", "true", ECHO).stdout.strip()
    async with serve_on(engine, tmp_path, node) as (process, server):
        await server.create_app("demo")
        await server.create_route(path="/hot", image=ECHO, format="hot")
        await server.create_route(path="/cold", image=ECHO)
        assert (await server.call("demo", "/hot")).status == 200
        assert (await server.call("demo", "/cold")).status == 200

        in_flight = {}

        async def call(path: str) -> None:
            in_flight[path] = await server.call("demo", path, headers=sleep_headers(8000))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "/cold")
            nursery.start_soon(call, "/hot")
            await wait_until(lambda: engine.containers(f"label=hotfn.node={node}", "label=hotfn.route=/cold",
                                                       "status=running"), 20)
            stats = (await server.req("GET", "/v1/stats")).json()
            await wait_until(lambda: engine.containers(f"label=hotfn.node={node}", "status=running"), 20)
            await trio.sleep(1.0)  # well inside both calls (8 s): the cold call waits on the engine
            # One the engine made but never told us of (an answer lost in the kill): this node's,
            # and nothing of the server's owns it.
            stray = engine.docker("create", "--label", "hotfn=1", "--label", f"hotfn.node={node}",
                                  "--entrypoint", "true", ECHO).stdout.strip()
            engine.kill()
        assert stats  # (the server answered while both calls ran)

        # The calls in flight get a clear error, and the server is still there.
        for path in ("/cold", "/hot"):
            print(path, "in flight at the kill:", in_flight[path])
            assert_clear_error(in_flight[path])
        assert process.poll() is None, server.log_path.read_text()[-3000:]

        # While the engine is away (longer than the log throttle's window): every call is a
        # clear 502 or 503, never a 500 or a refused connection; as many as the server takes,
        # each failing start a warning that would flood the log.
        log_size_at_kill = server.log_path.stat().st_size
        failed = 0
        outage_ends = trio.current_time() + logthrottle.WINDOW + 2
        while trio.current_time() < outage_ends:
            for path in ("/cold", "/hot"):
                assert_clear_error(await server.call("demo", path))
                failed += 1
        assert process.poll() is None
        # Said once, then counted (21.10): a few lines of each kind, not one per failed call.
        lines = [line for line in server.log_path.read_bytes()[log_size_at_kill:].decode().splitlines()
                 if " access " not in line]
        assert len(lines) <= 20 and failed >= 100, (failed, lines)
        assert any("more like it in" in line for line in lines), lines
        print(f"{failed} calls failed while the engine was away; the server logged {len(lines)} lines")

        # The engine comes back: the server serves again, without a restart.
        engine.start()

        async def serves(path: str) -> bool:
            return (await server.call("demo", path)).status == 200

        await wait_until(lambda: serves("/cold"), 60, interval=0.5)
        await wait_until(lambda: serves("/hot"), 60, interval=0.5)

        # 21.3: what the kill left behind (the two killed containers, exited now) and the stray
        # go while the server runs; only the warm container of /hot is left, and the other
        # node's container is not touched.
        def left_behind() -> list[str]:
            return [c for c in engine.containers(f"label=hotfn.node={node}")
                    if c not in engine.containers(f"label=hotfn.node={node}", "status=running")]

        try:
            await wait_until(lambda: not left_behind(), 30, interval=0.5)
        except trio.TooSlowError:
            left = left_behind()
            raise AssertionError(f"left behind: {left} " + engine.docker(
                "inspect", "--format", "{{.State.Status}} {{.Config.Labels}}", *left, check=False).stdout
                + server.log_path.read_text()[-3000:]) from None
        assert stray not in engine.containers(f"label=hotfn.node={node}")
        assert engine.containers(f"id={foreign}") == [foreign]
        assert process.poll() is None
    engine.docker("rm", "-f", foreign)
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[-5000:]


# -- a FIFO closed under a call (21.2) ------------------------------------------------------


async def test_a_call_whose_fifos_closed_under_it_is_a_502_saying_the_container_is_gone(nursery, images, tmp_path):
    from hotfn.drivers.docker import DockerDriver
    from hotfn.invoke import Limits, container_spec
    from hotfn.models import Route
    from hotfn.pool import PoolManager, WorkerDied
    from hotfn import protocol

    driver = DockerDriver.from_env(io_dir=str(tmp_path / "io"))
    limits = Limits(node_id=new_node_id())
    pools = PoolManager(driver, nursery, spec_for=lambda r: container_spec(r, limits))
    route = Route(app="demo", path="/slow", image=ECHO, format="hot")
    pool = pools.pool_for(route)
    worker = await pool.acquire()
    container = worker.container
    request = protocol.Request("c1", "POST", "http://x/r/demo/slow", "/slow", (), tuple(sleep_headers(20000)),
                               b"", 0, "demo", "/slow", {})
    failures = []

    async def call() -> None:
        try:
            await worker.call(request, trio.current_time() + 30)
        except WorkerDied as exc:
            failures.append(exc)
        finally:
            pool.release(worker)

    try:
        async with trio.open_nursery() as calls:
            calls.start_soon(call)
            await wait_until(lambda: worker._slots, 10, interval=0.01)
            # What an engine stop does to a hot container under a call: its FIFOs close while
            # the call waits on them.
            await container.kill()
        (failure,) = failures
        assert failure.status == 502 and "function container" in str(failure), failure
        # Asked of a container whose FIFOs are closed: nothing, rather than a ValueError.
        assert container.unread_stdin() is None
        assert container.receive_stdout_nowait() is None
    finally:
        await pools.close(grace=0)
    assert not containers_of(limits.node_id)


# -- a refused answer frees its container at once (21.9) ----------------------------------


async def test_a_cold_answer_refused_as_too_large_frees_its_container_at_once(server, flood_image):
    await server.create_app("demo")
    await server.create_route(path="/big", image=flood_image, memory=512)
    reply = await server.call("demo", "/big", headers=[("x-flood", "stdout"), ("x-mb", "100")])
    assert reply.status == 502 and "wrote more than" in reply.json()["error"]["message"], reply
    refused_at = trio.current_time()

    async def released() -> bool:
        stats = (await server.req("GET", "/v1/stats")).json()
        return stats["containers"] == 0 and stats["memory_mb"] == 0

    # It held them for 60 s (the engine's timeout for the removal) before.
    await wait_until(released, 15)
    print(f"released {trio.current_time() - refused_at:.2f} s after the 502")


# -- Docker keeps no copy of a container's output (21.8) -----------------------------------


def _engine_log_size(container_id: str) -> int:
    """Bytes of the engine's own log of the container (0 with none)."""
    inspected = json.loads(subprocess.run(["docker", "inspect", container_id], capture_output=True,
                                          text=True, check=True).stdout)[0]
    path = inspected.get("LogPath") or ""
    try:
        return pathlib.Path(path).stat().st_size if path else 0
    except FileNotFoundError:
        return 0


async def test_the_engine_keeps_no_log_of_what_a_container_writes(server, flood_image):
    await server.create_app("demo")
    await server.create_route(path="/hot", image=flood_image, format="hot")
    await server.create_route(path="/cold", image=flood_image)
    reply = await server.call("demo", "/hot", headers=[("x-flood", "stderr"), ("x-mb", "4")])
    assert reply.status == 200, reply
    (container,) = containers_of(server.node_id, all=False, route="/hot")
    assert _engine_log_size(container) < 64 * 1024  # it grew by all 4 MiB before
    # hotfn still has the call's stderr, up to its cap (LOG_CAP), and says what it dropped.
    call_log = await server.req("GET", f"/v1/apps/demo/calls/{reply.header('hotfn-call-id')}/log")
    assert call_log.status == 200 and b"more bytes of stderr dropped" in call_log.body, call_log
    # A cold container's stderr too.
    reply = await server.call("demo", "/cold", headers=[("x-flood", "stderr"), ("x-mb", "0")])
    assert reply.status == 200, reply
    call_log = await server.req("GET", f"/v1/apps/demo/calls/{reply.header('hotfn-call-id')}/log")
    assert b"end of flood" in call_log.body, call_log


# -- a function's start-up stderr in the server's log (20.9) -------------------------------


async def test_start_up_stderr_cannot_forge_log_lines_or_send_escapes(server, flood_image, caplog):
    await server.create_app("demo", config={"flood-startup": "forge"})
    await server.create_route(path="/forge", image=flood_image, format="hot")
    with caplog.at_level(logging.WARNING, logger="hotfn.pool"):
        reply = await server.call("demo", "/forge")
    assert reply.status == 502, reply
    logged = [r.getMessage() for r in caplog.records if "forged line" in r.getMessage()]
    assert logged, [r.getMessage() for r in caplog.records]
    for message in logged:
        assert "\n" not in message and "\x1b" not in message, message
        assert "\\u001b[2J" in message, message
        assert "\\n2026-01-01 00:00:00,000 WARNING hotfn.server: forged line" in message, message


# -- a FIFO that cannot be made (every task of a call keeps its errors) --------------------


async def test_fifos_that_cannot_be_made_fail_the_calls_that_need_them_and_nothing_else(server_factory, images,
                                                                                         tmp_path):
    io_dir = tmp_path / "io"
    server = await server_factory(io_dir=str(io_dir))
    await server.create_app("demo")
    await server.create_route(path="/hot", image=ECHO, format="hot")
    await server.create_route(path="/cold", image=ECHO)
    node_io = io_dir / server.node_id
    await wait_until(lambda: node_io.exists() and any(node_io.iterdir()), 20)  # /cold's parked one
    # The io dir becomes a file (an operator's mistake): no FIFO can be made under it.
    for entry in list(io_dir.iterdir()):
        subprocess.run(["rm", "-rf", str(entry)], check=True)
    node_io.write_text("not a directory")
    # Cold calls need none (parking one after each call does, and fails in its own task).
    for _ in range(3):
        assert (await server.call("demo", "/cold", b"x")).status == 200
    reply = await server.call("demo", "/hot")
    assert reply.status == 502 and "FIFOs" in reply.json()["error"]["message"], reply
    assert (await server.call("demo", "/cold", b"y")).body == b"y"
