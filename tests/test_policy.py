"""What may run (--allowed-images, no pulls) and secrets, through a real server and engine."""

from __future__ import annotations

import logging
import sqlite3

import docker.errors
import pytest
import trio

from hotfn.drivers import ImageNotFound
from hotfn.drivers.docker import DockerDriver

IMAGE = "hotfn-test/conformance-python"
APP_SECRET = "app-secret-value-7f3a9c"
ROUTE_SECRET = "route-secret-value-c41d22"


# -- images --


@pytest.mark.docker
async def test_an_image_outside_allowed_images_is_refused(server_factory, images, tmp_path):
    server = await server_factory(allowed_images="hotfn-test/*, hotfn-fn/*")
    await server.create_app("p")
    refused = await server.req("POST", "/v1/apps/p/routes", json={"route": {"path": "/x", "image": "hotfn/python"}})
    assert refused.status == 400 and refused.json()["error"]["field"] == "route.image"
    assert "--allowed-images (HOTFN_ALLOWED_IMAGES)" in refused.json()["error"]["message"]
    await server.create_route("p", path="/ok", image=IMAGE, format="hot", min_warm=1)
    patched = await server.req("PATCH", "/v1/apps/p/routes/ok", json={"route": {"image": "hotfn/python"}})
    assert patched.status == 400 and "--allowed-images" in patched.json()["error"]["message"]
    assert (await server.call("p", "/ok", b"hi")).body == b"hi"
    await server_factory.stop(server)

    # The same store under a stricter setting: the stored route is kept but never run.
    strict = await server_factory(allowed_images="hotfn-fn/*")
    reply = await strict.call("p", "/ok", b"hi")
    assert reply.status == 403
    assert "--allowed-images (HOTFN_ALLOWED_IMAGES) is 'hotfn-fn/*'" in reply.json()["error"]["message"]
    await trio.sleep(0.5)
    stats = (await strict.req("GET", "/v1/stats")).json()
    assert stats["containers"] == 0  # not even its min_warm container


async def test_an_empty_allowed_images_refuses_to_start(server_factory, tmp_path):
    from hotfn.server import StartupError

    with pytest.raises(StartupError, match="names no pattern"):
        await server_factory(allowed_images=" , ")


@pytest.mark.docker
async def test_a_missing_image_is_not_pulled(server):
    await server.create_app("p")
    # A registry name that would fail differently (connection refused) if a pull were tried.
    reply = await server.req("POST", "/v1/apps/p/routes",
                             json={"route": {"path": "/x", "image": "127.0.0.1:9/hotfn-absent:v1"}})
    assert reply.status == 400
    assert "does not pull images" in reply.json()["error"]["message"]
    assert "--allow-pull" in reply.json()["error"]["message"]


class _EngineWithoutTheImage:
    """The part of docker's APIClient that ensure_image uses; records pulls."""

    def __init__(self) -> None:
        self.pulls: list[str] = []
        self.present = False

    def inspect_image(self, image):
        if not self.present:
            raise docker.errors.ImageNotFound("no such image")
        return {"Id": "sha256:pulled"}

    def pull(self, repository, tag):
        self.pulls.append(f"{repository}:{tag}")
        self.present = True


async def test_the_driver_pulls_only_when_allowed():
    engine = _EngineWithoutTheImage()
    with pytest.raises(ImageNotFound, match="does not pull"):
        await DockerDriver(engine).ensure_image("example.org/fn:v1")
    assert engine.pulls == []
    assert await DockerDriver(engine, allow_pull=True).ensure_image("example.org/fn:v1") == "sha256:pulled"
    assert engine.pulls == ["example.org/fn:v1"]


# -- secrets --


@pytest.mark.docker
@pytest.mark.parametrize("fmt", ["hot", "default"])
async def test_a_secret_reaches_the_function_and_nothing_hotfn_shows_or_writes(server, tmp_path, caplog, fmt):
    caplog.set_level(logging.DEBUG)
    created = await server.req("POST", "/v1/apps", json={"app": {
        "name": "s", "config": {"PLAIN": "visible"}, "secrets": {"CONFORMANCE_CONFIG": APP_SECRET}}})
    assert created.status == 200 and created.json()["app"]["secrets"] == ["CONFORMANCE_CONFIG"]
    await server.create_route("s", path="/info", image=IMAGE, format=fmt)
    info = await server.call("s", "/info", b"", headers=[("x-hotfn-test", "info")])
    assert info.json()["config_value"] == APP_SECRET  # delivered like config

    # A route's secret wins over the app's (as route config does); a failing call too.
    route = await server.req("PATCH", "/v1/apps/s/routes/info",
                             json={"route": {"secrets": {"CONFORMANCE_CONFIG": ROUTE_SECRET, "OTHER": "x"}}})
    assert route.json()["route"]["secrets"] == ["CONFORMANCE_CONFIG", "OTHER"]
    info = await server.call("s", "/info", b"", headers=[("x-hotfn-test", "info")])
    assert info.json()["config_value"] == ROUTE_SECRET
    assert (await server.call("s", "/info", b"", headers=[("x-hotfn-test", "raise")])).status == 502

    answers = [created, route]
    for target in ["/v1/apps", "/v1/apps/s", "/v1/apps/s/routes", "/v1/apps/s/routes/info",
                   "/v1/apps/s/calls", "/v1/stats", "/health"]:
        answers.append(await server.req("GET", target))
    for call in (await server.req("GET", "/v1/apps/s/calls")).json()["calls"]:
        answers.append(await server.req("GET", f"/v1/apps/s/calls/{call['id']}"))
        answers.append(await server.req("GET", f"/v1/apps/s/calls/{call['id']}/log"))
    for reply in answers:
        assert APP_SECRET not in reply.body.decode() and ROUTE_SECRET not in reply.body.decode(), reply
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert APP_SECRET not in logged and ROUTE_SECRET not in logged
    db = sqlite3.connect(tmp_path / "hotfn.db")
    for table in ("calls", "logs", "call_queue"):
        dump = "\n".join(str(row) for row in db.execute(f"SELECT * FROM {table}"))
        assert APP_SECRET not in dump and ROUTE_SECRET not in dump

    # null (or "") deletes a secret; the others stay.
    patched = await server.req("PATCH", "/v1/apps/s/routes/info", json={"route": {"secrets": {"CONFORMANCE_CONFIG": None}}})
    assert patched.json()["route"]["secrets"] == ["OTHER"]
    info = await server.call("s", "/info", b"", headers=[("x-hotfn-test", "info")])
    assert info.json()["config_value"] == APP_SECRET
    patched = await server.req("PATCH", "/v1/apps/s", json={"app": {"secrets": {"CONFORMANCE_CONFIG": ""}}})
    assert patched.json()["app"]["secrets"] == []


@pytest.mark.docker
@pytest.mark.parametrize("secrets, field", [
    ({"1BAD": "x"}, "app.secrets.1BAD"),
    ({"OK": 7}, "app.secrets.OK"),
    ({"OK": "x" * 40_000}, "app.secrets.OK"),
    ({"OK": "nul\0"}, "app.secrets.OK"),
    (["OK"], "app.secrets"),
])
async def test_secrets_are_checked_like_config(server, secrets, field):
    reply = await server.req("POST", "/v1/apps", json={"app": {"name": "s", "secrets": secrets}})
    assert reply.status == 400 and reply.json()["error"]["field"] == field
    assert "x" * 100 not in reply.body.decode()  # the value is not echoed back


@pytest.mark.docker
@pytest.mark.parametrize("app, field", [
    ({"max_containers": 0}, "app.max_containers"),
    ({"max_containers": 1.5}, "app.max_containers"),
    ({"max_memory_mb": True}, "app.max_memory_mb"),
    ({"rate_limit": -1}, "app.rate_limit"),
    ({"rate_limit": "fast"}, "app.rate_limit"),
    ({"burst": 10**9}, "app.burst"),
])
async def test_quota_fields_are_checked(server, app, field):
    reply = await server.req("POST", "/v1/apps", json={"app": {"name": "q", **app}})
    assert reply.status == 400 and reply.json()["error"]["field"] == field


@pytest.mark.docker
async def test_quotas_and_secrets_read_back_from_the_store_are_checked(server, tmp_path):
    await server.req("POST", "/v1/apps", json={"app": {"name": "q", "max_containers": 2}})
    db = sqlite3.connect(tmp_path / "hotfn.db")
    with db:
        db.execute("UPDATE apps SET max_containers = -5, rate_limit = 'x', secrets = '[1]' WHERE name = 'q'")
    got = await server.req("GET", "/v1/apps/q")
    assert got.status == 200
    assert (got.json()["app"]["max_containers"], got.json()["app"]["rate_limit"], got.json()["app"]["secrets"]) == (None, None, [])


def test_switches_read_from_the_environment():
    import argparse

    from hotfn.config import Settings

    def parse(env, *args):
        parser = argparse.ArgumentParser()
        Settings.add_arguments(parser, env)
        return Settings.from_namespace(parser.parse_args(list(args)))

    assert parse({}).no_auth is False and parse({}).allow_pull is False
    assert parse({"HOTFN_NO_AUTH": "1", "HOTFN_ALLOW_PULL": "true"}).no_auth is True
    assert parse({}, "--no-auth", "--allow-pull").allow_pull is True
    assert parse({"HOTFN_ALLOWED_IMAGES": "hotfn/*"}).allowed_images == "hotfn/*"
    with pytest.raises(SystemExit):
        parse({"HOTFN_NO_AUTH": "perhaps"})
