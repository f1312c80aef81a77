"""Tokens, scopes and per-route auth through a real server with real containers."""

from __future__ import annotations

import json
import sqlite3
import time

import jwt
import pytest
import trio

from hotfn.server import StartupError

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"
ADMIN = "admin-secret-for-the-tests-0123456789"


def bearer(token: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token is not None else []


async def _start(server_factory, tmp_path, **kw):
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN + "\n")
    return await server_factory(admin_token_file=str(token_file), **kw)


@pytest.fixture
async def secured(server_factory, images, tmp_path):
    return await _start(server_factory, tmp_path)


async def make_token(server, scope, apps=None, **extra) -> dict:
    reply = await server.req("POST", "/v1/tokens", headers=bearer(ADMIN), json={
        "token": {"name": f"{scope} token", "scope": scope, "apps": apps, **extra}})
    assert reply.status == 201, reply
    return reply.json()["token"]


def assert_401(reply) -> None:
    assert reply.status == 401, reply
    assert reply.header("www-authenticate") == 'Bearer realm="hotfn"'
    assert "valid token is required" in reply.json()["error"]["message"]


# -- starting --


async def test_a_network_address_without_a_token_refuses_to_start(server_factory, tmp_path, caplog):
    with pytest.raises(StartupError, match="--admin-token-file"):
        await server_factory(host="0.0.0.0")
    # --no-auth: it starts, and says the API is open.
    server = await server_factory(host="0.0.0.0", no_auth=True, db=str(tmp_path / "other.db"))
    assert any("--no-auth" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    await server_factory.stop(server)
    short = tmp_path / "short"
    short.write_text("tiny")
    with pytest.raises(StartupError, match="at least 16"):
        await server_factory(admin_token_file=str(short))
    with pytest.raises(StartupError, match="cannot read"):
        await server_factory(admin_token_file=str(tmp_path / "absent"))
    with pytest.raises(StartupError, match="contradict"):
        await server_factory(admin_token_file=str(short), no_auth=True)


async def test_loopback_without_a_token_stays_open(server):
    assert (await server.req("POST", "/v1/apps", json={"app": {"name": "open"}})).status == 200
    assert (await server.req("GET", "/v1/tokens")).status == 200
    assert "pools" in (await server.req("GET", "/health")).json()


# -- scopes --


async def test_every_endpoint_class_with_each_scope(secured):
    s = secured
    assert (await s.req("POST", "/v1/apps", headers=bearer(ADMIN), json={"app": {"name": "a"}})).status == 200
    assert (await s.req("POST", "/v1/apps", headers=bearer(ADMIN), json={"app": {"name": "b"}})).status == 200
    tokens = {
        "admin": ADMIN,
        "deploy-a": (await make_token(s, "deploy", ["a"]))["secret"],
        "deploy-b": (await make_token(s, "deploy", ["b"]))["secret"],
        "invoke-a": (await make_token(s, "invoke", ["a"]))["secret"],
        "none": None,
        "bad": "not-a-token-at-all",
    }
    route = {"route": {"path": "/open", "image": IMAGE, "format": "hot"}}
    assert (await s.req("POST", "/v1/apps/a/routes", headers=bearer(tokens["deploy-a"]), json=route)).status == 200
    guarded = {"route": {"path": "/guarded", "image": IMAGE, "format": "hot", "auth": "token"}}
    assert (await s.req("POST", "/v1/apps/a/routes", headers=bearer(ADMIN), json=guarded)).status == 200
    call = await s.req("POST", "/r/a/open", b"x")
    assert call.status == 200
    call_id = call.header("hotfn-call-id")

    # (method, target, body) -> expected status per token; 401 for none and bad everywhere.
    cases = [
        (("GET", "/v1/apps", None), {"admin": 200, "deploy-a": 200, "deploy-b": 200, "invoke-a": 200}),
        (("POST", "/v1/apps", {"app": {"name": "c"}}), {"admin": 200, "deploy-a": 403, "deploy-b": 403, "invoke-a": 403}),
        (("GET", "/v1/apps/a", None), {"admin": 200, "deploy-a": 200, "deploy-b": 403, "invoke-a": 403}),
        (("PATCH", "/v1/apps/a", {"app": {"config": {"K": "v"}}}), {"admin": 200, "deploy-a": 200, "deploy-b": 403, "invoke-a": 403}),
        (("PATCH", "/v1/apps/a", {"app": {"rate_limit": 1000}}), {"admin": 200, "deploy-a": 403, "deploy-b": 403, "invoke-a": 403}),
        (("DELETE", "/v1/apps/c", None), {"admin": 200, "deploy-a": 403, "deploy-b": 403, "invoke-a": 403}),
        (("GET", "/v1/apps/a/routes", None), {"admin": 200, "deploy-a": 200, "deploy-b": 403, "invoke-a": 403}),
        (("POST", "/v1/apps/a/routes", {"route": {"path": "/new", "image": IMAGE}}), {"admin": 409, "deploy-a": 200, "deploy-b": 403, "invoke-a": 403}),
        (("GET", "/v1/apps/a/routes/open", None), {"admin": 200, "deploy-a": 200, "deploy-b": 403, "invoke-a": 403}),
        (("PATCH", "/v1/apps/a/routes/open", {"route": {"timeout": 20}}), {"admin": 200, "deploy-a": 200, "deploy-b": 403, "invoke-a": 403}),
        (("GET", "/v1/apps/a/calls", None), {"admin": 200, "deploy-a": 200, "deploy-b": 403, "invoke-a": 200}),
        (("GET", f"/v1/apps/a/calls/{call_id}", None), {"admin": 200, "deploy-a": 200, "deploy-b": 403, "invoke-a": 200}),
        (("GET", f"/v1/apps/a/calls/{call_id}/log", None), {"admin": 200, "deploy-a": 200, "deploy-b": 403, "invoke-a": 403}),
        (("GET", "/v1/stats", None), {"admin": 200, "deploy-a": 403, "deploy-b": 403, "invoke-a": 403}),
        (("GET", "/v1/tokens", None), {"admin": 200, "deploy-a": 403, "deploy-b": 403, "invoke-a": 403}),
        (("POST", "/v1/tokens", {"token": {"scope": "admin"}}), {"admin": 201, "deploy-a": 403, "deploy-b": 403, "invoke-a": 403}),
        (("DELETE", "/v1/tokens/tok_nosuchtoken", None), {"admin": 404, "deploy-a": 403, "deploy-b": 403, "invoke-a": 403}),
        (("DELETE", "/v1/apps/a/routes/new", None), {"admin": 404, "deploy-a": 200, "deploy-b": 403, "invoke-a": 403}),
    ]
    for (method, target, body), expected in cases:
        for who in ("none", "bad"):
            reply = await s.req(method, target, headers=bearer(tokens[who]), json=body)
            assert_401(reply)
        # deploy-a goes before admin: admin's create or delete would change what deploy-a sees.
        for who in ("deploy-b", "invoke-a", "deploy-a", "admin"):
            reply = await s.req(method, target, headers=bearer(tokens[who]), json=body)
            assert reply.status == expected[who], (method, target, who, reply)
            if reply.status == 403:
                assert "does not allow" in reply.json()["error"]["message"] or "only an admin" in reply.json()["error"]["message"]

    # Each token lists the apps it covers.
    names = lambda r: [a["name"] for a in r.json()["apps"]]  # noqa: E731
    assert names(await s.req("GET", "/v1/apps", headers=bearer(tokens["deploy-b"]))) == ["b"]
    assert names(await s.req("GET", "/v1/apps", headers=bearer(ADMIN))) == ["a", "b"]
    # /health is open, and names no app with auth on.
    health = await s.req("GET", "/health")
    assert health.status == 200 and "pools" not in health.json()

    # Invocation: a public route needs nothing; a token route an invoke (or wider) token of its app.
    assert (await s.req("POST", "/r/a/open", b"x")).status == 200
    assert_401(await s.req("POST", "/r/a/guarded", b"x"))
    assert_401(await s.req("POST", "/r/a/guarded", b"x", headers=bearer("bad")))
    assert_401(await s.req("POST", "/r/a/guarded", b"x", headers=[("authorization", "Basic YTpi")]))
    assert (await s.req("POST", "/r/a/guarded", b"x", headers=bearer(tokens["deploy-b"]))).status == 403
    for who in ("invoke-a", "deploy-a", "admin"):
        reply = await s.req("POST", "/r/a/guarded", b"x", headers=bearer(tokens[who]) + [("x-hotfn-test", "info")])
        assert reply.status == 200, (who, reply)
        # The token was for hotfn: the function never sees it.
        assert "authorization" not in [k for k, _ in reply.json()["headers"]]


async def test_a_revoked_token_fails_on_every_node(server_factory, images, tmp_path):
    one = await _start(server_factory, tmp_path)
    two = await _start(server_factory, tmp_path)  # the same store, another node
    token = await make_token(one, "deploy")
    assert (await two.req("GET", "/v1/apps", headers=bearer(token["secret"]))).status == 200
    listed = await one.req("GET", "/v1/tokens", headers=bearer(ADMIN))
    assert [t["id"] for t in listed.json()["tokens"]] == [token["id"]]
    assert token["secret"] not in listed.body.decode() and "secret" not in listed.json()["tokens"][0]
    assert (await one.req("DELETE", f"/v1/tokens/{token['id']}", headers=bearer(ADMIN))).status == 200
    assert_401(await one.req("GET", "/v1/apps", headers=bearer(token["secret"])))
    # The other node within a second (its tokens are cached; tests/test_token_cache.py).
    revoked = trio.current_time()
    while True:
        sent = trio.current_time()
        reply = await two.req("GET", "/v1/apps", headers=bearer(token["secret"]))
        if reply.status != 200:
            break
        assert sent - revoked < 1.0, "a request sent a second after the revoke was let in"
    assert_401(reply)
    # The store keeps a hash of the secret, never the secret.
    db = sqlite3.connect(tmp_path / "hotfn.db")
    dump = "\n".join(db.iterdump())
    assert token["secret"] not in dump and ADMIN not in dump


async def test_an_expired_token_is_refused(secured):
    token = await make_token(secured, "admin", expires_at=time.time() + 1.5)
    assert (await secured.req("GET", "/v1/apps", headers=bearer(token["secret"]))).status == 200
    await trio.sleep(1.6)
    assert_401(await secured.req("GET", "/v1/apps", headers=bearer(token["secret"])))


@pytest.mark.parametrize("token, field", [
    ({"scope": "root"}, "token.scope"),
    ({}, "token.scope"),
    ({"scope": "invoke", "apps": "a"}, "token.apps"),
    ({"scope": "invoke", "apps": [1]}, "token.apps"),
    ({"scope": "invoke", "apps": ["no such/app"]}, "token.apps"),
    ({"scope": "invoke", "expires_at": 1}, "token.expires_at"),
    ({"scope": "invoke", "expires_at": "tomorrow"}, "token.expires_at"),
    ({"scope": "invoke", "expires_at": True}, "token.expires_at"),
    ({"scope": "invoke", "name": "x" * 1000}, "token.name"),
    ({"scope": "invoke", "name": 7}, "token.name"),
    ({"scope": "invoke", "colour": "red"}, "token.colour"),
    ({"scope": "invoke", "name": "tab\there"}, "token.name"),
    ({"scope": "invoke", "apps": [f"app{i}" for i in range(1001)]}, "token.apps"),
    ({"scope": "invoke", "expires_at": 1e300}, "token.expires_at"),
])
async def test_token_fields_are_checked(secured, token, field):
    reply = await secured.req("POST", "/v1/tokens", headers=bearer(ADMIN), json={"token": token})
    assert reply.status == 400, reply
    assert reply.json()["error"]["field"] == field


async def test_hostile_bearer_values_are_a_401(secured):
    for value in ["Bearer", "bearer " + "x" * 5000, "Bearer \u00e9\u00e9",
                  "Token abc", "Bearer a b c"]:
        reply = await secured.req("GET", "/v1/apps", headers=[("authorization", value)])
        assert reply.status == 401, (value, reply)
    two = await secured.req("GET", "/v1/apps", headers=bearer(ADMIN) + bearer(ADMIN))
    assert two.status == 401


async def test_a_bad_token_in_the_store_is_refused_not_a_crash(secured, tmp_path):
    token = await make_token(secured, "invoke")
    db = sqlite3.connect(tmp_path / "hotfn.db")
    with db:
        db.execute("UPDATE tokens SET scope = 'root', apps = 'not json' WHERE id = ?", (token["id"],))
    assert_401(await secured.req("GET", "/v1/apps", headers=bearer(token["secret"])))
    listed = await secured.req("GET", "/v1/tokens", headers=bearer(ADMIN))
    assert listed.status == 200 and listed.json()["tokens"] == []


# -- JWT routes (IronFunctions) --


def _jwt(key: str, exp_in: float | None = 60, alg: str = "HS256") -> str:
    claims = {"sub": "tester"}
    if exp_in is not None:
        claims["exp"] = int(time.time() + exp_in)
    return jwt.encode(claims, key, algorithm=alg)


async def test_a_jwt_route(server):
    key = "a-route-key-of-thirty-two-bytes!"
    await server.create_app("j")
    created = await server.create_route("j", path="/jwt", image=IMAGE, format="hot", jwt_key=key)
    route = created.json()["route"]
    # A key without auth means auth "jwt" (IronFunctions); the key itself is never shown.
    assert route["auth"] == "jwt" and route["jwt_key_set"] is True and "jwt_key" not in route
    for reply in [created, await server.req("GET", "/v1/apps/j/routes"),
                  await server.req("GET", "/v1/apps/j/routes/jwt")]:
        assert key not in reply.body.decode()

    ok = await server.call("j", "/jwt", b"hi", headers=bearer(_jwt(key)))
    assert ok.status == 200 and ok.body == b"hi"
    unsigned = jwt.encode({"exp": int(time.time() + 60)}, None, algorithm="none")
    for token in [None, _jwt(key, exp_in=-10), _jwt("another-key-of-thirty-two-bytes!!"),
                  _jwt(key, exp_in=None), "not.a.jwt", "a.b", "\u00e9" * 10, unsigned,
                  _jwt(key * 2, alg="HS512")]:
        reply = await server.call("j", "/jwt", b"hi", headers=bearer(token))
        assert_401(reply)
    # A refused call is not a call: no record.
    calls = (await server.req("GET", "/v1/apps/j/calls")).json()["calls"]
    assert len(calls) == 1

    # Removing the key makes the route public again (IronFunctions); auth "jwt" needs a key.
    bad = await server.req("PATCH", "/v1/apps/j/routes/jwt", json={"route": {"auth": "jwt", "jwt_key": ""}})
    assert bad.status == 400 and bad.json()["error"]["field"] == "route.jwt_key"
    bad = await server.req("PATCH", "/v1/apps/j/routes/jwt", json={"route": {"auth": "token", "jwt_key": "k"}})
    assert bad.status == 400 and bad.json()["error"]["field"] == "route.jwt_key"
    public = await server.req("PATCH", "/v1/apps/j/routes/jwt", json={"route": {"jwt_key": None}})
    assert public.json()["route"]["auth"] == "none" and public.json()["route"]["jwt_key_set"] is False
    assert (await server.call("j", "/jwt", b"hi")).status == 200
    for value in [7, "x" * 5000, "nul\0"]:
        bad = await server.req("PATCH", "/v1/apps/j/routes/jwt", json={"route": {"jwt_key": value}})
        assert bad.status == 400 and bad.json()["error"]["field"] == "route.jwt_key"
    bad = await server.req("PATCH", "/v1/apps/j/routes/jwt", json={"route": {"auth": "basic"}})
    assert bad.status == 400 and bad.json()["error"]["field"] == "route.auth"


async def test_a_route_with_a_stored_auth_it_cannot_trust_refuses_every_call(server, tmp_path):
    await server.create_app("j")
    await server.create_route("j", path="/x", image=IMAGE)
    db = sqlite3.connect(tmp_path / "hotfn.db")
    with db:
        spec = json.loads(db.execute("SELECT spec FROM routes").fetchone()[0])
        spec["auth"] = "sometimes"
        db.execute("UPDATE routes SET spec = ?", (json.dumps(spec),))
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'routes_version'")
    with trio.fail_after(10):
        while (await server.call("j", "/x", b"")).status != 401:
            await trio.sleep(0.2)


async def test_a_verified_jwt_stays_checked_against_its_exp():
    from hotfn.access import AuthError, Authenticator

    now = [time.time()]
    auth = Authenticator(None, admin_token=None, enabled=False, clock=lambda: now[0])
    key = "a-route-key-of-thirty-two-bytes!"
    token = bearer(_jwt(key, exp_in=10))
    await auth.check_route(token, "j", "jwt", key)
    await auth.check_route(token, "j", "jwt", key)  # from the cache
    with pytest.raises(AuthError):
        await auth.check_route(token, "j", "jwt", "another-key-of-thirty-two-bytes!!")
    now[0] += 11
    with pytest.raises(AuthError) as refused:
        await auth.check_route(token, "j", "jwt", key)
    assert refused.value.status == 401
