"""Several nodes on one machine: what HAProxy's hop costs, and what a second node adds.

    bench/cluster [--seconds 8] [--rounds 3] [--connections 16]

Two ``hotfn serve`` nodes share one PostgreSQL database (scripts/ensure-postgres; a database
of its own, dropped after) and the Docker engine; two HAProxy processes configured by
``hotfn lb-config`` sit in front, one with node 1 only and one with both. Targets, for one hot
route and for 8 hot routes (wrk visits them round-robin), in alternation for ``--rounds``:

- node 1 direct
- node 1 behind HAProxy
- nodes 1 and 2 behind HAProxy

Every route is warmed on every node first. The table gives the median over rounds of req/s,
p50 and p99 (wrk, ``--connections`` keep-alive connections, one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from .functions import ECHO_BODY, FUNCTIONS, build_images
from .server import free_port, wait_for
from .wrk import run_wrk

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROUTES = 8


def post(url: str, payload: dict | bytes, method: str = "POST") -> bytes:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as reply:
        return reply.read()


def healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/health", timeout=2) as reply:
        return reply.status == 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    log = lambda msg: print(f"[bench cluster] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    fn = FUNCTIONS["python"]
    build_images([fn], log)
    import psycopg

    server = subprocess.run([os.path.join(REPO, "scripts", "ensure-postgres")], check=True,
                            capture_output=True, text=True).stdout.strip().splitlines()[-1]
    run_id = uuid.uuid4().hex[:8]
    dbname = f"hotfn_bench_cluster_{run_id}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    db = server.rsplit("/", 1)[0] + "/" + dbname
    workdir = tempfile.mkdtemp(prefix="hotfn-bench-cluster-")
    processes: list[subprocess.Popen] = []
    try:
        nodes = []
        for i in (1, 2):
            port = free_port()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "hotfn", "serve", "--port", str(port), "--db", db,
                 "--node-id", f"bench-cluster-{run_id}-{i}", "--log-level", "warning",
                 "--drain-time", "0"],
                cwd=REPO, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(workdir, f"node-{i}.log"), "w")))
            nodes.append(f"127.0.0.1:{port}")
        for address in nodes:
            wait_for(lambda: healthy(f"http://{address}"), 60, what=f"node {address}")
        balancers = {}
        for label, members in (("1 node behind HAProxy", nodes[:1]),
                               ("2 nodes behind HAProxy", nodes)):
            port = free_port()
            cfg = os.path.join(workdir, f"haproxy-{len(members)}.cfg")
            subprocess.run([sys.executable, "-m", "hotfn", "lb-config", "--nodes", ",".join(members),
                            "--bind", f"127.0.0.1:{port}", "-o", cfg], check=True, cwd=REPO)
            processes.append(subprocess.Popen(["haproxy", "-db", "-f", cfg],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(lambda: healthy(f"http://127.0.0.1:{port}"), 20, what="haproxy")
            balancers[label] = port

        first = f"http://{nodes[0]}"
        post(f"{first}/v1/apps", {"app": {"name": "bench"}})
        paths = ["/hot"] + [f"/r{i}" for i in range(ROUTES)]
        # Every container started before any measurement and kept (min_warm, a long
        # idle_timeout): the figures are the serving path's, never a container's start.
        for path in paths:
            concurrency = 4 if path == "/hot" else 2
            post(f"{first}/v1/apps/bench/routes", {"route": {
                "path": path, "image": fn.image, "format": "hot", "memory": fn.memory_mb,
                "max_concurrency": concurrency, "min_warm": concurrency, "idle_timeout": 3600}})

        def warm() -> bool:
            stats = [json.loads(urllib.request.urlopen(f"http://{a}/v1/stats", timeout=5).read())
                     for a in nodes]
            return all(sum(r["idle"] for r in s["routes"].values()) >= 4 + 2 * ROUTES
                       for s in stats)

        wait_for(warm, 180, interval=1.0, what="every route's containers warm on every node")
        for address in nodes:
            for path in paths:
                post(f"http://{address}/r/bench{path}", ECHO_BODY)

        # Where the balancer sends each route (consistent hashing of 9 paths onto 2 nodes).
        placement = {}
        for path in paths:
            req = urllib.request.Request(
                f"http://127.0.0.1:{balancers['2 nodes behind HAProxy']}/r/bench{path}",
                data=ECHO_BODY, method="POST")
            with urllib.request.urlopen(req, timeout=30) as reply:
                call_id = reply.headers["hotfn-call-id"]

            def recorded() -> bool:
                with urllib.request.urlopen(f"{first}/v1/apps/bench/calls/{call_id}", timeout=5) as r:
                    placement[path] = json.loads(r.read())["call"]["node_id"].rsplit("-", 1)[1]
                return True

            wait_for(recorded, 10, what="a call record")
        log("behind HAProxy with 2 nodes, route -> node: "
            + ", ".join(f"{p} -> {n}" for p, n in placement.items()))

        targets = {"1 node direct": int(nodes[0].rsplit(":", 1)[1]), **balancers}
        loads = {"one hot route": ["/r/bench/hot"],
                 f"{ROUTES} routes": [f"/r/bench/r{i}" for i in range(ROUTES)]}
        samples: dict[tuple[str, str], list] = {}
        for round_ in range(args.rounds):
            for load, load_paths in loads.items():
                for target, port in targets.items():
                    result = run_wrk(port, load_paths, ECHO_BODY, args.connections, args.seconds)
                    samples.setdefault((load, target), []).append(result)
                    log(f"round {round_ + 1} {load:>14} {target:>24}: {result.rps:7.0f} req/s "
                        f"p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms, {result.errors} errors")
        print("\nroute -> node behind HAProxy with 2 nodes: "
              + ", ".join(f"{p} -> node {n}" for p, n in placement.items()))
        print(f"\n{args.connections} connections, {args.seconds:g} s per run, median of "
              f"{args.rounds} rounds, {os.cpu_count()} cores\n")
        print("| load | target | req/s | p50 ms | p99 ms | errors |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for (load, target), runs in samples.items():
            print(f"| {load} | {target} | {statistics.median(r.rps for r in runs):.0f} "
                  f"| {statistics.median(r.p50_ms for r in runs):.2f} "
                  f"| {statistics.median(r.p99_ms for r in runs):.2f} | {sum(r.errors for r in runs)} |")
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
