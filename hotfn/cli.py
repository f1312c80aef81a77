"""The `hotfn` command: run the server, or talk to a running one.

    hotfn serve [--port 8080 ...]            run the server (options: hotfn serve --help)
    hotfn apps create|list|inspect|update|delete
    hotfn routes create|list|inspect|update|delete
    hotfn call APP PATH < body               invoke a route
    hotfn calls list APP / hotfn logs APP CALL_ID
    hotfn init --runtime python DIR          write a minimal function
    hotfn build DIR / hotfn deploy DIR --app APP
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import urllib.parse
from typing import Any

from . import functions
from .config import Settings

DEFAULT_SERVER = "http://127.0.0.1:8080"


class CliError(Exception):
    pass


# -- serve ------------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    import trio

    from .server import Server, StartupError

    settings = Settings.from_namespace(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = Server(settings)
    log = logging.getLogger("hotfn")

    async def main() -> None:
        # The receiver stays open for the whole run: the first SIGINT/SIGTERM starts a graceful
        # shutdown, a second one cuts it short (calls in flight are cancelled; containers are
        # still removed, under shielded cleanup).
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                run_scope = trio.CancelScope()

                async def watch_signals() -> None:
                    received = 0
                    async for signum in signals:
                        received += 1
                        if received == 1:
                            log.info("%s: stopping gracefully (again to stop at once)",
                                     signal.Signals(signum).name)
                            server.stop()
                        else:
                            log.warning("second signal: stopping at once")
                            run_scope.cancel()

                async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
                    with run_scope:
                        await server.run(task_status=task_status)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch_signals)
                await nursery.start(run)
                print(f"hotfn serving on {server.url}", flush=True)

    try:
        trio.run(main)
    except BaseException as exc:
        startup = _find(exc, StartupError)
        if startup is None:
            raise
        print(f"hotfn: cannot start: {startup}", file=sys.stderr)
        return 1
    return 0


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first ``kind`` inside it (trio's nurseries wrap errors in groups)."""
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find(inner, kind)
        if found is not None:
            return found
    return None


# -- the client -------------------------------------------------------------------------------


class Client:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        # Imported here: urllib.request brings http.client and email (~1 MiB), which a server
        # process never uses.
        import urllib.error
        import urllib.request

        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if body is not None:
            req.add_header("content-type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach the hotfn server at {self.base}: {reason} "
                           f"(start one with `hotfn serve`, or set --server / HOTFN_SERVER)") from None

    def json(self, method: str, path: str, body: Any = None) -> Any:
        status, _, data = self.request(method, path, body)
        try:
            payload = json.loads(data) if data else {}
        except ValueError:
            payload = {"raw": data.decode("utf-8", "replace")}
        if status >= 400:
            message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
            raise CliError(f"server answered {status}: {message or payload}")
        return payload


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _kv(pairs: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"{what} must be KEY=VALUE, not {item!r}")
        out[key] = value
    return out


def _print(payload: Any) -> None:
    print(json.dumps(payload, indent=2))


def cmd_apps(args: argparse.Namespace, client: Client) -> int:
    if args.action == "list":
        for app in client.json("GET", "/v1/apps")["apps"]:
            print(app["name"])
        return 0
    if args.action == "create":
        body = {"app": {"name": args.name, "config": _kv(args.config, "--config")}}
        _print(client.json("POST", "/v1/apps", body))
    elif args.action == "inspect":
        _print(client.json("GET", f"/v1/apps/{_q(args.name)}"))
    elif args.action == "update":
        _print(client.json("PATCH", f"/v1/apps/{_q(args.name)}",
                           {"app": {"config": _kv(args.config, "--config")}}))
    elif args.action == "delete":
        suffix = "?cascade=true" if args.cascade else ""
        _print(client.json("DELETE", f"/v1/apps/{_q(args.name)}{suffix}"))
    return 0


ROUTE_OPTIONS = {
    "image": str, "format": str, "type": str, "memory": int, "timeout": float,
    "idle_timeout": float, "max_concurrency": int, "min_warm": int, "startup_timeout": float,
    "queue_timeout": float,
}


def _route_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {k: getattr(args, k) for k in ROUTE_OPTIONS if getattr(args, k, None) is not None}
    if args.config:
        body["config"] = _kv(args.config, "--config")
    if args.header:
        body["headers"] = _kv(args.header, "--header")
    if args.network:
        body["network"] = True
    return body


def cmd_routes(args: argparse.Namespace, client: Client) -> int:
    base = f"/v1/apps/{_q(args.app)}/routes"
    if args.action == "list":
        for route in client.json("GET", base)["routes"]:
            print(f"{route['path']}\t{route['image']}\t{route['format']}")
        return 0
    path = args.path if args.path.startswith("/") else "/" + args.path
    if args.action == "create":
        _print(client.json("POST", base, {"route": {"path": path, **_route_body(args)}}))
    elif args.action == "inspect":
        _print(client.json("GET", f"{base}/{_q(path)}"))
    elif args.action == "update":
        _print(client.json("PATCH", f"{base}/{_q(path)}", {"route": _route_body(args)}))
    elif args.action == "delete":
        _print(client.json("DELETE", f"{base}/{_q(path)}"))
    return 0


def cmd_call(args: argparse.Namespace, client: Client) -> int:
    body = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    path = args.path if args.path.startswith("/") else "/" + args.path
    status, headers, data = client.request(args.method, f"/r/{_q(args.app)}{path}", raw=body,
                                           headers=_kv(args.header, "--header"))
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    call_id = {k.lower(): v for k, v in headers.items()}.get("hotfn-call-id")
    print(f"\n[status {status}, call {call_id}]", file=sys.stderr)
    return 0 if status < 400 else 1


def cmd_calls(args: argparse.Namespace, client: Client) -> int:
    query = {"limit": str(args.limit)}
    if args.route:
        query["route"] = args.route
    payload = client.json("GET", f"/v1/apps/{_q(args.app)}/calls?{urllib.parse.urlencode(query)}")
    for call in payload["calls"]:
        print(f"{call['id']}\t{call['route']}\t{call['status']}\t{call['http_status']}\t"
              f"{call['mode']}\t{call['duration_ms']} ms")
    return 0


def cmd_logs(args: argparse.Namespace, client: Client) -> int:
    status, _, data = client.request("GET", f"/v1/apps/{_q(args.app)}/calls/{_q(args.call_id)}/log")
    if status >= 400:
        raise CliError(f"server answered {status}: {data.decode('utf-8', 'replace')}")
    sys.stdout.buffer.write(data)
    return 0


def cmd_init(args: argparse.Namespace, client: Client | None) -> int:
    written = functions.init_function(args.dir, args.runtime)
    print(f"wrote {', '.join(written)} in {args.dir}")
    return 0


def cmd_build(args: argparse.Namespace, client: Client | None) -> int:
    image = functions.build_function(args.dir, tag=args.tag)
    print(image)
    return 0


def cmd_deploy(args: argparse.Namespace, client: Client) -> int:
    image = functions.build_function(args.dir, tag=args.tag)
    meta = functions.read_meta(args.dir)
    path = args.path or meta.get("path") or "/" + os.path.basename(os.path.abspath(args.dir))
    path = path if path.startswith("/") else "/" + path
    status, _, _ = client.request("GET", f"/v1/apps/{_q(args.app)}")
    if status == 404:
        client.json("POST", "/v1/apps", {"app": {"name": args.app}})
    body = {"image": image, "format": args.format or meta.get("format", "hot")}
    for key in ("memory", "timeout", "max_concurrency", "min_warm", "type"):
        if key in meta:
            body[key] = meta[key]
    base = f"/v1/apps/{_q(args.app)}/routes"
    status, _, _ = client.request("GET", f"{base}/{_q(path)}")
    if status == 404:
        client.json("POST", base, {"route": {"path": path, **body}})
    else:
        client.json("PATCH", f"{base}/{_q(path)}", {"route": body})
    print(f"deployed {image} at {client.base}/r/{args.app}{path}")
    return 0


# -- argument parsing -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotfn", description="Serverless functions in Docker, kept hot.")
    parser.add_argument("--server", default=os.environ.get("HOTFN_SERVER", DEFAULT_SERVER),
                        help="the hotfn server to talk to [env HOTFN_SERVER; default %(default)s]")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the server")
    Settings.add_arguments(p)
    p.set_defaults(func=None)

    p = sub.add_parser("apps", help="manage apps")
    p.add_argument("action", choices=["create", "list", "inspect", "update", "delete"])
    p.add_argument("name", nargs="?")
    p.add_argument("--config", action="append", metavar="KEY=VALUE")
    p.add_argument("--cascade", action="store_true", help="delete: also delete the app's routes")
    p.set_defaults(func=cmd_apps, needs=["name"])

    p = sub.add_parser("routes", help="manage an app's routes")
    p.add_argument("action", choices=["create", "list", "inspect", "update", "delete"])
    p.add_argument("app")
    p.add_argument("path", nargs="?")
    for name, kind in ROUTE_OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)
    p.add_argument("--config", action="append", metavar="KEY=VALUE")
    p.add_argument("--header", action="append", metavar="NAME=VALUE")
    p.add_argument("--network", action="store_true", help="give the containers a network")
    p.set_defaults(func=cmd_routes, needs=["path"])

    p = sub.add_parser("call", help="invoke a route; stdin is the body")
    p.add_argument("app")
    p.add_argument("path")
    p.add_argument("-X", "--method", default="POST")
    p.add_argument("-H", "--header", action="append", metavar="NAME=VALUE")
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("calls", help="list an app's calls")
    p.add_argument("action", choices=["list"])
    p.add_argument("app")
    p.add_argument("--route")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_calls)

    p = sub.add_parser("logs", help="print a call's log (its stderr)")
    p.add_argument("app")
    p.add_argument("call_id")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("init", help="write a minimal function into DIR")
    p.add_argument("--runtime", required=True, choices=functions.TEMPLATES)
    p.add_argument("dir")
    p.set_defaults(func=cmd_init, offline=True)

    p = sub.add_parser("build", help="build DIR into a function image")
    p.add_argument("dir")
    p.add_argument("--tag", help="image name (default: hotfn-fn/<dir name>)")
    p.set_defaults(func=cmd_build, offline=True)

    p = sub.add_parser("deploy", help="build DIR and create or update its route")
    p.add_argument("dir")
    p.add_argument("--app", required=True)
    p.add_argument("--path", help="route path (default: func.json's path, else /<dir name>)")
    p.add_argument("--format", choices=["hot", "default"])
    p.add_argument("--tag")
    p.set_defaults(func=cmd_deploy)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    for needed in getattr(args, "needs", []):
        if getattr(args, needed) is None and args.action != "list":
            parser.error(f"{args.command} {args.action} needs {needed.upper()}")
    try:
        client = None if getattr(args, "offline", False) else Client(args.server)
        return args.func(args, client)
    except (CliError, functions.FunctionError) as exc:
        print(f"hotfn: {exc}", file=sys.stderr)
        return 1
