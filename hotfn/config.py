"""Server settings: one dataclass, read from `--x-y` options and `HOTFN_X_Y` variables.

The option list of `hotfn serve --help` is generated from the fields below, so a new setting is
one new field with its help text, and the two spellings can never drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Mapping

from .pool import default_cpus, default_max_memory_mb
from .protocol import DEFAULT_MAX_FRAME_SIZE


def _setting(default: Any, help: str, **kw: Any) -> Any:
    if callable(default) and not isinstance(default, type):
        return field(default_factory=default, metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Settings:
    host: str = _setting("127.0.0.1", "address to listen on")
    port: int = _setting(8080, "TCP port to listen on (0: any free port)")
    db: str = _setting("hotfn.db", "where apps, routes, call records and logs live: a SQLite "
                       "file, or postgresql://user@host:port/dbname, shared by several nodes")
    domain: str = _setting("", "serve Host: {app}.{domain} requests on /{path} too (empty: off)")
    node_id: str = _setting(socket.gethostname, "this server's name; labels its containers, so a "
                            "restart removes only what this node left behind")
    io_dir: str = _setting("/run/hotfn", "host directory for hot containers' stdin/stdout FIFOs "
                           "(faster than the engine's attach stream; needs the engine on this "
                           "host); empty: use the attach stream")
    max_body_size: int = _setting(6 * 1024 * 1024, "largest request body in bytes (413 above)")
    max_header_size: int = _setting(64 * 1024, "largest request head in bytes (431 above)")
    max_frame_size: int = _setting(DEFAULT_MAX_FRAME_SIZE, "largest protocol frame in bytes, "
                                   "either way (docs/protocol.md)")
    header_timeout: float = _setting(10.0, "seconds a request head may take, for a new connection "
                                     "counted from its connect (408; one that sent nothing is closed)")
    request_timeout: float = _setting(30.0, "seconds to receive a whole request once begun (408)")
    keepalive_timeout: float = _setting(75.0, "seconds an idle keep-alive connection stays open")
    send_timeout: float = _setting(30.0, "seconds a client may take to read each MiB of a response; "
                                   "one that stops reading is disconnected")
    max_connections: int = _setting(0, "client connections at once; past it, those that wait for a "
                                    "request (silent new ones, idle ones) close, longest waiting first, "
                                    "and when all are busy new ones wait (0: from the open-file limit, "
                                    "which the server raises to its hard limit, less room for containers)")
    shutdown_grace: float = _setting(10.0, "seconds calls in flight may finish on SIGINT/SIGTERM")
    drain_time: float = _setting(3.0, "seconds a stopping node keeps serving while /health answers "
                                 "503 (draining), so that a load balancer stops sending to it "
                                 "before it stops accepting (0: stop at once)")
    advertise: str = _setting("", "host:port other nodes and the load balancer reach this node "
                              "at, as the node registry shows it (default: the listening address)")
    max_containers: int = _setting(64, "server-wide cap on running function containers")
    max_memory_mb: int = _setting(default_max_memory_mb, "server-wide cap on the memory limits "
                                  "of running containers, MiB (default: 3/4 of this machine)")
    default_cpus: float = _setting(default_cpus,
                                   "cores each container may use when its route sets no cpus "
                                   "(its CPU weight follows it; default: this machine's cores "
                                   "less one, kept for the server; at least 1)")
    server_nice: int = _setting(-5, "the niceness `hotfn serve` runs at (-20 to 19): below 0, a "
                                "higher CPU weight than the function containers', so that calls "
                                "are still answered while functions spin (needs root or "
                                "CAP_SYS_NICE; without, the server says so and runs at 0)")
    max_parked: int = _setting(8, "cold containers started ahead of their calls (one per cold "
                               "route at most; a call then skips the engine's create and start; "
                               "needs --io-dir and /bin/sh in the image); 0: off")
    log_retention: float = _setting(24 * 3600.0, "seconds call records and logs are kept")
    call_records: str = _setting("async", "async: a sync call's record is committed within "
                                 "about 100 ms of its answer, in batches; sync: before its answer "
                                 "is sent (a SIGKILL loses none; costs latency)",
                                 choices=("async", "sync"))
    spill_dir: str = _setting("/var/tmp/hotfn", "where call records the store cannot take by "
                              "shutdown (a full disk) are kept, one file per node, until the next "
                              "start writes them to the store; room for it is reserved at start "
                              "(empty: they are lost, and the log says how many)")
    async_retry_delay: float = _setting(1.0, "seconds before an async call that failed runs "
                                        "again; doubled for each later attempt")
    async_lease_margin: float = _setting(30.0, "seconds an async call's claim outlasts the longest "
                                         "its run can take; a node that dies holds its claimed "
                                         "calls that much longer before another node takes them")
    async_engine_wait: float = _setting(600.0, "seconds async calls wait for a container "
                                        "engine that does not answer: meanwhile this node "
                                        "claims none, and a call that found it down has spent "
                                        "no attempt; past it, such calls end in error")
    max_queued_calls: int = _setting(1000, "async calls an app may have queued or running at once "
                                     "(all nodes sharing the store); past it, 429 with "
                                     "Retry-After; an app's max_queued_calls overrides it (0: no "
                                     "bound)")
    max_queued_mb: int = _setting(64, "MiB of requests (bodies, headers, URLs) an app's queued or "
                                  "running async calls may hold in the store; past it, 429; an "
                                  "app's max_queued_mb overrides it (0: no bound)")
    max_route_queued_calls: int = _setting(0, "the same bound on calls for each route on its own "
                                           "(0: none but the app's)")
    max_route_queued_mb: int = _setting(0, "the same bound on MiB for each route on its own (0: "
                                        "none but the app's)")
    max_routes: int = _setting(100, "routes an app may have; past it, creating one is a 403; an "
                               "app's max_routes overrides it (0: no bound)")
    max_metric_routes: int = _setting(100, "routes of an app with series of their own in /metrics; "
                                      "the calls of any more are counted under route=\"(other)\"")
    log_level: str = _setting("info", "debug, info, warning or error")
    admin_token_file: str = _setting("", "file holding the bootstrap admin token; with it the API "
                                     "needs tokens (README: Running it in production). A server on "
                                     "a non-loopback address refuses to start without one, unless "
                                     "--no-auth")
    no_auth: bool = _setting(False, "listen on a non-loopback address with the API open to anyone "
                             "who reaches it (warned about at start)")
    allowed_hosts: str = _setting("", "comma-separated Host names with a dot that a server "
                                  "without auth answers besides *.localhost and --domain "
                                  "('*.example.com': its subdomains; '*': any). Others get 403: "
                                  "a web page may have had its name resolve here (DNS rebinding)")
    allowed_origins: str = _setting("", "comma-separated origins (https://admin.example.com) whose "
                                    "web pages may use the API besides the server's own; others "
                                    "get 403. Function calls (/r/) take any page's")
    session_lifetime: float = _setting(3600.0, "seconds a dashboard session lasts: the page "
                                       "trades the token entered once for an HttpOnly cookie "
                                       "that stands for it, for reading")
    allowed_images: str = _setting("*", "comma-separated glob patterns of the images routes may "
                                   "run, e.g. 'hotfn-fn/*,hotfn/*'")
    allow_pull: bool = _setting(False, "pull a route's image from a registry when the engine lacks "
                                "it (otherwise such a route is refused)")
    log_format: str = _setting("text", "text or json: the access log's lines and, with json, "
                               "every other log line too, as one JSON object per line",
                               choices=("text", "json"))
    no_access_log: bool = _setting(False, "no access log (otherwise one line per call on stderr: "
                                   "method, app, route, status, duration, mode, call id, "
                                   "container, trace id)")
    no_metrics: bool = _setting(False, "no Prometheus metrics (otherwise at GET /metrics); none "
                                "are kept")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, env: Mapping[str, str] = os.environ) -> None:
        for f in dataclasses.fields(cls):
            env_name = "HOTFN_" + f.name.upper()
            default = env.get(env_name)
            if default is None:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if str(f.type) == "bool":
                if isinstance(default, str):
                    if default.lower() not in ("1", "true", "yes", "0", "false", "no", ""):
                        parser.error(f"{env_name}={default!r} is not one of 1, true, yes, 0, false, no")
                    default = default.lower() in ("1", "true", "yes")
                parser.add_argument(
                    "--" + f.name.replace("_", "-"), dest=f.name, action="store_true", default=default,
                    help=f"{f.metadata['help']} [env {env_name}=1]")
                continue
            kind = {"int": int, "float": float}.get(str(f.type), str)
            try:
                default = kind(default)
            except ValueError:
                parser.error(f"{env_name}={default!r} is not a valid {kind.__name__}")
            choices = f.metadata.get("choices")
            if choices and default not in choices:
                parser.error(f"{env_name}={default!r} is not one of {', '.join(choices)}")
            parser.add_argument(
                "--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=default,
                choices=choices,
                help=f"{f.metadata['help']} [env {env_name}; default: %(default)s]",
            )

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> "Settings":
        return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})
