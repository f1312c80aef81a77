"""What metrics and the access log cost on the hot path: three hotfn servers side by side in
one run, the same hot Python echo on each:

    bare      --metrics off --access-log off
    metrics   --metrics on  --access-log off
    all       --metrics on  --access-log on   (the default; the log goes to the server's log file)

In alternation, per round: sequential keep-alive calls (p50, p99) and 8 keep-alive clients for
a few seconds (req/s, p50, and the server's CPU time per call: on a shared machine the steadiest
of the figures, as others' load moves latency more than it moves our own CPU time). A Prometheus scrape of /metrics runs every second against the
servers that have metrics, as one would in production.

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.observability [--rounds 5] [--seconds 3]

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
    "bare": ["--metrics", "off", "--access-log", "off"],
    "metrics": ["--metrics", "on", "--access-log", "off"],
    "all": ["--metrics", "on", "--access-log", "on"],
}


def _scrape_every_second(servers: list[HotfnServer], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for server in servers:
            try:
                with urllib.request.urlopen(server.base + "/metrics", timeout=5) as reply:
                    reply.read()
            except OSError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per round")
    parser.add_argument("--seconds", type=float, default=3.0, help="load per round")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
