"""The hotfn command against a real server: init, deploy (build + route), call, calls, logs."""

import json
import os
import re
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
    header, row = listed.stdout.decode().splitlines()
    assert header.split() == ["NAME", "CONFIG", "CREATED"]
    assert row.split()[:2] == ["shop", "A"] and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", row)
    await hotfn(server, "routes", "create", "shop", "/echo", "--image", "hotfn-test/conformance-python",
                "--format", "hot", "--memory", "64")
    routes = await hotfn(server, "routes", "list", "shop")
    header, row = routes.stdout.decode().splitlines()
    assert header.split() == ["PATH", "IMAGE", "FORMAT", "TYPE", "MEMORY", "TIMEOUT", "UPDATED"]
    assert row.split()[:7] == ["/echo", "hotfn-test/conformance-python", "hot", "sync", "64", "MiB", "30"]
    called = await hotfn(server, "call", "shop", "/echo", "-H", "x-hotfn-test=stderr", stdin=b"body!")
    assert called.stdout.startswith(b"body!")
    call_id = called.stderr.decode().split("call ")[1].rstrip("]\n")
    calls = await hotfn(server, "calls", "list", "shop")
    header, row = calls.stdout.decode().splitlines()
    assert header.split() == ["ID", "ROUTE", "STATUS", "HTTP", "MODE", "DURATION", "CREATED"]
    assert row.split()[:5] == [call_id, "/echo", "success", "200", "hot"]
    logs = await hotfn(server, "logs", "shop", call_id)
    assert logs.stdout == b"log line\n"
    inspected = await hotfn(server, "routes", "inspect", "shop", "/echo")
    assert re.search(rb"^memory +64$", inspected.stdout, re.M)
    await hotfn(server, "routes", "update", "shop", "/echo", "--memory", "96")
    assert b'"memory": 96' in (await hotfn(server, "routes", "inspect", "shop", "echo", "--json")).stdout
    refused = await hotfn(server, "apps", "delete", "shop", check=False)
    assert refused.returncode == 1 and b"still has 1 route" in refused.stderr
    assert b"--cascade" in refused.stderr and b"?cascade" not in refused.stderr
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


async def test_every_list_and_inspect_speaks_json(server):
    await hotfn(server, "apps", "create", "js")
    await hotfn(server, "routes", "create", "js", "/e", "--image", "hotfn-test/conformance-python",
                "--format", "cold")
    await hotfn(server, "call", "js", "/e", stdin=b"x")
    apps = json.loads((await hotfn(server, "apps", "list", "--json")).stdout)
    assert [a["name"] for a in apps["apps"]] == ["js"]
    app = json.loads((await hotfn(server, "--json", "apps", "inspect", "js")).stdout)
    assert app["app"]["name"] == "js"
    routes = json.loads((await hotfn(server, "routes", "list", "js", "--json")).stdout)
    assert routes["routes"][0]["format"] == "default"  # cold is the one-shot format's other name
    calls = json.loads((await hotfn(server, "calls", "list", "js", "--json")).stdout)
    call_id = calls["calls"][0]["id"]
    one = json.loads((await hotfn(server, "calls", "get", "js", call_id, "--json")).stdout)
    assert one["call"]["id"] == call_id and one["call"]["mode"] == "cold"


async def test_calls_get_shows_an_async_calls_result_and_log(server):
    await hotfn(server, "apps", "create", "bg")
    await hotfn(server, "routes", "create", "bg", "/job", "--image", "hotfn-test/conformance-python",
                "--format", "hot", "--type", "async")
    queued = await hotfn(server, "call", "bg", "/job", "-H", "x-hotfn-test=stderr", stdin=b"done!")
    call_id = json.loads(queued.stdout)["call_id"]
    assert f"hotfn calls get bg {call_id}".encode() in queued.stderr
    with trio.fail_after(30):
        while True:
            shown = (await hotfn(server, "calls", "get", "bg", call_id)).stdout.decode()
            if re.search(r"^status +success$", shown, re.M):
                break
            await trio.sleep(0.2)
    assert re.search(r"^type +async$", shown, re.M)
    assert re.search(r"^created_at +\d{4}-\d\d-\d\d ", shown, re.M)
    assert "result:\ndone!" in shown and "log:\nlog line" in shown


async def test_version_names_the_client_and_the_server(server):
    import hotfn as package

    shown = (await hotfn(server, "version")).stdout.decode().splitlines()
    assert shown[0].split() == ["client", package.__version__]
    assert shown[1].split()[:2] == ["server", package.__version__]
    reply = await server.req("GET", "/v1/version")
    assert json.loads(reply.body) == {"version": package.__version__}


async def test_a_call_that_found_no_route_says_so_without_a_call_id(server):
    await hotfn(server, "apps", "create", "nr")
    result = await hotfn(server, "call", "nr", "/nothing", check=False)
    assert result.returncode == 1
    assert result.stderr.decode().strip().endswith("[status 404]")


async def test_memory_above_the_servers_cap_is_refused_naming_the_cap(server_factory, images):
    small = await server_factory(max_memory_mb=256)
    await hotfn(small, "apps", "create", "big")
    refused = await hotfn(small, "routes", "create", "big", "/x", "--image",
                          "hotfn-test/conformance-python", "--memory", "512", check=False)
    assert refused.returncode == 1
    assert b"--memory: 512 MiB is more than this server's cap of 256 MiB" in refused.stderr
    await hotfn(small, "routes", "create", "big", "/x", "--image", "hotfn-test/conformance-python",
                "--memory", "256")
    refused = await hotfn(small, "routes", "update", "big", "/x", "--memory", "300", check=False)
    assert refused.returncode == 1 and b"cap of 256 MiB" in refused.stderr


async def test_the_cli_speaks_to_a_server_with_tokens(server_factory, images, tmp_path):
    admin = "hotfn-cli-test-admin-token-0123456789abcdef"
    token_file = tmp_path / "admin-token"
    token_file.write_text(admin + "\n")
    secured = await server_factory(admin_token_file=str(token_file))
    refused = await hotfn(secured, "apps", "list", check=False)
    assert refused.returncode == 1 and b"--token or HOTFN_TOKEN" in refused.stderr
    await hotfn(secured, "apps", "create", "tok", "--token", admin)
    env_listed = await trio.run_process(
        [sys.executable, "-m", "hotfn", "apps", "list", "--server", secured.url],
        capture_stdout=True, capture_stderr=True, env={**os.environ, "HOTFN_TOKEN": admin})
    assert b"tok" in env_listed.stdout
    shown = await hotfn(secured, "version")  # /v1/version is open, like /health
    assert shown.stdout.splitlines()[1].split()[0] == b"server"
