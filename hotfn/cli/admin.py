"""The commands that talk to a running server: apps, routes, call, calls, logs, version."""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from typing import Any, Callable

from . import Parser
from .client import Client, CliError, _fields, _kv, _print_json, _q, _show, _table, _when

# -- apps -------------------------------------------------------------------------------------


def _explain_app_delete(name: str) -> Callable[[int, str], str | None]:
    def explain(status: int, message: str) -> str | None:
        if status == 409 and "route" in message:
            return (message.split(";")[0] + "; delete them first (hotfn routes delete), "
                    f"or delete the app with its routes: hotfn apps delete {name} --cascade")
        return None
    return explain


def cmd_apps(args: argparse.Namespace, client: Client) -> int:
    if args.action == "list":
        payload = client.json("GET", "/v1/apps")
        if args.json:
            _print_json(payload)
        else:
            _table(["NAME", "CONFIG", "CREATED"],
                   [[a["name"], ",".join(sorted(a.get("config") or {})) or "-", _when(a.get("created_at"))]
                    for a in payload["apps"]])
        return 0
    name = args.name
    isolation = {"isolation": args.isolation} if getattr(args, "isolation", None) else {}
    if args.action == "create":
        body = {"name": name, "config": _kv(args.config, "--config"), **isolation,
                **_image_patterns(args)}
        payload = client.json("POST", "/v1/apps", {"app": body})
        _show(args, payload, done=f"created app {name}")
    elif args.action == "inspect":
        payload = client.json("GET", f"/v1/apps/{_q(name)}")
        _show(args, payload, payload.get("app"))
    elif args.action == "update":
        body = {"config": _kv(args.config, "--config"), **isolation, **_image_patterns(args)}
        payload = client.json("PATCH", f"/v1/apps/{_q(name)}", {"app": body})
        _show(args, payload, done=f"updated app {name}")
    elif args.action == "delete":
        suffix = "?cascade=true" if args.cascade else ""
        payload = client.json("DELETE", f"/v1/apps/{_q(name)}{suffix}", explain=_explain_app_delete(name))
        _show(args, payload, done=f"deleted app {name}")
    return 0


def _image_patterns(args: argparse.Namespace) -> dict[str, Any]:
    """--allowed-images 'p1,p2' as the app's field; '' puts back the default (null)."""
    if args.allowed_images is None:
        return {}
    patterns = [p.strip() for p in args.allowed_images.split(",") if p.strip()]
    return {"allowed_images": patterns or None}


# -- routes -----------------------------------------------------------------------------------

ROUTE_OPTIONS = {
    "image": str, "format": str, "type": str, "memory": int, "timeout": float,
    "idle_timeout": float, "max_concurrency": int, "min_warm": int, "startup_timeout": float,
    "queue_timeout": float, "max_attempts": int, "cpus": float, "isolation": str,
}
OPTION_HELP = {
    "format": "hot, http, or cold (the default)",
    "cpus": "cores each container may use at most (default: the server's --default-cpus)",
    "isolation": "container (the default) or gvisor",
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


def _path(value: str) -> str:
    return value if value.startswith("/") else "/" + value


def _explain_route_field(status: int, message: str) -> str | None:
    """The server names a route's fields (route.max_concurrency: ...); the CLI user typed
    options (--max-concurrency)."""
    field, sep, rest = message.partition(": ")
    if status == 400 and sep and field.startswith("route.") and field[6:] in {*ROUTE_OPTIONS, "config", "headers"}:
        return f"--{field[6:].replace('_', '-')}: {rest}"
    return None


def cmd_routes(args: argparse.Namespace, client: Client) -> int:
    base = f"/v1/apps/{_q(args.app)}/routes"
    if args.action == "list":
        payload = client.json("GET", base)
        if args.json:
            _print_json(payload)
        else:
            _table(["PATH", "IMAGE", "FORMAT", "TYPE", "MEMORY", "TIMEOUT", "UPDATED"],
                   [[r["path"], r["image"], r["format"], r.get("type", "sync"), f"{r.get('memory')} MiB",
                     f"{r.get('timeout'):g} s" if isinstance(r.get("timeout"), (int, float)) else "-",
                     _when(r.get("updated_at"))] for r in payload["routes"]])
        return 0
    path = _path(args.path)
    if args.action == "create":
        payload = client.json("POST", base, {"route": {"path": path, **_route_body(args)}},
                              explain=_explain_route_field)
        _show(args, payload, done=f"created route {args.app} {path}")
    elif args.action == "inspect":
        payload = client.json("GET", f"{base}/{_q(path)}")
        _show(args, payload, payload.get("route"))
    elif args.action == "update":
        payload = client.json("PATCH", f"{base}/{_q(path)}", {"route": _route_body(args)},
                              explain=_explain_route_field)
        _show(args, payload, done=f"updated route {args.app} {path}")
    elif args.action == "delete":
        payload = client.json("DELETE", f"{base}/{_q(path)}")
        _show(args, payload, done=f"deleted route {args.app} {path}")
    return 0


# -- calls ------------------------------------------------------------------------------------


def cmd_call(args: argparse.Namespace, client: Client) -> int:
    body = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    target = f"/r/{_q(args.app)}{_path(args.path)}"
    extra = _kv(args.header, "--header")
    # The token goes only to a route that asks for one (its 401 says so; a refused call is not
    # run): a route with auth "none" would hand it to the function.
    status, headers, data = client.request(args.method, target, raw=body, headers=extra, send_token=False)
    if status == 401 and client.token and not any(k.lower() == "authorization" for k in extra):
        status, headers, data = client.request(args.method, target, raw=body, headers=extra)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    call_id = {k.lower(): v for k, v in headers.items()}.get("hotfn-call-id")
    print(f"\n[status {status}" + (f", call {call_id}" if call_id else "") + "]", file=sys.stderr)
    if status == 202 and call_id:
        print(f"(queued: `hotfn calls get {args.app} {call_id}` shows its result)", file=sys.stderr)
    return 0 if status < 400 else 1


def cmd_calls(args: argparse.Namespace, client: Client) -> int:
    if args.action == "get":
        return _call_get(args, client)
    query = {"limit": str(args.limit)}
    if args.route:
        query["route"] = _path(args.route)
    payload = client.json("GET", f"/v1/apps/{_q(args.app)}/calls?{urllib.parse.urlencode(query)}")
    if args.json:
        _print_json(payload)
        return 0
    _table(["ID", "ROUTE", "STATUS", "HTTP", "MODE", "DURATION", "CREATED"],
           [[c["id"], c["route"], c["status"], c.get("http_status") or "-", c["mode"],
             f"{c['duration_ms']:.1f} ms" if c.get("duration_ms") is not None else "-",
             _when(c.get("created_at"))] for c in payload["calls"]])
    return 0


def _call_get(args: argparse.Namespace, client: Client) -> int:
    base = f"/v1/apps/{_q(args.app)}/calls/{_q(args.call_id)}"
    payload = client.json("GET", base)
    if args.json:
        _print_json(payload)
        return 0
    call = dict(payload["call"])
    result = call.pop("result", None)
    _fields(call)
    if result is not None:
        print("result:")
        print(result)
    status, _, log = client.request("GET", base + "/log")
    if 200 <= status < 300 and log:
        print("log:")
        sys.stdout.flush()
        sys.stdout.buffer.write(log if log.endswith(b"\n") else log + b"\n")
    return 0


def cmd_logs(args: argparse.Namespace, client: Client) -> int:
    status, _, data = client.request("GET", f"/v1/apps/{_q(args.app)}/calls/{_q(args.call_id)}/log")
    if not 200 <= status < 300:
        raise CliError(f"server answered {status}: {data.decode('utf-8', 'replace')}")
    sys.stdout.buffer.write(data)
    return 0



def cmd_version(args: argparse.Namespace, client: Client) -> int:
    from .. import __version__

    server: Any
    try:
        server = client.json("GET", "/v1/version").get("version")
        problem = None
    except CliError as exc:
        server, problem = None, str(exc)
    if args.json:
        _print_json({"client": __version__, "server": server, "server_url": client.base})
    else:
        print(f"client  {__version__}")
        print(f"server  {server if server else '-'}  ({client.base})")
    if problem:
        print(f"hotfn: {problem}", file=sys.stderr)
        return 1
    return 0



def _add_apps(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("apps", parents=[common], help="manage apps")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    a = actions.add_parser("list", parents=[common], help="list apps")
    for name, what in [("create", "create an app"), ("inspect", "show an app"),
                       ("update", "merge config into an app"), ("delete", "delete an app")]:
        a = actions.add_parser(name, parents=[common], help=what)
        a.add_argument("name")
        if name in ("create", "update"):
            a.add_argument("--config", action="append", metavar="KEY=VALUE")
            a.add_argument("--isolation", choices=("container", "gvisor"),
                           help="the least every route of the app runs under (admin only)")
            a.add_argument("--allowed-images", metavar="PATTERNS",
                           help="(admin) comma-separated globs of the images its routes may run; "
                                "'' for the default: its own hotfn-fn/<app>/* and the server's list")
        if name == "delete":
            a.add_argument("--cascade", action="store_true", help="also delete the app's routes")
    p.set_defaults(func=cmd_apps)


def _add_routes(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("routes", parents=[common], help="manage an app's routes")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    a = actions.add_parser("list", parents=[common], help="list an app's routes")
    a.add_argument("app")
    for name, what in [("create", "create a route"), ("inspect", "show a route"),
                       ("update", "change a route's fields"), ("delete", "delete a route")]:
        a = actions.add_parser(name, parents=[common], help=what)
        a.add_argument("app")
        a.add_argument("path", help="/hello, /users/:id, /api/*rest")
        if name in ("create", "update"):
            for option, kind in ROUTE_OPTIONS.items():
                a.add_argument("--" + option.replace("_", "-"), dest=option, type=kind,
                               help=OPTION_HELP.get(option))
            a.add_argument("--config", action="append", metavar="KEY=VALUE")
            a.add_argument("--header", action="append", metavar="NAME=VALUE")
            a.add_argument("--network", action="store_true", help="give the containers a network")
    p.set_defaults(func=cmd_routes)


def _add_call(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("call", parents=[common], help="invoke a route; stdin is the body")
    p.add_argument("app")
    p.add_argument("path")
    p.add_argument("-X", "--method", default="POST")
    p.add_argument("-H", "--header", action="append", metavar="NAME=VALUE")
    p.set_defaults(func=cmd_call)


def _add_calls(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("calls", parents=[common], help="an app's call records")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    a = actions.add_parser("list", parents=[common], help="the newest calls first")
    a.add_argument("app")
    a.add_argument("--route")
    a.add_argument("--limit", type=int, default=20)
    a = actions.add_parser("get", parents=[common], help="one call: its record, async result and log")
    a.add_argument("app")
    a.add_argument("call_id")
    p.set_defaults(func=cmd_calls)


def _add_logs(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("logs", parents=[common], help="print a call's log (its stderr)")
    p.add_argument("app")
    p.add_argument("call_id")
    p.set_defaults(func=cmd_logs)



def _add_version(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("version", parents=[common], help="this client's version and the server's")
    p.set_defaults(func=cmd_version)

