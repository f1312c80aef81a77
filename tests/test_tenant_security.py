"""What a hostile tenant tried (issue 20), through a real server, real containers and the real
engine: image names that mean another image, another app's images, the caller's token reaching
a function, app names through paging, secrets under another spelling, quotas raised by an admin
of some apps, short JWT keys and odd JWT claims."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import time
import uuid

import jwt
import pytest
import trio

from conftest import containers_of
from test_auth import ADMIN, _start, bearer, make_token

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"
RUN = uuid.uuid4().hex[:6]  # this session's apps and image names: parallel runs share the engine


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def built_for():
    """``built_for(app)``: the conformance image tagged as `hotfn deploy --app <app>` names it;
    the tags are removed after the test (the image itself is the shared test image)."""
    tags = []

    def tag(app: str) -> str:
        name = f"hotfn-fn/{app}/echo:1"
        assert _docker("tag", IMAGE, name).returncode == 0
        tags.append(name)
        return name

    yield tag
    for name in tags:
        _docker("rmi", name)


def _image_id(image: str) -> str:
    return _docker("image", "inspect", "-f", "{{.Id}}", image).stdout.strip()


# -- 20.2: a name that means another image --


async def test_an_image_name_that_means_another_image_is_refused(server_factory, images, built_for, tmp_path):
    server = await server_factory(allowed_images="hotfn-fn/*")
    app = f"img{RUN}"
    await server.create_app(app)
    own = built_for(app)
    # As the attacker found it: hotfn-fn/../<another image> matched 'hotfn-fn/*', and the engine's
    # HTTP client resolved it to the other image, which the call then ran.
    named = await server.req("POST", f"/v1/apps/{app}/routes", json={"route": {"path": "/x", "image": IMAGE}})
    assert named.status == 400 and "--allowed-images" in named.json()["error"]["message"]
    short_id = _image_id(IMAGE).split(":")[1][:12]
    tricks = [f"hotfn-fn/../{IMAGE}:latest", f"hotfn-fn/../{IMAGE}", f"hotfn-fn/a/../../{IMAGE}",
              f"hotfn-fn/./{app}/echo:1", f"hotfn-fn//{app}/echo:1", f"hotfn-fn/{app.upper()}/echo:1",
              f"HOTFN-FN/{app}/echo:1", f"hotfn-fn/{app}/echo:1 ", f"hotfn-fn/{app}/echo:1\n",
              f"hotfn-fn/{app}/echo@sha256:{'0' * 63}", f"hotfn-fn/{app}/echo@sha256:{'A' * 64}",
              f"hotfn-fn/{app}/echo@md5:{'0' * 32}", "127.0.0.1:/hotfn-fn/x", "127.0.0.1:port/hotfn-fn/x",
              # the engine would also look these up as image ids: any tenant's image
              short_id, f"sha256:{short_id}", _image_id(IMAGE), _image_id(IMAGE).split(":")[1]]
    await server.create_route(app, path="/ok", image=own, format="hot")
    for image in tricks:
        created = await server.req("POST", f"/v1/apps/{app}/routes",
                                   json={"route": {"path": "/trick", "image": image, "format": "hot"}})
        patched = await server.req("PATCH", f"/v1/apps/{app}/routes/ok", json={"route": {"image": image}})
        for reply in (created, patched):
            assert reply.status == 400, (image, reply)
            assert reply.json()["error"]["field"] == "route.image", (image, reply)
    # Other spellings of the allowed image pass, and what runs is that image.
    for image in [f"docker.io/hotfn-fn/{app}/echo:1", f"index.docker.io/hotfn-fn/{app}/echo:1", own]:
        patched = await server.req("PATCH", f"/v1/apps/{app}/routes/ok", json={"route": {"image": image}})
        assert patched.status == 200, patched
        assert patched.json()["route"]["image_id"] == _image_id(own)
    assert (await server.call(app, "/ok", b"mine")).body == b"mine"
    routes = (await server.req("GET", f"/v1/apps/{app}/routes")).json()["routes"]
    assert [r["path"] for r in routes] == ["/ok"]
    # A host with a port is a reference like any other: held by the patterns.
    ported = await server.req("POST", f"/v1/apps/{app}/routes",
                              json={"route": {"path": "/p", "image": "127.0.0.1:5000/hotfn-fn/x:1"}})
    assert ported.status == 400 and "--allowed-images" in ported.json()["error"]["message"]


async def test_an_image_read_back_from_the_store_is_checked_again(server, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    app = f"store{RUN}"
    await server.create_app(app)
    await server.create_route(app, path="/x", image=IMAGE)
    assert (await server.call(app, "/x", b"hi")).body == b"hi"
    db = sqlite3.connect(tmp_path / "hotfn.db")
    with db:
        spec = json.loads(db.execute("SELECT spec FROM routes").fetchone()[0])
        spec["image"] = f"hotfn-fn/../{IMAGE}"
        db.execute("UPDATE routes SET spec = ?", (json.dumps(spec),))
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'routes_version'")
    with trio.fail_after(10):
        while (reply := await server.call(app, "/x", b"hi")).status != 403:
            await trio.sleep(0.1)
    assert "not a Docker image reference" in reply.json()["error"]["message"]
    assert any("its stored image is not a valid reference" in r.getMessage() for r in caplog.records)


# -- 20.3: another app's images --


async def test_an_app_cannot_run_another_apps_images_unless_an_admin_allows_it(
        server_factory, images, tmp_path, built_for):
    server = await _start(server_factory, tmp_path)
    mine, theirs = f"mine{RUN}", f"theirs{RUN}"
    admin = bearer(ADMIN)
    for name in (mine, theirs):
        assert (await server.req("POST", "/v1/apps", headers=admin, json={"app": {"name": name}})).status == 200
    their_image, my_image = built_for(theirs), built_for(mine)
    deploy = bearer((await make_token(server, "deploy", [mine]))["secret"])
    some_admin = bearer((await make_token(server, "admin", [mine]))["secret"])

    # As found: the deploy token of one app made a route with another app's image and ran it.
    for who in (deploy, some_admin, admin):
        stolen = await server.req("POST", f"/v1/apps/{mine}/routes", headers=who,
                                  json={"route": {"path": "/theirs", "image": their_image, "format": "hot"}})
        assert stolen.status == 400, stolen
        assert f"built for another app ({theirs})" in stolen.json()["error"]["message"]
    docker_io = await server.req("POST", f"/v1/apps/{mine}/routes", headers=deploy,
                                 json={"route": {"path": "/theirs", "image": f"docker.io/{their_image}"}})
    assert docker_io.status == 400
    own = await server.req("POST", f"/v1/apps/{mine}/routes", headers=deploy,
                           json={"route": {"path": "/mine", "image": my_image, "format": "hot"}})
    assert own.status == 200
    assert (await server.call(mine, "/mine", b"m")).body == b"m"
    shown = (await server.req("GET", f"/v1/apps/{mine}", headers=deploy)).json()["app"]
    assert shown["allowed_images"] is None

    # Only an admin of every app may widen (or narrow) it.
    shared = {"app": {"allowed_images": [f"hotfn-fn/{mine}/*", f"hotfn-fn/{theirs}/*"]}}
    for who in (deploy, some_admin):
        refused = await server.req("PATCH", f"/v1/apps/{mine}", headers=who, json=shared)
        assert refused.status == 403 and "app.allowed_images" in refused.json()["error"]["message"]
    allowed = await server.req("PATCH", f"/v1/apps/{mine}", headers=admin, json=shared)
    assert allowed.json()["app"]["allowed_images"] == shared["app"]["allowed_images"]
    # A deploy token may send the app back as it read it.
    echoed = await server.req("PATCH", f"/v1/apps/{mine}", headers=deploy, json={"app": allowed.json()["app"]
                                                                                   | {"secrets": {}}})
    assert echoed.status == 200, echoed
    now_ok = await server.req("POST", f"/v1/apps/{mine}/routes", headers=deploy, json={
        "route": {"path": "/theirs", "image": their_image, "format": "hot", "min_warm": 1,
                  "secrets": {"MINE_ONLY": "x"}}})
    assert now_ok.status == 200
    assert (await server.call(mine, "/theirs", b"t")).body == b"t"
    assert containers_of(server.node_id, all=False, route="/theirs")

    # Narrowed again: the stored route is kept, its calls are refused; the app's own still run.
    back = await server.req("PATCH", f"/v1/apps/{mine}", headers=admin, json={"app": {"allowed_images": None}})
    assert back.json()["app"]["allowed_images"] is None
    with trio.fail_after(10):
        while (reply := await server.call(mine, "/theirs", b"t")).status != 403:
            await trio.sleep(0.1)
    assert f"built for another app ({theirs})" in reply.json()["error"]["message"]
    assert (await server.call(mine, "/mine", b"m")).body == b"m"
    # Nor does it keep a warm container of their image holding this app's secrets.
    with trio.fail_after(30):
        while containers_of(server.node_id, all=False, route="/theirs"):
            await trio.sleep(0.2)
    for bad in ["hotfn-fn/*", ["a b"], [""], ["x,y"], [7], ["x"] * 101]:
        refused = await server.req("PATCH", f"/v1/apps/{mine}", headers=admin, json={"app": {"allowed_images": bad}})
        assert refused.status == 400 and refused.json()["error"]["field"] == "app.allowed_images", bad
    # Kept in the store: another server on it sees the same list.
    created = await server.req("POST", "/v1/apps", headers=admin,
                               json={"app": {"name": f"new{RUN}", "allowed_images": ["hotfn/*"]}})
    assert created.json()["app"]["allowed_images"] == ["hotfn/*"]
    await server_factory.stop(server)
    again = await _start(server_factory, tmp_path)
    reread = await again.req("GET", f"/v1/apps/new{RUN}", headers=admin)
    assert reread.json()["app"]["allowed_images"] == ["hotfn/*"]


async def test_two_apps_never_share_the_names_of_their_images(server):
    first = f"shared-{RUN}"
    await server.create_app(first)
    # `hotfn deploy --app` names both hotfn-fn/shared-<run>/...: each would run the other's code.
    for name in [f"shared_{RUN}", f"Shared-{RUN}", f"shared--{RUN}-"]:
        refused = await server.req("POST", "/v1/apps", json={"app": {"name": name}})
        assert refused.status == 409, (name, refused)
        assert f"hotfn-fn/shared-{RUN}/" in refused.json()["error"]["message"]
    made_by_route = await server.req("POST", f"/v1/apps/Shared_{RUN}/routes",
                                     json={"route": {"path": "/x", "image": IMAGE}})
    assert made_by_route.status == 409
    assert [a["name"] for a in (await server.req("GET", "/v1/apps")).json()["apps"]] == [first]


async def test_a_stored_allowed_images_that_cannot_be_read_runs_nothing(server, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    app = f"bad{RUN}"
    await server.create_app(app)
    await server.create_route(app, path="/x", image=IMAGE)
    db = sqlite3.connect(tmp_path / "hotfn.db")
    with db:
        db.execute("UPDATE apps SET allowed_images = ?", ('{"not": "a list"}',))
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'routes_version'")
    with trio.fail_after(10):
        while (reply := await server.call(app, "/x", b"hi")).status != 403:
            await trio.sleep(0.1)
    assert "allowed_images are ''" in reply.json()["error"]["message"]
    assert any("its stored allowed_images are invalid" in r.getMessage() for r in caplog.records)


# -- 20.4: the caller's token --


def _seen_authorization(reply) -> list[str]:
    assert reply.status == 200, reply
    return [v for k, v in reply.json()["headers"] if k.lower() == "authorization"]


async def test_no_token_of_hotfns_reaches_a_function(server_factory, images, tmp_path):
    server = await _start(server_factory, tmp_path)
    admin = bearer(ADMIN)
    app = f"hdr{RUN}"
    assert (await server.req("POST", "/v1/apps", headers=admin, json={"app": {"name": app}})).status == 200
    deploy_secret = (await make_token(server, "deploy", [app]))["secret"]
    other_secret = (await make_token(server, "invoke", ["elsewhere"]))["secret"]
    key = "k" * 32
    for path, extra in [("/none", {}), ("/jwt", {"jwt_key": key}), ("/token", {"auth": "token"})]:
        reply = await server.req("POST", f"/v1/apps/{app}/routes", headers=admin, json={
            "route": {"path": path, "image": IMAGE, "format": "hot", **extra}})
        assert reply.status == 200, reply
    info = [("x-hotfn-test", "info")]
    # As found: an admin's token sent to a route with auth "none" reached the function.
    for secret in (ADMIN, deploy_secret, other_secret):
        for value in (f"Bearer {secret}", f"bearer  {secret}", secret, f"Basic {secret}"):
            seen = _seen_authorization(await server.call(app, "/none", headers=info + [("authorization", value)]))
            assert seen == [], value
    # A credential that is not hotfn's is the function's (a webhook's own, say).
    assert _seen_authorization(await server.call(app, "/none", headers=info + [
        ("authorization", "Bearer not-a-hotfn-token")])) == ["Bearer not-a-hotfn-token"]
    # A JWT route: the JWT goes on (its claims are the function's), an API token never does.
    token = jwt.encode({"exp": int(time.time()) + 60}, key, algorithm="HS256")
    assert _seen_authorization(await server.call(app, "/jwt", headers=info + bearer(token))) == [f"Bearer {token}"]
    assert (await server.call(app, "/jwt", headers=info + bearer(ADMIN))).status == 401
    assert _seen_authorization(await server.call(app, "/token", headers=info + bearer(deploy_secret))) == []


async def test_no_token_is_stored_with_a_queued_call(server_factory, images, tmp_path):
    server = await _start(server_factory, tmp_path)
    admin = bearer(ADMIN)
    app = f"q{RUN}"
    assert (await server.req("POST", "/v1/apps", headers=admin, json={"app": {"name": app}})).status == 200
    invoke_secret = (await make_token(server, "invoke", [app]))["secret"]
    for path, auth in [("/none", "none"), ("/token", "token")]:
        reply = await server.req("POST", f"/v1/apps/{app}/routes", headers=admin, json={
            "route": {"path": path, "image": IMAGE, "format": "hot", "type": "async", "auth": auth,
                      "timeout": 60, "max_concurrency": 2}})
        assert reply.status == 200, reply
    db = sqlite3.connect(tmp_path / "hotfn.db")
    for path, secret in [("/none", ADMIN), ("/none", invoke_secret), ("/token", invoke_secret)]:
        # A call that sleeps stays in the queue table while it runs: read it there.
        queued = await server.call(app, path, b"", headers=bearer(secret) + [
            ("x-hotfn-test", "sleep"), ("x-sleep-ms", "5000")])
        assert queued.status == 202, queued
        call_id = queued.json()["call_id"]
        rows = db.execute("SELECT headers, url, query, body FROM call_queue WHERE call_id = ?",
                          (call_id,)).fetchall()
        assert len(rows) == 1
        assert secret not in json.dumps(rows[0][:3]) and "authorization" not in rows[0][0].lower()
        # And the function, once it runs, is not handed it either.
        shown = await server.call(app, path, b"", headers=bearer(secret) + [("x-hotfn-test", "info")])
        with trio.fail_after(30):
            while (call := (await server.req("GET", f"/v1/apps/{app}/calls/{shown.json()['call_id']}",
                                             headers=admin)).json()["call"])["status"] not in ("success", "error"):
                await trio.sleep(0.1)
        assert call["status"] == "success", call
        assert secret not in call["result"]
        assert not [h for h in json.loads(call["result"])["headers"] if h[0].lower() == "authorization"]
    assert not [r for r in db.execute("SELECT headers FROM call_queue").fetchall() if "uthorization" in r[0]]


async def _cli_call(server, token: str, app: str, path: str) -> subprocess.CompletedProcess:
    return await trio.run_process(
        [sys.executable, "-m", "hotfn", "--server", server.url, "--token", token,
         "call", app, path, "-H", "x-hotfn-test=info"],
        capture_stdout=True, capture_stderr=True, check=False)


async def test_the_cli_sends_its_token_only_to_a_route_that_asks_for_it(server_factory, images, tmp_path):
    open_server = await server_factory()
    app = f"cli{RUN}"
    await open_server.create_app(app)
    await open_server.create_route(app, path="/none", image=IMAGE, format="hot")
    await open_server.create_route(app, path="/token", image=IMAGE, format="hot", auth="token")
    # A token this server does not know is one it would not strip: what the function sees is
    # what the CLI sent. As found, `hotfn call` sent its token to every route.
    stranger = "cli-token-the-server-does-not-know"
    none = await _cli_call(open_server, stranger, app, "/none")
    assert none.returncode == 0, none.stderr
    headers = json.loads(none.stdout)["headers"]
    assert not [h for h in headers if h[0].lower() == "authorization"], headers
    # A route with auth "token" answers 401 without it: the CLI sends it then (this server does
    # not know it: 401 again).
    token = await _cli_call(open_server, stranger, app, "/token")
    assert token.returncode == 1 and b"[status 401" in token.stderr
    await server_factory.stop(open_server)

    # With a token the server knows, the route that asks for it gets it, and its function not.
    secured = await _start(server_factory, tmp_path)
    asked = await _cli_call(secured, ADMIN, app, "/token")
    assert asked.returncode == 0, asked.stderr
    assert not [h for h in json.loads(asked.stdout)["headers"] if h[0].lower() == "authorization"]


async def test_the_cli_sets_an_apps_allowed_images(server):
    app = f"clipol{RUN}"

    async def hotfn(*args: str) -> bytes:
        done = await trio.run_process([sys.executable, "-m", "hotfn", "--server", server.url, *args],
                                      capture_stdout=True, capture_stderr=True, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    await hotfn("apps", "create", app, "--allowed-images", f"hotfn-fn/{app}/*, hotfn/*")
    shown = json.loads(await hotfn("apps", "inspect", app, "--json"))["app"]
    assert shown["allowed_images"] == [f"hotfn-fn/{app}/*", "hotfn/*"]
    assert b"allowed_images" in await hotfn("apps", "inspect", app)
    await hotfn("apps", "update", app, "--allowed-images", "")
    assert json.loads(await hotfn("apps", "inspect", app, "--json"))["app"]["allowed_images"] is None


# -- 20.7: app names and fields through paging --


async def test_an_invoke_token_lists_only_its_apps_and_only_their_names(server_factory, images, tmp_path):
    server = await _start(server_factory, tmp_path)
    admin = bearer(ADMIN)
    names = ["a-first", "b-mine", "c-hidden", "d-hidden", "e-mine", "f-last"]
    for name in names:
        assert (await server.req("POST", "/v1/apps", headers=admin, json={"app": {
            "name": name, "config": {"DB_HOST": f"{name}.internal"}, "max_containers": 3}})).status == 200
    mine = ["b-mine", "e-mine", "z-gone"]
    for scope in ("invoke", "deploy"):
        who = bearer((await make_token(server, scope, mine))["secret"])
        seen, cursors, cursor = [], [], None
        while True:
            reply = await server.req("GET", "/v1/apps?per_page=1" + (f"&cursor={cursor}" if cursor else ""),
                                     headers=who)
            assert reply.status == 200
            page = reply.json()
            seen += page["apps"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            cursors.append(cursor)
        # As found: next_cursor came from the store's page, naming every app in turn.
        assert set(cursors) <= {"b-mine", "e-mine"}, cursors
        assert [a["name"] for a in seen] == ["b-mine", "e-mine"]
        whole = (await server.req("GET", "/v1/apps", headers=who)).json()["apps"]
        assert [a["name"] for a in whole] == ["b-mine", "e-mine"]
        for app in seen + whole:
            if scope == "invoke":  # GET /v1/apps/{app} refuses it the config and quotas
                assert set(app) == {"name", "created_at", "updated_at"}, app
            else:
                assert app["config"] == {"DB_HOST": f"{app['name']}.internal"}
    invoke = bearer((await make_token(server, "invoke", mine))["secret"])
    assert (await server.req("GET", "/v1/apps/b-mine", headers=invoke)).status == 403
    everything = (await server.req("GET", "/v1/apps?per_page=2", headers=admin)).json()
    assert [a["name"] for a in everything["apps"]] == names[:2] and everything["next_cursor"] == names[1]


# -- 20.8: secrets under another spelling --


@pytest.mark.parametrize("owner", ["app", "route"])
async def test_a_secret_under_another_spelling_replaces_the_old_one(server, owner):
    app = f"sec{owner}{RUN}"
    await server.create_app(app)
    await server.create_route(app, path="/info", image=IMAGE, format="hot")
    target = f"/v1/apps/{app}" if owner == "app" else f"/v1/apps/{app}/routes/info"

    async def patch(secrets: dict) -> list[str]:
        reply = await server.req("PATCH", target, json={owner: {"secrets": secrets}})
        assert reply.status == 200, reply
        return reply.json()[owner]["secrets"]

    async def seen() -> str | None:
        return (await server.call(app, "/info", headers=[("x-hotfn-test", "info")])).json()["config_value"]

    assert await patch({"CONFORMANCE_CONFIG": "old"}) == ["CONFORMANCE_CONFIG"]
    assert await seen() == "old"
    # As found: both spellings were kept, and deleting the new one brought the old one back.
    assert await patch({"conformance-config": "new"}) == ["conformance-config"]
    assert await seen() == "new"
    assert await patch({"conformance-config": None}) == []
    assert await seen() is None
    assert await patch({"Conformance_Config": "again"}) == ["Conformance_Config"]
    assert await patch({"CONFORMANCE-CONFIG": ""}) == []
    assert await seen() is None


# -- 20.11: quotas --


async def test_quotas_need_an_admin_of_every_app(server_factory, images, tmp_path):
    server = await _start(server_factory, tmp_path)
    admin = bearer(ADMIN)
    app = f"quota{RUN}"
    assert (await server.req("POST", "/v1/apps", headers=admin, json={"app": {
        "name": app, "max_containers": 1, "rate_limit": 1}})).status == 200
    some_admin = bearer((await make_token(server, "admin", [app]))["secret"])
    deploy = bearer((await make_token(server, "deploy", [app]))["secret"])
    for field, value in [("max_containers", 1000), ("max_memory_mb", 1 << 20), ("rate_limit", 1000),
                         ("burst", 1000), ("max_containers", None)]:
        for who in (some_admin, deploy):
            # As found: an admin token limited to the app raised its own app's quotas.
            refused = await server.req("PATCH", f"/v1/apps/{app}", headers=who, json={"app": {field: value}})
            assert refused.status == 403, (field, refused)
            assert f"only an admin token for every app may change app.{field}" in refused.json()["error"]["message"]
    shown = (await server.req("GET", f"/v1/apps/{app}", headers=some_admin)).json()["app"]
    assert (shown["max_containers"], shown["rate_limit"]) == (1, 1)
    # The rest of the app stays theirs; an app sent back as read changes no quota.
    same = await server.req("PATCH", f"/v1/apps/{app}", headers=some_admin,
                            json={"app": {"config": {"K": "v"}, "max_containers": 1, "rate_limit": 1.0}})
    assert same.status == 200 and same.json()["app"]["config"] == {"K": "v"}
    raised = await server.req("PATCH", f"/v1/apps/{app}", headers=admin, json={"app": {"max_containers": 5}})
    assert raised.status == 200 and raised.json()["app"]["max_containers"] == 5


# -- 20.12: JWT keys and claims --


async def test_a_new_jwt_key_has_at_least_32_bytes_and_a_stored_short_one_still_works(server, tmp_path):
    app = f"jwtkey{RUN}"
    await server.create_app(app)
    for key in ["k", "x" * 31, "é" * 15]:  # the last: 30 bytes in 15 characters
        reply = await server.req("POST", f"/v1/apps/{app}/routes", json={"route": {
            "path": "/j", "image": IMAGE, "jwt_key": key}})
        assert reply.status == 400 and reply.json()["error"]["field"] == "route.jwt_key", key
        assert "at least 32 bytes" in reply.json()["error"]["message"]
    await server.create_route(app, path="/j", image=IMAGE, format="hot", jwt_key="é" * 16)
    short = await server.req("PATCH", f"/v1/apps/{app}/routes/j", json={"route": {"jwt_key": "short"}})
    assert short.status == 400
    # A route stored with a short key (before this rule) keeps working; a PATCH of other fields too.
    db = sqlite3.connect(tmp_path / "hotfn.db")
    with db:
        spec = json.loads(db.execute("SELECT spec FROM routes").fetchone()[0])
        spec["jwt_key"] = "k"
        db.execute("UPDATE routes SET spec = ?", (json.dumps(spec),))
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'routes_version'")
    token = jwt.encode({"exp": int(time.time()) + 60}, "k", algorithm="HS256")
    with trio.fail_after(10):
        while (await server.call(app, "/j", b"ok", headers=bearer(token))).status != 200:
            await trio.sleep(0.1)
    assert (await server.req("PATCH", f"/v1/apps/{app}/routes/j", json={"route": {"timeout": 20}})).status == 200
    assert (await server.call(app, "/j", b"ok", headers=bearer(token))).body == b"ok"


async def test_a_jwt_with_a_string_exp_is_a_plain_401(server, caplog):
    caplog.set_level(logging.DEBUG)
    key = "a-route-key-of-thirty-two-bytes!"
    app = f"jwtexp{RUN}"
    await server.create_app(app)
    await server.create_route(app, path="/j", image=IMAGE, format="hot", jwt_key=key)
    for exp in [str(int(time.time()) + 3600), "9999999999", "soon", None, [1], {"a": 1}, True,
                int(time.time()) - 1]:
        token = jwt.encode({"exp": exp}, key, algorithm="HS256")
        for _ in range(2):
            reply = await server.call(app, "/j", b"x", headers=bearer(token))
            assert reply.status == 401, (exp, reply)
            assert "valid token is required" in reply.json()["error"]["message"]
    # As found: a string exp logged a traceback at ERROR on every call.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await server.call(app, "/j", b"x", headers=bearer(jwt.encode(
        {"exp": int(time.time()) + 60}, key, algorithm="HS256")))).body == b"x"


# -- the store keeps an app's allowed_images --


async def test_both_stores_keep_an_apps_allowed_images(store_location):
    from hotfn.models import new_app, patch_app
    from hotfn.store import open_store

    store = open_store(store_location)
    await store.create_app(new_app({"name": "a", "allowed_images": ["hotfn-fn/a/*", "hotfn/*"]}))
    await store.create_app(new_app({"name": "b"}))
    await store.close()
    store = open_store(store_location)
    assert (await store.get_app("a")).allowed_images == ("hotfn-fn/a/*", "hotfn/*")
    assert (await store.get_app("b")).allowed_images is None
    await store.update_app(patch_app(await store.get_app("a"), {"allowed_images": None}))
    await store.update_app(patch_app(await store.get_app("b"), {"allowed_images": []}))
    assert [(a.name, a.allowed_images) for a in await store.list_apps()] == [("a", None), ("b", ())]
    await store.close()


async def test_an_older_database_gets_the_column(tmp_path):
    from hotfn.models import new_app
    from hotfn.store import open_store

    path = str(tmp_path / "old.db")
    store = open_store(path)
    await store.create_app(new_app({"name": "a"}))
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE apps DROP COLUMN allowed_images")
    store = open_store(path)
    assert (await store.get_app("a")).allowed_images is None
    await store.close()
    with sqlite3.connect(path) as db:
        assert "allowed_images" in [r[1] for r in db.execute("PRAGMA table_info(apps)")]
