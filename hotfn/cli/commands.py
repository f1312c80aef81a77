"""The client commands: talk to a running server (apps, routes, calls, logs, version), work
on function directories (init, build, deploy, run), build the runtime images. Each is a `cmd_*`
function and an `_add_*` function that declares its arguments, listed in COMMANDS."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from typing import Any, Callable

from .. import functions
from . import Parser, _find


class CliError(Exception):
    pass


# -- the client -------------------------------------------------------------------------------


class Client:
    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.token = token

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
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
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

    def json(self, method: str, path: str, body: Any = None,
             explain: Callable[[int, str], str | None] | None = None) -> Any:
        """The answer's JSON; any 2xx is success. ``explain`` may reword a server error for the
        CLI user (it gets the status and the server's message)."""
        status, _, data = self.request(method, path, body)
        try:
            payload = json.loads(data) if data else {}
        except ValueError:
            payload = {"raw": data.decode("utf-8", "replace")}
        if not 200 <= status < 300:
            error = payload.get("error") if isinstance(payload, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            if message and isinstance(error.get("field"), str):
                message = f"{error['field']}: {message}"  # which field: the server says it apart
            message = message or (payload.get("raw") if isinstance(payload, dict) else None) or str(payload)
            if status == 401:
                message += " (give a token with --token or HOTFN_TOKEN)"
            raise CliError((explain and explain(status, message)) or f"server answered {status}: {message}")
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


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2))


def _when(timestamp: Any) -> str:
    if not isinstance(timestamp, (int, float)) or timestamp <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    """Columns padded to their widest cell; the last one left ragged."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + ("  " if len(row) > 1 else "")
              + row[-1])


def _fields(obj: dict[str, Any]) -> None:
    """One record, a field a line (times shown as times)."""
    width = max((len(k) for k in obj), default=0)
    for key, value in obj.items():
        if key.endswith("_at"):
            value = _when(value)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value) if value else "-"
        elif value is None:
            value = "-"
        print(f"{key.ljust(width)}  {value}")


def _show(args: argparse.Namespace, payload: Any, record: dict[str, Any] | None = None,
          done: str | None = None) -> None:
    """--json: the server's answer as it was; else ``done`` (a sentence) or ``record`` as fields."""
    if args.json:
        _print_json(payload)
    elif done is not None:
        print(done)
    elif record is not None:
        _fields(record)


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
    if args.action == "create":
        payload = client.json("POST", "/v1/apps", {"app": {"name": name, "config": _kv(args.config, "--config")}})
        _show(args, payload, done=f"created app {name}")
    elif args.action == "inspect":
        payload = client.json("GET", f"/v1/apps/{_q(name)}")
        _show(args, payload, payload.get("app"))
    elif args.action == "update":
        payload = client.json("PATCH", f"/v1/apps/{_q(name)}", {"app": {"config": _kv(args.config, "--config")}})
        _show(args, payload, done=f"updated app {name}")
    elif args.action == "delete":
        suffix = "?cascade=true" if args.cascade else ""
        payload = client.json("DELETE", f"/v1/apps/{_q(name)}{suffix}", explain=_explain_app_delete(name))
        _show(args, payload, done=f"deleted app {name}")
    return 0


# -- routes -----------------------------------------------------------------------------------

ROUTE_OPTIONS = {
    "image": str, "format": str, "type": str, "memory": int, "timeout": float,
    "idle_timeout": float, "max_concurrency": int, "min_warm": int, "startup_timeout": float,
    "queue_timeout": float, "max_attempts": int,
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
    status, headers, data = client.request(args.method, f"/r/{_q(args.app)}{_path(args.path)}", raw=body,
                                           headers=_kv(args.header, "--header"))
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


# -- functions: init, build, deploy, run ------------------------------------------------------


def cmd_init(args: argparse.Namespace, client: Client | None) -> int:
    written = functions.init_function(args.dir, args.runtime)
    print(f"wrote {', '.join(written)} in {args.dir}")
    return 0


class BuildProgress:
    """What a build shows as it goes. -v: its whole output. Else its steps, one line each; on a
    terminal one line, rewritten in place, with the seconds spent so far (a javac or an npm
    step can take a while without a word)."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.tty = sys.stderr.isatty()
        self.step = "starting"
        self.started = time.monotonic()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._ticker = threading.Thread(target=self._tick, daemon=True) if self.tty and not verbose else None

    def __enter__(self) -> "BuildProgress":
        if self._ticker is not None:
            self._ticker.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._done.set()
        if self._ticker is not None:
            self._ticker.join()
            sys.stderr.write("\r\x1b[K")

    def __call__(self, text: str) -> None:
        if self.verbose:
            sys.stderr.write(text)
            sys.stderr.flush()
            return
        for line in text.splitlines():
            if line.startswith("Step "):
                self.step = line if len(line) <= 90 else line[:87] + "..."
                if self.tty:
                    self._show()
                else:
                    print(f"  building: {self.step}", file=sys.stderr, flush=True)

    def _show(self) -> None:
        with self._lock:
            elapsed = time.monotonic() - self.started
            sys.stderr.write(f"\r\x1b[K  building ({elapsed:.0f} s): {self.step}")
            sys.stderr.flush()

    def _tick(self) -> None:
        while not self._done.wait(1.0):
            self._show()


def _build(directory: str, tag: str, verbose: bool) -> str:
    started = time.monotonic()
    with BuildProgress(verbose) as progress:
        image = functions.build_function(directory, tag=tag, progress=progress)
    print(f"built {image} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return image


def cmd_build(args: argparse.Namespace, client: Client | None) -> int:
    tag = args.tag or functions.default_tag(args.dir, args.app)
    print(_build(args.dir, tag, args.verbose))
    return 0


def _route_defaults(meta: dict[str, Any], fmt: str | None) -> dict[str, Any]:
    body = {"format": fmt or meta.get("format", "hot")}
    for key in ("memory", "timeout", "max_concurrency", "min_warm", "type", "idle_timeout",
                "startup_timeout", "queue_timeout"):
        if key in meta:
            body[key] = meta[key]
    return body


def _local_route(app: str, path: str, image: str, settings: dict[str, Any],
                 config: dict[str, str]) -> Any:
    """The route a function is checked or run as, validated as the server would (a bad value
    in func.json is named here, before anything runs)."""
    from .. import models

    fields = {k: settings[k] for k in ("format", "memory", "timeout", "startup_timeout", "network")
              if k in settings}
    try:
        return models.new_route(app, {"path": path, "image": image, "config": config, **fields})
    except models.ValidationError as exc:
        raise CliError(f"func.json or options: {exc}") from None


def _check_starts(directory: str, route: Any) -> str:
    """Start the built function once on this engine; CliError (with its stderr) if it cannot."""
    import trio

    from ..functions.local import CheckFailed, LocalRunner

    async def check() -> str:
        async with LocalRunner(route) as runner:
            return await runner.check(speaks_hot=functions.uses_hotfn_runtime(directory))

    try:
        return trio.run(check)
    except CheckFailed as exc:
        raise CliError(str(exc)) from None


def _deploy_once(args: argparse.Namespace, client: Client) -> None:
    from ..drivers import DriverError
    from ..drivers.docker.images import remove_image_name, tag_image

    meta = functions.read_meta(args.dir)
    path = _path(args.path or meta.get("path") or "/" + os.path.basename(os.path.abspath(args.dir)))
    final = args.tag or functions.default_tag(args.dir, args.app)
    # Built under a name of its own until it has started: a function that cannot start never
    # takes the route's image name, so the revision serving now keeps serving.
    candidate = final.rpartition(":")[0] if ":" in final.split("/")[-1] else final
    candidate += f":candidate-{os.getpid()}"
    _build(args.dir, candidate, args.verbose)
    try:
        app_status, _, app_data = client.request("GET", f"/v1/apps/{_q(args.app)}")
        base = f"/v1/apps/{_q(args.app)}/routes"
        route_status, _, route_data = client.request("GET", f"{base}/{_q(path)}")
        for status, what in ((app_status, f"/v1/apps/{_q(args.app)}"), (route_status, f"{base}/{_q(path)}")):
            if status not in (200, 404):
                client.json("GET", what)  # raises, with the server's reason (a token, say)
        body = _route_defaults(meta, args.format)
        # The check runs the function as the route will: the app's and the route's config, and
        # the route's memory, network and start-up time unless func.json sets them anew.
        current: dict[str, Any] = json.loads(route_data)["route"] if route_status == 200 else {}
        config = json.loads(app_data)["app"].get("config") or {} if app_status == 200 else {}
        config = {**config, **(current.get("config") or {})}
        probe = _local_route(args.app, path, candidate, {**current, **body}, config)
        if not args.no_check:
            print(f"checking that it starts: {_check_starts(args.dir, probe)}", file=sys.stderr)
        tag_image(candidate, final)
    except BaseException:
        try:
            remove_image_name(candidate)
        except DriverError:
            pass
        raise
    remove_image_name(candidate)  # the image stays: it is named `final` now
    if app_status == 404:
        client.json("POST", "/v1/apps", {"app": {"name": args.app}})
    body["image"] = final
    if route_status == 404:
        client.json("POST", base, {"route": {"path": path, **body}})
    else:
        client.json("PATCH", f"{base}/{_q(path)}", {"route": body})
    print(f"deployed {final} at {client.base}/r/{args.app}{path}")


def _snapshot(directory: str) -> dict[str, float]:
    from ..drivers.docker.images import context_files

    out = {}
    for name in context_files(directory):
        try:
            out[name] = os.stat(os.path.join(directory, name)).st_mtime
        except OSError:
            pass
    return out


def cmd_deploy(args: argparse.Namespace, client: Client) -> int:
    if not args.watch:
        _deploy_once(args, client)
        return 0
    seen: dict[str, float] | None = None
    print(f"watching {args.dir} (Ctrl-C to stop)", file=sys.stderr)
    try:
        while True:
            now = _snapshot(args.dir)
            if now != seen:
                seen = now
                try:
                    _deploy_once(args, client)
                except (CliError, functions.FunctionError) as exc:
                    print(f"hotfn: {exc}\n(still watching: the route was not changed)", file=sys.stderr)
                sys.stdout.flush()
            time.sleep(args.interval)
    except BaseException as exc:  # Ctrl-C, maybe inside a check (trio wraps it in a group)
        if _find(exc, KeyboardInterrupt) is None:
            raise
        return 0


def cmd_run(args: argparse.Namespace, client: Client | None) -> int:
    import trio

    from ..api import ApiRequest
    from ..functions.local import CheckFailed, LocalRunner, serve

    meta = functions.read_meta(args.dir)
    tag = args.tag or functions.default_tag(args.dir, None)
    route = _local_route("local", "/", tag, {**meta, "format": args.format or meta.get("format", "hot")},
                         _kv(args.env, "--env"))
    _build(args.dir, tag, args.verbose)

    async def one_call() -> int:
        body = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
        headers = [(k.lower(), v) for k, v in _kv(args.header, "--header").items()]
        async with LocalRunner(route) as runner:
            outcome = await runner.invoke(ApiRequest(args.method, _path(args.path), headers, body))
        log = outcome.log if isinstance(outcome.log, bytes) else outcome.log.value()
        sys.stderr.buffer.write(log)
        sys.stderr.flush()
        if outcome.error is not None:
            print(f"hotfn: the function failed ({outcome.status}): {outcome.error}", file=sys.stderr)
            return 1
        sys.stdout.buffer.write(outcome.body)
        sys.stdout.flush()
        return 0 if outcome.status < 400 else 1

    async def serving() -> int:
        # SIGINT and SIGTERM stop it the same way, whatever the shell did with SIGINT (a
        # background job starts with it ignored): the containers go before the process does.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with LocalRunner(route) as runner:
                async with trio.open_nursery() as nursery:
                    host, port = await nursery.start(serve, runner, args.host, args.port)
                    print(f"serving {args.dir} ({route.format}) on http://{host}:{port}/ (Ctrl-C to stop)",
                          file=sys.stderr, flush=True)
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        break
        return 0

    try:
        return trio.run(serving if args.port is not None else one_call)
    except BaseException as exc:  # trio's nurseries wrap what they raise in groups
        if _find(exc, KeyboardInterrupt) is not None:
            return 0  # Ctrl-C: the containers are gone already (LocalRunner's exit is shielded)
        for kind, prefix in ((CheckFailed, ""), (OSError, f"cannot serve on {args.host}:{args.port}: ")):
            found = _find(exc, kind)
            if found is not None:
                raise CliError(prefix + str(found)) from None
        raise


# -- images, version, completion --------------------------------------------------------------


def cmd_images(args: argparse.Namespace, client: Client | None) -> int:
    from ..functions import runtime_images as images

    try:
        images.build_runtime_images(args.runtimes or None, log=lambda m: print(f"[images] {m}", file=sys.stderr))
    except images.ImageBuildError as exc:
        raise CliError(str(exc)) from None
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


BASH_COMPLETION = """\
# hotfn completion for bash: eval "$(hotfn completion bash)" (e.g. in ~/.bashrc)
complete -o default -C '{program} __complete' hotfn
"""


def cmd_completion(args: argparse.Namespace, client: Client | None) -> int:
    program = os.path.abspath(sys.argv[0]) if sys.argv and os.path.basename(sys.argv[0]) == "hotfn" else "hotfn"
    print(BASH_COMPLETION.format(program=program), end="")
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
                               help="hot, http, or cold (the default)" if option == "format" else None)
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


def _add_init(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="write a minimal function into DIR")
    p.add_argument("--runtime", required=True, choices=functions.TEMPLATES)
    p.add_argument("dir")
    p.set_defaults(func=cmd_init, offline=True)


def _add_build(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("build", parents=[common], help="build DIR into a function image")
    p.add_argument("dir")
    p.add_argument("--app", help="the app it is for: names the image hotfn-fn/<app>/<dir name>")
    p.add_argument("--tag", help="image name (default: hotfn-fn/<app or local>/<dir name>)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the build's whole output")
    p.set_defaults(func=cmd_build, offline=True)


def _add_deploy(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("deploy", parents=[common],
                       help="build DIR, check that it starts, then create or update its route")
    p.add_argument("dir")
    p.add_argument("--app", required=True)
    p.add_argument("--path", help="route path (default: func.json's path, else /<dir name>)")
    p.add_argument("--format", help="hot, http, cold (default: func.json's format, else hot)")
    p.add_argument("--tag", help="image name (default: hotfn-fn/<app>/<dir name>)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the build's whole output")
    p.add_argument("--no-check", action="store_true", help="do not start the function before switching")
    p.add_argument("--watch", action="store_true", help="deploy again whenever a file in DIR changes")
    p.add_argument("--interval", type=float, default=1.0, help="--watch: seconds between looks")
    p.set_defaults(func=cmd_deploy)


def _add_run(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run DIR locally, no server: stdin is the body, stdout the answer")
    p.add_argument("dir")
    p.add_argument("--format", help="hot, http or cold (default: func.json's format, else hot)")
    p.add_argument("-X", "--method", default="POST")
    p.add_argument("--path", default="/", help="the request's path and query (default /)")
    p.add_argument("-H", "--header", action="append", metavar="NAME=VALUE")
    p.add_argument("-e", "--env", action="append", metavar="KEY=VALUE", help="config for the function")
    p.add_argument("--port", type=int, help="serve the function over HTTP on this port instead")
    p.add_argument("--host", default="127.0.0.1", help="--port: the address to listen on")
    p.add_argument("--tag", help="image name (default: hotfn-fn/local/<dir name>)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the build's whole output")
    p.set_defaults(func=cmd_run, offline=True)


def _add_images(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("images", parents=[common], help="the runtime images (hotfn/<runtime>) on this Docker host")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    a = actions.add_parser("build", parents=[common], help="build them from the recipes shipped with hotfn")
    a.add_argument("runtimes", nargs="*", metavar="RUNTIME", help=f"default: all of {', '.join(functions.RUNTIMES)}")
    p.set_defaults(func=cmd_images, offline=True)


def _add_version(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("version", parents=[common], help="this client's version and the server's")
    p.set_defaults(func=cmd_version)


def _add_completion(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("completion", parents=[common], help='shell completion: eval "$(hotfn completion bash)"')
    p.add_argument("shell", choices=["bash"])
    p.set_defaults(func=cmd_completion, offline=True)


def _add_lb_config(sub: Any, common: argparse.ArgumentParser) -> None:
    from ..cluster import lb  # the cluster's load balancer configuration (hotfn/cluster/lb.py)

    lb.add_parser(sub)


# One entry per subcommand, in the order `hotfn --help` lists them.
COMMANDS = [_add_apps, _add_routes, _add_call, _add_calls, _add_logs, _add_init, _add_build,
            _add_deploy, _add_run, _add_images, _add_version, _add_completion, _add_lb_config]
