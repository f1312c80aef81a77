"""Trace context, the per-route time series, the access log's lines and the metrics' label
bookkeeping: pure code, no server."""

import io
import json

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from hotfn import models
from hotfn.observe import tracecontext
from hotfn.observe import AccessLog, JsonFormatter
from hotfn.drivers import ExitStatus
from hotfn.invoke import Outcome
from hotfn.observe import Metrics
from hotfn.models import Call, Route
from hotfn.observe.promtext import CONTENT_TYPE, Exposition, Histogram, format_value
from hotfn.pool import CRASH, KILLED, OOM, exit_cause
from hotfn.observe import Telemetry
from hotfn.observe.timeseries import SECONDS, RouteSeries

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


# -- trace context ------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (VALID, VALID),
    (" " + VALID + "\t", VALID),
    ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-what-comes-later",
     "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-what-comes-later"),
    (None, None),
    ("", None),
    ("garbage", None),
    (VALID.upper(), None),  # lower-case hex only
    (VALID + "-extra", None),  # version 00 has exactly four fields
    ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
    ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
    ("00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01", None),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx-evil: 1", None),
    ("00-" + "a" * 600, None),
])
def test_traceparent_parse(value, expected):
    assert tracecontext.parse(value) == expected


def test_a_new_traceparent_is_the_call_id_in_w3c_form():
    call_id = models.new_call_id()
    new = tracecontext.from_call_id(call_id)
    assert tracecontext.parse(new) == new
    version, trace_id, parent_id, flags = new.split("-")
    assert (version, flags) == ("00", "01")
    # The trace id is the ULID's 128 bits: the call can be found from the trace, and back.
    value = int(trace_id, 16)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    assert "".join(alphabet[(value >> s) & 31] for s in range(125, -1, -5)) == call_id
    assert parent_id == trace_id[16:]
    assert tracecontext.trace_id(new) == trace_id


def test_resolve_keeps_a_valid_one_and_replaces_the_rest():
    headers = [("host", "h"), ("traceparent", VALID), ("tracestate", "k=v")]
    assert tracecontext.resolve(headers, "01ARZ3NDEKTSV4RRFFQ69G5FAV") == (VALID, tuple(headers))
    new = tracecontext.from_call_id("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    for bad in ([("traceparent", "nope"), ("tracestate", "k=v")],
                [("traceparent", VALID), ("traceparent", VALID)],  # twice: invalid (spec 3.2)
                []):
        traceparent, passed = tracecontext.resolve([("host", "h")] + bad, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
        assert traceparent == new
        assert passed == (("host", "h"), ("traceparent", new))


# -- the time series ------------------------------------------------------------------------------


def test_series_counts_per_second_and_reads_percentiles_within_a_bin():
    series = RouteSeries()
    for i in range(100):
        series.add(1000.2, (i + 1) / 1000, failed=i >= 98)  # 1 ms .. 100 ms
    series.add(1002.5, 0.004, failed=False)
    points = series.points(now=1002.9, window=3, step=1)
    assert [p["t"] for p in points] == [1000, 1001, 1002]
    assert [p["calls"] for p in points] == [100, 0, 1]
    assert points[0]["errors"] == 2 and points[1]["p50_ms"] is None
    assert 50 / 1.26 <= points[0]["p50_ms"] <= 50 * 1.26
    assert 99 / 1.26 <= points[0]["p99_ms"] <= 99 * 1.26
    merged = series.points(now=1002.9, window=4, step=2)
    assert [(p["t"], p["calls"], p["rate"]) for p in merged] == [(998, 0, 0.0), (1000, 100, 50.0),
                                                                   (1002, 1, 0.5)]


def test_series_memory_is_a_ring_old_seconds_fall_out():
    series = RouteSeries()
    series.add(50.0, 0.001, False)
    series.add(50.0 + SECONDS, 0.001, False)  # the same slot, a ring later
    assert sum(p["calls"] for p in series.points(now=50.0 + SECONDS, window=SECONDS, step=1)) == 1
    # A second older than the window, still in its slot, is not shown.
    series = RouteSeries()
    series.add(10.0, 0.001, False)
    assert sum(p["calls"] for p in series.points(now=10.0 + SECONDS, window=SECONDS, step=10)) == 0
    series.add(5.0, -1.0, False)  # a clock step back: a negative duration lands in the first bin
    series.add(6.0, 10 ** 6, False)  # and a huge one in the last


# -- the access log ---------------------------------------------------------------------------------


def _fields(**over):
    fields = dict(at=1764666342.1234, method="POST", app="demo", route="/users/:id", status=200,
                  duration_ms=0.512, mode="hot", call_id="01KB", container="3f2a9c1b7d0e99887766",
                  trace_id="0af7651916cd43dd8448eb211c80319c")
    fields.update(over)
    return fields


def test_access_log_text_line():
    line = AccessLog("text").line(**_fields())
    assert line == ("2025-12-02T09:05:42.123Z access POST demo /users/:id 200 0.512ms hot "
                    "call=01KB container=3f2a9c1b7d0e trace=0af7651916cd43dd8448eb211c80319c\n")
    failed = AccessLog("text").line(**_fields(status=502, container=None,
                                               error='function raised ValueError: "x"\nsecond line'))
    assert failed.count("\n") == 1  # one line, whatever the error says
    assert 'container=- trace=' in failed
    assert failed.endswith('error="function raised ValueError: \\"x\\"\\nsecond line"\n')


def test_access_log_json_line_and_other_records_as_json():
    stream = io.StringIO()
    AccessLog("json", stream).write(**_fields(error="boom"))
    entry = json.loads(stream.getvalue())
    assert entry == {"time": "2025-12-02T09:05:42.123Z", "level": "info", "logger": "hotfn.access",
                     "method": "POST", "app": "demo", "route": "/users/:id", "status": 200,
                     "duration_ms": 0.512, "mode": "hot", "call_id": "01KB",
                     "container": "3f2a9c1b7d0e", "trace_id": "0af7651916cd43dd8448eb211c80319c",
                     "error": "boom"}
    import logging

    record = logging.LogRecord("hotfn.pool", logging.WARNING, "f", 1, "route %s: %s", ("/x", "bad\nthing"), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "route /x: bad\nthing"
    with pytest.raises(ValueError):
        AccessLog("xml")


def test_access_log_survives_a_broken_stream():
    stream = io.StringIO()
    stream.close()
    AccessLog("text", stream).write(**_fields())  # no exception: a call never fails for its log line


async def test_access_log_lines_are_written_together_while_it_runs(autojump_clock):
    from hotfn.observe import accesslog

    stream = io.StringIO()
    log = AccessLog("text", stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        log.write(**_fields(call_id="A"))
        log.write(**_fields(call_id="B"))
        assert stream.getvalue() == ""  # buffered
        await trio.sleep(accesslog.FLUSH_INTERVAL * 1.5)
        assert [line.split()[8] for line in stream.getvalue().splitlines()] == ["call=A", "call=B"]
        # A full buffer goes at once, without waiting for the interval.
        many = accesslog.FLUSH_BYTES // len(log.line(**_fields(call_id="C"))) + 1
        for _ in range(many):
            log.write(**_fields(call_id="C"))
        assert stream.getvalue().count("call=C") == many
        log.write(**_fields(call_id="D"))
        nursery.cancel_scope.cancel()
    assert "call=D" in stream.getvalue()  # written as it stopped
    log.write(**_fields(call_id="E"))
    assert "call=E" in stream.getvalue()  # not running: at once, as before it ran


# -- metrics ---------------------------------------------------------------------------------------


def _scrape(metrics: Metrics) -> dict[tuple, float]:
    body, _ = metrics.render()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def _call(app="a", route="/r", status=200, **over):
    call = Call(id=models.new_call_id(), app=app, route=route, mode="hot", created_at=10.0,
                started_at=10.0, completed_at=10.002, attempts=1)
    for k, v in over.items():
        setattr(call, k, v)
    return call


def test_metrics_count_calls_by_route_mode_and_status_class_and_forget_deleted_routes():
    metrics = Metrics("node-1", "1.2.3")
    telemetry = Telemetry(metrics=metrics)
    telemetry.routes_changed({("a", "/r"), ("a", "/s")})
    route = Route(app="a", path="/r", image="img", format="hot")
    telemetry.call_done(_call(), Outcome(200, queue_wait=0.001), "GET", "hot")
    telemetry.call_done(_call(), Outcome(502, error="x"), "GET", "hot")
    telemetry.call_done(_call(route="/s"), Outcome(200, mode="cold", cold_run=0.2), "GET", "cold")
    telemetry.call_done(_call(created_at=9.0, attempts=1), Outcome(200, queue_wait=0.5), "POST", "async")
    telemetry.container_starting(route)
    telemetry.container_ready(route, 0.3)
    telemetry.container_ended(route, "oom")
    telemetry.container_ended(route, "idle")
    # A route the table no longer has (a call of it ended after its delete): no series for it.
    telemetry.call_done(_call(route="/gone"), Outcome(200), "GET", "hot")
    telemetry.container_ended(Route(app="a", path="/gone", image="i"), "crash")
    seen = _scrape(metrics)
    r = (("app", "a"), ("route", "/r"))

    def get(name, *labels):
        return seen.get((name, tuple(sorted(r + labels))))

    assert get("hotfn_calls_total", ("mode", "hot"), ("status", "2xx")) == 1
    assert get("hotfn_calls_total", ("mode", "hot"), ("status", "5xx")) == 1
    assert get("hotfn_calls_total", ("mode", "async"), ("status", "2xx")) == 1
    assert get("hotfn_call_duration_seconds_count", ("mode", "hot")) == 2
    # The async call's first run waited 1 s in the queue and 0.5 s for a container.
    assert get("hotfn_call_queue_wait_seconds_sum", ("mode", "async")) == pytest.approx(1.5)
    assert get("hotfn_container_starts_total") == 1
    assert get("hotfn_container_start_seconds_sum") == pytest.approx(0.3)
    assert get("hotfn_container_deaths_total", ("cause", "oom")) == 1
    assert get("hotfn_container_stops_total", ("reason", "idle")) == 1
    assert seen[("hotfn_cold_run_seconds_count", (("app", "a"), ("route", "/s")))] == 1
    assert seen[("hotfn_info", (("node", "node-1"), ("version", "1.2.3")))] == 1
    assert not any(dict(labels).get("route") == "/gone" for _, labels in seen)

    telemetry.routes_changed({("a", "/s")})
    after = _scrape(metrics)
    assert not any(dict(labels).get("route") == "/r" for _, labels in after)
    assert any(dict(labels).get("route") == "/s" for _, labels in after)
    assert "a/r" not in telemetry.series.snapshot(11.0, 10, 1)
    # Another server in the same process has registries of its own.
    assert not any(name.startswith("hotfn_calls") for name, _ in _scrape(Metrics("node-2")))


def test_metrics_queue_and_lag_read_at_scrape_time():
    metrics = Metrics("n")
    metrics.watch(record_lag=lambda: (7, 0.25), connections=lambda: 3)
    metrics.set_queue([("a", "/job", 4, 100.0)], now=160.0)
    seen = _scrape(metrics)
    assert seen[("hotfn_call_records_buffered", ())] == 7
    assert seen[("hotfn_call_records_lag_seconds", ())] == 0.25
    assert seen[("hotfn_http_connections", ())] == 3
    assert seen[("hotfn_async_queue_depth", (("app", "a"), ("route", "/job")))] == 4
    assert seen[("hotfn_async_queue_oldest_age_seconds", (("app", "a"), ("route", "/job")))] == 60


def test_exposition_text_byte_for_byte_escaping_and_cumulative_buckets():
    out = Exposition()
    out.family("x_total", "counter", 'Back\\slash, "quotes" stay,\nnew line')
    out.sample("x_total", [("route", '/a"b\\c\nd'), ("app", "é")], 3)
    out.family("x_seconds", "histogram", "h")
    histogram = Histogram((0.5, 1.0, 2.5))
    for value in (0.5, 0.7, 3.0, 0.1):  # 0.5 falls in le="0.5": a bound is "less or equal"
        histogram.observe(value)
    out.histogram("x_seconds", [("mode", "hot")], histogram)
    out.family("x_empty", "gauge", "no samples: the family is still written")
    out.family("x_bytes", "gauge", "g")
    out.sample("x_bytes", (), 4096 * 1024 * 1024)
    text = out.text().decode()
    assert text == (
        '# HELP x_total Back\\\\slash, "quotes" stay,\\nnew line\n'
        "# TYPE x_total counter\n"
        'x_total{app="é",route="/a\\"b\\\\c\\nd"} 3.0\n'
        "# HELP x_seconds h\n"
        "# TYPE x_seconds histogram\n"
        'x_seconds_bucket{le="0.5",mode="hot"} 2.0\n'
        'x_seconds_bucket{le="1.0",mode="hot"} 3.0\n'
        'x_seconds_bucket{le="2.5",mode="hot"} 3.0\n'
        'x_seconds_bucket{le="+Inf",mode="hot"} 4.0\n'
        'x_seconds_count{mode="hot"} 4.0\n'
        'x_seconds_sum{mode="hot"} 4.3\n'
        "# HELP x_empty no samples: the family is still written\n"
        "# TYPE x_empty gauge\n"
        "# HELP x_bytes g\n"
        "# TYPE x_bytes gauge\n"
        "x_bytes 4.294967296e+09\n")
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    # prometheus_client's own parser reads back what was written.
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["x"].documentation == 'Back\\slash, "quotes" stay,\nnew line'
    (sample,) = families["x"].samples
    assert sample.labels == {"route": '/a"b\\c\nd', "app": "é"} and sample.value == 3
    buckets = [(s.labels.get("le"), s.value) for s in families["x_seconds"].samples
               if s.name == "x_seconds_bucket"]
    assert buckets == [("0.5", 2), ("1.0", 3), ("2.5", 3), ("+Inf", 4)]
    assert families["x_empty"].samples == []


def test_metrics_an_unknown_status_class_is_one_other_series():
    metrics = Metrics("n")
    route = metrics.route("a", "/r")
    route.call("hot", 600, None, None)
    route.call("hot", 799, None, None)
    body, content_type = metrics.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    lines = [line for line in body.decode().splitlines() if line.startswith("hotfn_calls_total")]
    assert lines == ['hotfn_calls_total{app="a",mode="hot",route="/r",status="other"} 2.0']


@pytest.mark.parametrize("value", [0, 1, 3, 0.25, 1e-9, 0.0005, 300.0, 123456.0, 1234567.0,
                                   402653184, 1.700000000123456e9, 1e21, -2.5, -1e9,
                                   float("inf"), float("-inf"), float("nan")])
def test_values_are_written_as_prometheus_client_wrote_them(value):
    from prometheus_client.utils import floatToGoString

    assert format_value(value) == floatToGoString(value)


@pytest.mark.parametrize("status, cause", [
    (None, CRASH), (ExitStatus(1), CRASH), (ExitStatus(137, oom_killed=True), OOM),
    (ExitStatus(137), KILLED), (ExitStatus(None), CRASH),
])
def test_exit_cause(status, cause):
    assert exit_cause(status) == cause
