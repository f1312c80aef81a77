"""What no function, stored value or second server may do: take a server down or break it.

Written as a user hits them: a real `hotfn serve` process, real containers, real sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
import trio

from conftest import containers_of, new_node_id
from test_server_process import free_port, serve_process

pytestmark = pytest.mark.docker
ECHO = "hotfn-test/conformance-python"
ROGUE = "hotfn-test/rogue"


async def _log_of(server, app: str, call_id: str) -> str:
    reply = await server.req("GET", f"/v1/apps/{app}/calls/{call_id}/log")
    assert reply.status == 200, reply
    return reply.body.decode()


# (what the function answers, what the 502 and the call's log say)
BAD_ANSWERS = [
    ({"status": 100}, "status 100"),
    ({"status": 101, "headers": [["upgrade", "websocket"]]}, "status 101"),
    ({"status": 199}, "status 199"),
    ({"status": 600}, "status 600"),
    ({"status": -1}, "status -1"),
    ({"status": 200, "headers": [["x-split", "one\rtwo"]]}, "holds CR"),
    ({"status": 200, "headers": [["x-split", "one\r\nx-injected: yes"]]}, "holds CR"),
    ({"status": 200, "headers": [["x-split", "one\ntwo"]]}, "holds LF"),
    ({"status": 200, "headers": [["x-nul", "a\u0000b"]]}, "holds NUL"),
    ({"status": 200, "headers": [["x-bell", "a\u0007"]]}, "control character"),
    ({"status": 200, "headers": [["x space", "v"]]}, "not an HTTP token"),
    ({"status": 200, "headers": [["", "v"]]}, "not an HTTP token"),
    ({"status": 200, "headers": [["\u00e9t\u00e9", "v"]]}, "not an HTTP token"),
    ({"status": 200, "headers": [["x-snow", "\u2603"]]}, "outside ISO-8859-1"),
    ({"status": 200, "headers": [["x-pad", " padded "]]}, "white space"),
]


async def test_no_function_answer_takes_the_server_down(images, tmp_path):
    async with serve_process(tmp_path) as (process, server):
        await server.create_app("demo")
        await server.create_route(path="/rogue", image=ROGUE, format="hot",
                                  config={"ROGUE_MODE": "answer"})
        await server.create_route(path="/echo", image=ECHO, format="hot")
        for answer, says in BAD_ANSWERS:
            reply = await server.call("demo", "/rogue", json.dumps(answer).encode())
            assert reply.status == 502, (answer, reply)
            message = reply.json()["error"]["message"]
            assert message.startswith("function answered with an invalid response") and says in message, \
                (answer, message)
            log = await _log_of(server, "demo", reply.header("hotfn-call-id"))
            assert "refused" in log and says in log, (answer, log)
            assert (await server.call("demo", "/echo", b"still here")).body == b"still here"
        # A valid answer from the same container: a refused answer does not end it.
        ok = await server.call("demo", "/rogue", json.dumps(
            {"status": 201, "headers": [["x-latin", "caf\u00e9"], ["x-tab", "a\tb"]], "body": "made"}).encode())
        assert ok.status == 201 and ok.body == b"made"
        assert ok.header("x-latin") == "caf\u00e9"
        assert process.returncode is None


@pytest.mark.parametrize("status", [204, 304])
async def test_a_body_with_204_or_304_is_dropped_and_the_log_says_so(server, status):
    await server.create_app("demo")
    await server.create_route(path="/rogue", image=ROGUE, format="hot", config={"ROGUE_MODE": "answer"})
    reply = await server.call("demo", "/rogue", json.dumps(
        {"status": status, "headers": [["etag", '"v1"']], "body": "not allowed here"}).encode())
    assert reply.status == status and reply.body == b""
    log = await _log_of(server, "demo", reply.header("hotfn-call-id"))
    assert f"dropped the 16-byte body: status {status}" in log
    again = await server.call("demo", "/rogue", json.dumps({"status": 200, "body": "fine"}).encode())
    assert again.status == 200 and again.body == b"fine"


async def test_head_gets_the_length_but_not_the_body(server):
    await server.create_app("demo")
    await server.create_route(path="/echo", image=ECHO, format="hot")
    reply = await server.call("demo", "/echo", b"twelve bytes", method="HEAD")
    assert reply.status == 200 and reply.body == b""
    assert reply.header("content-length") == "12"


@pytest.mark.parametrize("headers, says", [
    ({"X-Bad": "one\rtwo"}, "holds CR"),
    ({"X-Bad": "one\ntwo"}, "holds LF"),
    ({"X-Bad": "a\u0000b"}, "holds NUL"),
    ({"X-Bad": "\u2603"}, "outside ISO-8859-1"),
    ({"X Bad": "v"}, "not an HTTP token"),
    ({"X-Bad": 7}, "string value"),
])
async def test_route_headers_http_cannot_carry_are_refused(server, headers, says):
    await server.create_app("demo")
    created = await server.req("POST", "/v1/apps/demo/routes",
                               json={"route": {"path": "/x", "image": ECHO, "headers": headers}})
    assert created.status == 400 and says in created.json()["error"]["message"], created
    assert created.json()["error"]["field"] == f"route.headers.{next(iter(headers))}"
    await server.create_route(path="/y", image=ECHO)
    patched = await server.req("PATCH", "/v1/apps/demo/routes/y", json={"route": {"headers": headers}})
    assert patched.status == 400 and says in patched.json()["error"]["message"], patched
    assert (await server.call("demo", "/y", b"ok")).status == 200


async def test_a_bad_header_already_in_the_store_is_dropped_not_sent(server_factory, images, tmp_path):
    db = str(tmp_path / "old.db")
    first = await server_factory(db=db)
    await first.create_app("demo")
    await first.create_route(path="/cold", image=ECHO, headers={"X-Good": "yes"})
    await server_factory.stop(first)
    # What an older hotfn accepted: a header value with a bare CR and one with NUL.
    with sqlite3.connect(db) as conn:
        (spec,) = conn.execute("SELECT spec FROM routes WHERE path = '/cold'").fetchone()
        route = json.loads(spec)
        route["headers"].update({"X-Split": "a\rb", "X-Nul": "a\u0000"})
        conn.execute("UPDATE routes SET spec = ? WHERE path = '/cold'", (json.dumps(route),))
    second = await server_factory(db=db)
    reply = await second.call("demo", "/cold", b"body")
    assert reply.status == 200 and reply.body == b"body"
    assert reply.header("x-good") == "yes"
    assert reply.header("x-split") is None and reply.header("x-nul") is None


@pytest.mark.parametrize("config, field, says", [
    ({"KEY": "a\u0000b"}, "app.config.KEY", "NUL"),
    ({"KEY": "x" * (32 * 1024 + 1)}, "app.config.KEY", "exceeds the limit"),
    ({f"K{i}": "x" * 30_000 for i in range(3)}, "app.config", "the limit is 65536"),
    ({"K" * 200: "v"}, "app.config.'KKK", "letters, digits"),
])
async def test_config_the_environment_cannot_carry_is_refused(server, config, field, says):
    reply = await server.req("POST", "/v1/apps", json={"app": {"name": "demo", "config": config}})
    assert reply.status == 400, reply
    error = reply.json()["error"]
    assert says in error["message"] and error["field"].startswith(field[:40]), error
    await server.create_app("demo")
    await server.create_route(path="/x", image=ECHO)
    patched = await server.req("PATCH", "/v1/apps/demo/routes/x", json={"route": {"config": config}})
    assert patched.status == 400 and says in patched.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/..", "/a/..", "/./a", "/a/./b", "/a/../b"])
async def test_dot_segments_in_route_paths_are_refused(server, path):
    await server.create_app("demo")
    reply = await server.req("POST", "/v1/apps/demo/routes", json={"route": {"path": path, "image": ECHO}})
    assert reply.status == 400 and "dot segments" in reply.json()["error"]["message"], reply


async def test_a_second_server_with_the_same_node_id_refuses_to_start(images, tmp_path):
    node_id = new_node_id()
    async with serve_process(tmp_path, node_id=node_id) as (first, server):
        await server.create_app("demo")
        await server.create_route(path="/hot", image=ECHO, format="hot")
        before = await server.call("demo", "/hot", b"a")
        assert before.status == 200
        (container,) = containers_of(node_id, all=False)

        second = subprocess.run(
            [sys.executable, "-m", "hotfn", "serve", "--port", str(free_port()), "--node-id", node_id,
             "--db", str(tmp_path / "second.db")], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert f"node id {node_id!r} is in use by another hotfn server (process {first.pid}" in second.stderr
        assert "--node-id" in second.stderr and "Traceback" not in second.stderr
        # The first server's warm container and its FIFOs were left alone.
        assert containers_of(node_id, all=False) == [container]
        after = await server.call("demo", "/hot", b"b")
        assert after.status == 200 and after.body == b"b"
        record = (await server.req("GET", f"/v1/apps/demo/calls/{after.header('hotfn-call-id')}")).json()
        assert container.startswith(record["call"]["container_id"][:12])


async def test_a_vanished_fifo_directory_is_made_again(server_factory, images, tmp_path):
    io_dir = tmp_path / "io"
    server = await server_factory(io_dir=str(io_dir))
    await server.create_app("demo")
    await server.create_route(path="/hot", image=ECHO, format="hot")
    assert (await server.call("demo", "/hot", b"one")).body == b"one"
    shutil.rmtree(io_dir)  # a tmp cleaner, an operator
    (container,) = containers_of(server.node_id, all=False)
    subprocess.run(["docker", "kill", container], capture_output=True, check=True)
    with trio.fail_after(20):
        while (reply := await server.call("demo", "/hot", b"two")).status != 200:
            await trio.sleep(0.1)
    assert reply.body == b"two"


async def test_an_unreachable_engine_at_start_is_a_clear_error(tmp_path):
    started = subprocess.run(
        [sys.executable, "-m", "hotfn", "serve", "--port", str(free_port()), "--node-id", new_node_id(),
         "--db", str(tmp_path / "x.db")], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert started.returncode == 1, started.stderr
    assert "hotfn: cannot start:" in started.stderr and "not reachable" in started.stderr
    assert "Traceback" not in started.stderr


@pytest.mark.parametrize("fmt", ["hot", "default"])
async def test_a_container_killed_from_outside_is_reported_as_killed(server, fmt):
    await server.create_app("demo")
    await server.create_route(path="/slow", image=ECHO, format=fmt)
    replies = []

    async def slow_call() -> None:
        replies.append(await server.call("demo", "/slow", headers=[("x-hotfn-test", "sleep"),
                                                                   ("x-sleep-ms", "20000")]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_call)
        with trio.fail_after(20):
            while not (running := containers_of(server.node_id, all=False, route="/slow")):
                await trio.sleep(0.1)
        await trio.sleep(1.0)  # well inside the call
        subprocess.run(["docker", "kill", *running], capture_output=True, check=True)
    (reply,) = replies
    assert reply.status == 502, reply
    message = reply.json()["error"]["message"]
    assert "killed by SIGKILL (exit status 137)" in message and "memory" not in message, message


@contextlib.contextmanager
def small_file_system(tmp_path, mib: int):
    """A file system of ``mib`` MiB of the test's own (a tmpfs), to fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    with small_file_system(tmp_path, 4) as mount:
        yield mount


def _fill(directory) -> None:
    with open(directory / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


async def test_a_full_disk_is_a_503_that_says_so_while_reads_and_calls_go_on(images, tmp_path, small_disk):
    async with serve_process(tmp_path, 10, db=str(small_disk / "hotfn.db")) as (process, server):
        await server.create_app("demo")
        await server.create_route(path="/hot", image=ECHO, format="hot")
        before = await server.call("demo", "/hot", b"before")
        assert before.status == 200
        assert (await server.req("GET", f"/v1/apps/demo/calls/{before.header('hotfn-call-id')}")).status == 200

        _fill(small_disk)
        created = await server.req("POST", "/v1/apps", json={"app": {"name": "more"}})
        assert created.status == 503, created
        assert "disk is full" in created.json()["error"]["message"]
        # The operator's status says so within a probe; the balancer's check stays 200: this
        # node still serves calls.
        with trio.fail_after(10):
            while (health := await server.req("GET", "/health/detail")).status != 503:
                await trio.sleep(0.1)
        assert health.json()["status"] == "degraded" and health.json()["store"] == "failing"
        assert (await server.req("GET", "/health")).status == 200
        # Reads of what is stored still work, and functions still run.
        assert (await server.req("GET", "/v1/apps/demo")).status == 200
        listed = await server.req("GET", "/v1/apps/demo/calls")
        assert listed.status == 200 and before.header("hotfn-call-id") in listed.body.decode()
        during = await server.call("demo", "/hot", b"during")
        assert during.status == 200 and during.body == b"during"

        os.remove(small_disk / "filler")
        with trio.fail_after(10):
            while (await server.req("GET", "/health/detail")).status != 200:
                await trio.sleep(0.2)
        assert (await server.req("POST", "/v1/apps", json={"app": {"name": "more"}})).status == 200
        # The record of the call made while the disk was full was kept and saved since.
        with trio.fail_after(10):
            while (await server.req("GET", f"/v1/apps/demo/calls/{during.header('hotfn-call-id')}")).status != 200:
                await trio.sleep(0.2)
        assert process.returncode is None


async def test_a_hot_image_without_a_shell_is_a_502_that_says_why(server, tmp_path):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "hello").write_text("not a program\n")
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True).stdout
    subprocess.run(["docker", "import", "--change", 'ENTRYPOINT ["/hello"]', "-", "hotfn-test/no-shell"],
                   input=tar, capture_output=True, check=True)
    await server.create_app("demo")
    await server.create_route(path="/hot", image="hotfn-test/no-shell", format="hot")
    reply = await server.call("demo", "/hot", b"x")
    assert reply.status == 502, reply
    assert "has no /bin/sh, which hot containers need" in reply.json()["error"]["message"]
