"""Building and deploying functions tells the truth, through the real CLI, Docker and server:
dependencies reach the image, errors show the build's output, a function that cannot start is
never switched in, images are scoped by app and failed builds leave nothing; `hotfn run`; a
whole web app behind one greedy route."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import trio

from conftest import FUNCTIONS, containers_of, new_node_id

pytestmark = pytest.mark.docker


async def hotfn(server, *args: str, stdin: bytes = b"", check: bool = True, node_id: str | None = None):
    env = {**os.environ, "HOTFN_NODE_ID": node_id or (server.node_id if server else new_node_id())}
    env.pop("HOTFN_SERVER", None)
    prefix = ["--server", server.url] if server else []
    result = await trio.run_process([sys.executable, "-m", "hotfn", *args, *prefix], stdin=stdin,
                                    capture_stdout=True, capture_stderr=True, check=False, env=env)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


def copy_function(name: str, tmp_path: pathlib.Path, as_name: str | None = None) -> str:
    target = tmp_path / (as_name or name)
    shutil.copytree(FUNCTIONS / name, target)
    return str(target)


def images_named(repository: str) -> list[str]:
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repository],
                         capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


_made: list[str] = []


def remove_images(*names: str) -> None:
    """Removed when the module ends, once the servers that ran them have stopped."""
    _made.extend(names)


@pytest.fixture(scope="module", autouse=True)
def no_image_left_behind():
    yield
    if _made:
        subprocess.run(["docker", "rmi", *_made], capture_output=True)


def dangling_children_of(base: str, since: float) -> list[str]:
    """Untagged images made FROM ``base`` since ``since`` (a failed build's leftovers)."""
    base_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", base],
                             capture_output=True, text=True, check=True).stdout.strip()
    ids = subprocess.run(["docker", "images", "-q", "--no-trunc", "-f", "dangling=true"],
                         capture_output=True, text=True, check=True).stdout.split()
    found = []
    for image in ids:
        info = json.loads(subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                                         text=True).stdout or "[{}]")[0]
        created = info.get("Created", "")
        if info.get("Parent") == base_id and created and _epoch(created) >= since - 1:
            found.append(image)
    return found


def _epoch(created: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()


# -- builds -----------------------------------------------------------------------------------


async def test_a_node_function_gets_its_node_modules_and_dockerignore_is_honoured(server, tmp_path):
    directory = copy_function("node-deps", tmp_path)
    deployed = await hotfn(server, "deploy", directory, "--app", "deps")
    assert b"deployed hotfn-fn/deps/node-deps:latest" in deployed.stdout
    reply = await server.call("deps", "/node-deps?name=ada", method="GET")
    assert reply.status == 200, reply
    assert json.loads(reply.body) == {"greeting": "Hello, ada, from a dependency!", "secretShipped": False}
    remove_images("hotfn-fn/deps/node-deps")


async def test_a_python_function_gets_its_vendored_package(server, tmp_path):
    directory = copy_function("python-deps", tmp_path)
    await hotfn(server, "deploy", directory, "--app", "deps", "--path", "/py")
    reply = await server.call("deps", "/py?name=ada", method="GET")
    assert (reply.status, reply.body) == (200, b"HELLO, ADA!")
    remove_images("hotfn-fn/deps/python-deps")


async def test_a_python_syntax_error_fails_the_build_shows_why_and_leaves_no_image(tmp_path, docker_engine):
    directory = tmp_path / f"broken{uuid.uuid4().hex[:6]}"
    directory.mkdir()
    (directory / "func.py").write_text(f"# {uuid.uuid4()}\ndef handler(request)\n    return 1\n")
    started = time.time()
    result = await hotfn(None, "build", str(directory), check=False)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "docker build failed" in err and "SyntaxError" in err and "func.py" in err, err
    assert images_named(f"hotfn-fn/local/{directory.name}") == []
    assert dangling_children_of("hotfn/python", started) == []


async def test_a_java_compile_error_shows_the_compiler_output(tmp_path, docker_engine):
    directory = tmp_path / "javabroken"
    directory.mkdir()
    (directory / "Func.java").write_text(
        "import hotfn.*;\npublic class Func implements Handler {\n"
        "    public Response handle(Request r) { return Response.ok(undefinedThing); }\n}\n")
    result = await hotfn(None, "build", str(directory), check=False)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "Func.java" in err and "undefinedThing" in err and "error" in err, err


async def test_an_unknown_runtime_is_named_with_the_known_ones(tmp_path):
    directory = tmp_path / "typo"
    directory.mkdir()
    (directory / "func.json").write_text('{"runtime": "pyhton"}')
    result = await hotfn(None, "build", str(directory), check=False)
    assert result.returncode == 1
    assert (b"unknown runtime 'pyhton'; known: python, node, java, clojure (did you mean 'python'?)"
            in result.stderr)


async def test_build_shows_steps_and_with_v_the_whole_output(tmp_path, docker_engine):
    directory = tmp_path / "chatty"
    await hotfn(None, "init", "--runtime", "python", str(directory))
    quiet = await hotfn(None, "build", str(directory))
    assert b"building: Step 1/" in quiet.stderr and b"Executing" not in quiet.stderr
    assert quiet.stdout.strip() == b"hotfn-fn/local/chatty:latest"
    loud = await hotfn(None, "build", str(directory), "-v")
    assert b"Step 1/" in loud.stderr and b"Executing 2 build triggers" in loud.stderr
    remove_images("hotfn-fn/local/chatty")


# -- deploy -----------------------------------------------------------------------------------


async def test_deploy_refuses_a_function_that_cannot_start_and_the_old_one_keeps_serving(server, tmp_path):
    directory = tmp_path / "fragile"
    await hotfn(server, "init", "--runtime", "python", str(directory))
    await hotfn(server, "deploy", str(directory), "--app", "chk")
    assert (await server.call("chk", "/fragile?name=one", method="GET")).body == b"Hello, one!\n"
    (directory / "func.py").write_text("import no_such_module\n\ndef handler(request):\n    return 'two'\n")
    refused = await hotfn(server, "deploy", str(directory), "--app", "chk", check=False)
    assert refused.returncode == 1
    err = refused.stderr.decode()
    assert "did not start" in err and "No module named 'no_such_module'" in err, err
    assert (await server.call("chk", "/fragile?name=still", method="GET")).body == b"Hello, still!\n"
    assert images_named("hotfn-fn/chk/fragile") == ["hotfn-fn/chk/fragile:latest"]  # no candidate left
    # A handler that is missing is caught the same way, for a cold route too.
    (directory / "func.py").write_text("def other(request):\n    return 'x'\n")
    refused = await hotfn(server, "deploy", str(directory), "--app", "chk", "--format", "cold", check=False)
    assert refused.returncode == 1 and b"handler" in refused.stderr
    route = json.loads((await server.req("GET", "/v1/apps/chk/routes/fragile")).body)["route"]
    assert route["format"] == "hot"
    assert containers_of(server.node_id + "-local") == []
    remove_images("hotfn-fn/chk/fragile")


async def test_image_names_are_scoped_by_app(server, tmp_path):
    directory = tmp_path / "hello"
    await hotfn(server, "init", "--runtime", "python", str(directory))
    one = await hotfn(server, "deploy", str(directory), "--app", "alice")
    two = await hotfn(server, "deploy", str(directory), "--app", "bob")
    assert b"hotfn-fn/alice/hello:latest" in one.stdout and b"hotfn-fn/bob/hello:latest" in two.stdout
    remove_images("hotfn-fn/alice/hello", "hotfn-fn/bob/hello")


async def test_deploy_watch_redeploys_on_change(server, tmp_path):
    directory = tmp_path / "watched"
    await hotfn(server, "init", "--runtime", "python", str(directory))
    env = {**os.environ, "HOTFN_NODE_ID": server.node_id}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "hotfn", "deploy", str(directory), "--app", "w", "--watch",
         "--interval", "0.2", "--server", server.url], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async def body() -> bytes:
            return (await server.call("w", "/watched", method="GET")).body
        with trio.fail_after(60):
            while await body() != b"Hello, world!\n":
                await trio.sleep(0.2)
            (directory / "func.py").write_text("def handler(request):\n    return 'changed'\n")
            while await body() != b"changed":
                await trio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        with trio.move_on_after(20):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
    remove_images("hotfn-fn/w/watched")


# -- hotfn run --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["hot", "cold"])
async def test_run_answers_one_request_from_stdin(tmp_path, docker_engine, fmt):
    directory = tmp_path / f"runner-{fmt}"
    await hotfn(None, "init", "--runtime", "python", str(directory))
    node_id = new_node_id()
    result = await hotfn(None, "run", str(directory), "--format", fmt, stdin=b"Grace", node_id=node_id)
    assert result.stdout == b"Hello, Grace!\n"
    (directory / "func.py").write_text("def handler(request):\n    raise ValueError('nope')\n")
    failed = await hotfn(None, "run", str(directory), "--format", fmt, check=False, node_id=node_id)
    assert failed.returncode == 1 and b"nope" in failed.stderr
    assert containers_of(node_id) == []
    remove_images(f"hotfn-fn/local/runner-{fmt}")


async def test_run_with_port_serves_the_function_over_http(tmp_path, docker_engine):
    from httpclient import request

    directory = copy_function("webapp", tmp_path)
    node_id = new_node_id()
    env = {**os.environ, "HOTFN_NODE_ID": node_id}
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "hotfn", "run", directory, "--port", "0"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = b""
        with trio.fail_after(60):
            while b"serving" not in seen:
                seen += await proc.stderr.receive_some(4096)
        url = seen.split(b" on ")[1].split()[0].decode().rstrip("/")
        hello = await request(url, "GET", "/api/hello?name=ada")
        teapot = await request(url, "GET", "/api/teapot")
        assert (hello.status, hello.body) == (200, b"hello ada")
        assert teapot.status == 418
    finally:
        proc.send_signal(signal.SIGTERM)  # as Ctrl-C: the containers go first
        with trio.move_on_after(20):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
    assert containers_of(node_id) == []
    remove_images("hotfn-fn/local/webapp")


# -- a web app behind one greedy route ----------------------------------------------------------


async def test_a_whole_wsgi_app_is_served_by_one_route_and_one_warm_container(server, tmp_path):
    directory = copy_function("webapp", tmp_path)
    deployed = await hotfn(server, "deploy", directory, "--app", "site")
    assert b"/r/site/api/*rest" in deployed.stdout
    hello = await server.call("site", "/api/hello?name=ada", method="GET")
    assert (hello.status, hello.body, hello.header("x-rest")) == (200, b"hello ada", "hello")
    first = json.loads((await server.call("site", "/api/items/7", method="GET")).body)
    echo = await server.call("site", "/api/echo", bytes(range(256)))
    assert echo.body == bytes(range(256))[::-1] and echo.header("content-type") == "application/octet-stream"
    assert (await server.call("site", "/api/teapot", method="GET")).status == 418
    assert (await server.call("site", "/api/nothing/here", method="GET")).status == 404
    last = json.loads((await server.call("site", "/api/items/8", method="GET")).body)
    assert first["id"] == "7" and last["id"] == "8"
    assert last["pid"] == first["pid"] and last["served"] == first["served"] + 4  # one container
    assert len(containers_of(server.node_id, route="/api/*rest")) == 1
    # A specific route beats the greedy one.
    await server.create_route("site", path="/api/teapot", image="hotfn-test/conformance-python",
                              format="hot")
    assert (await server.call("site", "/api/teapot", b"x")).status == 200
    remove_images("hotfn-fn/site/webapp")


async def test_a_cold_image_of_its_own_gets_a_dry_run(server, tmp_path):
    directory = tmp_path / "custom"
    directory.mkdir()
    (directory / "Dockerfile").write_text(
        'FROM hotfn/python\nENTRYPOINT ["sh", "-c", "echo cannot open the database >&2; exit 3"]\n')
    refused = await hotfn(server, "deploy", str(directory), "--app", "own", "--format", "cold", check=False)
    assert refused.returncode == 1
    err = refused.stderr.decode()
    assert "dry run failed" in err and "exit status 3" in err and "cannot open the database" in err, err
    assert (await server.req("GET", "/v1/apps/own/routes/custom")).status == 404
    (directory / "Dockerfile").write_text('FROM hotfn/python\nENTRYPOINT ["sh", "-c", "cat; echo fine"]\n')
    deployed = await hotfn(server, "deploy", str(directory), "--app", "own", "--format", "cold")
    assert b"checking that it starts: dry run answered" in deployed.stderr
    assert (await server.call("own", "/custom", b"in:")).body == b"in:fine\n"
    remove_images("hotfn-fn/own/custom")


def test_init_copies_a_templates_files_only(tmp_path, monkeypatch):
    """pip compiles every .py it installs, templates too: their __pycache__ is no part of a new
    function (`hotfn init` failed on it with IsADirectoryError)."""
    from hotfn.functions import directory

    template = tmp_path / "templates" / "python"
    (template / "__pycache__").mkdir(parents=True)
    (template / "__pycache__" / "func.cpython-311.pyc").write_bytes(b"")
    (template / "func.py").write_text("def handler(request):\n    return b''\n")
    (template / "func.json").write_text('{"runtime": "python"}')
    monkeypatch.setattr(directory, "TEMPLATES_DIR", tmp_path / "templates")
    assert directory.init_function(str(tmp_path / "new"), "python") == ["func.json", "func.py"]
    assert sorted(os.listdir(tmp_path / "new")) == ["func.json", "func.py"]
