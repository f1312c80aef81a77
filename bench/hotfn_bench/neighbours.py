"""Noisy neighbours (issue 21.7): what a fork bomb in one route does to the other routes' calls.

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.neighbours \
        [--variant new=.] [--variant old=/tmp/hotfn-old] [--rounds 3] [--seconds 6]

A variant is ``name=checkout[,--serve-flag=value ...][,NAME=value ...]``: a hotfn server run
from that checkout (its ``hotfn`` package), with those extra ``hotfn serve`` flags and
environment variables. Each gets three hot Python echo
routes (128 MiB, one warm container each), a cold echo route, and the neighbour: a hot route of
2048 MiB whose call starts a fork bomb (bench/functions/bomb-python: every process forks until
the container's pids limit refuses, spinning between tries, for a bounded time).

Per round and variant, in alternation (the order of the two phases swapped every round): a
quiet phase and a noisy one (the bomb running), each ``seconds`` long, in which three client
threads call the three echo routes back to back on keep-alive connections, and a fourth makes
a cold call every ``cold_every`` seconds. Figures per phase: pooled hot p50 and p99, the
slowest hot call, cold p50, and the 1-minute load average at the end; per round the ratio of
noisy to quiet hot p99. Medians over rounds.

Bounded: rounds x variants x 2 phases x ``seconds``; the bomb ends by itself after the phase
(at most 30 s) and its route is deleted (its container removed) after each noisy phase; every
server is stopped and its containers removed on every exit; 127.0.0.1 only.
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

from .auth import _Connection
from .functions import ECHO_BODY, FUNCTIONS, FUNCTIONS_DIR, REPO_DIR, BenchFunction, build_images
from .server import HotfnServer, free_port, remove_containers
from .stats import percentile

APP = "bench"
ECHOES = ("/echo1", "/echo2", "/echo3")
BOMB = BenchFunction("bomb", "Python fork bomb", "bomb-python", 2048, jvm=False)


def parse_variant(text: str) -> tuple[str, str, list[str], dict[str, str]]:
    name, _, rest = text.partition("=")
    source, *extra = rest.split(",")
    flags = [item for item in extra if item.startswith("--")]
    env = dict(item.split("=", 1) for item in extra if not item.startswith("--"))
    return name, os.path.abspath(source or REPO_DIR), flags, env


def setup_routes(server: HotfnServer) -> None:
    server.ensure_app(APP)
    for path in ECHOES:
        server.create_route(APP, path, FUNCTIONS["python"].image, format="hot", min_warm=1,
                            idle_timeout=600)
    server.create_route(APP, "/cold", FUNCTIONS["python"].image, format="default")
    for path in ECHOES:
        server.wait_idle(APP, path)


def add_bomb(server: HotfnServer) -> None:
    server.create_route(APP, "/bomb", BOMB.image, format="hot", memory=BOMB.memory_mb,
                        min_warm=1, idle_timeout=600)
    server.wait_idle(APP, "/bomb")


def phase(server: HotfnServer, seconds: float, cold_every: float, bomb: bool) -> dict:
    """One phase: the echo routes called back to back, and cold calls now and then."""
    if bomb:
        connection = _Connection(server.port, f"/r/{APP}/bomb",
                                 {"x-bench": "bomb", "x-bomb-seconds": str(seconds + 2)})
        assert connection.call()[1].startswith(b"HTTP/1.1 200")
        connection.close()
        time.sleep(1.0)  # the bomb reaches the pids limit
    stop = time.monotonic() + seconds
    hot: list[list[float]] = [[] for _ in ECHOES]
    cold: list[float] = []
    errors: list[str] = []

    def echo(i: int) -> None:
        connection = _Connection(server.port, f"/r/{APP}{ECHOES[i]}")
        try:
            while time.monotonic() < stop:
                hot[i].append(connection.timed())
        except Exception as exc:  # counted, never hidden
            errors.append(f"{ECHOES[i]}: {exc}")
        finally:
            connection.close()

    def cold_calls() -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            connection = _Connection(server.port, f"/r/{APP}/cold")
            try:
                cold.append(connection.timed())
            except Exception as exc:
                errors.append(f"/cold: {exc}")
            finally:
                connection.close()
            time.sleep(max(0.0, cold_every - (time.monotonic() - started)))

    threads = [threading.Thread(target=echo, args=(i,)) for i in range(len(ECHOES))]
    threads.append(threading.Thread(target=cold_calls))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load = os.getloadavg()[0]
    if bomb:
        server.delete_route(APP, "/bomb")
    pooled = [ms for calls in hot for ms in calls]
    return {"hot_calls": len(pooled), "hot_p50": percentile(pooled, 50),
            "hot_p99": percentile(pooled, 99), "hot_max": max(pooled, default=float("nan")),
            "cold_calls": len(cold), "cold_p50": percentile(cold, 50) if cold else float("nan"),
            "cold_max": max(cold, default=float("nan")), "load": load, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", metavar="NAME=DIR[,--flag=value...]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="each phase")
    parser.add_argument("--cold-every", type=float, default=1.0)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 25:
        parser.error("--seconds must be from 1 to 25 (the bomb stops itself after 30 s)")
    variants = [parse_variant(v) for v in (args.variant or ["new=."])]
    if not args.no_build:
        build_images([FUNCTIONS["python"], BOMB], lambda line: print(line, flush=True))
    run_id = datetime.datetime.now().strftime("%H%M%S")
    tmp = tempfile.mkdtemp(prefix="hotfn-bench-neighbours-")
    servers: dict[str, HotfnServer] = {}
    rows: dict[str, list[dict]] = {name: [] for name, *_ in variants}
    try:
        for name, source, flags, env in variants:
            server = servers[name] = HotfnServer(
                port=free_port(avoid={s.port for s in servers.values()}),
                db=os.path.join(tmp, f"{name}.db"), node_id=f"bench-nb-{name}-{run_id}",
                log_path=os.path.join(tmp, f"{name}.log"), source=source, extra_args=flags, env=env)
            setup_routes(server)
        for round_ in range(args.rounds):
            for name, *_ in variants:
                server = servers[name]
                add_bomb(server)
                result = {}
                for bomb in ((False, True) if round_ % 2 == 0 else (True, False)):
                    result["noisy" if bomb else "quiet"] = phase(server, args.seconds,
                                                                args.cold_every, bomb)
                server.delete_route(APP, "/bomb")
                result["ratio_p99"] = result["noisy"]["hot_p99"] / result["quiet"]["hot_p99"]
                rows[name].append(result)
                print(name, round_, json.dumps({k: v if not isinstance(v, dict) else
                                               {kk: (round(vv, 2) if isinstance(vv, float) else vv)
                                                for kk, vv in v.items()}
                                               for k, v in result.items()}), flush=True)
    finally:
        for server in servers.values():
            server.stop(10.0)
            remove_containers(f"hotfn.node={server.node_id}")
    print(json.dumps({"args": vars(args), "rounds": rows}))

    def med(name: str, key: str, phase_name: str | None = None) -> float:
        values = [(r[phase_name][key] if phase_name else r[key]) for r in rows[name]]
        return statistics.median(values)

    print(f"\n| variant | hot p50 quiet → noisy (ms) | hot p99 quiet → noisy (ms) | noisy/quiet p99 "
          "(median, range) | slowest hot call noisy (ms) | cold p50 quiet → noisy (ms) | load "
          "quiet → noisy | errors |")
    print("| --- " * 8 + "|")
    for name, *_ in variants:
        ratios = [r["ratio_p99"] for r in rows[name]]
        errors = sum(len(r[p]["errors"]) for r in rows[name] for p in ("quiet", "noisy"))
        print(f"| {name} | {med(name, 'hot_p50', 'quiet'):.2f} → {med(name, 'hot_p50', 'noisy'):.2f} | "
              f"{med(name, 'hot_p99', 'quiet'):.2f} → {med(name, 'hot_p99', 'noisy'):.2f} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) | "
              f"{med(name, 'hot_max', 'noisy'):.0f} | "
              f"{med(name, 'cold_p50', 'quiet'):.0f} → {med(name, 'cold_p50', 'noisy'):.0f} | "
              f"{med(name, 'load', 'quiet'):.1f} → {med(name, 'load', 'noisy'):.1f} | {errors} |")


if __name__ == "__main__":
    main()
