"""IronFunctions compatibility: the requests IronFunctions' own `fn` CLI (0.2.72) sends for each
command, and its answers checked by a strict decoder of IronFunctions' published swagger types
(tests/ironfunctions_swagger.py). No Go is needed: the requests are those its source builds
(fn/commands/apps.go, routes.go, images/deploy.go, version.go and the generated functions_go
client: a JSON body of the wrapped model, Content-Type and Accept application/json, the route
path escaped into one URL segment), written out here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ironfunctions_swagger import SwaggerMismatch, decode, decode_answer

PY = "hotfn-test/ironhttp-python"
SH = "hotfn-test/ironhttp-sh"
GO_CLIENT_HEADERS = [("content-type", "application/json"), ("accept", "application/json"),
                     ("user-agent", "Go-http-client/1.1"), ("accept-encoding", "gzip")]


# -- the decoder itself (no server) --------------------------------------------------------------


@pytest.mark.parametrize("definition, payload, says", [
    ("RouteWrapper", {"route": {"path": "/x", "timeout": 30.0}}, "$.route.timeout: an integer"),
    ("RouteWrapper", {"route": {"idle_timeout": 2.5}}, "$.route.idle_timeout: an integer"),
    ("RouteWrapper", {"route": {"headers": {"X-Foo": "bar"}}}, "$.route.headers.X-Foo: an array"),
    ("RouteWrapper", {"route": {"headers": {"X-Foo": [1]}}}, "$.route.headers.X-Foo[0]: a string"),
    ("RouteWrapper", {"route": {"max_concurrency": 2 ** 31}}, "outside int32"),
    ("RouteWrapper", {"route": {"memory": True}}, "an integer was expected, not a boolean"),
    ("RouteWrapper", {"message": "created"}, "$.route: required"),
    ("AppsWrapper", {"apps": {"name": "x"}}, "$.apps: an array"),
    ("AppWrapper", {"app": {"config": {"K": 1}}}, "$.app.config.K: a string"),
    ("Version", {"version": 1}, "$.version: a string"),
])
def test_the_decoder_refuses_what_the_go_client_cannot_read(definition, payload, says):
    with pytest.raises(SwaggerMismatch, match=says.replace("$", r"\$").replace("[", r"\[").replace("]", r"\]")):
        decode(definition, payload)


def test_the_decoder_takes_extras_and_nulls_as_go_does_and_only_documented_successes():
    decode("RouteWrapper", {"route": {"path": "/x", "timeout": 30, "min_warm": 0.5, "config": None,
                                      "headers": {"X": ["a", "b"]}}, "message": "ok"})
    with pytest.raises(SwaggerMismatch, match="status 201"):
        decode_answer("POST", "/apps", 201, {"app": {"name": "x"}})
    assert decode_answer("POST", "/apps", 409, {"error": {"message": "exists"}}) == "Error"
    assert decode_answer("DELETE", "/apps/{app}", 200, {"message": "anything"}) is None


# -- the fn CLI's requests against a real server ----------------------------------------------------


class FnCli:
    """The HTTP exchanges of `fn` commands, each answer decoded by the swagger types."""

    def __init__(self, server: Any) -> None:
        self.server = server

    async def api(self, method: str, template: str, values: dict[str, str] | None = None,
                  body: Any = None) -> tuple[int, Any]:
        path = "/version" if template == "/version" else "/v1" + template
        for name, value in (values or {}).items():
            # go-openapi escapes a path parameter into one segment: /hello is %2Fhello.
            path = path.replace("{" + name + "}", _path_escape(value))
        raw = json.dumps(body).encode() if body is not None else None
        reply = await self.server.req(method, path, raw, headers=list(GO_CLIENT_HEADERS))
        payload = json.loads(reply.body) if reply.body else None
        decode_answer(method, template, reply.status, payload)
        return reply.status, payload

    # Each method is one command, named as the CLI names it.

    async def apps_create(self, name: str, config: dict[str, str] | None = None) -> Any:
        app: dict[str, Any] = {"name": name}
        if config:
            app["config"] = config
        status, payload = await self.api("POST", "/apps", body={"app": app})
        assert status == 200, payload
        return payload["app"]

    async def apps_list(self) -> list[str]:
        status, payload = await self.api("GET", "/apps")
        assert status == 200
        return [a["name"] for a in payload["apps"]]

    async def apps_inspect(self, name: str) -> Any:
        status, payload = await self.api("GET", "/apps/{app}", {"app": name})
        assert status == 200, payload
        return payload["app"]

    async def apps_patch(self, name: str, config: dict[str, str]) -> Any:
        """apps update / config set / config unset: GET the app, change its config, PATCH it all
        back without its name; a key "-K" in ``config`` drops K from what is sent."""
        app = await self.apps_inspect(name)
        merged = dict(app.get("config") or {})
        for key, value in config.items():
            if key.startswith("-"):
                merged.pop(key[1:], None)
            else:
                merged[key] = value
        status, payload = await self.api("PATCH", "/apps/{app}", {"app": name},
                                         body={"app": {"config": merged}})
        assert status == 200, payload
        return payload["app"]

    async def apps_delete(self, name: str) -> tuple[int, Any]:
        return await self.api("DELETE", "/apps/{app}", {"app": name})

    async def routes_create(self, app: str, path: str, image: str, **flags: Any) -> Any:
        route = {"path": path, "image": image, **flags}
        status, payload = await self.api("POST", "/apps/{app}/routes", {"app": app}, body={"route": route})
        assert status == 200, payload
        return payload["route"]

    async def routes_list(self, app: str) -> list[Any]:
        status, payload = await self.api("GET", "/apps/{app}/routes", {"app": app})
        assert status == 200, payload
        return payload["routes"]

    async def routes_inspect(self, app: str, path: str) -> Any:
        status, payload = await self.api("GET", "/apps/{app}/routes/{route}", {"app": app, "route": path})
        assert status == 200, payload
        return payload["route"]

    async def routes_patch(self, app: str, path: str, **change: Any) -> Any:
        """routes update / config set / config unset: GET the route (as the Go model holds it:
        the swagger's fields only), apply the flags, PATCH the whole wrapper back without path."""
        status, got = await self.api("GET", "/apps/{app}/routes/{route}", {"app": app, "route": path})
        assert status == 200
        known = {"image", "memory", "type", "format", "max_concurrency", "config", "headers",
                 "timeout", "idle_timeout", "jwt_key"}
        route = {k: v for k, v in got["route"].items() if k in known and v not in ("", 0, None)}
        route.setdefault("config", {})
        route.setdefault("headers", {})
        for key, value in change.pop("config", {}).items():
            if key.startswith("-"):
                route["config"].pop(key[1:], None)
            else:
                route["config"][key] = value
        route["headers"].update(change.pop("headers", {}))
        route.update(change)
        got["route"] = route
        status, payload = await self.api("PATCH", "/apps/{app}/routes/{route}",
                                         {"app": app, "route": path}, body=got)
        assert status == 200, payload
        return payload["route"]

    async def routes_delete(self, app: str, path: str) -> tuple[int, Any]:
        return await self.api("DELETE", "/apps/{app}/routes/{route}", {"app": app, "route": path})

    async def routes_call(self, app: str, path: str, content: bytes | None) -> Any:
        """routes call: GET the route (decoded), then the call itself; prints the body."""
        await self.routes_inspect(app, path)
        method = "GET" if content is None else "POST"
        return await self.server.req(method, f"/r/{app}{path}", content or b"",
                                     headers=[("content-type", "application/json")])

    async def deploy(self, app: str, path: str, image: str) -> tuple[int, Any]:
        """deploy (after build and push): the older generated client's POST, zero values left
        out; the CLI fails only on a 400."""
        body = {"route": {"path": path, "image": image, "headers": {}}}
        return await self.api("POST", "/apps/{app}/routes", {"app": app}, body=body)


def _path_escape(value: str) -> str:
    import urllib.parse

    return urllib.parse.quote(value, safe="!$&'()*+,;=:@")


@pytest.mark.docker
async def test_fn_cli_apps_and_routes_commands(server):
    fn = FnCli(server)
    status, version = await fn.api("GET", "/version")
    import hotfn

    assert status == 200 and version == {"version": hotfn.__version__}

    # apps create / list / inspect / update / config set / config unset
    assert (await fn.apps_create("myapp", {"DB_URL": "postgres://x"}))["config"] == {"DB_URL": "postgres://x"}
    assert await fn.apps_list() == ["myapp"]
    assert (await fn.apps_inspect("myapp"))["name"] == "myapp"
    assert (await fn.apps_patch("myapp", {"log-level": "debug"}))["config"] == {
        "DB_URL": "postgres://x", "log-level": "debug"}
    # config unset sends the config without the key; config merges, so the key stays, as it
    # did in IronFunctions (its update merged config the same way).
    assert "log-level" in (await fn.apps_patch("myapp", {"-log-level": ""}))["config"]

    # routes create, minimal and with every flag
    plain = await fn.routes_create("myapp", "/hello", PY)
    assert (plain["timeout"], plain["idle_timeout"], plain["headers"]) == (30, 30, {})
    hot = await fn.routes_create("myapp", "/hot", SH, memory=64, type="sync", format="http",
                                 max_concurrency=2, timeout=10, idle_timeout=20,
                                 headers={"X-Foo": ["bar", "baz"]}, config={"K": "V"})
    assert (hot["format"], hot["memory"], hot["timeout"], hot["idle_timeout"]) == ("http", 64, 10, 20)
    assert hot["headers"] == {"X-Foo": ["bar", "baz"]}

    # routes list / inspect
    assert sorted(r["path"] for r in await fn.routes_list("myapp")) == ["/hello", "/hot"]
    assert (await fn.routes_inspect("myapp", "/hot"))["headers"] == {"X-Foo": ["bar", "baz"]}

    # routes update / config set / config unset
    updated = await fn.routes_patch("myapp", "/hot", timeout=15, headers={"X-Bar": ["1"]})
    assert updated["timeout"] == 15 and updated["headers"] == {"X-Foo": ["bar", "baz"], "X-Bar": ["1"]}
    assert (await fn.routes_patch("myapp", "/hot", config={"K2": "V2"}))["config"] == {"K": "V", "K2": "V2"}
    await fn.routes_patch("myapp", "/hot", config={"-K2": ""})

    # routes call, hot (format http) and cold
    called = await fn.routes_call("myapp", "/hot", b'{"name": "fn"}')
    assert called.status == 200 and called.body.startswith(b'Hello {"name": "fn"} from shell')
    assert [v for k, v in called.headers if k == "x-foo"] == ["bar", "baz"]
    cold = await fn.routes_call("myapp", "/hello", b"payload")
    assert cold.status == 200 and json.loads(cold.body)["env"]["DB_URL"] == "postgres://x"

    # routes delete, apps delete
    assert (await fn.routes_delete("myapp", "/hello"))[0] == 200
    assert (await fn.routes_delete("myapp", "/hello"))[0] == 404
    refused, error = await fn.apps_delete("myapp")  # a documented difference: 409 with routes
    assert refused == 409 and "route" in error["error"]["message"]
    assert (await fn.routes_delete("myapp", "/hot"))[0] == 200
    assert (await fn.apps_delete("myapp"))[0] == 200
    assert await fn.apps_list() == []


@pytest.mark.docker
async def test_fn_deploy_into_a_new_app_creates_it(server):
    fn = FnCli(server)
    status, payload = await fn.deploy("fresh", "/hello", PY)
    assert status == 200, payload
    assert await fn.apps_list() == ["fresh"]
    assert (await fn.routes_inspect("fresh", "/hello"))["image"] == PY
    assert (await server.call("fresh", "/hello", b"x")).status == 200
    again, error = await fn.deploy("fresh", "/hello", PY)  # as in IronFunctions: it exists
    assert again == 409 and error["error"]["message"]


@pytest.mark.docker
async def test_route_paths_spelled_as_any_client_version_sends_them(server):
    fn = FnCli(server)
    await fn.routes_create("myapp", "/users/:id", PY)
    for spelling in ("%2Fusers%2F%3Aid", "/users/:id", "//users/:id"):
        reply = await server.req("GET", f"/v1/apps/myapp/routes{'/' if spelling[0] == '%' else ''}{spelling}")
        assert reply.status == 200, (spelling, reply)
        decode("RouteWrapper", reply.json())


@pytest.mark.docker
async def test_errors_decode_as_error_bodies(server):
    fn = FnCli(server)
    await fn.apps_create("myapp")
    for method, template, values, body, status in [
        ("GET", "/apps/{app}", {"app": "nope"}, None, 404),
        ("POST", "/apps", None, {"app": {"name": "myapp"}}, 409),
        ("POST", "/apps", None, {"app": {"name": "bad name"}}, 400),
        ("GET", "/apps/{app}/routes/{route}", {"app": "myapp", "route": "/none"}, None, 404),
        ("POST", "/apps/{app}/routes", {"app": "myapp"}, {"route": {"path": "/x"}}, 400),
        ("PATCH", "/apps/{app}/routes/{route}", {"app": "myapp", "route": "/none"}, {"route": {}}, 404),
    ]:
        got, payload = await fn.api(method, template, values, body)
        assert got == status and payload["error"]["message"], (method, template, payload)


@pytest.mark.docker
async def test_what_ironfunctions_clients_cannot_read_is_only_what_hotfn_adds(server):
    """A fractional timeout (hotfn accepts one) is the one thing the client cannot decode; a
    whole one set through hotfn's own API decodes, and so does format "hot"."""
    fn = FnCli(server)
    await server.create_route("myapp", path="/hot", image=PY, format="hot", timeout=5.0, min_warm=0)
    decode("RouteWrapper", {"route": await fn.routes_inspect("myapp", "/hot")})
    await server.create_route("myapp", path="/quick", image=PY, timeout=0.5)
    with pytest.raises(SwaggerMismatch, match="timeout: an integer was expected, not a number with a fraction"):
        await fn.api("GET", "/apps/{app}/routes", {"app": "myapp"})


@pytest.mark.docker
async def test_a_route_read_and_sent_back_whole_is_accepted(server):
    """A client that PATCHes back what it read (IronFunctions ignored fields it did not know)
    may send hotfn's read-only fields too: they are ignored, not refused."""
    fn = FnCli(server)
    await fn.routes_create("myapp", "/x", PY, headers={"X-A": ["1"]})
    got = (await server.req("GET", "/v1/apps/myapp/routes/x")).json()
    del got["route"]["secrets"]  # names only in answers; a secret's value is never read back
    got["route"]["memory"] = 64
    patched = await server.req("PATCH", "/v1/apps/myapp/routes/x", json=got)
    assert patched.status == 200, patched
    assert patched.json()["route"]["memory"] == 64 and patched.json()["route"]["headers"] == {"X-A": ["1"]}
    app = (await server.req("GET", "/v1/apps/myapp")).json()
    del app["app"]["secrets"]
    assert (await server.req("PATCH", "/v1/apps/myapp", json=app)).status == 200
    unknown = await server.req("PATCH", "/v1/apps/myapp/routes/x", json={"route": {"colour": "red"}})
    assert unknown.status == 400 and unknown.json()["error"]["field"] == "route.colour"


@pytest.mark.docker
async def test_with_auth_on_only_an_admin_token_creates_an_app_by_creating_a_route(server_factory, images, tmp_path):
    admin = "admin-secret-for-the-compat-tests-0123456789"
    (tmp_path / "admin-token").write_text(admin + "\n")
    server = await server_factory(admin_token_file=str(tmp_path / "admin-token"))
    as_admin = [("authorization", f"Bearer {admin}")]
    made = await server.req("POST", "/v1/tokens", headers=as_admin,
                            json={"token": {"name": "deployer", "scope": "deploy", "apps": ["fresh"]}})
    deployer = [("authorization", f"Bearer {made.json()['token']['secret']}")]
    route = {"route": {"path": "/hello", "image": PY}}
    refused = await server.req("POST", "/v1/apps/fresh/routes", headers=deployer, json=route)
    assert refused.status == 404, refused
    assert (await server.req("GET", "/v1/apps", headers=as_admin)).json()["apps"] == []
    created = await server.req("POST", "/v1/apps/fresh/routes", headers=as_admin, json=route)
    assert created.status == 200, created
    version = await server.req("GET", "/version")  # open, as /health
    assert version.status == 200 and version.json()["version"]
