"""What auth and tenants cost a hot call: one hotfn server, the same hot Python echo on three
routes (``auth: "none"``, ``"token"`` with a store token, ``"jwt"`` with an HS256 JWT), called in
alternation (batches of 50, one keep-alive connection per route), per round: sequential calls
(p50, p99). Beside it, the check alone, in this process: ``Authenticator.check_route`` on a
SQLite store, per call. Then the p50 of a quiet app while
another app is idle, and while it is saturated (at its ``max_containers`` of 1, with 8 clients
queueing on a function that sleeps: waiting costs no CPU, so what is measured is hotfn's isolation
of the two, not the machine's CPU).

    PYTHONPATH=bench .venv/bin/python -m hotfn_bench.auth [--rounds 3] [--calls 1000]

Bounded: ``rounds`` x (3 x ``calls`` + 2 x ``calls`` quiet calls + ``seconds`` of noise), traffic
to 127.0.0.1 only; the server is stopped and its containers removed on every exit.
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

import jwt

from .functions import ECHO_BODY, FUNCTIONS, build_images
from .server import HotfnServer, free_port, remove_containers
from .stats import percentile

APP = "bench"
# "none+jwt": the public route, sent the JWT's Authorization header all the same: what carrying
# the header costs (h11, the frame to the function), apart from checking it.
KINDS = ("none", "none+jwt", "token", "jwt")
ROUTE_OF = {"none": "none", "none+jwt": "none", "token": "token", "jwt": "jwt"}
JWT_KEY = "bench-route-key-of-at-least-32-bytes"


class _Connection:
    """One keep-alive connection sending a pre-built request."""

    def __init__(self, port: int, target: str, headers: dict[str, str] | None = None,
                 expect: bytes = b"HTTP/1.1 200") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.request = (f"POST {target} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {len(ECHO_BODY)}"
                        "\r\n\r\n").encode() + ECHO_BODY
        self.expect = expect
        self.buffer = b""

    def call(self) -> tuple[float, bytes]:
        started = time.perf_counter()
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return (time.perf_counter() - started) * 1000, head.split(b"\r\n")[0]

    def timed(self) -> float:
        ms, status = self.call()
        if not status.startswith(self.expect):
            raise RuntimeError(status.decode())
        return ms

    def close(self) -> None:
        self.sock.close()


def check_cost_us(calls: int = 20000) -> dict[str, float]:
    """Microseconds per ``check_route`` (token: hash + store lookup; jwt: PyJWT decode)."""
    import trio

    from hotfn.access import Authenticator
    from hotfn.store import SqliteStore
    from hotfn.models import new_token

    async def run() -> dict[str, float]:
        store = SqliteStore(os.path.join(tempfile.mkdtemp(prefix="hotfn-bench-auth-check-"), "t.db"))
        token, secret = new_token({"name": "bench", "scope": "invoke", "apps": [APP]})
        await store.create_token(token)
        auth = Authenticator(store, admin_token=None, enabled=False)
        token_jwt = jwt.encode({"exp": int(time.time()) + 3600}, JWT_KEY, algorithm="HS256")
        out = {}
        for kind, headers in (("none", []), ("none+jwt", [("authorization", f"Bearer {token_jwt}")]),
                              ("token", [("authorization", f"Bearer {secret}")]),
                              ("jwt", [("authorization", f"Bearer {token_jwt}")])):
            started = time.perf_counter()
            for _ in range(calls):
                await auth.check_route(headers, APP, ROUTE_OF[kind], JWT_KEY)
            out[kind] = (time.perf_counter() - started) / calls * 1e6
        await store.close()
        return out

    return trio.run(run)


def sequential(port: int, target: str, calls: int, headers: dict[str, str] | None = None) -> list[float]:
    connection = _Connection(port, target, headers)
    try:
        return [connection.timed() for _ in range(calls)]
    finally:
        connection.close()


def noise(port: int, clients: int, stop: threading.Event) -> list[threading.Thread]:
    """``clients`` keep-alive connections calling the noisy app until ``stop``."""
    def client() -> None:
        connection = _Connection(port, f"/r/noisy/slow", {"x-bench": "sleep", "x-sleep-ms": "200"})
        try:
            while not stop.is_set():
                connection.call()  # 200, or 503 once its queue timeout passed: both are noise
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per route and round")
    parser.add_argument("--noisy-clients", type=int, default=8)
    args = parser.parse_args()
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    fn = FUNCTIONS["python"]
    build_images([fn], lambda m: print(m, flush=True))
    tmp = tempfile.mkdtemp(prefix="hotfn-bench-auth-")
    server = None
    results: dict[str, list[float]] = {f"{k}_{q}": [] for k in KINDS for q in ("p50", "p99")}
    results.update(quiet_p50_idle=[], quiet_p50_saturated=[])
    try:
        port = free_port()
        server = HotfnServer(port=port, db=os.path.join(tmp, "hotfn.db"), node_id=f"bench-auth-{run_id}",
                             log_path=os.path.join(tmp, "server.log"))
        server.ensure_app(APP)
        server.admin("POST", "/v1/apps", {"app": {"name": "noisy", "max_containers": 1}})
        server.ensure_app("quiet")
        common = dict(format="hot", min_warm=1, idle_timeout=600)
        server.create_route(APP, "/none", fn.image, **common)
        server.create_route(APP, "/token", fn.image, auth="token", **common)
        server.create_route(APP, "/jwt", fn.image, jwt_key=JWT_KEY, **common)
        server.create_route("quiet", "/echo", fn.image, **common)
        server.create_route("noisy", "/slow", fn.image, format="hot", max_concurrency=4,
                            queue_timeout=1, idle_timeout=600)
        secret = server.admin("POST", "/v1/tokens", {"token": {"name": "bench", "scope": "invoke",
                                                                "apps": [APP]}})["token"]["secret"]
        token_jwt = jwt.encode({"sub": "bench", "exp": int(time.time()) + 24 * 3600}, JWT_KEY, algorithm="HS256")
        headers = {"none": {}, "token": {"Authorization": f"Bearer {secret}"},
                   "jwt": {"Authorization": f"Bearer {token_jwt}"},
                   "none+jwt": {"Authorization": f"Bearer {token_jwt}"}}
        for kind in KINDS:
            server.wait_idle(APP, f"/{ROUTE_OF[kind]}")
            sequential(port, f"/r/{APP}/{ROUTE_OF[kind]}", 200, headers[kind])  # warm-up
        server.wait_idle("quiet", "/echo")
        sequential(port, "/r/quiet/echo", 200)
        for _ in range(args.rounds):
            connections = {k: _Connection(port, f"/r/{APP}/{ROUTE_OF[k]}", headers[k]) for k in KINDS}
            samples: dict[str, list[float]] = {k: [] for k in KINDS}
            try:
                for _ in range(max(1, args.calls // 50)):
                    for kind in KINDS:
                        samples[kind] += [connections[kind].timed() for _ in range(50)]
            finally:
                for connection in connections.values():
                    connection.close()
            for kind in KINDS:
                results[f"{kind}_p50"].append(percentile(samples[kind], 50))
                results[f"{kind}_p99"].append(percentile(samples[kind], 99))
            results["quiet_p50_idle"].append(percentile(sequential(port, "/r/quiet/echo", args.calls), 50))
            stop = threading.Event()
            threads = noise(port, args.noisy_clients, stop)
            try:
                time.sleep(1.0)  # the noisy app at its cap, its queue full
                results["quiet_p50_saturated"].append(percentile(sequential(port, "/r/quiet/echo", args.calls), 50))
            finally:
                stop.set()
                for t in threads:
                    t.join(30)
    finally:
        if server is not None:
            server.stop(10.0)
            remove_containers(f"hotfn.node={server.node_id}")
    summary = {k: round(statistics.median(v), 3) for k, v in results.items()}
    check = check_cost_us()
    print(json.dumps({"rounds": args.rounds, "calls": args.calls, "median_over_rounds": summary,
                      "per_round": results, "check_us": check}, indent=1))
    print("\n| route auth | hot call p50 | p99 | p50 vs none | the check alone |")
    print("| --- | --- | --- | --- | --- |")
    for kind in KINDS:
        print(f"| {kind} | {summary[kind + '_p50']:.3f} ms | {summary[kind + '_p99']:.3f} ms | "
              f"{summary[kind + '_p50'] / summary['none_p50']:.2f}x | {check[kind]:.1f} µs |")
    print(f"\n| quiet app's p50 | another app idle | another app saturated ({args.noisy_clients} clients, "
          f"max_containers 1) |\n| --- | --- | --- |\n| hot echo | {summary['quiet_p50_idle']:.3f} ms | "
          f"{summary['quiet_p50_saturated']:.3f} ms |")


if __name__ == "__main__":
    main()
