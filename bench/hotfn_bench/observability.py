"""What metrics and the access log cost on the hot path: three hotfn servers side by side in
one run, the same hot Python echo on each:

    bare      --no-metrics --no-access-log
    metrics   --no-access-log
    all       (the defaults: metrics and the access log, which goes to the server's log file)

In alternation, per round: sequential keep-alive calls (p50, p99) and 8 keep-alive clients for
a few seconds (req/s, p50, and the server's CPU time per call: on a shared machine the steadiest
of the figures, as others' load moves latency more than it moves our own CPU time). A Prometheus scrape of /metrics runs every second against the
servers that have metrics, as one would in production.

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.observability [--rounds 5] [--seconds 3]

On a busy machine those differences drown in noise, so the run also times, in this process,
what each part adds to one call (``Telemetry.call_done`` with metrics off, on, and with the
access log written to a file; a traceparent made or checked): microseconds that do not depend
on other processes' load. ``--micro`` does only that.

Bounded: ``rounds`` x 3 servers x (``calls`` sequential calls + ``seconds`` of load), traffic
to 127.0.0.1 only; the servers are stopped and their containers removed on every exit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import tempfile
import threading
import urllib.request

from .functions import FUNCTIONS, build_images
from .records import APP, ROUTE, _p, loaded, sequential
from .server import HotfnServer, free_port, remove_containers

SETUPS = {
    "bare": ["--no-metrics", "--no-access-log"],
    "metrics": ["--no-access-log"],
    "all": [],
}


def _scrape_every_second(servers: list[HotfnServer], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for server in servers:
            try:
                with urllib.request.urlopen(server.base + "/metrics", timeout=5) as reply:
                    reply.read()
            except OSError:
                pass


def per_call_cost(repeat: int = 5, number: int = 20000) -> dict[str, float]:
    """Microseconds each part of the telemetry adds to one call, best of ``repeat``."""
    import timeit

    from hotfn import models
    from hotfn.observe import tracecontext
    from hotfn.observe import AccessLog
    from hotfn.invoke import Outcome
    from hotfn.observe import Metrics
    from hotfn.models import Call
    from hotfn.observe import Telemetry

    with tempfile.TemporaryFile("w") as log_file:
        setups = {
            "time series only (metrics and access log off)": Telemetry(),
            "+ metrics": Telemetry(metrics=Metrics("bench")),
            "+ metrics + access log (text, to a file)": Telemetry(metrics=Metrics("bench"),
                                                                  access_log=AccessLog("text", log_file)),
            "+ metrics + access log (json, to a file)": Telemetry(metrics=Metrics("bench"),
                                                                  access_log=AccessLog("json", log_file)),
        }
        call_id = models.new_call_id()
        call = Call(id=call_id, app="bench", route="/echo", mode="hot", created_at=1.0, started_at=1.0,
                    completed_at=1.0005, attempts=1, traceparent=tracecontext.from_call_id(call_id))
        outcome = Outcome(200, queue_wait=1e-5, container_id="3f2a9c1b7d0e99887766")
        costs = {}
        for name, telemetry in setups.items():
            telemetry.routes_changed({("bench", "/echo")})
            best = min(timeit.repeat(lambda: telemetry.call_done(call, outcome, "POST", "hot"),
                                     number=number, repeat=repeat))
            costs[name] = best / number * 1e6
    headers = [("host", "127.0.0.1"), ("content-length", "5")]
    given = headers + [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    for name, sent in (("traceparent made from the call id", headers), ("traceparent checked", given)):
        best = min(timeit.repeat(lambda: tracecontext.resolve(sent, call_id), number=number, repeat=repeat))
        costs[name] = best / number * 1e6
    return costs


def _print_costs(costs: dict[str, float]) -> None:
    print("\n| per call, in this process | µs |\n| --- | --- |")
    for name, micros in costs.items():
        print(f"| {name} | {micros:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per round")
    parser.add_argument("--seconds", type=float, default=3.0, help="load per round")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--micro", action="store_true", help="only the in-process per-call costs")
    args = parser.parse_args()
    if args.micro:
        _print_costs(per_call_cost())
        return
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    fn = FUNCTIONS["python"]
    build_images([fn], lambda m: print(m, flush=True))
    tmp = tempfile.mkdtemp(prefix="hotfn-bench-observability-")
    servers: dict[str, HotfnServer] = {}
    results = {s: {"seq_p50": [], "seq_p99": [], "rps": [], "load_p50": [], "cpu_us_per_call": []}
               for s in SETUPS}
    stop = threading.Event()
    scraper = None
    try:
        for name, extra in SETUPS.items():
            port = free_port(avoid={s.port for s in servers.values()})
            servers[name] = HotfnServer(port=port, db=os.path.join(tmp, f"{name}.db"),
                                        node_id=f"bench-obs-{name}-{run_id}",
                                        log_path=os.path.join(tmp, f"{name}.log"), extra_args=extra)
            servers[name].ensure_app(APP)
            servers[name].create_route(APP, ROUTE, fn.image, format="hot", min_warm=1, idle_timeout=600)
            servers[name].wait_idle(APP, ROUTE)
            sequential(port, 300)  # warm-up
        scraper = threading.Thread(target=_scrape_every_second, daemon=True,
                                   args=([servers["metrics"], servers["all"]], stop))
        scraper.start()
        for _ in range(args.rounds):
            for name in SETUPS:
                port = servers[name].port
                seq = sequential(port, args.calls)
                cpu_before = servers[name].cpu_seconds()
                rps, lat = loaded(port, args.clients, args.seconds)
                cpu_us = (servers[name].cpu_seconds() - cpu_before) / max(1, len(lat)) * 1e6
                for key, value in (("seq_p50", _p(seq, 50)), ("seq_p99", _p(seq, 99)),
                                   ("rps", rps), ("load_p50", _p(lat, 50)), ("cpu_us_per_call", cpu_us)):
                    results[name][key].append(value)
    finally:
        stop.set()
        if scraper is not None:
            scraper.join(10)
        for server in servers.values():
            server.stop(10.0)
            remove_containers(f"hotfn.node={server.node_id}")
    summary = {s: {k: round(statistics.median(v), 3) for k, v in r.items()} for s, r in results.items()}
    print(json.dumps({"rounds": args.rounds, "calls": args.calls, "clients": args.clients,
                      "median_over_rounds": summary, "per_round": results}, indent=1))
    bare = summary["bare"]
    print(f"\n| server | sequential p50 | sequential p99 | {args.clients} clients: req/s | p50 "
          "| server CPU per call |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in SETUPS:
        s = summary[name]
        print(f"| {name} | {s['seq_p50']:.3f} ms ({s['seq_p50'] / bare['seq_p50']:.2f}x) "
              f"| {s['seq_p99']:.2f} ms | {s['rps']:.0f} ({s['rps'] / bare['rps']:.2f}x) "
              f"| {s['load_p50']:.2f} ms | {s['cpu_us_per_call']:.0f} µs "
              f"({s['cpu_us_per_call'] / bare['cpu_us_per_call']:.2f}x) |")
    _print_costs(per_call_cost())


if __name__ == "__main__":
    main()
