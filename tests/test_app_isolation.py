"""An app's isolation (issue 21.13d): an admin puts a tenant in gVisor whole; each of its routes
runs there, whatever the route says (a route may ask for more than its app, never for less),
and only an admin may set it."""

from __future__ import annotations

import os
import sys

import pytest
import trio

pytestmark = pytest.mark.docker
PROBE = "hotfn-test/probe"
ADMIN = "admin-secret-for-the-tests-0123456789"


async def probe(server, app: str, path: str) -> dict:
    reply = await server.call(app, path, method="GET")
    assert reply.status == 200, reply
    return reply.json()


def under_gvisor(seen: dict) -> bool:
    """gVisor's kernel says so in its dmesg, where it can be read, and is not the host's."""
    return "Starting gVisor" in seen["dmesg"] or os.uname().release not in seen["kernel"]


async def test_an_app_in_gvisor_runs_every_route_there(server_factory, images, gvisor, tmp_path):
    db = str(tmp_path / "isolation.db")
    server = await server_factory(db=db)
    reply = await server.req("POST", "/v1/apps", json={"app": {"name": "tenant", "isolation": "gvisor"}})
    assert reply.status == 200 and reply.json()["app"]["isolation"] == "gvisor", reply
    await server.create_app("other")
    # No isolation of its own, and one that asks for less than its app: both run in gVisor.
    await server.create_route("tenant", path="/hot", image=PROBE, format="hot")
    await server.create_route("tenant", path="/cold", image=PROBE, format="default", isolation="container")
    await server.create_route("other", path="/hot", image=PROBE, format="hot")
    assert under_gvisor(await probe(server, "tenant", "/hot"))
    assert under_gvisor(await probe(server, "tenant", "/cold"))
    assert not under_gvisor(await probe(server, "other", "/hot"))
    # The route keeps what it said; the app says what it runs under at least.
    route = (await server.req("GET", "/v1/apps/tenant/routes/cold")).json()["route"]
    assert route["isolation"] == "container"

    # Out of gVisor again: the warm container is retired, the next runs on runc.
    reply = await server.req("PATCH", "/v1/apps/tenant", json={"app": {"isolation": "container"}})
    assert reply.status == 200 and reply.json()["app"]["isolation"] == "container", reply
    with trio.fail_after(30):
        while not (seen := await probe(server, "tenant", "/hot")) or under_gvisor(seen):
            await trio.sleep(0.1)
    # And in again; a route's own gVisor stays whatever the app says.
    await server.create_route("tenant", path="/own", image=PROBE, format="hot", isolation="gvisor")
    assert under_gvisor(await probe(server, "tenant", "/own"))
    reply = await server.req("PATCH", "/v1/apps/tenant", json={"app": {"isolation": "gvisor"}})
    assert reply.status == 200, reply
    with trio.fail_after(30):
        while not under_gvisor(await probe(server, "tenant", "/hot")):
            await trio.sleep(0.1)

    # Stored: a restart on the same store keeps the app in gVisor.
    await server_factory.stop(server)
    again = await server_factory(db=db)
    assert (await again.req("GET", "/v1/apps/tenant")).json()["app"]["isolation"] == "gvisor"
    assert under_gvisor(await probe(again, "tenant", "/hot"))
    assert not under_gvisor(await probe(again, "other", "/hot"))


@pytest.mark.parametrize("value", ["kata", "", None, True, 1, "GVISOR", ["gvisor"]])
async def test_a_bad_app_isolation_is_a_400_naming_the_field(server, value):
    reply = await server.req("POST", "/v1/apps", json={"app": {"name": "a", "isolation": value}})
    assert reply.status == 400, reply
    assert reply.json()["error"]["field"] == "app.isolation", reply
    await server.create_app("a")
    reply = await server.req("PATCH", "/v1/apps/a", json={"app": {"isolation": value}})
    assert reply.status == 400 and reply.json()["error"]["field"] == "app.isolation", reply
    assert (await server.req("GET", "/v1/apps/a")).json()["app"]["isolation"] == "container"


async def test_only_an_admin_may_set_an_apps_isolation(server_factory, images, gvisor, tmp_path):
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN + "\n")
    server = await server_factory(admin_token_file=str(token_file))
    admin = [("authorization", f"Bearer {ADMIN}")]
    assert (await server.req("POST", "/v1/apps", headers=admin, json={"app": {"name": "shop"}})).status == 200
    reply = await server.req("POST", "/v1/tokens", headers=admin, json={
        "token": {"name": "shop CI", "scope": "deploy", "apps": ["shop"]}})
    deploy = [("authorization", f"Bearer {reply.json()['token']['secret']}")]
    # A tenant's deploy token changes its app's config, but not the walls it runs behind.
    assert (await server.req("PATCH", "/v1/apps/shop", headers=deploy,
                             json={"app": {"config": {"A": "1"}}})).status == 200
    refused = await server.req("PATCH", "/v1/apps/shop", headers=deploy,
                               json={"app": {"isolation": "gvisor"}})
    assert refused.status == 403 and "app.isolation" in refused.json()["error"]["message"], refused
    done = await server.req("PATCH", "/v1/apps/shop", headers=admin, json={"app": {"isolation": "gvisor"}})
    assert done.status == 200 and done.json()["app"]["isolation"] == "gvisor", done
    # A tenant's token sees it, and cannot take it back off.
    assert (await server.req("GET", "/v1/apps/shop", headers=deploy)).json()["app"]["isolation"] == "gvisor"
    refused = await server.req("PATCH", "/v1/apps/shop", headers=deploy,
                               json={"app": {"isolation": "container"}})
    assert refused.status == 403 and "app.isolation" in refused.json()["error"]["message"], refused
    # The app sent back as it was read changes no wall: that much a tenant may do.
    same = await server.req("PATCH", "/v1/apps/shop", headers=deploy,
                            json={"app": {"isolation": "gvisor", "config": {"A": "2"}}})
    assert same.status == 200 and same.json()["app"]["isolation"] == "gvisor", same


async def test_the_cli_sets_an_apps_isolation(server, gvisor):
    async def hotfn(*args: str):
        return await trio.run_process([sys.executable, "-m", "hotfn", "--server", server.url, *args],
                                      capture_stdout=True, capture_stderr=True, check=False)

    created = await hotfn("apps", "create", "cli-app", "--isolation", "gvisor")
    assert created.returncode == 0, created.stderr
    assert (await server.req("GET", "/v1/apps/cli-app")).json()["app"]["isolation"] == "gvisor"
    updated = await hotfn("apps", "update", "cli-app", "--isolation", "container")
    assert updated.returncode == 0, updated.stderr
    assert (await server.req("GET", "/v1/apps/cli-app")).json()["app"]["isolation"] == "container"


async def test_gvisor_for_an_app_on_an_engine_without_it_is_a_400(server, monkeypatch):
    async def unavailable(isolation: str) -> bool:
        return isolation == "container"

    monkeypatch.setattr(server.server._driver, "isolation_available", unavailable)
    reply = await server.req("POST", "/v1/apps", json={"app": {"name": "a", "isolation": "gvisor"}})
    assert reply.status == 400 and reply.json()["error"]["field"] == "app.isolation", reply
    assert "ensure-sandbox" in reply.json()["error"]["message"]
    await server.create_app("a")
    reply = await server.req("PATCH", "/v1/apps/a", json={"app": {"isolation": "gvisor"}})
    assert reply.status == 400 and reply.json()["error"]["field"] == "app.isolation", reply


@pytest.mark.parametrize("stored", ["kata", None, 7, ""])
def test_an_isolation_the_store_gives_back_damaged_fails_closed(stored, caplog):
    from hotfn.models import app_from_record

    app = app_from_record({"name": "tenant", "config": {}, "isolation": stored})
    assert app.isolation == "gvisor"
    assert "stored isolation" in caplog.text
    assert app_from_record({"name": "old", "config": {}}).isolation == "container"  # an older row
