"""What refused calls cost the others: a quiet app's hot p50 while 4 clients flood the same
server with calls it refuses, side by side for two checkouts (or more), in alternation.

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.refusals \
        --variant new=. --variant old=/tmp/hotfn-old [--rounds 3] [--calls 1000] [--seconds 4]

Per round and variant, three phases: the quiet app's ``calls`` sequential keep-alive calls
alone; the same while ``clients`` wrk connections call an app over its rate limit (every call a
429); the same while they call an app that does not exist (every call a 404). Per phase: the
quiet p50 and p99, and for a flood its refusals per second and the server's CPU time per
refusal (its process's utime + stime, so the threads its store work runs on count too).
Medians over rounds; each variant's ratios to the first.

Bounded: rounds x variants x 3 phases of ``calls`` calls (a flood lasts as long as they do, at
most ``seconds`` + 30 s); 127.0.0.1 only; every server is stopped and its containers removed on
every exit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import tempfile
import threading
import time

from .ab import parse_variant
from .auth import sequential
from .functions import ECHO_BODY, FUNCTIONS
from .server import HotfnServer, free_port, remove_containers
from .stats import percentile
from .wrk import run_wrk

QUIET, NOISY = "quiet", "noisy"
FLOODS = {"429": f"/r/{NOISY}/echo", "404": "/r/no-such-app/echo"}


def process_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(server: HotfnServer, calls: int, flood: str | None, clients: int, seconds: float) -> dict:
    """The quiet app's sequential calls, alone or during a flood of refused calls."""
    target = f"/r/{QUIET}/echo"
    cpu = process_cpu_s(server.pid)
    if flood is None:
        latencies = sequential(server.port, target, calls)
        return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                "cpu_s": process_cpu_s(server.pid) - cpu}
    result: dict = {}

    def load() -> None:
        result["wrk"] = run_wrk(server.port, [FLOODS[flood]], ECHO_BODY, clients, seconds)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(0.3)  # the flood under way first
        latencies = sequential(server.port, target, calls)
    finally:
        thread.join(seconds + 60)
    wrk = result["wrk"]
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "refusals_per_s": wrk.rps, "refusals": wrk.requests, "cpu_s": process_cpu_s(server.pid) - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=DIR[:PYTHON]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000, help="quiet calls per phase")
    parser.add_argument("--seconds", type=float, default=4.0, help="each flood's length")
    parser.add_argument("--clients", type=int, default=4, help="flooding connections")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    run_id = datetime.datetime.now().strftime("%H%M%S")
    tmp = tempfile.mkdtemp(prefix="hotfn-bench-refusals-")
    image = FUNCTIONS["python"].image
    servers: dict[str, HotfnServer] = {}
    phases = ("alone", "429", "404")
    results: dict[str, dict[str, list[dict]]] = {n: {p: [] for p in phases} for n, _, _ in variants}
    try:
        for name, source, python in variants:
            server = servers[name] = HotfnServer(
                port=free_port(avoid={s.port for s in servers.values()}),
                db=os.path.join(tmp, f"{name}.db"), node_id=f"bench-refusals-{name}-{run_id}",
                log_path=os.path.join(tmp, f"{name}.log"), source=source, python=python,
                extra_args=["--no-access-log"])
            server.admin("POST", "/v1/apps", {"app": {"name": QUIET}})
            server.admin("POST", "/v1/apps", {"app": {"name": NOISY, "rate_limit": 1}})
            for app in (QUIET, NOISY):
                server.create_route(app, "/echo", image, format="hot", min_warm=1, idle_timeout=600)
                server.wait_idle(app, "/echo", 1)
            sequential(server.port, f"/r/{QUIET}/echo", 300)  # warm-up
        for _ in range(args.rounds):
            for name, _, _ in variants:
                for flood in phases:
                    row = phase(servers[name], args.calls, None if flood == "alone" else flood,
                                args.clients, args.seconds)
                    if flood != "alone":  # less what the quiet calls took alone
                        alone = results[name]["alone"][-1]["cpu_s"]
                        row["cpu_us_per_refusal"] = (row["cpu_s"] - alone) / max(1, row["refusals"]) * 1e6
                    results[name][flood].append(row)
                    print(name, flood, {k: round(v, 3) for k, v in row.items()}, flush=True)
    finally:
        for server in servers.values():
            server.stop(10.0)
            remove_containers(f"hotfn.node={server.node_id}")
    summary = {n: {p: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
                   for p, rows in by_phase.items()} for n, by_phase in results.items()}
    first = variants[0][0]
    print(json.dumps({"args": vars(args), "median_over_rounds": summary, "per_round": results}))
    print(f"\n| variant | quiet p50 alone ms | during 429s | × alone | during 404s | × alone | "
          f"429s/s | CPU µs per 429 | 404s/s | CPU µs per 404 | 429 CPU / {first} | 404 CPU / {first} |")
    print("| --- " * 12 + "|")
    for name, _, _ in variants:
        s, f = summary[name], summary[first]
        print(f"| {name} | {s['alone']['p50']:.3f} | {s['429']['p50']:.3f} | "
              f"{s['429']['p50'] / s['alone']['p50']:.2f} | {s['404']['p50']:.3f} | "
              f"{s['404']['p50'] / s['alone']['p50']:.2f} | {s['429']['refusals_per_s']:,.0f} | "
              f"{s['429']['cpu_us_per_refusal']:.0f} | {s['404']['refusals_per_s']:,.0f} | "
              f"{s['404']['cpu_us_per_refusal']:.0f} | "
              f"{s['429']['cpu_us_per_refusal'] / f['429']['cpu_us_per_refusal']:.2f} | "
              f"{s['404']['cpu_us_per_refusal'] / f['404']['cpu_us_per_refusal']:.2f} |")


if __name__ == "__main__":
    main()
