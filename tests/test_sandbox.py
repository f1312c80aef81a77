"""What a function can see of its sandbox and reach from it, on the real engine: who it runs
as, its capabilities, its init, its kernel under gVisor, and its network (scripts/ensure-sandbox
installs gVisor and the firewall rules these tests rely on)."""

from __future__ import annotations

import json
import subprocess

import pytest
import trio

import hotfn.server
from conftest import containers_of

pytestmark = pytest.mark.docker
PROBE = "hotfn-test/probe"


async def probe(server, app: str, path: str, headers=()) -> dict:
    reply = await server.call(app, path, method="GET", headers=list(headers))
    assert reply.status == 200, reply
    return reply.json()


def assert_unprivileged(seen: dict, uid: int = 1000, gid: int = 1000) -> None:
    assert (seen["uid"], seen["euid"], seen["gid"]) == (uid, uid, gid), seen
    assert seen["groups"] in ([gid], [])
    assert seen["status"]["CapEff"] == seen["status"]["CapPrm"] == "0000000000000000"
    assert seen["status"]["CapBnd"] == "0000000000000000"
    assert seen["pid1"].endswith("docker-init"), seen  # an init that reaps orphans
    assert seen["zombies"] == 0
    assert seen["writable"]["/tmp"] and not seen["writable"]["/function"]


@pytest.mark.parametrize("fmt", ["hot", "default"])
async def test_functions_run_as_uid_1000_with_no_capabilities_under_an_init(server, fmt):
    await server.create_app("demo")
    await server.create_route(path="/probe", image=PROBE, format=fmt)
    seen = await probe(server, "demo", "/probe")
    assert_unprivileged(seen)
    assert seen["status"]["NoNewPrivs"] == "1"
    assert "gVisor" not in seen["dmesg"]
    route = (await server.req("GET", "/v1/apps/demo/routes/probe")).json()["route"]
    assert (route["user"], route["isolation"]) == ("1000:1000", "container")


async def test_user_chooses_another_uid_and_root_still_has_no_capabilities(server):
    await server.create_app("demo")
    await server.create_route(path="/root", image=PROBE, format="hot", user="0")
    await server.create_route(path="/other", image=PROBE, user="4242")
    root = await probe(server, "demo", "/root")
    assert (root["uid"], root["gid"]) == (0, 0)
    assert root["status"]["CapEff"] == "0000000000000000"
    assert_unprivileged(await probe(server, "demo", "/other"), 4242, 4242)
    # Changing the user is a new revision: the warm container goes, the next runs as asked.
    reply = await server.req("PATCH", "/v1/apps/demo/routes/root", json={"route": {"user": "1000:2000"}})
    assert reply.status == 200 and reply.json()["route"]["user"] == "1000:2000"
    assert_unprivileged(await probe(server, "demo", "/root"), 1000, 2000)


@pytest.mark.parametrize("fmt", ["hot", "default"])
async def test_gvisor_isolation_runs_the_function_on_gvisors_kernel(server, gvisor, fmt):
    await server.create_app("demo")
    await server.create_route(path="/probe", image=PROBE, format=fmt, isolation="gvisor")
    seen = await probe(server, "demo", "/probe")
    # gVisor's kernel, not the host's. (Its dmesg says "Starting gVisor", but syslog() is
    # outside Docker's seccomp profile, which runsc applies too: --oci-seccomp.)
    with open("/proc/version") as host:
        assert seen["kernel"] != host.read().strip(), seen
    assert seen["kernel"].startswith("Linux version 4.4.0 "), seen  # what gVisor reports
    assert seen["dmesg"] == "", seen
    assert_unprivileged(seen)
    assert seen["interfaces"] == ["lo"]


@pytest.mark.parametrize("field, value", [
    ("user", "root"), ("user", "-1"), ("user", "1000:"), ("user", ":1000"), ("user", "1:2:3"),
    ("user", 1000), ("user", "2147483648"), ("user", "0x10"), ("user", " 1000"), ("user", "1000\n"),
    ("user", "01000"), ("user", ""), ("user", None), ("user", "1000:99999999999"),
    ("isolation", "kata"), ("isolation", ""), ("isolation", None), ("isolation", True),
    ("isolation", "GVISOR"),
])
async def test_user_and_isolation_are_checked(server, field, value):
    await server.create_app("demo")
    reply = await server.req("POST", "/v1/apps/demo/routes",
                             json={"route": {"path": "/p", "image": PROBE, field: value}})
    assert reply.status == 400, reply
    error = reply.json()["error"]
    assert error["field"] == f"route.{field}" and error["message"].startswith("must be"), error
    await server.create_route(path="/p", image=PROBE)
    reply = await server.req("PATCH", "/v1/apps/demo/routes/p", json={"route": {field: value}})
    assert reply.status == 400, reply
    route = (await server.req("GET", "/v1/apps/demo/routes/p")).json()["route"]
    assert (route["user"], route["isolation"]) == ("1000:1000", "container")


async def test_gvisor_has_no_network_and_says_so(server):
    await server.create_app("demo")
    reply = await server.req("POST", "/v1/apps/demo/routes", json={"route": {
        "path": "/p", "image": PROBE, "isolation": "gvisor", "network": True}})
    assert reply.status == 400
    assert reply.json()["error"] == {"message": "is not available with isolation 'gvisor'",
                                     "field": "route.network"}


async def test_gvisor_missing_from_the_engine_is_a_clear_error(server, gvisor):
    await server.create_app("demo")
    await server.create_route(path="/g", image=PROBE, isolation="gvisor")
    driver = server.server._driver
    driver.gvisor_runtime, driver._gvisor_seen = "runsc-not-registered", False
    # A route that exists already: its calls fail with the reason and what to run.
    reply = await server.call("demo", "/g")
    assert reply.status == 502
    message = reply.json()["error"]["message"]
    assert "isolation 'gvisor' needs the 'runsc-not-registered' runtime" in message
    assert "scripts/ensure-sandbox" in message
    # A new one is refused up front.
    reply = await server.req("POST", "/v1/apps/demo/routes", json={"route": {
        "path": "/h", "image": PROBE, "isolation": "gvisor"}})
    assert reply.status == 400
    assert reply.json()["error"]["message"].startswith("route.isolation: 'gvisor' is not available")


# -- networks ------------------------------------------------------------------------------------


def networks_of(node_id: str) -> list[dict]:
    out = subprocess.run(["docker", "network", "ls", "-q", "--filter", f"label=hotfn.node={node_id}"],
                         capture_output=True, text=True, check=True).stdout.split()
    if not out:
        return []
    return json.loads(subprocess.run(["docker", "network", "inspect", *out], capture_output=True,
                                     text=True, check=True).stdout)


def container_ip(container_id: str) -> str:
    networks = json.loads(subprocess.run(
        ["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", container_id],
        capture_output=True, text=True, check=True).stdout)
    (settings,) = networks.values()
    return settings["IPAddress"]


def host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in addresses if not a.startswith("127.")]


async def serve_banner(nursery, banner: bytes) -> int:
    """A TCP service on every address of the host; its port."""
    listeners = await trio.open_tcp_listeners(0, host="0.0.0.0")

    async def answer(stream):
        async with stream:
            await stream.send_all(banner)

    nursery.start_soon(trio.serve_listeners, answer, listeners)
    return listeners[0].socket.getsockname()[1]


async def connect_from(server, app: str, path: str, target: str) -> str:
    reply = await server.call(app, path, method="GET", headers=[("x-connect", target)])
    assert reply.status == 200, reply
    return reply.body.decode()


async def test_a_function_network_reaches_neither_the_host_nor_any_other_container(server, nursery):
    port = await serve_banner(nursery, b"host service\n")
    for app in ("a", "b"):
        await server.create_app(app)
        # Room for each attempt below at once: a blocked one waits out its 2 s timeout.
        await server.create_route(app, path="/probe", image=PROBE, format="hot", network=True,
                                  max_concurrency=8)
    await server.create_route("a", path="/other", image=PROBE, format="hot", network=True)
    for app, path in (("b", "/probe"), ("a", "/other")):
        reply = await server.call(app, path, method="GET", headers=[("x-listen", "8000")])
        assert reply.body == b"listening"
    seen = await probe(server, "a", "/probe")
    assert "eth0" in seen["interfaces"]

    (b_probe,) = [c for c in containers_of(server.node_id, all=False, route="/probe")
                  if _label(c, "hotfn.app") == "b"]
    (a_other,) = containers_of(server.node_id, all=False, route="/other")
    b_ip, a_other_ip = container_ip(b_probe), container_ip(a_other)
    # The services are up: the host reaches them, and a function its own.
    assert await _host_connect(b_ip, 8000) == b"hello from b/probe\n"
    assert (await connect_from(server, "a", "/other", "127.0.0.1:8000")).startswith("connected: hello from a/other")
    assert await _host_connect("127.0.0.1", port) == b"host service\n"

    networks = {n["Labels"]["hotfn.app"]: n for n in networks_of(server.node_id)}
    assert set(networks) == {"a", "b"}
    a_net = networks["a"]
    assert a_net["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert a_net["Options"]["com.docker.network.bridge.name"].startswith("hfn-")
    gateway = a_net["IPAM"]["Config"][0]["Gateway"]

    targets = {
        "the host, through its network's gateway": f"{gateway}:{port}",
        **{f"the host at {ip}": f"{ip}:{port}" for ip in host_addresses()},
        "another app's container": f"{b_ip}:8000",
        "a container of the same app": f"{a_other_ip}:8000",
    }
    async with trio.open_nursery() as attempts:
        results = {}

        async def attempt(what, target):
            results[what] = await connect_from(server, "a", "/probe", target)

        for what, target in targets.items():
            attempts.start_soon(attempt, what, target)
    reached = {what: result for what, result in results.items() if not result.startswith("refused")}
    assert not reached, reached


def _label(container_id: str, label: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}',
                           container_id], capture_output=True, text=True, check=True).stdout.strip()


async def _host_connect(host: str, port: int) -> bytes:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            data = b""
            while chunk := await stream.receive_some(100):
                data += chunk
            return data


async def test_function_networks_go_when_unused_and_at_shutdown(server_factory, images, monkeypatch):
    monkeypatch.setattr(hotfn.server, "NETWORK_LINGER", 1.0)
    server = await server_factory()
    await server.create_app("net")
    await server.create_route("net", path="/cold", image=PROBE, network=True)
    assert "eth0" in (await probe(server, "net", "/cold"))["interfaces"]
    assert [n["Labels"]["hotfn.app"] for n in networks_of(server.node_id)] == ["net"]
    # The app's last network route goes: so does its network, once no container uses it.
    assert (await server.req("DELETE", "/v1/apps/net/routes/cold")).status == 200
    with trio.fail_after(20):
        while networks_of(server.node_id):
            await trio.sleep(0.2)
    # At shutdown every network of the node goes, in use or not.
    await server.create_route("net", path="/hot", image=PROBE, format="hot", network=True)
    await probe(server, "net", "/hot")
    assert networks_of(server.node_id)
    await server_factory.stop(server)
    assert networks_of(server.node_id) == []


# -- the fields themselves (no engine) -----------------------------------------------------------


def test_user_is_normalised_to_uid_and_gid():
    from hotfn import models

    assert models.check_user("1000") == "1000:1000"
    assert models.check_user("0") == "0:0"
    assert models.check_user("1000:0") == "1000:0"
    assert models.check_user("2147483647:2147483647") == "2147483647:2147483647"
    assert models.new_route("a", {"path": "/p", "image": "i"}).user == "1000:1000"


def test_a_stored_user_or_isolation_hotfn_would_refuse_falls_back_to_the_defaults(caplog):
    from hotfn import models

    record = models.new_route("a", {"path": "/p", "image": "i", "user": "0", "isolation": "gvisor"}).to_json()
    assert models.route_from_record(record).user == "0:0"
    for user, isolation in (("root", "kata"), (["0"], None), ("1 000", 7)):
        route = models.route_from_record({**record, "user": user, "isolation": isolation})
        assert (route.user, route.isolation) == ("1000:1000", "container")
    assert "stored user" in caplog.text and "stored isolation" in caplog.text
    # A route stored before these fields existed runs as the defaults.
    old = {k: v for k, v in record.items() if k not in ("user", "isolation")}
    assert (models.route_from_record(old).user, models.route_from_record(old).isolation) == ("1000:1000", "container")


def test_the_container_spec_carries_user_isolation_and_the_apps_network():
    from hotfn import models
    from hotfn.invoke import Limits, container_spec

    route = models.new_route("shop", {"path": "/p", "image": "i", "user": "33", "network": True})
    spec = container_spec(route, Limits(node_id="n1"))
    assert (spec.user, spec.isolation, spec.network) == ("33:33", "container", True)
    assert spec.network_labels == {"hotfn": "1", "hotfn.node": "n1", "hotfn.app": "shop"}
    # user and isolation are part of what a warm container was started with
    changed = models.patch_route(route, {"user": "1000"})
    assert changed.revision() != route.revision()


def test_network_names_fit_linux_and_differ_per_node_and_app():
    from hotfn.drivers.docker.networks import network_names

    a = network_names({"hotfn": "1", "hotfn.node": "n1", "hotfn.app": "shop"})
    b = network_names({"hotfn": "1", "hotfn.node": "n2", "hotfn.app": "shop"})
    c = network_names({"hotfn": "1", "hotfn.node": "n1", "hotfn.app": "x" * 63})
    assert a[0].startswith("hotfn-shop-") and a[1].startswith("hfn-")
    assert len({a, b, c}) == 3 and all(len(bridge) <= 15 for _, bridge in (a, b, c))
