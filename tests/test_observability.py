"""Metrics, access log, trace context, time series and the dashboard's files, through a real
server with real containers."""

import io
import json
import re
import subprocess

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from conftest import containers_of
from test_server_process import serve_process

pytestmark = pytest.mark.docker
IMAGE = "hotfn-test/conformance-python"
VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


async def scrape(server) -> dict[tuple, float]:
    reply = await server.req("GET", "/metrics")
    assert reply.status == 200, reply
    assert reply.header("content-type").startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.body.decode()) for s in family.samples}


def sample(seen, name, **labels):
    return seen.get((name, tuple(sorted(labels.items()))))


async def wait_for_sample(server, name, value, **labels):
    with trio.fail_after(30):
        while True:
            seen = await scrape(server)
            if sample(seen, name, **labels) == value:
                return seen
            await trio.sleep(0.05)


async def test_metrics_of_calls_containers_and_the_queue(server):
    await server.create_app("obs")
    await server.create_route("obs", path="/hot", image=IMAGE, format="hot", timeout=1)
    await server.create_route("obs", path="/cold", image=IMAGE)
    await server.create_route("obs", path="/job", image=IMAGE, format="hot", type="async")
    for _ in range(3):
        assert (await server.call("obs", "/hot", b"x")).status == 200
    raised = await server.call("obs", "/hot", headers=[("x-hotfn-test", "raise")])
    assert raised.status == 502
    crashed = await server.call("obs", "/hot", headers=[("x-hotfn-test", "exit")])
    assert crashed.status == 502
    slow = await server.call("obs", "/hot", headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "3000")])
    assert slow.status == 504
    assert (await server.call("obs", "/cold", b"y")).status == 200
    queued = await server.call("obs", "/job", headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "2000")])
    assert queued.status == 202

    hot = dict(app="obs", route="/hot")
    seen = await wait_for_sample(server, "hotfn_container_deaths_total", 1.0, cause="timeout", **hot)
    assert sample(seen, "hotfn_calls_total", mode="hot", status="2xx", **hot) == 3
    assert sample(seen, "hotfn_calls_total", mode="hot", status="5xx", **hot) == 3
    assert sample(seen, "hotfn_call_duration_seconds_count", mode="hot", **hot) == 6
    assert sample(seen, "hotfn_call_queue_wait_seconds_count", mode="hot", **hot) >= 4
    assert sample(seen, "hotfn_container_deaths_total", cause="crash", **hot) == 1
    # One container served until the crash; the second one until the timeout killed it.
    assert sample(seen, "hotfn_container_starts_total", **hot) == 2
    assert sample(seen, "hotfn_container_start_seconds_count", **hot) == 2
    cold = dict(app="obs", route="/cold")
    assert sample(seen, "hotfn_calls_total", mode="cold", status="2xx", **cold) == 1
    assert sample(seen, "hotfn_cold_run_seconds_count", **cold) == 1
    assert sample(seen, "hotfn_container_stops_total", reason="exited", **cold) == 1
    # The async call is in the store's queue (queued, or running for 2 s) as we scrape.
    job = dict(app="obs", route="/job")
    assert sample(seen, "hotfn_async_queue_depth", **job) == 1
    assert 0 <= sample(seen, "hotfn_async_queue_oldest_age_seconds", **job) < 30
    assert sample(seen, "hotfn_http_connections") >= 1
    assert sample(seen, "hotfn_capacity_containers_limit") == 64
    assert ("hotfn_call_records_lag_seconds", ()) in seen

    seen = await wait_for_sample(server, "hotfn_calls_total", 1.0, mode="async", status="2xx", **job)
    assert sample(seen, "hotfn_containers", state="idle", **job) == 1
    assert sample(seen, "hotfn_call_queue_wait_seconds_count", mode="async", **job) == 1
    assert sample(seen, "hotfn_async_queue_depth", **job) is None

    # A deleted route's series go with it: only apps x routes that exist are exported.
    assert (await server.req("DELETE", "/v1/apps/obs/routes/hot")).status == 200
    seen = await scrape(server)
    assert not [key for key in seen if dict(key[1]).get("route") == "/hot"]
    assert sample(seen, "hotfn_calls_total", mode="cold", status="2xx", **cold) == 1


async def test_container_deaths_say_oom_and_killed(server):
    await server.create_app("obs")
    await server.create_route("obs", path="/hog", image="hotfn-test/hog", format="hot", memory=64)
    await server.create_route("obs", path="/slow", image=IMAGE, format="hot")
    with trio.fail_after(60):
        oom = await server.call("obs", "/hog", headers=[("x-hog", "memory")])
    assert oom.status == 502 and "out of memory" in oom.json()["error"]["message"]

    async def slow_call() -> None:
        await server.call("obs", "/slow", headers=[("x-hotfn-test", "sleep"), ("x-sleep-ms", "20000")])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_call)
        with trio.fail_after(20):
            while not (running := containers_of(server.node_id, all=False, route="/slow")):
                await trio.sleep(0.1)
        await trio.sleep(0.5)
        subprocess.run(["docker", "kill", *running], capture_output=True, check=True)
    await wait_for_sample(server, "hotfn_container_deaths_total", 1.0, app="obs", route="/hog", cause="oom")
    await wait_for_sample(server, "hotfn_container_deaths_total", 1.0, app="obs", route="/slow",
                          cause="killed")


async def test_metrics_off_is_a_404_and_costs_nothing(server_factory, images):
    server = await server_factory(no_metrics=True, no_access_log=True)
    reply = await server.req("GET", "/metrics")
    assert reply.status == 404 and "--no-metrics" in reply.json()["error"]["message"]


async def test_traceparent_reaches_the_function_and_the_record(server):
    await server.create_app("tr")
    await server.create_route("tr", path="/hot", image=IMAGE, format="hot")
    await server.create_route("tr", path="/cold", image=IMAGE)
    info = [("x-hotfn-test", "info")]
    for path in ("/hot", "/cold"):
        kept = await server.call("tr", path, headers=info + [("traceparent", VALID), ("tracestate", "a=1")])
        assert kept.status == 200, kept
        seen = dict(kept.json()["headers"])
        assert (seen["traceparent"], seen["tracestate"]) == (VALID, "a=1")
        record = (await server.req("GET", f"/v1/apps/tr/calls/{kept.header('hotfn-call-id')}")).json()["call"]
        assert record["traceparent"] == VALID

        for sent in ([], [("traceparent", "00-zzz-bad-01"), ("tracestate", "a=1")]):
            reply = await server.call("tr", path, headers=info + sent)
            call_id = reply.header("hotfn-call-id")
            headers = reply.json()["headers"]
            passed = [v for k, v in headers if k == "traceparent"]
            assert len(passed) == 1 and TRACEPARENT.fullmatch(passed[0]), headers
            assert "tracestate" not in dict(headers)  # it belonged to a trace that was dropped
            record = (await server.req("GET", f"/v1/apps/tr/calls/{call_id}")).json()["call"]
            assert record["traceparent"] == passed[0]
            assert int(passed[0][3:35], 16) >> 80 > 0  # the call id's time, in its top bits


async def test_an_async_call_keeps_its_traceparent(server):
    await server.create_app("tr")
    await server.create_route("tr", path="/job", image=IMAGE, format="hot", type="async")
    accepted = await server.call("tr", "/job", headers=[("x-hotfn-test", "info"), ("traceparent", VALID)])
    call_id = accepted.json()["call_id"]
    with trio.fail_after(30):
        while True:
            call = (await server.req("GET", f"/v1/apps/tr/calls/{call_id}")).json()["call"]
            if call["status"] not in ("queued", "running"):
                break
            await trio.sleep(0.05)
    assert call["status"] == "success" and call["traceparent"] == VALID
    assert dict(json.loads(call["result"])["headers"])["traceparent"] == VALID


async def test_one_access_log_line_per_call(server_factory, images):
    stream = io.StringIO()
    server = await server_factory(access_log_stream=stream)
    await server.create_app("log")
    await server.create_route("log", path="/users/:id", image=IMAGE, format="hot")
    ok = await server.call("log", "/users/7", b"x", method="PUT")
    failed = await server.call("log", "/users/8", headers=[("x-hotfn-test", "raise")])
    assert (await server.req("GET", "/v1/apps")).status == 200  # admin requests are not calls
    with trio.fail_after(2):  # lines are written together, every accesslog.FLUSH_INTERVAL
        while stream.getvalue().count("\n") < 2:
            await trio.sleep(0.02)
    await trio.sleep(0.3)  # and no more come
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    pattern = (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z access PUT log /users/:id 200 [0-9.]+ms hot "
               rf"call={ok.header('hotfn-call-id')} container=[0-9a-f]{{12}} trace=[0-9a-f]{{32}}")
    assert re.fullmatch(pattern, lines[0]), lines[0]
    assert f"call={failed.header('hotfn-call-id')}" in lines[1]
    assert " 502 " in lines[1] and 'error="function raised RuntimeError: boom"' in lines[1]


async def test_json_logs_from_hotfn_serve(tmp_path, images):
    async with serve_process(tmp_path, 10, "--log-format", "json", "--log-level", "info") as (process, server):
        await server.create_app("js")
        await server.create_route("js", path="/e", image=IMAGE, format="hot")
        reply = await server.call("js", "/e", b"x", headers=[("traceparent", VALID)])
        assert reply.status == 200
        with trio.fail_after(10):
            while '"logger":"hotfn.access"' not in server.log_path.read_text():
                await trio.sleep(0.05)
    entries = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.strip()]
    access = [e for e in entries if e["logger"] == "hotfn.access"]
    assert len(access) == 1
    assert access[0] | {"time": None, "duration_ms": None, "container": None} == {
        "time": None, "level": "info", "logger": "hotfn.access", "method": "POST", "app": "js",
        "route": "/e", "status": 200, "duration_ms": None, "mode": "hot",
        "call_id": reply.header("hotfn-call-id"), "container": None,
        "trace_id": "0af7651916cd43dd8448eb211c80319c"}
    # The server's own records are JSON lines too.
    assert any(e["logger"] == "hotfn.server" and "listening" in e["message"] for e in entries)


async def test_series_endpoint_and_dashboard_files(server):
    await server.create_app("ui")
    await server.create_route("ui", path="/e", image=IMAGE, format="hot")
    for _ in range(5):
        await server.call("ui", "/e", b"x")
    series = (await server.req("GET", "/v1/stats/series?window=60&step=5")).json()
    points = series["routes"]["ui/e"]
    assert len(points) in (12, 13) and sum(p["calls"] for p in points) == 5
    assert all(p["t"] % 5 == 0 for p in points)
    busy = [p for p in points if p["calls"]]
    assert busy[-1]["p50_ms"] > 0 and busy[-1]["p99_ms"] >= busy[-1]["p50_ms"]
    only = (await server.req("GET", "/v1/stats/series?app=ui&route=/e&window=10")).json()["routes"]
    assert list(only) == ["ui/e"]
    for bad in ("window=0", "window=601", "window=x", "step=0", "window=600&step=700", "route=nope"):
        reply = await server.req("GET", f"/v1/stats/series?{bad}")
        assert reply.status == 400 and reply.json()["error"]["message"], (bad, reply)

    page = await server.req("GET", "/ui/")
    assert page.status == 200 and page.header("content-type") == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.header("content-security-policy")
    assert b'<script src="app.js"' in page.body
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        reply = await server.req("GET", f"/ui/{name}")
        assert reply.status == 200 and reply.header("content-type").startswith(kind), name
    # Nothing but the shipped files: no other file, no way out of the directory.
    for target in ("/ui/nope.js", "/ui/__init__.py", "/ui/..%2F__init__.py", "/ui/../api.py", "/ui/%2e%2e/api.py"):
        assert (await server.req("GET", target)).status == 404, target
    for target in ("/", "/ui"):
        moved = await server.req("GET", target)
        assert moved.status == 308 and moved.header("location") == "/ui/"


async def test_with_tokens_metrics_are_for_admins_series_per_app_and_the_page_open(
        server_factory, images, tmp_path):
    from test_auth import ADMIN, _start, assert_401, bearer, make_token

    server = await _start(server_factory, tmp_path)
    for app in ("a", "b"):
        assert (await server.req("POST", "/v1/apps", headers=bearer(ADMIN),
                                 json={"app": {"name": app}})).status == 200
        assert (await server.req("POST", f"/v1/apps/{app}/routes", headers=bearer(ADMIN), json={
            "route": {"path": "/e", "image": IMAGE, "format": "hot"}})).status == 200
        assert (await server.call(app, "/e", b"x")).status == 200
    deploy_a = (await make_token(server, "deploy", ["a"]))["secret"]
    invoke_b = (await make_token(server, "invoke", ["b"]))["secret"]

    assert_401(await server.req("GET", "/metrics"))
    assert (await server.req("GET", "/metrics", headers=bearer(deploy_a))).status == 403
    assert (await server.req("GET", "/metrics", headers=bearer(ADMIN))).status == 200

    assert_401(await server.req("GET", "/v1/stats/series"))
    seen = {}
    for who, token in (("admin", ADMIN), ("deploy-a", deploy_a), ("invoke-b", invoke_b)):
        reply = await server.req("GET", "/v1/stats/series?window=60", headers=bearer(token))
        assert reply.status == 200, (who, reply)
        seen[who] = sorted(reply.json()["routes"])
    assert seen == {"admin": ["a/e", "b/e"], "deploy-a": ["a/e"], "invoke-b": ["b/e"]}

    for target in ("/ui/", "/ui/app.js"):
        assert (await server.req("GET", target)).status == 200  # no data in them: open
    assert (await server.req("GET", "/")).status == 308
