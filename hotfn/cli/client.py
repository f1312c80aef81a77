"""The client of a running server (Client, over urllib) and the ways a command shows what it got:
JSON, a table, or one record's fields.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
from typing import Any, Callable


class CliError(Exception):
    pass


# -- the client -------------------------------------------------------------------------------


class Client:
    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.token = token

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None,
                send_token: bool = True) -> tuple[int, dict[str, str], bytes]:
        """``send_token``: False leaves the token out (a call of a route that does not ask for it)."""
        # Imported here: urllib.request brings http.client and email (~1 MiB), which a server
        # process never uses.
        import urllib.error
        import urllib.request

        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if body is not None:
            req.add_header("content-type", "application/json")
        if self.token and send_token:
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

