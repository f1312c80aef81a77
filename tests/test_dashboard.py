"""The dashboard in a real headless browser: Debian's chromium (scripts/ensure-browser), driven
by Playwright, which launches that binary (no browser is downloaded). The page runs against a
real server with real containers; the calls are made while it is open. With API tokens on, the
page asks for one and trades it for a session cookie that its script cannot read
(tests/test_browser_security.py has the attacks on it).

A screenshot is saved as tests/artifacts/dashboard.png (git-ignored), its path printed.
"""

import pathlib
import shutil
import time
import urllib.error
import urllib.request

import pytest
import trio

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = pathlib.Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _call(url: str, path: str, headers: dict | None = None) -> str:
    request = urllib.request.Request(f"{url}/r/demo{path}", data=b"x", headers=headers or {}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return reply.headers["hotfn-call-id"]


def _browse(url: str, profile: pathlib.Path) -> pathlib.Path:
    """The whole browser session, on one thread (Playwright's sync API is bound to its thread)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        # A fresh profile directory: no state from an earlier run, nothing shared.
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 860})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/ui/")
            card = page.locator('[data-route="demo/hello"]')
            expect(card).to_be_visible(timeout=15_000)
            expect(card.locator(".settings")).to_contain_text("hot")
            expect(card.locator(".settings")).to_contain_text(IMAGE)
            expect(page.locator("#status")).to_contain_text("live")
            chart = card.locator("svg.chart")
            expect(chart).to_have_attribute("data-calls", "0", timeout=10_000)

            # Calls made while the page is open show on the chart at its next poll...
            for _ in range(5):
                _call(url, "/hello")
            expect(chart).to_have_attribute("data-calls", "5", timeout=10_000)
            expect(chart.locator("rect.bar")).to_have_count(1)
            # ... and calls in a later two-second step add a point.
            time.sleep(2.2)
            for _ in range(5):
                _call(url, "/hello")
            expect(chart).to_have_attribute("data-calls", "10", timeout=10_000)
            expect(chart.locator("rect.bar-error")).to_have_count(0)
            assert int(chart.get_attribute("data-points")) >= 2
            assert chart.locator("polyline.p50").count() == 1
            expect(card.locator(".pool")).to_contain_text("1 warm")

            # A failed call shows as the red share of its bar, and with its status.
            try:
                _call(url, "/hello", {"x-hotfn-test": "raise"})
            except urllib.error.HTTPError as exc:
                assert exc.code == 502
                failed_id = exc.headers["hotfn-call-id"]
            expect(chart.locator("rect.bar-error")).to_have_count(1, timeout=10_000)
            expect(card.locator(f'tr[data-call="{failed_id}"] td.error')).to_have_text("error")

            # A call's log is one click away.
            call_id = _call(url, "/hello", {"x-hotfn-test": "stderr"})
            row = card.locator(f'tr[data-call="{call_id}"]')
            expect(row).to_be_visible(timeout=10_000)
            row.locator("button.log").click()
            expect(page.locator("#log-panel")).to_be_visible()
            expect(page.locator("#log-call")).to_have_text(call_id)
            expect(page.locator("#log-text")).to_contain_text("log line", timeout=10_000)
            expect(page.locator("#log-record")).to_contain_text("traceparent")
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            page.locator("#log-close").click()
            expect(page.locator("#log-panel")).to_be_hidden()

            # Without auth the page needs no token, and keeps none: a token entered is sent once,
            # to /v1/sessions, which says so; no poll carries it, nothing stores it.
            sent: list[tuple[str, str | None]] = []
            page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization")))
                    if "/v1/" in r.url else None)
            page.fill("#token", "s3cret")
            page.click("#token-form button[type=submit]")
            page.wait_for_timeout(2500)
            assert [u for u, h in sent if h is not None] == [f"{url}/v1/sessions"], sent
            assert len(sent) > 1, sent
            assert page.evaluate("JSON.stringify(Object.assign({}, localStorage))") == "{}"
            expect(page.locator("#status")).to_contain_text("live")
            assert errors == [], errors
            return shot
        finally:
            context.close()


async def test_dashboard_in_a_headless_browser(server, tmp_path):
    if shutil.which("chromium") is None:
        pytest.fail("no chromium: run scripts/ensure-browser (scripts/test does it)")
    await server.create_app("demo", config={"GREETING": "hi"})
    await server.create_route("demo", path="/hello", image=IMAGE, format="hot", min_warm=1,
                              max_concurrency=2)
    shot = await trio.to_thread.run_sync(_browse, server.url, tmp_path / "chromium-profile")
    print(f"dashboard screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def _browse_secured(url: str, profile: pathlib.Path, token: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(f"{url}/ui/")
            expect(page.locator("#status")).to_contain_text("wants a token", timeout=10_000)
            expect(page.locator('[data-route="demo/hello"]')).to_have_count(0)
            page.fill("#token", "not-the-token-0123456789")
            page.click("#token-form button[type=submit]")
            expect(page.locator("#status")).to_contain_text("refused", timeout=10_000)
            page.fill("#token", token)
            page.click("#token-form button[type=submit]")
            card = page.locator('[data-route="demo/hello"]')
            expect(card).to_be_visible(timeout=10_000)
            expect(page.locator("#status")).to_contain_text("live", timeout=1_500)
            expect(card.locator(".pool")).to_contain_text("warm")
            expect(page.locator("#session")).to_contain_text("signed in (admin)")
            # The page traded the token for a session cookie no script reads, and keeps the
            # token nowhere; the session lasts across a reload, with no new entry.
            assert page.locator("#token").input_value() == ""
            held = page.evaluate("""() => JSON.stringify([Object.assign({}, localStorage),
                                                          Object.assign({}, sessionStorage),
                                                          document.cookie])""")
            assert token not in held and "hotfn_session" not in held, held
            page.reload()
            expect(page.locator('[data-route="demo/hello"]')).to_be_visible(timeout=10_000)
            # Signing out ends the session: the page asks for a token again.
            page.click("#sign-out")
            expect(page.locator("#status")).to_contain_text("wants a token", timeout=10_000)
            expect(page.locator('[data-route="demo/hello"]')).to_have_count(0)
        finally:
            context.close()


async def test_the_dashboard_with_api_tokens(server_factory, images, tmp_path):
    from test_auth import ADMIN, _start, bearer

    if shutil.which("chromium") is None:
        pytest.fail("no chromium: run scripts/ensure-browser (scripts/test does it)")
    server = await _start(server_factory, tmp_path)
    assert (await server.req("POST", "/v1/apps", headers=bearer(ADMIN),
                             json={"app": {"name": "demo"}})).status == 200
    assert (await server.req("POST", "/v1/apps/demo/routes", headers=bearer(ADMIN), json={
        "route": {"path": "/hello", "image": IMAGE, "format": "hot", "min_warm": 1}})).status == 200
    await trio.to_thread.run_sync(_browse_secured, server.url, tmp_path / "chromium-profile", ADMIN)
