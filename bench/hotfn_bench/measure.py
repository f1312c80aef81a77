"""The scenarios. Each takes the Context and returns a JSON-able dict for results.json.

Comparisons run in alternation (round 1: A, B, C; round 2: A, B, C; ...) so that a slow
moment of this noisy machine lands on every variant alike; figures are medians over rounds,
next to pooled percentiles over every sample.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .client import Call, RunResult
from .context import APP, Context
from .functions import ECHO_BODY, FUNCTIONS, BenchFunction
from .stats import median, spread, summarize
from .wrk import WrkResult, run_wrk


class ScenarioError(Exception):
    pass


def calls(ctx: Context, call: Call, n: int, **kw: Any) -> RunResult:
    """``n`` sequential calls through the client process; a few failures are reported, more
    than 1% (or a call that never answers) end the scenario."""
    result = ctx.client.run(call, n, **kw)
    if result.failed > max(0, n // 100) or result.ok == 0:
        raise ScenarioError(f"{result.failed} of {n} calls to {call.path} failed: {result.errors}")
    return result


def _p(samples: list[float], q: float) -> float:
    return summarize(samples).get(f"p{q}", float("nan")) if samples else float("nan")


def rounds_summary(per_round: list[list[float]]) -> dict[str, Any]:
    """Pooled percentiles over every sample, and the spread of each round's p50 and p99."""
    pooled = [x for r in per_round for x in r]
    return {
        "pooled": summarize(pooled),
        "round_p50": spread(_p(r, 50) for r in per_round),
        "round_p99": spread(_p(r, 99) for r in per_round),
    }


# -- 0. container start to ready frame ----------------------------------------------------------


def ready_times(ctx: Context) -> dict[str, Any]:
    """Starts of each function's container by hotfn's DockerDriver (no server), in turn:
    create+attach+start returned, and the ready frame read."""
    raw: dict[str, list[dict]] = {fn.key: [] for fn in ctx.functions}
    for _ in range(ctx.profile.ready_starts):
        ctx.check_budget()
        for fn in ctx.functions:
            started = ctx.direct.start(image=fn.image, memory=fn.memory_mb)
            ctx.direct.stop(started["session"])
            raw[fn.key].append(started)
    return {key: {
        "engine_start_ms": spread(s["started_ms"] for s in starts),
        "ready_ms": spread(s["ready_ms"] for s in starts),
        "runtime": starts[-1]["runtime"] if starts else None,
        "samples_ready_ms": [s["ready_ms"] for s in starts],
    } for key, starts in raw.items()}


# -- 1. hot vs cold, per runtime -------------------------------------------------------------------


def hot_vs_cold(ctx: Context) -> dict[str, Any]:
    p = ctx.profile
    fns = ctx.functions
    for fn in fns:
        ctx.create_route(f"/hot-{fn.key}", fn, min_warm=1)
        ctx.create_route(f"/cold-{fn.key}", fn, hot=False)
    for fn in fns:
        ctx.server.wait_idle(APP, f"/hot-{fn.key}", timeout=180)
        calls(ctx, ctx.echo(f"/hot-{fn.key}"), 20)  # warm-up, not measured
        calls(ctx, ctx.echo(f"/cold-{fn.key}"), 1)  # the image's files in the page cache
    hot: dict[str, list[list[float]]] = {fn.key: [] for fn in fns}
    cold: dict[str, list[list[float]]] = {fn.key: [] for fn in fns}
    cpu: list[float] = []
    for r in range(p.rounds):
        ctx.check_budget()
        for fn in fns:
            c = calls(ctx, ctx.echo(f"/cold-{fn.key}"), p.cold_calls[fn.key])
            h = calls(ctx, ctx.echo(f"/hot-{fn.key}"), p.hot_calls)
            cold[fn.key].append(c.latencies_ms)
            hot[fn.key].append(h.latencies_ms)
            cpu.append(h.client_cpu_share)
        ctx.log(f"hot/cold round {r + 1}/{p.rounds} done")
    out: dict[str, Any] = {"client_cpu_share_hot": spread(cpu), "functions": {}}
    for fn in fns:
        hot_s, cold_s = rounds_summary(hot[fn.key]), rounds_summary(cold[fn.key])
        out["functions"][fn.key] = {
            "hot": hot_s, "cold": cold_s,
            "ratio_p50": cold_s["round_p50"]["median"] / hot_s["round_p50"]["median"],
            "ratio_p99": cold_s["pooled"]["p99"] / hot_s["pooled"]["p99"],
            "hot_container_memory_mb": ctx.route_memory_mb(f"/hot-{fn.key}"),
            "samples_hot_ms": [x for r in hot[fn.key] for x in r],
            "samples_cold_ms": [x for r in cold[fn.key] for x in r],
        }
        ctx.delete_route(f"/hot-{fn.key}")
        ctx.delete_route(f"/cold-{fn.key}")
    return out


# -- 1b. the JIT effect: call 1, 10, 100, 1000 on a fresh warm container ----------------------


JIT_CALLS = (1, 10, 100, 1000)


def jit_effect(ctx: Context) -> dict[str, Any]:
    """Each function gets ``jit_containers`` fresh containers (a new route with min_warm: 1,
    first request only once it is idle, so start-up is not in call 1); on each, ``jit_calls``
    sequential `sum` calls (parse and sum ~1000 JSON numbers). Figures: per call index, the
    median over containers."""
    p = ctx.profile
    curves: dict[str, list[list[float]]] = {fn.key: [] for fn in ctx.functions}
    memory: dict[str, list[float]] = {fn.key: [] for fn in ctx.functions}
    for i in range(p.jit_containers):
        for fn in ctx.functions:
            ctx.check_budget()
            path = ctx.create_route(f"/jit-{fn.key}-{i}", fn, min_warm=1)
            ctx.server.wait_idle(APP, path, timeout=180)
            result = calls(ctx, ctx.sum(path), p.jit_calls, stop_on_error=True)
            curves[fn.key].append(result.latencies_ms)
            memory[fn.key] += ctx.route_memory_mb(path)
            ctx.delete_route(path)
        ctx.log(f"JIT container set {i + 1}/{p.jit_containers} done")
    out = {}
    for fn in ctx.functions:
        runs = curves[fn.key]
        n = min(len(r) for r in runs)
        curve = [median(r[j] for r in runs) for j in range(n)]
        steady = median(x for r in runs for x in r[-100:])
        out[fn.key] = {
            "jvm": fn.jvm,
            "containers": len(runs),
            "call_ms": {str(k): curve[k - 1] for k in JIT_CALLS if k <= n},
            "steady_ms": steady,  # median of the last 100 calls
            "first_over_steady": curve[0] / steady if steady else None,
            "curve_ms": curve,
            "memory_after_mb": memory[fn.key],
        }
    return out


# -- 2. overhead breakdown --------------------------------------------------------------------------


def overhead(ctx: Context) -> dict[str, Any]:
    return {key: _overhead_one(ctx, FUNCTIONS[key]) for key in ctx.profile.overhead_functions}


def _overhead_one(ctx: Context, fn: BenchFunction) -> dict[str, Any]:
    p = ctx.profile
    hot_path = ctx.create_route(f"/ovh-hot-{fn.key}", fn, min_warm=1)
    cold_path = ctx.create_route(f"/ovh-cold-{fn.key}", fn, hot=False)
    ctx.server.wait_idle(APP, hot_path, timeout=180)
    sessions = {"direct": ctx.direct.start(image=fn.image, memory=fn.memory_mb)["session"]}
    if fn.key == "python":  # the shim itself runs on the host only for Python
        sessions["host_pipes"] = ctx.direct.start(kind="host", function_dir=fn.path)["session"]
    try:
        def via_client(call: Call) -> Callable[[], list[float]]:
            return lambda: calls(ctx, call, p.overhead_hot_calls).latencies_ms

        def via_frames(session: str) -> Callable[[], list[float]]:
            return lambda: [x / 1e6 for x in ctx.direct.calls(
                session, p.overhead_hot_calls, ECHO_BODY, ECHO_BODY)["latencies_ns"]]

        hot_variants: dict[str, Callable[[], list[float]]] = {
            "http": via_client(ctx.echo(hot_path)),
            "baseline_http": via_client(ctx.baseline_echo()),
            "raw_tcp": via_client(ctx.baseline_echo(raw=True)),
            **{name: via_frames(session) for name, session in sessions.items()},
        }
        for run in hot_variants.values():  # warm-up, not measured
            run()
        samples: dict[str, list[list[float]]] = {name: [] for name in hot_variants}
        samples["server_invoker"] = []
        cold_samples: dict[str, list[list[float]]] = {"http_cold": [], "server_invoker_cold": [], "docker_run": []}
        phases: list[dict[str, float]] = []
        for r in range(p.overhead_rounds):
            ctx.check_budget()
            for name, run in hot_variants.items():
                samples[name].append(run())
                if name == "http":
                    # The server's own record of the same calls: invoker start to answer.
                    samples["server_invoker"].append(
                        ctx.server.call_durations_ms(APP, hot_path, p.overhead_hot_calls))
            cold_samples["http_cold"].append(calls(ctx, ctx.echo(cold_path), p.overhead_cold_calls).latencies_ms)
            cold_samples["server_invoker_cold"].append(
                ctx.server.call_durations_ms(APP, cold_path, p.overhead_cold_calls))
            cold_samples["docker_run"].append(
                [ctx.direct.docker_run(fn.image, fn.memory_mb, ECHO_BODY) for _ in range(p.overhead_cold_calls)])
            phases += [ctx.direct.cold_phases(fn.image, fn.memory_mb, ECHO_BODY)
                       for _ in range(p.overhead_cold_calls)]
            ctx.log(f"overhead {fn.key} round {r + 1}/{p.overhead_rounds} done")
    finally:
        for s in sessions.values():
            ctx.direct.stop(s)
        ctx.delete_route(hot_path)
        ctx.delete_route(cold_path)
    hot = {name: rounds_summary(rs) for name, rs in samples.items()}
    cold = {name: rounds_summary(rs) for name, rs in cold_samples.items()}
    phase_ms = {name: median(ph[name] for ph in phases) for name in phases[0]}
    return {"hot": hot, "cold": cold, "cold_phases_ms": phase_ms,
            "hot_attribution": _hot_attribution(hot), "cold_attribution": _cold_attribution(cold, phase_ms)}


def _m(summary: dict[str, Any]) -> float:
    return summary["round_p50"]["median"]


def _hot_attribution(hot: dict[str, Any]) -> list[dict[str, Any]]:
    """The hot path's median split into parts, each a difference of medians measured in
    alternation (medians do not add exactly; the parts are estimates that sum to the total)."""
    total, base, raw, invoker, direct = (
        _m(hot[k]) for k in ("http", "baseline_http", "raw_tcp", "server_invoker", "direct"))
    rows = [
        ("client and loopback TCP (raw-socket server: no HTTP library)", raw),
        ("HTTP front: request parsing (simple.py; h11 for the rest), response, trio I/O (baseline server minus raw)", base - raw),
        ("hotfn API around the invoker: routing, Invocation and Call records, response headers",
         total - base - invoker),
        ("hotfn invoker beyond a bare frame round trip: pool acquire/release, trio wake-ups",
         invoker - direct),
    ]
    # The host-process variant is shown beside, not subtracted: it is no clean "without Docker"
    # control (report.py's note says why), so Docker's share is not split out of the round trip.
    rows.append(("frame round trip to the container: encode, FIFO, shim decode/handler/encode, FIFO, decode",
                 direct))
    return [{"part": part, "ms": ms, "share": ms / total} for part, ms in rows] + \
        [{"part": "total: HTTP hot path, client-measured", "ms": total, "share": 1.0}]


def _cold_attribution(cold: dict[str, Any], phases: dict[str, float]) -> list[dict[str, Any]]:
    total, invoker = _m(cold["http_cold"]), _m(cold["server_invoker_cold"])
    on_path = {k: v for k, v in phases.items() if not k.startswith("remove")}
    rows = [(f"docker: {name} (timed alone)", ms) for name, ms in on_path.items()]
    rows.append(("hotfn's cold invoker beyond those steps (invoker time from call records minus the steps)",
                 invoker - sum(on_path.values())))
    rows.append(("HTTP and API outside the invoker (client-measured minus invoker time)", total - invoker))
    return [{"part": part, "ms": ms, "share": ms / total} for part, ms in rows] + \
        [{"part": "total: HTTP cold path, client-measured", "ms": total, "share": 1.0}]


# -- 3. issue 3: sequential calls, and the load matrix -------------------------------------------


def sequential(ctx: Context) -> dict[str, Any]:
    """Issue 3's headline: ``sequential_calls`` keep-alive calls one after another, hotfn
    (Python echo, hot) and the no-container baseline in alternation."""
    p = ctx.profile
    path = ctx.create_route("/seq", FUNCTIONS["python"], min_warm=1)
    ctx.server.wait_idle(APP, path, timeout=180)
    targets = {"hotfn": ctx.echo(path), "baseline": ctx.baseline_echo()}
    for call in targets.values():
        calls(ctx, call, 100)  # warm-up
    samples: dict[str, list[list[float]]] = {k: [] for k in targets}
    cpu: dict[str, list[float]] = {k: [] for k in targets}
    for _ in range(p.sequential_rounds):
        ctx.check_budget()
        for name, call in targets.items():
            result = calls(ctx, call, p.sequential_calls)
            samples[name].append(result.latencies_ms)
            cpu[name].append(result.client_cpu_share)
    ctx.delete_route(path)
    out: dict[str, Any] = {name: {**rounds_summary(rs), "client_cpu_share": spread(cpu[name])}
                           for name, rs in samples.items()}
    out["calls"] = p.sequential_calls
    return out


class ServerSampler:
    """Samples the hotfn server's RSS every ``interval`` s while a load runs."""

    def __init__(self, ctx: Context, interval: float = 0.2) -> None:
        self.ctx = ctx
        self.interval = interval
        self.rss: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.rss.append(self.ctx.server.rss_mb())
            except OSError:
                return

    def __enter__(self) -> "ServerSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def load(ctx: Context) -> dict[str, Any]:
    """wrk against four targets at each client count, in alternation, ``load_rounds`` times:
    the no-container baseline, one hot route with max_concurrency 1, one with 4, and
    ``multi_routes`` hot routes at once (requests round-robin over them). All warm first."""
    p = ctx.profile
    py = FUNCTIONS["python"]
    ctx.create_route("/load-mc1", py, min_warm=1, max_concurrency=1)
    ctx.create_route("/load-mc4", py, min_warm=4, max_concurrency=4)
    multi = [ctx.create_route(f"/multi-{i}", py, min_warm=1) for i in range(p.multi_routes)]
    for path, count in [("/load-mc1", 1), ("/load-mc4", 4)] + [(m, 1) for m in multi]:
        ctx.server.wait_idle(APP, path, count=count, timeout=180)
    targets: dict[str, tuple[int, list[str]]] = {
        "baseline": (ctx.baseline.port, ["/"]),
        "mc1": (ctx.server.port, [f"/r/{APP}/load-mc1"]),
        "mc4": (ctx.server.port, [f"/r/{APP}/load-mc4"]),
        f"routes{p.multi_routes}": (ctx.server.port, [f"/r/{APP}{m}" for m in multi]),
    }
    for port, paths in targets.values():  # warm-up: every connection path and container used
        run_wrk(port, paths, ECHO_BODY, 16, 1.0)
    runs: dict[str, dict[int, list[WrkResult]]] = {t: {c: [] for c in p.load_clients} for t in targets}
    server_cpu: dict[str, dict[int, list[float]]] = {t: {c: [] for c in p.load_clients} for t in targets}
    rss_idle_before = ctx.server.rss_mb()
    with ServerSampler(ctx) as sampler:
        for r in range(p.load_rounds):
            for clients in p.load_clients:
                ctx.check_budget()
                for name, (port, paths) in targets.items():
                    cpu0 = ctx.server.cpu_seconds()
                    result = run_wrk(port, paths, ECHO_BODY, clients, p.load_seconds)
                    server_cpu[name][clients].append((ctx.server.cpu_seconds() - cpu0) / result.wall_s)
                    runs[name][clients].append(result)
            ctx.log(f"load round {r + 1}/{p.load_rounds} done")
    memory = {path: ctx.route_memory_mb(path) for path in ["/load-mc1", "/load-mc4", *multi]}
    for path in ["/load-mc1", "/load-mc4", *multi]:
        ctx.delete_route(path)
    table: dict[str, dict[str, Any]] = {}
    for name, by_clients in runs.items():
        table[name] = {}
        for clients, results in by_clients.items():
            table[name][str(clients)] = {
                "rps": spread(x.rps for x in results),
                "p50_ms": spread(x.p50_ms for x in results),
                "p99_ms": spread(x.p99_ms for x in results),
                "p999_ms": spread(x.p999_ms for x in results),
                "max_ms": spread(x.max_ms for x in results),
                "errors": sum(x.errors for x in results),
                "requests": sum(x.requests for x in results),
                "wrk_cpu_share": spread(x.wrk_cpu_s / x.wall_s for x in results),
                "wrk_cpu_us_per_request": spread(1e6 * x.wrk_cpu_s / max(1, x.requests) for x in results),
                "server_cpu_share": spread(server_cpu[name][clients]) if name != "baseline" else None,
            }
    return {
        "clients": list(p.load_clients), "seconds": p.load_seconds, "rounds": p.load_rounds,
        "targets": table,
        "server_rss_mb": {"idle_before": rss_idle_before, "max_under_load": max(sampler.rss, default=None),
                          "median_under_load": median(sampler.rss), "idle_after": ctx.server.rss_mb()},
        "container_memory_mb": memory,
    }


# -- 4. cold-start mitigation -----------------------------------------------------------------------


def mitigation(ctx: Context) -> dict[str, Any]:
    """First request right after a route is created: without min_warm (the request starts the
    container and waits for its ready frame) and with min_warm: 1 (the first request is sent
    once /v1/stats shows the container idle), in alternation."""
    p = ctx.profile
    fns = [FUNCTIONS[k] for k in p.mitigation_functions]
    raw: dict[str, dict[str, list[float]]] = {
        fn.key: {"first_plain": [], "second_plain": [], "time_to_idle": [], "first_warm": []} for fn in fns}
    for r in range(p.mitigation_rounds):
        for fn in fns:
            ctx.check_budget()
            plain = ctx.create_route(f"/first-{fn.key}-{r}-plain", fn)
            first = calls(ctx, ctx.echo(plain), 1)
            second = calls(ctx, ctx.echo(plain), 5)
            ctx.delete_route(plain)
            warm = ctx.create_route(f"/first-{fn.key}-{r}-warm", fn, min_warm=1)
            waited = ctx.server.wait_idle(APP, warm, timeout=180)
            warm_first = calls(ctx, ctx.echo(warm), 1)
            ctx.delete_route(warm)
            row = raw[fn.key]
            row["first_plain"] += first.latencies_ms
            row["second_plain"].append(median(second.latencies_ms))
            row["time_to_idle"].append(waited * 1000)
            row["first_warm"] += warm_first.latencies_ms
        ctx.log(f"mitigation round {r + 1}/{p.mitigation_rounds} done")
    return {key: {name: spread(values) for name, values in row.items()} for key, row in raw.items()}


def burst(ctx: Context) -> dict[str, Any]:
    """Scale-out under a burst: per round a new route with one warm container and
    max_concurrency 8 gets 8 wrk connections at once for ``load_seconds``; the slowest call,
    p99.9, p99, req/s, and how many containers the route ended with."""
    p = ctx.profile
    py = FUNCTIONS["python"]
    rows: dict[str, list[float]] = {k: [] for k in ("rps", "p99_ms", "p999_ms", "max_ms", "containers")}
    for r in range(p.load_rounds):
        ctx.check_budget()
        path = ctx.create_route(f"/burst-{r}", py, min_warm=1, max_concurrency=8)
        ctx.server.wait_idle(APP, path, count=1, timeout=180)
        calls(ctx, ctx.echo(path), 50)  # the warm container warmed, as a route in use is
        run = run_wrk(ctx.server.port, [f"/r/{APP}{path}"], ECHO_BODY, 8, p.load_seconds)
        for key, value in (("rps", run.rps), ("p99_ms", run.p99_ms), ("p999_ms", run.p999_ms),
                           ("max_ms", run.max_ms),
                           ("containers", ctx.server.pool_stats(APP, path).get("workers", 0))):
            rows[key].append(value)
        ctx.delete_route(path)
    return {"clients": 8, "seconds": p.load_seconds, **{k: spread(v) for k, v in rows.items()},
            "worst_max_ms": max(rows["max_ms"])}


def concurrency(ctx: Context) -> dict[str, Any]:
    """Many calls per container: one container of a handler that waits 10 ms on I/O, its
    ready frame asking for concurrency 1 and 16, 32 wrk connections, in alternation."""
    from .functions import build_images

    p = ctx.profile
    fn = FUNCTIONS["iowait"]
    build_images([fn], ctx.log)
    levels = (1, 16)
    for c in levels:
        ctx.create_route(f"/conc-{c}", fn, min_warm=1, max_concurrency=1,
                         config={"IOWAIT_CONCURRENCY": str(c)})
        ctx.server.wait_idle(APP, f"/conc-{c}", count=1, timeout=180)
    rows: dict[int, dict[str, list[float]]] = {c: {"rps": [], "p50_ms": [], "p99_ms": []} for c in levels}
    for _ in range(p.load_rounds):
        for c in levels:
            ctx.check_budget()
            run = run_wrk(ctx.server.port, [f"/r/{APP}/conc-{c}"], ECHO_BODY, 32, p.load_seconds)
            for key, value in (("rps", run.rps), ("p50_ms", run.p50_ms), ("p99_ms", run.p99_ms)):
                rows[c][key].append(value)
    for c in levels:
        ctx.delete_route(f"/conc-{c}")
    out = {str(c): {k: spread(v) for k, v in r.items()} for c, r in rows.items()}
    return {"clients": 32, "levels": out,
            "ratio": out["16"]["rps"]["median"] / out["1"]["rps"]["median"]}


# -- 6. what gVisor costs: the same routes under runc and runsc -----------------------------------

ISOLATIONS = ("container", "gvisor")


def gvisor(ctx: Context) -> dict[str, Any]:
    """For each function, a hot and a cold route under each isolation (runc: "container"; runsc:
    "gvisor"); in alternation per round: cold calls then hot calls of each. Figures: p50 and
    p99 of each, and gVisor's p50 over runc's."""
    p = ctx.profile
    fns = [fn for fn in ctx.functions if fn.key in p.gvisor_functions]

    def path(mode: str, fn: BenchFunction, isolation: str) -> str:
        return f"/gv-{mode}-{fn.key}-{isolation}"

    for fn in fns:
        for isolation in ISOLATIONS:
            ctx.create_route(path("hot", fn, isolation), fn, min_warm=1, isolation=isolation)
            ctx.create_route(path("cold", fn, isolation), fn, hot=False, isolation=isolation)
    for fn in fns:
        for isolation in ISOLATIONS:
            ctx.server.wait_idle(APP, path("hot", fn, isolation), timeout=180)
            calls(ctx, ctx.echo(path("hot", fn, isolation)), 20)  # warm-up, not measured
            calls(ctx, ctx.echo(path("cold", fn, isolation)), 1)  # the image's files in the page cache
    samples: dict[tuple[str, str, str], list[list[float]]] = {
        (fn.key, mode, isolation): [] for fn in fns for mode in ("hot", "cold") for isolation in ISOLATIONS}
    for r in range(p.gvisor_rounds):
        ctx.check_budget()
        for fn in fns:
            for isolation in ISOLATIONS:
                cold = calls(ctx, ctx.echo(path("cold", fn, isolation)), p.gvisor_cold_calls)
                hot = calls(ctx, ctx.echo(path("hot", fn, isolation)), p.gvisor_hot_calls)
                samples[(fn.key, "cold", isolation)].append(cold.latencies_ms)
                samples[(fn.key, "hot", isolation)].append(hot.latencies_ms)
        ctx.log(f"gVisor round {r + 1}/{p.gvisor_rounds} done")
    out: dict[str, Any] = {}
    for fn in fns:
        figures: dict[str, Any] = {}
        for mode in ("hot", "cold"):
            for isolation in ISOLATIONS:
                figures[f"{mode}_{isolation}"] = rounds_summary(samples[(fn.key, mode, isolation)])
            figures[f"{mode}_ratio_p50"] = (figures[f"{mode}_gvisor"]["round_p50"]["median"]
                                            / figures[f"{mode}_container"]["round_p50"]["median"])
        figures["hot_container_memory_mb"] = {
            isolation: ctx.route_memory_mb(path("hot", fn, isolation)) for isolation in ISOLATIONS}
        out[fn.key] = figures
        for isolation in ISOLATIONS:
            ctx.delete_route(path("hot", fn, isolation))
            ctx.delete_route(path("cold", fn, isolation))
    return out

