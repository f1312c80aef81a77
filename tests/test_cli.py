"""The hotfn command against a real server: init, deploy (build + route), call, calls, logs."""

import os
import sys

import pytest
import trio

pytestmark = pytest.mark.docker

GREETING = {
    "python": b"Hello, ada!\n",
    "lambda-python": b'{"message": "Hello, ada!"}',
    "node": b"Hello, ada!\n",
    "java": b"Hello, ada!\n",
    "clojure": b"Hello, ada!\n",
}


async def hotfn(server, *args: str, stdin: bytes = b"", check: bool = True):
    result = await trio.run_process(
        [sys.executable, "-m", "hotfn", "--server", server.url, *args],
        stdin=stdin, capture_stdout=True, capture_stderr=True, check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.mark.parametrize("runtime", sorted(GREETING))
async def test_init_deploy_and_call_every_template(server, tmp_path, runtime):
    directory = str(tmp_path / f"fn-{runtime}")
    await hotfn(server, "init", "--runtime", runtime, directory)
    deployed = await hotfn(server, "deploy", directory, "--app", "cli", "--path", "/hello",
                           "--tag", f"hotfn-test/template-{runtime}")
    assert b"deployed hotfn-test/template-" in deployed.stdout
    reply = await server.req("GET", "/r/cli/hello?name=ada")
    assert reply.status == 200, reply
    assert reply.body == GREETING[runtime]


async def test_apps_routes_call_calls_and_logs(server):
    await hotfn(server, "apps", "create", "shop", "--config", "A=1")
    listed = await hotfn(server, "apps", "list")
    assert listed.stdout.split() == [b"shop"]
    await hotfn(server, "routes", "create", "shop", "/echo", "--image", "hotfn-test/conformance-python",
                "--format", "hot", "--memory", "64")
    routes = await hotfn(server, "routes", "list", "shop")
    assert b"/echo\thotfn-test/conformance-python\thot" in routes.stdout
    called = await hotfn(server, "call", "shop", "/echo", "-H", "x-hotfn-test=stderr", stdin=b"body!")
    assert called.stdout.startswith(b"body!")
    call_id = called.stderr.decode().split("call ")[1].rstrip("]\n")
    calls = await hotfn(server, "calls", "list", "shop")
    assert call_id.encode() in calls.stdout
    logs = await hotfn(server, "logs", "shop", call_id)
    assert logs.stdout == b"log line\n"
    inspected = await hotfn(server, "routes", "inspect", "shop", "/echo")
    assert b'"memory": 64' in inspected.stdout
    await hotfn(server, "routes", "update", "shop", "/echo", "--memory", "96")
    assert b'"memory": 96' in (await hotfn(server, "routes", "inspect", "shop", "echo")).stdout
    refused = await hotfn(server, "apps", "delete", "shop", check=False)
    assert refused.returncode == 1 and b"still has 1 route" in refused.stderr
    await hotfn(server, "routes", "delete", "shop", "/echo")
    assert b"/echo" not in (await hotfn(server, "routes", "list", "shop")).stdout
    await hotfn(server, "apps", "delete", "shop")


async def test_deploy_twice_updates_the_route(server, tmp_path):
    directory = str(tmp_path / "twice")
    await hotfn(server, "init", "--runtime", "python", directory)
    await hotfn(server, "deploy", directory, "--app", "cli", "--tag", "hotfn-test/twice")
    assert (await server.req("GET", "/r/cli/twice?name=first")).body == b"Hello, first!\n"
    with open(os.path.join(directory, "func.py"), "w") as f:
        f.write("def handler(request):\n    return 'second version'\n")
    await hotfn(server, "deploy", directory, "--app", "cli", "--tag", "hotfn-test/twice")
    assert (await server.req("GET", "/r/cli/twice")).body == b"second version"


async def test_unreachable_server_is_a_clear_error():
    result = await trio.run_process(
        [sys.executable, "-m", "hotfn", "--server", "http://127.0.0.1:9", "apps", "list"],
        capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 1
    assert b"cannot reach the hotfn server at http://127.0.0.1:9" in result.stderr


async def test_serve_help_lists_every_setting_with_its_variable():
    result = await trio.run_process([sys.executable, "-m", "hotfn", "serve", "--help"],
                                    capture_stdout=True, env={**os.environ, "COLUMNS": "200"})
    text = result.stdout.decode()
    for option, variable in [("--port", "HOTFN_PORT"), ("--db", "HOTFN_DB"), ("--host", "HOTFN_HOST"),
                             ("--max-body-size", "HOTFN_MAX_BODY_SIZE"), ("--io-dir", "HOTFN_IO_DIR")]:
        assert option in text and variable in text
