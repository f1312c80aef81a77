"""What a browser may do to hotfn (hotfn/api/browsers.py, hotfn/api/sessions.py), tested the way
the attacks were made (issue 20, items 1 and 5):

- a tenant's function answers a page whose script goes for the admin's dashboard credentials
  and POSTs /v1/tokens, opened by an admin who has used /ui/ in the same chromium;
- a page of another origin (a second loopback address) makes a visitor's chromium create an
  app and a route on a server without auth, by fetch and by an HTML form;
- a page whose own name resolves to the server (DNS rebinding, simulated by chromium's
  --host-resolver-rules) uses the API as its own origin;

and each rule over plain HTTP: the Host names a server without auth answers, the Origins the
API takes, JSON for writes, the sandbox on function answers, the session cookie.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import shutil
import socket
import threading
import time

import pytest
import trio

from conftest import FUNCTIONS
from test_auth import ADMIN, _start, bearer, make_token

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"
PAGE_IMAGE = "hotfn-test/htmlpage"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JSON = [("content-type", "application/json")]


@pytest.fixture(scope="module")
def page_image(docker_engine) -> str:
    from hotfn.functions import build_function

    return build_function(str(FUNCTIONS / "htmlpage"), tag=PAGE_IMAGE)


def _need_chromium() -> None:
    if shutil.which("chromium") is None:
        pytest.fail("no chromium: run scripts/ensure-browser (scripts/test does it)")


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _apps(server, headers=()) -> list[str]:
    reply = await server.req("GET", "/v1/apps", headers=list(headers))
    assert reply.status == 200, reply
    return [a["name"] for a in reply.json()["apps"]]


# -- 20.1: a function's page and the dashboard's credentials --------------------------------------

# The attacker's function: everything its page's script can try for a credential of the API.
STEAL = """<!doctype html><title>cat pictures</title><body><script>
(async () => {
  const report = {};
  const body = JSON.stringify({token: {name: "stolen", scope: "admin"}});
  try { report.stored = localStorage.getItem("hotfn.token"); } catch (e) { report.stored = "denied: " + e.name; }
  try { report.session_storage = JSON.stringify(Object.assign({}, sessionStorage)); }
  catch (e) { report.session_storage = "denied: " + e.name; }
  try { report.cookie = document.cookie; } catch (e) { report.cookie = "denied: " + e.name; }
  const stolen = report.stored && !report.stored.startsWith("denied") ? report.stored : null;
  async function attempt(name, path, init) {
    try {
      const reply = await fetch(path, init);
      report[name] = reply.status + " " + (await reply.text()).slice(0, 300);
    } catch (e) { report[name] = "blocked: " + e.name; }
  }
  const auth = stolen ? {authorization: "Bearer " + stolen} : {};
  await attempt("json", "/v1/tokens", {method: "POST", credentials: "include", body,
                                       headers: {"content-type": "application/json", ...auth}});
  await attempt("plain", "/v1/tokens", {method: "POST", credentials: "include", body,
                                        headers: {"content-type": "text/plain"}});
  await attempt("no_cors", "/v1/tokens", {method: "POST", mode: "no-cors", credentials: "include", body});
  await attempt("read", "/v1/tokens", {credentials: "include"});
  document.body.dataset.report = JSON.stringify(report);
})();
</script>"""


def _attack_as_admin(url: str, profile: pathlib.Path, token: str) -> tuple[dict, dict]:
    """An admin signs in to the dashboard, then opens the attacker's link; the dashboard is
    used again after. (What the attacker's page saw, what the dashboard's page holds.)"""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/ui/")
            expect(page.locator("#status")).to_contain_text("wants a token", timeout=10_000)
            page.fill("#token", token)
            page.click("#token-form button[type=submit]")
            card = page.locator('[data-route="shop/hello"]')
            expect(card).to_be_visible(timeout=10_000)
            expect(page.locator("#status")).to_contain_text("live", timeout=10_000)
            assert errors == [], errors

            # The link the attacker sent.
            page.goto(f"{url}/r/evil/page")
            page.wait_for_function("document.body && document.body.dataset.report",
                                   timeout=20_000)
            report = json.loads(page.evaluate("document.body.dataset.report"))

            # The dashboard still works, without entering the token again, and its page holds
            # nothing a script could take.
            page.goto(f"{url}/ui/")
            expect(card).to_be_visible(timeout=10_000)
            expect(page.locator("#status")).to_contain_text("live", timeout=10_000)
            expect(card.locator(".pool")).to_contain_text("warm")
            held = page.evaluate("""() => ({
                local: JSON.stringify(Object.assign({}, localStorage)),
                session: JSON.stringify(Object.assign({}, sessionStorage)),
                cookie: document.cookie})""")
            cookies = {c["name"]: c for c in context.cookies(f"{url}/v1/apps")}
            held["cookie_flags"] = {k: cookies["hotfn_session"].get(k) for k in
                                    ("httpOnly", "sameSite", "path")} if "hotfn_session" in cookies else None
            return report, held
        finally:
            context.close()


async def test_a_function_page_cannot_take_the_dashboards_credentials(
        server_factory, images, page_image, tmp_path):
    _need_chromium()
    server = await _start(server_factory, tmp_path)
    admin = bearer(ADMIN)
    for app, route in [("shop", {"path": "/hello", "image": IMAGE, "format": "hot", "min_warm": 1}),
                       ("evil", {"path": "/page", "image": page_image, "format": "hot"})]:
        assert (await server.req("POST", f"/v1/apps/{app}/routes", headers=admin,
                                 json={"route": route})).status == 200
    assert (await server.req("PATCH", "/v1/apps/evil", headers=admin,
                             json={"app": {"config": {"PAGE": STEAL}}})).status == 200

    report, held = await trio.to_thread.run_sync(
        _attack_as_admin, server.url, tmp_path / "chromium-profile", ADMIN)

    print("what the function's page got:", report)
    tokens = (await server.req("GET", "/v1/tokens", headers=admin)).json()["tokens"]
    assert [t for t in tokens if t["name"] == "stolen"] == [], (report, tokens)
    # The page ran (its script wrote its report) in an origin of its own: no storage, no
    # cookie, and the API refused or the browser blocked every request it made.
    assert report["stored"].startswith("denied") and report["cookie"].startswith("denied"), report
    assert report["json"].startswith("blocked"), report  # preflight: never granted
    assert report["plain"].startswith(("blocked", "403", "415")), report
    assert report["no_cors"] == "0 ", report  # sent blind, and refused (no token made)
    assert report["read"].startswith(("blocked", "403")), report
    # The dashboard's page keeps no credential a script can read.
    assert ADMIN not in json.dumps(held), held
    assert "hotfn_session" not in held["cookie"], held
    assert held["cookie_flags"] == {"httpOnly": True, "sameSite": "Strict", "path": "/v1/"}, held


async def test_function_answers_are_sandboxed_and_cannot_set_the_session(server_factory, page_image):
    server = await server_factory(domain="fn.example")
    await server.create_app("evil", config={"SET_COOKIE": "hotfn_session=planted; Path=/v1/",
                                            "CLEAR_SITE_DATA": '"cookies"'})
    await server.create_route("evil", path="/page", image=page_image, format="hot")
    by_path = await server.req("GET", "/r/evil/page")
    assert by_path.status == 200, by_path
    policy = by_path.header("content-security-policy")
    assert policy.startswith("sandbox ") and "allow-scripts" in policy, policy
    assert "allow-same-origin" not in policy
    assert by_path.header("set-cookie") is None and by_path.header("clear-site-data") is None
    # On the app's own host the page has an origin of its own: no sandbox, still no session.
    by_host = await server.req("GET", "/page", headers=[("host", "evil.fn.example")])
    assert by_host.status == 200, by_host
    assert by_host.header("content-security-policy") is None
    assert by_host.header("set-cookie") is None and by_host.header("clear-site-data") is None
    # A function's other cookies are its business.
    await server.req("PATCH", "/v1/apps/evil", json={"app": {"config": {"SET_COOKIE": "cart=1"}}})
    deadline = time.monotonic() + 10
    while (await server.req("GET", "/r/evil/page")).header("set-cookie") != "cart=1":
        assert time.monotonic() < deadline, "the route never took its new config"
        await trio.sleep(0.1)


async def test_no_function_gets_the_dashboards_session_cookie(server):
    await server.create_app("shop")
    await server.create_route("shop", path="/info", image=IMAGE, format="hot")
    reply = await server.call("shop", "/info", headers=[
        ("x-hotfn-test", "info"), ("cookie", "cart=1; hotfn_session=s3cret; theme=dark")])
    assert reply.status == 200, reply
    cookies = [v for k, v in reply.json()["headers"] if k == "cookie"]
    assert cookies == ["cart=1; theme=dark"], reply.json()["headers"]
    reply = await server.call("shop", "/info", headers=[
        ("x-hotfn-test", "info"), ("cookie", "hotfn_session=s3cret")])
    assert "s3cret" not in reply.body.decode(), reply


def _cookie_of(reply) -> tuple[str, str]:
    set_cookie = reply.header("set-cookie")
    assert set_cookie, reply
    value = set_cookie.split(";")[0].split("=", 1)[1]
    return value, set_cookie


async def test_a_session_is_a_short_lived_read_only_stand_in_for_its_token(
        server_factory, images, tmp_path):
    server = await _start(server_factory, tmp_path, session_lifetime=3.0)
    own = [("origin", server.url)]
    admin = bearer(ADMIN)
    assert (await server.req("POST", "/v1/apps", headers=admin, json={"app": {"name": "shop"}})).status == 200
    assert (await server.req("POST", "/v1/apps/shop/routes", headers=admin, json={
        "route": {"path": "/guarded", "image": IMAGE, "auth": "token"}})).status == 200

    # Only for a token, in its Authorization header, and as JSON.
    assert (await server.req("POST", "/v1/sessions", b"{}", headers=JSON + own)).status == 401
    assert (await server.req("POST", "/v1/sessions", b"{}", headers=admin + own)).status == 415
    reply = await server.req("POST", "/v1/sessions", b"{}", headers=admin + JSON + own)
    assert reply.status == 201, reply
    secret, set_cookie = _cookie_of(reply)
    assert set_cookie.startswith("hotfn_session=") and ADMIN not in set_cookie
    for attribute in ("Path=/v1/", "Max-Age=3", "HttpOnly", "SameSite=Strict"):
        assert attribute in set_cookie.split("; "), set_cookie
    assert reply.header("cache-control") == "no-store"
    session = [("cookie", f"other=1; hotfn_session={secret}")]

    # It reads...
    assert (await _apps(server, session)) == ["shop"]
    assert (await server.req("GET", "/v1/stats", headers=session)).status == 200
    # ... and does nothing else: no write, no token, no session of its own, no function call.
    assert (await server.req("POST", "/v1/apps", headers=session + own,
                             json={"app": {"name": "x"}})).status == 401
    assert (await server.req("POST", "/v1/tokens", headers=session + own, json={
        "token": {"name": "t", "scope": "admin"}})).status == 401
    assert (await server.req("DELETE", "/v1/apps/shop", headers=session)).status == 401
    assert (await server.req("POST", "/v1/sessions", b"{}",
                             headers=bearer(secret) + JSON + own)).status == 403
    assert (await server.call("shop", "/guarded", headers=session)).status == 401
    # Two session cookies (one planted by someone else): neither counts.
    assert (await server.req("GET", "/v1/apps", headers=[
        ("cookie", f"hotfn_session={secret}; hotfn_session=planted")])).status == 401

    # A session has its token's scope and apps.
    deploy = await make_token(server, "deploy", ["shop"])
    reply = await server.req("POST", "/v1/sessions", b"{}", headers=bearer(deploy["secret"]) + JSON)
    deploy_session = [("cookie", f"hotfn_session={_cookie_of(reply)[0]}")]
    assert (await _apps(server, deploy_session)) == ["shop"]
    assert (await server.req("GET", "/v1/stats", headers=deploy_session)).status == 403

    # Signing out ends it at once; its lifetime ends it anyway.
    reply = await server.req("DELETE", "/v1/sessions", headers=deploy_session)
    assert reply.status == 200 and "Max-Age=0" in reply.header("set-cookie")
    assert (await server.req("GET", "/v1/apps", headers=deploy_session)).status == 401
    deadline = time.monotonic() + 10
    while (await server.req("GET", "/v1/apps", headers=session)).status == 200:
        assert time.monotonic() < deadline, "the session outlived its lifetime"
        await trio.sleep(0.2)
    assert (await server.req("GET", "/v1/apps", headers=session)).status == 401


# -- 20.5: other origins, and other names, on a server without auth -------------------------------


async def test_api_writes_take_only_json(server):
    for headers in ([], [("content-type", "text/plain")],
                    [("content-type", "application/x-www-form-urlencoded")],
                    [("content-type", "multipart/form-data; boundary=x")],
                    [("content-type", "application/jsonp")]):
        reply = await server.req("POST", "/v1/apps", json.dumps({"app": {"name": "x"}}).encode(),
                                 headers=headers)
        assert reply.status == 415, (headers, reply)
        assert reply.header("content-type") == "application/json"
        assert "Content-Type: application/json" in reply.json()["error"]["message"]
    assert await _apps(server) == []
    reply = await server.req("POST", "/v1/apps", b'{"app": {"name": "shop"}}',
                             headers=[("content-type", "Application/JSON; charset=utf-8")])
    assert reply.status == 200, reply
    reply = await server.req("PATCH", "/v1/apps/shop", b'{"app": {"config": {"A": "1"}}}',
                             headers=[("content-type", "text/plain")])
    assert reply.status == 415, reply
    # No body to read, and never sent by another origin without a preflight: as before.
    assert (await server.req("DELETE", "/v1/apps/shop")).status == 200
    # A function takes whatever its caller sends.
    await server.create_app("demo")
    await server.create_route("demo", path="/echo", image=IMAGE)
    reply = await server.call("demo", "/echo", b"a=1", headers=[
        ("content-type", "application/x-www-form-urlencoded")])
    assert reply.status == 200 and reply.body == b"a=1", reply


async def test_the_api_refuses_pages_of_other_origins(server_factory, images):
    server = await server_factory(allowed_origins="https://admin.example.com/")
    await server.create_app("demo")
    await server.create_route("demo", path="/echo", image=IMAGE, format="hot")
    for origin in ("http://evil.example", "null", "http://127.0.0.2:8080", server.url + ".evil",
                   "https://admin.example.com.evil"):
        for method, body in (("GET", None), ("POST", {"app": {"name": "x"}})):
            reply = await server.req(method, "/v1/apps", headers=[("origin", origin)], json=body)
            assert reply.status == 403, (origin, method, reply)
            assert "--allowed-origins" in reply.json()["error"]["message"]
        # Function calls are the function's business: any page may call one.
        reply = await server.call("demo", "/echo", b"hi", headers=[("origin", origin)])
        assert reply.status == 200 and reply.body == b"hi", (origin, reply)
    assert await _apps(server) == ["demo"]
    for i, origin in enumerate((server.url, server.url.replace("http://", "https://"),
                                "https://admin.example.com")):
        reply = await server.req("POST", "/v1/apps", headers=[("origin", origin)],
                                 json={"app": {"name": f"ok{i}"}})
        assert reply.status == 200, (origin, reply)


async def test_without_auth_only_local_and_given_host_names_are_answered(server_factory, images):
    server = await server_factory(domain="fn.example", allowed_hosts="api.example.com,*.corp.example")
    await server.create_app("shop")
    await server.create_route("shop", path="/echo", image=IMAGE, format="hot")
    port = _port(server.url)
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io",
                 "api.example.com.evil", "corp.example.evil", "localhost.evil", "fn.example.evil"):
        for method, target, body in (("GET", "/v1/apps", None), ("GET", "/ui/", None),
                                     ("GET", "/health", None), ("POST", "/r/shop/echo", None),
                                     ("POST", "/v1/apps", {"app": {"name": "rebound"}})):
            reply = await server.req(method, target, headers=[("host", host)], json=body)
            assert reply.status == 403, (host, target, reply)
            assert "--allowed-hosts" in reply.json()["error"]["message"], reply
    assert await _apps(server) == ["shop"]
    for host in (f"127.0.0.1:{port}", "localhost", f"localhost:{port}", f"[::1]:{port}",
                 "10.1.2.3", "app.localhost", "hotfn", "api.example.com", "x.corp.example",
                 "fn.example", "LOCALHOST."):
        assert (await server.req("GET", "/v1/apps", headers=[("host", host)])).status == 200, host
        assert (await server.call("shop", "/echo", b"x", headers=[("host", host)])).status == 200
    # --domain's routing by Host is untouched.
    reply = await server.req("POST", "/echo", b"by host", headers=[("host", f"shop.fn.example:{port}")])
    assert reply.status == 200 and reply.body == b"by host", reply


async def test_with_auth_on_any_host_name_gets_the_token_rules(server_factory, images, tmp_path):
    server = await _start(server_factory, tmp_path)
    rebound = [("host", "attacker.example")]
    assert (await server.req("GET", "/v1/apps", headers=rebound)).status == 401
    assert (await server.req("GET", "/v1/apps", headers=rebound + bearer(ADMIN))).status == 200


# -- 20.5 in chromium: a hostile page of another origin, and a rebound name -----------------------

CROSS_SITE = """<!doctype html><title>free prizes</title><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" enctype="text/plain" target="sink"
      action="TARGET/v1/apps/pwned/routes">
  <input name='{"route": {"path": "/form", "image": "IMAGE", "config": {"K": "' value='"}}}'>
</form>
<script>
(async () => {
  const target = "TARGET", report = {};
  async function attempt(name, path, init) {
    try {
      const reply = await fetch(target + path, init);
      report[name] = reply.status + " " + (await reply.text()).slice(0, 200);
    } catch (e) { report[name] = "blocked: " + e.name; }
  }
  const app = (name) => JSON.stringify({app: {name}});
  await attempt("json", "/v1/apps", {method: "POST", body: app("pwned-json"),
                                     headers: {"content-type": "application/json"}});
  await attempt("plain", "/v1/apps", {method: "POST", body: app("pwned-plain"),
                                      headers: {"content-type": "text/plain"}});
  await attempt("no_cors", "/v1/apps", {method: "POST", mode: "no-cors", body: app("pwned")});
  await attempt("route", "/v1/apps/demo/routes", {method: "POST", mode: "no-cors",
      body: JSON.stringify({route: {path: "/planted", image: "IMAGE"}})});
  await attempt("read", "/v1/apps", {});
  await attempt("call", "/r/demo/echo", {method: "POST", mode: "no-cors", body: "from a page"});
  document.getElementById("form").submit();
  await new Promise((done) => {
    document.querySelector("iframe").onload = done;
    setTimeout(done, 5000);
  });
  document.body.dataset.report = JSON.stringify(report);
})();
</script>"""

REBOUND = """<!doctype html><title>rebinding</title><body><script>
(async () => {
  const report = {};
  async function attempt(name, path, init) {
    try {
      const reply = await fetch(path, init);
      report[name] = reply.status + " " + (await reply.text()).slice(0, 300);
    } catch (e) { report[name] = "blocked: " + e.name; }
  }
  await attempt("create", "/v1/apps", {method: "POST", body: JSON.stringify({app: {name: "rebound"}}),
                                       headers: {"content-type": "application/json"}});
  await attempt("read", "/v1/apps", {});
  await attempt("call", "/r/demo/echo", {method: "POST", body: "rebound"});
  document.body.dataset.report = JSON.stringify(report);
})();
</script>"""


class _Page(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args) -> None:
        pass


def _hostile_browsing(hotfn_url: str, hostile_url: str, profile: pathlib.Path) -> tuple[dict, dict]:
    from playwright.sync_api import sync_playwright

    port = _port(hotfn_url)
    rebound_url = f"http://attacker.example:{port}/"
    with sync_playwright() as playwright:
        # attacker.example resolves to the server: what a rebinding DNS answers second. And
        # without chromium's Private Network Access checks, as other browsers are: the server
        # must refuse on its own.
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True,
            args=FLAGS + ["--host-resolver-rules=MAP attacker.example 127.0.0.1",
                          "--disable-features=PrivateNetworkAccessRespectPreflightResults,"
                          "BlockInsecurePrivateNetworkRequests,LocalNetworkAccessChecks"])
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(hostile_url)
            page.wait_for_function("document.body && document.body.dataset.report", timeout=20_000)
            cross_site = json.loads(page.evaluate("document.body.dataset.report"))
            # The attacker's page as its own server gave it, the first time its name resolved.
            page.route(rebound_url, lambda route: route.fulfill(
                status=200, content_type="text/html", body=REBOUND))
            page.goto(rebound_url)
            page.wait_for_function("document.body && document.body.dataset.report", timeout=20_000)
            rebound = json.loads(page.evaluate("document.body.dataset.report"))
            return cross_site, rebound
        finally:
            context.close()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def test_a_hostile_page_cannot_use_the_api_of_a_server_without_auth(server, tmp_path):
    _need_chromium()
    await server.create_app("demo")
    await server.create_route("demo", path="/echo", image=IMAGE)
    page = CROSS_SITE.replace("TARGET", server.url).replace("IMAGE", IMAGE).encode()
    handler = type("HostilePage", (_Page,), {"page": page})
    hostile = http.server.ThreadingHTTPServer(("127.0.0.2", _free_port("127.0.0.2")), handler)
    thread = threading.Thread(target=hostile.serve_forever, daemon=True)
    thread.start()
    try:
        cross_site, rebound = await trio.to_thread.run_sync(
            _hostile_browsing, server.url, f"http://127.0.0.2:{hostile.server_address[1]}/",
            tmp_path / "chromium-profile")
    finally:
        hostile.shutdown()
        hostile.server_close()

    print("the page of another origin got:", cross_site, "\nthe rebound page got:", rebound)
    assert await _apps(server) == ["demo"], (cross_site, rebound)
    routes = (await server.req("GET", "/v1/apps/demo/routes")).json()["routes"]
    assert [r["path"] for r in routes] == ["/echo"], (cross_site, routes)
    assert cross_site["json"].startswith("blocked"), cross_site  # its preflight is refused
    assert cross_site["plain"].startswith("blocked"), cross_site  # refused, and unreadable
    assert cross_site["read"].startswith("blocked"), cross_site
    # The function was called: that is what functions are for.
    assert cross_site["call"] == "0 ", cross_site
    deadline = time.monotonic() + 10
    while not (await server.req("GET", "/v1/apps/demo/calls")).json()["calls"]:
        assert time.monotonic() < deadline, "the page's call to the function never ran"
        await trio.sleep(0.1)
    # The rebound name gets 403 for everything, and reads nothing.
    for name in ("create", "read", "call"):
        assert rebound[name].startswith("403 ") and "attacker.example" in rebound[name], rebound


@pytest.mark.parametrize("setting, says", [
    ({"allowed_origins": "admin.example.com"}, "is not an origin"),
    ({"allowed_origins": "https://admin.example.com/ui/"}, "is not an origin"),
    ({"session_lifetime": 0.0}, "--session-lifetime"),
])
async def test_settings_that_cannot_work_stop_the_start(server_factory, setting, says):
    from hotfn.server import StartupError

    with pytest.raises(StartupError, match=says):
        await server_factory(**setting)
