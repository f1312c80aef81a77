"""What `--call-records sync` costs: two hotfn servers side by side in one run, one with
`--call-records async` (the default), one with `sync`, the same hot Python echo on each; in
alternation, per round: sequential keep-alive calls (p50, p99) and 8 keep-alive clients for a
few seconds (req/s, p50).

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.records [--rounds 3] [--seconds 3]

Bounded: ``rounds`` x 2 servers x (``calls`` sequential calls + ``seconds`` of load), traffic to
127.0.0.1 only; both servers are stopped and their containers removed on every exit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import tempfile
import threading
import time

from .functions import ECHO_BODY, FUNCTIONS, build_images
from .server import HotfnServer, free_port, remove_containers

APP, ROUTE = "bench", "/echo"
MODES = ("async", "sync")


class _Connection:
    """One keep-alive connection sending a pre-built request (as client.py does)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = (f"POST /r/{APP}{ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(ECHO_BODY)}"
                        "\r\n\r\n").encode() + ECHO_BODY
        self.buffer = b""

    def call(self) -> float:
        started = time.perf_counter()
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.sock.close()


def sequential(port: int, calls: int) -> list[float]:
    connection = _Connection(port)
    try:
        return [connection.call() for _ in range(calls)]
    finally:
        connection.close()


def loaded(port: int, clients: int, seconds: float) -> tuple[float, list[float]]:
    """``clients`` threads, each a keep-alive connection, for ``seconds``: req/s, latencies."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds

    def client(mine: list[float]) -> None:
        connection = _Connection(port)
        try:
            while time.monotonic() < deadline:
                mine.append(connection.call())
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(latencies[i],)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    wall = time.monotonic() - started
    flat = [x for xs in latencies for x in xs]
    return len(flat) / wall, flat


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per round")
    parser.add_argument("--seconds", type=float, default=3.0, help="load per round")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    fn = FUNCTIONS["python"]
    build_images([fn], lambda m: print(m, flush=True))
    tmp = tempfile.mkdtemp(prefix="hotfn-bench-records-")
    servers: dict[str, HotfnServer] = {}
    results: dict[str, dict[str, list[float]]] = {m: {"seq_p50": [], "seq_p99": [], "rps": [],
                                                      "load_p50": []} for m in MODES}
    try:
        for mode in MODES:
            node_id = f"bench-records-{mode}-{run_id}"
            port = free_port(avoid={s.port for s in servers.values()})
            servers[mode] = HotfnServer(port=port, db=os.path.join(tmp, f"{mode}.db"), node_id=node_id,
                                        log_path=os.path.join(tmp, f"{mode}.log"),
                                        extra_args=["--call-records", mode])
            servers[mode].ensure_app(APP)
            servers[mode].create_route(APP, ROUTE, fn.image, format="hot", min_warm=1, idle_timeout=600)
            servers[mode].wait_idle(APP, ROUTE)
            sequential(port, 200)  # warm-up
        for _ in range(args.rounds):
            for mode in MODES:
                port = servers[mode].port
                seq = sequential(port, args.calls)
                rps, lat = loaded(port, args.clients, args.seconds)
                for key, value in (("seq_p50", _p(seq, 50)), ("seq_p99", _p(seq, 99)),
                                   ("rps", rps), ("load_p50", _p(lat, 50))):
                    results[mode][key].append(value)
    finally:
        for mode, server in servers.items():
            server.stop(10.0)
            remove_containers(f"hotfn.node={server.node_id}")
    summary = {m: {k: round(statistics.median(v), 3) for k, v in r.items()} for m, r in results.items()}
    print(json.dumps({"rounds": args.rounds, "clients": args.clients, "median_over_rounds": summary,
                      "per_round": results}, indent=1))
    print(f"\n| --call-records | sequential p50 | sequential p99 | {args.clients} clients: req/s | p50 |")
    print("| --- | --- | --- | --- | --- |")
    for mode in MODES:
        s = summary[mode]
        print(f"| {mode} | {s['seq_p50']:.2f} ms | {s['seq_p99']:.2f} ms | {s['rps']:.0f} | {s['load_p50']:.2f} ms |")


if __name__ == "__main__":
    main()
