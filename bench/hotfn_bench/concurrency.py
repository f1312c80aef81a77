"""Many calls per container: one container, a handler that waits 10 ms on I/O, its ready frame
asking for concurrency 1 (no key) and 16; wrk with ``clients`` connections in alternation.

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.concurrency [--rounds 3] [--seconds 3]

req/s should grow close to 16x (each call waits 10 ms: one at a time caps at ~100 req/s).
The function (bench/functions/iowait-python) speaks frames itself, so this measures the
server's side whatever the shims do. Bounded: rounds x 2 x seconds; 127.0.0.1 only; the
server is stopped and its containers removed on every exit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile

from .functions import ECHO_BODY, FUNCTIONS_DIR, PYTHON, REPO_DIR
from .server import HotfnServer, free_port, remove_containers
from .wrk import run_wrk

APP = "bench"
IMAGE = "hotfn-bench/iowait-python:latest"


def build() -> None:
    result = subprocess.run([PYTHON, "-m", "hotfn", "build", os.path.join(FUNCTIONS_DIR, "iowait-python"),
                             "--tag", IMAGE], cwd=REPO_DIR, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"hotfn build iowait-python failed:\n{result.stderr}")


def measure(rounds: int, seconds: float, clients: int, levels: tuple[int, ...] = (1, 16)) -> dict:
    build()
    run_id = datetime.datetime.now().strftime("%H%M%S")
    tmp = tempfile.mkdtemp(prefix="hotfn-bench-concurrency-")
    server = HotfnServer(port=free_port(), db=os.path.join(tmp, "c.db"), node_id=f"bench-conc-{run_id}",
                         log_path=os.path.join(tmp, "server.log"))
    results: dict[int, dict[str, list[float]]] = {c: {"rps": [], "p50": [], "p99": []} for c in levels}
    try:
        server.ensure_app(APP)
        for c in levels:
            server.create_route(APP, f"/c{c}", IMAGE, format="hot", min_warm=1, max_concurrency=1,
                                idle_timeout=600, config={"IOWAIT_CONCURRENCY": str(c)})
            server.wait_idle(APP, f"/c{c}", 1)
        for _ in range(rounds):
            for c in levels:
                load = run_wrk(server.port, [f"/r/{APP}/c{c}"], ECHO_BODY, clients, seconds)
                if load.errors:
                    raise RuntimeError(f"concurrency {c}: {load.errors} errors")
                for key, value in (("rps", load.rps), ("p50", load.p50_ms), ("p99", load.p99_ms)):
                    results[c][key].append(value)
                print(f"concurrency {c}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.1f} ms", flush=True)
    finally:
        server.stop(10.0)
        remove_containers(f"hotfn.node={server.node_id}")
    medians = {c: {k: statistics.median(v) for k, v in r.items()} for c, r in results.items()}
    return {"clients": clients, "rounds": rounds, "median_over_rounds": medians, "per_round": results,
            "ratio": medians[levels[-1]]["rps"] / medians[levels[0]]["rps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    out = measure(args.rounds, args.seconds, args.clients)
    print(json.dumps(out))
    print(f"\n| ready frame concurrency | req/s | p50 ms | p99 ms |\n| --- | --- | --- | --- |")
    for c, m in out["median_over_rounds"].items():
        print(f"| {c} | {m['rps']:,.0f} | {m['p50']:.1f} | {m['p99']:.1f} |")
    print(f"\n16 / 1: {out['ratio']:.1f}x")


if __name__ == "__main__":
    main()
