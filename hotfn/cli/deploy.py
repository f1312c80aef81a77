"""The commands on a function directory: init, build, deploy (build, push to the server, check
that it starts) and run (locally, no server).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from .. import functions
from . import _find
from .admin import _path
from .client import Client, CliError, _kv, _q

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
                "startup_timeout", "queue_timeout", "cpus"):
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

