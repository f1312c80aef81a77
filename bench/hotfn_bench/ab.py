"""Side by side: the same hot Python echo on hotfn servers run from different checkouts (or
Python builds), in alternation, so that a slow moment of a shared machine falls on all alike.

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.ab \
        --variant new=. --variant old=/tmp/hotfn-old [--variant debian=.:/usr/bin/python3 ...]

A variant is ``name=checkout[:python]``: the server runs ``python -m hotfn serve`` with the
checkout as its cwd (so its ``hotfn`` package is the one imported). Per round and variant:
``calls`` sequential keep-alive calls (p50, p99) and wrk with ``clients`` connections for
``seconds`` (req/s, p99); with each, the server's own CPU time per call (its main thread's
``/proc/<pid>/task/<pid>/schedstat``, in ns: timing-noise free where a latency is not).
Medians over rounds, and each variant's ratio to the first.

``--burst``: instead, per round and variant, a new route with one warm container and
max_concurrency 8 gets ``clients`` wrk connections at once for ``seconds`` (scale-out under a
burst): req/s, p99, p99.9, the slowest call, and the containers it ended with.

Bounded: rounds x variants x (calls + seconds); 127.0.0.1 only; every server is stopped and
its containers removed on every exit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import tempfile

from .functions import ECHO_BODY, FUNCTIONS, PYTHON, REPO_DIR
from .records import _p, sequential
from .server import HotfnServer, free_port, remove_containers
from .wrk import run_wrk

APP, ROUTE = "bench", "/echo"


def main_thread_cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def parse_variant(text: str) -> tuple[str, str, str]:
    name, _, rest = text.partition("=")
    source, _, python = rest.partition(":")
    return name, os.path.abspath(source or REPO_DIR), python or PYTHON


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=DIR[:PYTHON]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per round")
    parser.add_argument("--seconds", type=float, default=3.0, help="wrk per round (0: none)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-concurrency", type=int, default=1)
    parser.add_argument("--burst", action="store_true", help="scale-out bursts instead")
    args = parser.parse_args()
    if args.burst:
        burst(args)
        return
    variants = [parse_variant(v) for v in args.variant]
    run_id = datetime.datetime.now().strftime("%H%M%S")
    tmp = tempfile.mkdtemp(prefix="hotfn-bench-ab-")
    servers: dict[str, HotfnServer] = {}
    keys = ("seq_p50", "seq_p99", "seq_cpu_us", "rps", "load_p99", "load_cpu_us")
    results = {name: {k: [] for k in keys} for name, _, _ in variants}
    try:
        for name, source, python in variants:
            node_id = f"bench-ab-{name}-{run_id}"
            server = servers[name] = HotfnServer(
                port=free_port(avoid={s.port for s in servers.values()}),
                db=os.path.join(tmp, f"{name}.db"), node_id=node_id,
                log_path=os.path.join(tmp, f"{name}.log"), source=source, python=python)
            server.ensure_app(APP)
            server.create_route(APP, ROUTE, FUNCTIONS["python"].image, format="hot",
                                min_warm=args.max_concurrency, idle_timeout=600,
                                max_concurrency=args.max_concurrency)
            server.wait_idle(APP, ROUTE, args.max_concurrency)
            sequential(server.port, 300)  # warm-up
        for _ in range(args.rounds):
            for name, _, _ in variants:
                server = servers[name]
                cpu = main_thread_cpu_ns(server.pid)
                seq = sequential(server.port, args.calls)
                seq_cpu = (main_thread_cpu_ns(server.pid) - cpu) / args.calls / 1000
                row = {"seq_p50": _p(seq, 50), "seq_p99": _p(seq, 99), "seq_cpu_us": seq_cpu}
                if args.seconds:
                    cpu = main_thread_cpu_ns(server.pid)
                    load = run_wrk(server.port, [f"/r/{APP}{ROUTE}"], ECHO_BODY, args.clients,
                                   args.seconds)
                    row.update(rps=load.rps, load_p99=load.p99_ms,
                               load_cpu_us=(main_thread_cpu_ns(server.pid) - cpu)
                               / max(1, load.requests) / 1000)
                for key, value in row.items():
                    results[name][key].append(value)
                print(name, {k: round(v, 3) for k, v in row.items()}, flush=True)
    finally:
        for server in servers.values():
            server.stop(10.0)
            remove_containers(f"hotfn.node={server.node_id}")
    summary = {n: {k: round(statistics.median(v), 4) for k, v in r.items() if v}
               for n, r in results.items()}
    first = variants[0][0]
    print(json.dumps({"args": vars(args), "median_over_rounds": summary, "per_round": results}))
    print(f"\n| variant | seq p50 ms | seq p99 ms | server CPU us/call (seq) | {args.clients} clients "
          "req/s | p99 ms | server CPU us/call (load) | p50 / " + first + " | req/s / " + first + " |")
    print("| --- " * 9 + "|")
    for name, _, _ in variants:
        s, f = summary[name], summary[first]
        print(f"| {name} | {s['seq_p50']:.3f} | {s['seq_p99']:.3f} | {s['seq_cpu_us']:.0f} | "
              f"{s.get('rps', 0):,.0f} | {s.get('load_p99', 0):.2f} | {s.get('load_cpu_us', 0):.0f} | "
              f"{s['seq_p50'] / f['seq_p50']:.2f} | {s.get('rps', 0) / (f.get('rps') or 1):.2f} |")


def burst(args: argparse.Namespace) -> None:
    variants = [parse_variant(v) for v in args.variant]
    run_id = datetime.datetime.now().strftime("%H%M%S")
    tmp = tempfile.mkdtemp(prefix="hotfn-bench-burst-")
    servers: dict[str, HotfnServer] = {}
    keys = ("rps", "p99", "p999", "max", "containers")
    results = {name: {k: [] for k in keys} for name, _, _ in variants}
    try:
        for name, source, python in variants:
            servers[name] = HotfnServer(
                port=free_port(avoid={s.port for s in servers.values()}),
                db=os.path.join(tmp, f"{name}.db"), node_id=f"bench-burst-{name}-{run_id}",
                log_path=os.path.join(tmp, f"{name}.log"), source=source, python=python)
            servers[name].ensure_app(APP)
        for round_ in range(args.rounds):
            for name, _, _ in variants:
                server = servers[name]
                path = f"/burst{round_}"
                server.create_route(APP, path, FUNCTIONS["python"].image, format="hot", min_warm=1,
                                    max_concurrency=8, idle_timeout=600)
                server.wait_idle(APP, path, 1)
                sequential_path(server.port, path, 50)  # the warm one warmed
                load = run_wrk(server.port, [f"/r/{APP}{path}"], ECHO_BODY, args.clients, args.seconds)
                row = {"rps": load.rps, "p99": load.p99_ms, "p999": load.p999_ms, "max": load.max_ms,
                       "containers": server.pool_stats(APP, path).get("workers", 0)}
                server.delete_route(APP, path)
                for key, value in row.items():
                    results[name][key].append(value)
                print(name, {k: round(v, 3) for k, v in row.items()}, flush=True)
    finally:
        for server in servers.values():
            server.stop(10.0)
            remove_containers(f"hotfn.node={server.node_id}")
    print(json.dumps({"args": vars(args), "per_round": results}))
    print(f"\n| variant | req/s | p99 ms | p99.9 ms | max ms (median) | max ms (worst round) | containers |")
    print("| --- " * 7 + "|")
    for name, _, _ in variants:
        r = results[name]
        med = {k: statistics.median(v) for k, v in r.items()}
        print(f"| {name} | {med['rps']:,.0f} | {med['p99']:.1f} | {med['p999']:.1f} | {med['max']:.1f} | "
              f"{max(r['max']):.1f} | {med['containers']:.0f} |")


def sequential_path(port: int, path: str, calls: int) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", port)) as sock:
        request = (f"POST /r/{APP}{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(ECHO_BODY)}"
                   "\r\n\r\n").encode() + ECHO_BODY
        for _ in range(calls):
            sock.sendall(request)
            data = b""
            while not data.endswith(ECHO_BODY):
                data += sock.recv(65536)


if __name__ == "__main__":
    main()
