"""An HAProxy configuration for several hotfn nodes: ``hotfn lb-config``.

hotfn does not balance load itself; HAProxy does, configured so that:
- an invocation (``/r/{app}/{route...}``) is hashed on its app and the first segment of its
  route path (``balance uri`` with a path depth, ``hash-type consistent``): one route's calls
  land on the node where its containers are warm, and adding or removing a node moves only
  that node's share;
- a node that refuses connections, or answers 503 because it is saturated, gets the request
  retried on another node (``retry-on``, ``option redispatch``): a hot route spills to other
  nodes only when its own node is full;
- ``/health``, the nodes' balancer check, decides which nodes are in: 503 only from a node
  that cannot serve calls (its engine does not answer, or it is draining: taken out before it
  stops accepting). A store outage leaves it 200: every node still serves the routes it knows,
  where taking them all out would make it a total outage (``/health/detail`` is the
  operator's);
- every other request (the admin API) goes to any node: they share one store;
- with ``--source-rate``, each client address is held to a request rate and a number of
  connections before anything reaches a node (``source_limits``): a refusal by HAProxy costs a
  node nothing, where even hotfn's cheapest one (a 429) costs it a request's parsing and answer.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class LbConfigError(Exception):
    pass


@dataclass(frozen=True)
class Backend:
    name: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` as given on the command line or read from the node registry, checked:
    the result goes into a configuration file, one token of a line."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not _HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise LbConfigError(f"{text!r} is not host:port (a host name or address, a port 1-65535)")
    return host, int(port)


def backends(addresses: list[str], names: list[str] | None = None) -> list[Backend]:
    if not addresses:
        raise LbConfigError("no nodes: give --nodes host:port,... or --db of a store nodes registered in")
    result, seen = [], set()
    for i, text in enumerate(addresses):
        host, port = parse_address(text)
        name = _NAME.sub("_", names[i]) if names else f"node{i + 1}"
        if (host, port) in seen:
            raise LbConfigError(f"node {host}:{port} is listed twice")
        seen.add((host, port))
        result.append(Backend(name[:60] or f"node{i + 1}", host, port))
    return result


def source_limits(rate: float, connections: int, window: int = 10) -> str:
    """Frontend lines holding each client address to ``rate`` requests per second (averaged
    over ``window`` seconds) and ``connections`` open connections (0: no bound): past the rate,
    a 429 with Retry-After from HAProxy itself; past the connections, the new one is refused.
    Behind another proxy, every client has that proxy's address: put these lines there."""
    if not rate > 0 or connections < 0:
        raise LbConfigError("--source-rate must be above 0 and --source-connections 0 or more")
    per_window = max(1, round(rate * window))
    message = (f'{{"error":{{"message":"this address sent more than {per_window} requests in '
               f'{window} s; slow down"}}}}')
    lines = [
        f"    # Per client address: requests over the last {window} s and connections open now.",
        f"    stick-table type ipv6 size 1m expire {3 * window}s "
        f"store http_req_rate({window}s),conn_cur",
        "    tcp-request connection track-sc0 src",
    ]
    if connections:
        lines.append(f"    tcp-request connection reject if {{ sc0_conn_cur gt {connections} }}")
    lines.append(f"    http-request deny deny_status 429 content-type application/json "
                 f"string '{message}' hdr retry-after {window} "
                 f"if {{ sc0_http_req_rate gt {per_window} }}")
    return "\n".join(lines) + "\n"


def haproxy_config(nodes: list[Backend], *, bind: str = "127.0.0.1:8080",
                   server_timeout: float = 300.0, health_interval: float = 1.0,
                   max_connections: int = 4000, limits: str = "") -> str:
    """``limits``: lines for the frontend, e.g. ``source_limits(...)``."""
    bind_host, bind_port = parse_address(bind)
    inter = f"{max(100, int(health_interval * 1000))}ms"
    # A server line per node, the same in both backends (HAProxy tracks health per backend).
    servers = "\n".join(f"    server {n.name} {n.address} check" for n in nodes)
    return f"""\
# Written by `hotfn lb-config` for {len(nodes)} hotfn node(s). See hotfn/cluster/lb.py for why each part.
global
    maxconn {max_connections}

defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 75s
    timeout http-keep-alive 75s
    timeout http-request 10s
    # Longer than the longest function call: a response timeout is retried elsewhere.
    timeout server {int(server_timeout)}s
    timeout queue 10s
    # Another node when one refuses the connection, closes without an answer, or is saturated
    # (503). A 503 from a node means the call did not run there.
    retries 2
    retry-on conn-failure empty-response response-timeout 503
    option redispatch 1
    # /health: 200 while the node can serve calls (a store outage too); 503 when its engine is
    # down or it is draining (a stopping node says so first).
    option httpchk GET /health
    http-check expect status 200
    # A node whose name does not resolve (yet) starts out down instead of failing HAProxy.
    # weight 100: a hundred times the default's points on the hash ring, so that each node's
    # share of it is even (16 points a node leave shares far apart).
    default-server inter {inter} fall 2 rise 2 maxconn 1000 init-addr last,libc,none weight 100

frontend hotfn
    bind {bind_host}:{bind_port}
{limits}    use_backend invocations if {{ path_beg /r/ }}
    default_backend admin

backend invocations
    # /r/APP/ROUTE: the first three levels of the path, hashed onto a ring of the nodes.
    balance uri depth 3
    hash-type consistent
{servers}

backend admin
    balance leastconn
{servers}
"""


# -- the subcommand (cli/commands.py adds it with add_parser)------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lb-config", help="write an HAProxy configuration for several nodes")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--nodes", help="host:port of each node, comma-separated")
    source.add_argument("--db", help="the nodes' shared store (postgresql://...): its live nodes")
    p.add_argument("--bind", default="127.0.0.1:8080", help="where HAProxy listens [%(default)s]")
    p.add_argument("--server-timeout", type=float, default=300.0,
                   help="seconds a call may take before HAProxy gives up on it [%(default)s]")
    p.add_argument("--source-rate", type=float, default=0.0,
                   help="requests per second each client address may send, averaged over 10 s; "
                        "past it HAProxy answers 429 itself (0: no limit) [%(default)s]")
    p.add_argument("--source-connections", type=int, default=0,
                   help="connections each client address may hold open, with --source-rate "
                        "(0: no limit) [%(default)s]")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.set_defaults(func=run, offline=True)


def _registered(db: str) -> tuple[list[str], list[str]]:
    import time

    import trio

    from .node import STALE_AFTER
    from ..store import StoreError, open_store

    async def read():
        store = open_store(db)
        try:
            return await store.list_nodes()
        finally:
            await store.close()

    try:
        nodes = trio.run(read)
    except StoreError as exc:
        raise LbConfigError(str(exc)) from None
    now = time.time()
    alive = [n for n in nodes if now - n.heartbeat_at <= STALE_AFTER]
    return [n.address for n in alive], [n.id for n in alive]


def run(args: argparse.Namespace, client: object = None) -> int:
    try:
        if args.nodes is not None:
            addresses, names = [a for a in args.nodes.split(",") if a.strip()], None
        else:
            addresses, names = _registered(args.db)
        rate = getattr(args, "source_rate", 0.0)  # (callers made before the option: none)
        limits = source_limits(rate, getattr(args, "source_connections", 0)) if rate else ""
        text = haproxy_config(backends(addresses, names), bind=args.bind,
                              server_timeout=args.server_timeout, limits=limits)
    except LbConfigError as exc:
        print(f"hotfn lb-config: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
