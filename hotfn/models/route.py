"""Routes: which image serves a path of an app and how (format, type, limits, CPUs, user,
isolation, auth), and the checks a route's fields pass, on the way in from the API and on the way back from
the store.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .fields import (HEADER_NAME, MAX_CONFIG_TOTAL, ValidationError, _brief, _check_config,
                     _check_secrets, _field_key, _merge, _reject_unknown, header_problem,
                     merge_config, now, secrets_from_record)
from .imageref import InvalidImageRef, check_image, parse_image_ref

log = logging.getLogger("hotfn.models")  # named as before the move: operators filter on it

PATH_SEGMENT = re.compile(r"^(:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9._~!$&'()*+,;=@-]+)$")
# The last segment of a path may be greedy: /api/*rest takes every path under /api (like API
# Gateway's {proxy+}); the function gets the rest of the path as the parameter "rest".
GREEDY_SEGMENT = re.compile(r"^\*[A-Za-z_][A-Za-z0-9_]*$")
# hot: msgpack frames; http: IronFunctions' hot format, HTTP/1.1 on stdin and stdout
# (hotfn/protocol/httpformat.py); default: one cold container per call.
FORMATS = ("hot", "http", "default")
HOT_FORMATS = frozenset({"hot", "http"})
# Other names a client may use for a format; stored as the format they stand for.
FORMAT_ALIASES = {"cold": "default"}
TYPES = ("sync", "async")
ISOLATIONS = ("container", "gvisor")  # the weakest first (App.route_isolation)
# Numeric only: a name would be looked up in the image's /etc/passwd, which the image's author
# controls. 0 to 2**31 - 1, as the kernel and runc take them.
USER = re.compile(r"^(0|[1-9][0-9]{0,9})(?::(0|[1-9][0-9]{0,9}))?$")
MAX_ID = 2**31 - 1
DEFAULT_USER = "1000:1000"
# Who may call a route: anyone; a bearer token of the store (hotfn.access.auth); an HS256 JWT
# signed with the route's jwt_key (IronFunctions).
ROUTE_AUTH = ("none", "token", "jwt")
MAX_JWT_KEY = 4096
# A container's CPU limit, in cores: Docker's smallest (a 1 ms quota in its 100 ms period) up to
# more cores than any node has (each node caps it at its own count).
MIN_CPUS, MAX_CPUS = 0.01, 1024
# New keys only: a route stored with a shorter one (an older hotfn, IronFunctions) still works.
MIN_JWT_KEY_BYTES = 32


def normalize_path(path: Any, field_name: str = "route.path", *, lookup: bool = False) -> str:
    """A route path in its one spelling. ``lookup``: a path that names an existing route, which
    an older hotfn may have stored with dot segments; it must stay reachable to be deleted."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValidationError(field_name, "must be a string starting with '/'")
    if len(path) > 256:
        raise ValidationError(field_name, "must be at most 256 characters")
    path = path.rstrip("/") or "/"
    if path == "/":
        return path
    names = set()
    segments = path[1:].split("/")
    for i, segment in enumerate(segments):
        if segment in (".", "..") and not lookup:
            raise ValidationError(field_name, f"segment {segment!r} is not allowed (no dot segments)")
        if GREEDY_SEGMENT.match(segment):
            if i != len(segments) - 1:
                raise ValidationError(field_name, f"greedy segment {segment!r} must be the last one")
        elif segment.startswith("*") or not PATH_SEGMENT.match(segment):
            raise ValidationError(
                field_name, f"segment {segment!r} must be plain URL characters, ':name' or (last) '*name'"
            )
        if segment.startswith((":", "*")):
            if segment[1:] in names:
                raise ValidationError(field_name, f"parameter {segment[1:]!r} appears twice")
            names.add(segment[1:])
    return path


@dataclass(frozen=True)
class Route:
    app: str
    path: str
    image: str
    format: str = "default"
    memory: int = 128  # MiB
    timeout: float = 30.0  # seconds, per call
    idle_timeout: float = 30.0  # seconds a warm container may sit idle
    max_concurrency: int = 1  # warm containers of this route on one server
    type: str = "sync"
    config: Mapping[str, str] = field(default_factory=dict)
    # name -> values, as IronFunctions' API has them ({"X-Foo": ["bar"]}); each value is sent
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    min_warm: int = 0
    startup_timeout: float = 30.0
    queue_timeout: float = 10.0
    network: bool = False
    user: str = DEFAULT_USER  # uid[:gid] the function runs as
    isolation: str = "container"  # or "gvisor": the container under gVisor's kernel (runsc)
    # Cores each container may use at most (and its CPU weight under contention); None: the
    # node's --default-cpus.
    cpus: float | None = None
    max_attempts: int = 3  # async calls: runs at most this many times (a failure or a crash)
    auth: str = "none"  # one of ROUTE_AUTH
    jwt_key: str = ""  # auth "jwt": the HS256 key; write-only (never in an API answer)
    secrets: Mapping[str, str] = field(default_factory=dict)  # like config; write-only
    image_id: str = ""  # set by the server: the image `image` named when the route was saved
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def is_hot(self) -> bool:
        """Warm containers serve call after call: msgpack frames (hot) or HTTP/1.1 (http)."""
        return self.format in HOT_FORMATS

    def revision(self) -> tuple:
        """What a running container depends on: a change here retires warm containers."""
        return (self.image, self.image_id, self.memory, tuple(sorted(self.config.items())),
                tuple(sorted(self.secrets.items())), self.network, self.format, self.user,
                self.isolation, self.cpus)

    def to_record(self) -> dict[str, Any]:
        """Every field, the write-only ones included: what the store keeps."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["config"] = dict(self.config)
        out["headers"] = {name: list(values) for name, values in self.headers.items()}
        out["secrets"] = dict(self.secrets)
        return out

    def to_json(self) -> dict[str, Any]:
        """What the API shows: secrets by name only, and whether a jwt_key is set, not the key."""
        out = self.to_record()
        out["secrets"] = sorted(self.secrets)
        del out["jwt_key"]
        out["jwt_key_set"] = bool(self.jwt_key)
        # IronFunctions' clients decode timeouts as integers: 30, never 30.0. A fractional
        # timeout (hotfn accepts one) stays a fraction, which those clients cannot read.
        for name in _SECONDS:
            out[name] = whole_seconds(out[name])
        return out


def whole_seconds(value: float) -> float:
    """A number of seconds as JSON should carry it: an integer when it is one."""
    return int(value) if float(value).is_integer() else value


# (field, type, minimum, maximum)
_NUMBERS = {
    "memory": (int, 16, 64 * 1024),
    "timeout": ((int, float), 0.1, 3600),
    "idle_timeout": ((int, float), 1, 24 * 3600),
    "max_concurrency": (int, 1, 1000),
    "min_warm": (int, 0, 1000),
    "startup_timeout": ((int, float), 1, 600),
    "queue_timeout": ((int, float), 0, 3600),
    "max_attempts": (int, 1, 10),
}
_SECONDS = ("timeout", "idle_timeout", "startup_timeout", "queue_timeout")
_ROUTE_FIELDS = {
    "path", "image", "format", "type", "config", "headers", "network", "user", "isolation",
    "auth", "jwt_key", "secrets", "cpus", *_NUMBERS,
}


def check_user(value: Any, field_name: str = "route.user") -> str:
    """A numeric "uid" or "uid:gid" (a bare uid runs with gid = uid, as Fn does)."""
    match = USER.fullmatch(value) if isinstance(value, str) else None
    if match is None or any(int(part) > MAX_ID for part in match.groups() if part is not None):
        raise ValidationError(field_name, f'must be a numeric "uid" or "uid:gid" from 0 to {MAX_ID}, '
                                          f'such as "1000:1000" or "0"')
    uid, gid = match.groups()
    return f"{uid}:{gid if gid is not None else uid}"


def check_isolation(value: Any, field_name: str = "route.isolation") -> str:
    if value not in ISOLATIONS:
        raise ValidationError(field_name, "must be 'container' or 'gvisor'")
    return value


def check_cpus(value: Any, field_name: str = "route.cpus") -> float | None:
    """Cores, from MIN_CPUS to MAX_CPUS (null: the node's default)."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
            or not MIN_CPUS <= value <= MAX_CPUS):
        raise ValidationError(field_name, f"must be a number of cores from {MIN_CPUS} to {MAX_CPUS}, "
                                          "or null (the node's default)")
    return float(value)


def _route_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    _reject_unknown("route", body, _ROUTE_FIELDS)
    out: dict[str, Any] = {}
    if "image" in body:
        check_image(body["image"])  # kept as written: it names what its normalised form names
        out["image"] = body["image"]
    if "format" in body:
        fmt = FORMAT_ALIASES.get(body["format"], body["format"]) if isinstance(body["format"], str) else None
        if fmt not in FORMATS:
            raise ValidationError("route.format", "must be 'hot', 'http' or 'default' (also called 'cold')")
        out["format"] = fmt
    if "type" in body:
        if body["type"] not in TYPES:
            raise ValidationError("route.type", "must be 'sync' or 'async'")
        out["type"] = body["type"]
    if "network" in body:
        if not isinstance(body["network"], bool):
            raise ValidationError("route.network", "must be true or false")
        out["network"] = body["network"]
    if "user" in body:
        out["user"] = check_user(body["user"])
    if "isolation" in body:
        out["isolation"] = check_isolation(body["isolation"])
    if "cpus" in body:
        out["cpus"] = check_cpus(body["cpus"])
    for name, (kind, low, high) in _NUMBERS.items():
        if name not in body:
            continue
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
            noun = "an integer" if kind is int else "a number"
            raise ValidationError(f"route.{name}", f"must be {noun} from {low} to {high}")
        out[name] = value
    if "config" in body:
        out["config"] = _check_config("route.config", body["config"])
    if "secrets" in body:
        out["secrets"] = _check_secrets("route.secrets", body["secrets"])
    if "auth" in body:
        if body["auth"] not in ROUTE_AUTH:
            raise ValidationError("route.auth", "must be 'none', 'token' or 'jwt'")
        out["auth"] = body["auth"]
    if "jwt_key" in body:
        key = body["jwt_key"]
        if key is None:
            key = ""
        if not isinstance(key, str) or len(key) > MAX_JWT_KEY or "\0" in key:
            raise ValidationError("route.jwt_key", f"must be a string of at most {MAX_JWT_KEY} "
                                  "characters (\"\" or null removes it)")
        if key and len(key.encode("utf-8", "surrogatepass")) < MIN_JWT_KEY_BYTES:
            # HS256 is only as strong as its key: a short one is guessed offline from any one
            # JWT a client holds (RFC 7518 3.2 asks for at least the hash's 256 bits).
            raise ValidationError("route.jwt_key", f"must be at least {MIN_JWT_KEY_BYTES} bytes "
                                  "(a shorter HS256 key can be found from any JWT signed with it)")
        out["jwt_key"] = key
    if "headers" in body:
        out["headers"] = _check_headers(body["headers"])
    return out


def _check_headers(headers: Any) -> dict[str, tuple[str, ...]]:
    """Route headers in either shape: IronFunctions' name -> list of values, or hotfn's older
    name -> value. An empty value or list deletes the header in a PATCH (``()``)."""
    headers = headers or {}
    if not isinstance(headers, dict):
        raise ValidationError("route.headers", "must be an object of header names to lists of "
                              "string values")
    out: dict[str, tuple[str, ...]] = {}
    total = 0
    for name, value in headers.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationError(f"route.headers.{_field_key(name)}",
                                  "must be a string value or a list of string values")
        values = [v for v in values if v != ""]
        for item in values:
            problem = header_problem(name, item)
            if problem is not None:
                raise ValidationError(f"route.headers.{_field_key(name)}", problem)
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            raise ValidationError(f"route.headers.{_field_key(name)}",
                                  f"header name {_brief(name)} is not an HTTP token")
        total += sum(len(name) + len(v) for v in values)
        out[name] = tuple(values)
    if total > MAX_CONFIG_TOTAL:
        raise ValidationError("route.headers", f"hold more than {MAX_CONFIG_TOTAL} bytes")
    return out


def _route_auth(fields: dict[str, Any], old_auth: str) -> None:
    """IronFunctions: a route given a jwt_key requires a JWT signed with it; so a key without
    ``auth`` means "jwt", and removing the key (without ``auth``) makes the route public."""
    if "jwt_key" in fields and "auth" not in fields:
        fields["auth"] = "jwt" if fields["jwt_key"] else ("none" if old_auth == "jwt" else old_auth)
    if fields.get("auth", old_auth) != "jwt" and fields.get("jwt_key"):
        raise ValidationError("route.jwt_key", "is only for auth 'jwt'")
    if "auth" in fields and fields["auth"] != "jwt":
        fields["jwt_key"] = ""


def _check_route(route: Route) -> Route:
    if route.auth == "jwt" and not route.jwt_key:
        raise ValidationError("route.jwt_key", "is required for auth 'jwt'")
    if route.min_warm > route.max_concurrency:
        raise ValidationError("route.min_warm", "cannot exceed max_concurrency")
    if route.min_warm and not route.is_hot:
        raise ValidationError("route.min_warm", "needs format 'hot' (cold containers serve one call)")
    if route.network and route.isolation == "gvisor":
        # gVisor is registered with --network=none (scripts/ensure-sandbox): its own network
        # stack cannot run on every host, and a sandbox without one has nothing to escape through.
        raise ValidationError("route.network", "is not available with isolation 'gvisor'")
    return route


def new_route(app: str, body: Mapping[str, Any], path: str | None = None) -> Route:
    path = normalize_path(path if path is not None else body.get("path"))
    if "path" in body and path != normalize_path(body["path"]):
        raise ValidationError("route.path", "differs from the path in the URL")
    fields = _route_fields(body)
    if "image" not in fields:
        raise ValidationError("route.image", "is required")
    if "headers" in fields:  # nothing to delete in a new route
        fields["headers"] = {k: v for k, v in fields["headers"].items() if v}
    _route_auth(fields, "none")
    fields["secrets"] = _merge({}, fields.get("secrets", {}))
    t = now()
    return _check_route(Route(app=app, path=path, created_at=t, updated_at=t, **fields))


def patch_route(route: Route, body: Mapping[str, Any]) -> Route:
    if "path" in body and normalize_path(body["path"]) != route.path:
        raise ValidationError("route.path", "cannot be changed")
    fields = _route_fields({k: v for k, v in body.items() if k != "path"})
    _route_auth(fields, route.auth)
    if "config" in fields:
        fields["config"] = merge_config(route.config, fields["config"])
    if "headers" in fields:  # merge by name, case-insensitively; an empty value deletes
        merged = dict(route.headers)
        for name, values in fields["headers"].items():
            for same in [k for k in merged if k.lower() == name.lower()]:
                del merged[same]
            if values:
                merged[name] = values
        fields["headers"] = merged
    if "secrets" in fields:  # merge, '' deletes
        fields["secrets"] = merge_config(route.secrets, fields["secrets"])
    return _check_route(dataclasses.replace(route, updated_at=now(), **fields))


def route_from_record(record: Mapping[str, Any]) -> Route:
    """A route as the store gave it back. The store may hold what an older hotfn accepted (or
    what someone wrote into it by hand): headers HTTP cannot carry are dropped here, and said
    so, rather than reach a client's response."""
    known = {f.name for f in dataclasses.fields(Route)}
    fields = {k: v for k, v in record.items() if k in known}
    headers = fields.get("headers")
    if headers:
        if not isinstance(headers, dict):
            headers = {}
        kept = {}
        for name, stored in headers.items():
            # An older hotfn stored one string per name; this one stores lists.
            values = [stored] if isinstance(stored, str) else stored
            if not isinstance(values, list):
                values = [values]
            problems = [header_problem(name, v) for v in values]
            problem = next((p for p in problems if p is not None), None)
            if problem is not None:
                log.error("route %s%s: dropped its stored header %s: %s", fields.get("app"),
                          fields.get("path"), _brief(name, 40), problem)
            elif values:
                kept[name] = tuple(values)
        fields["headers"] = kept
    owner = f"route {fields.get('app')}{fields.get('path')}"
    fields["secrets"] = secrets_from_record(owner, fields.get("secrets"))
    auth, key = fields.get("auth", "none"), fields.get("jwt_key", "")
    if auth not in ROUTE_AUTH or not isinstance(key, str) or (auth == "jwt" and not key):
        # Fail closed: a route whose stored auth cannot be trusted admits no one.
        log.error("%s: its stored auth %s is invalid; it refuses every call", owner, _brief(auth, 20))
        fields["auth"], fields["jwt_key"] = "jwt", ""
    try:
        parse_image_ref(fields.get("image"))
    except InvalidImageRef as exc:
        # Kept, so that it can be seen and deleted; the image policy refuses to run it (403).
        log.error("%s: its stored image is not a valid reference and will not run: %s", owner, exc)
    # A stored user or isolation that is not one hotfn accepts would reach the engine: fall
    # back to the defaults, the most confined choice.
    for name, check, default in (("user", check_user, DEFAULT_USER),
                                 ("isolation", check_isolation, "container"),
                                 ("cpus", check_cpus, None)):
        if name in fields:
            try:
                fields[name] = check(fields[name])
            except ValidationError as exc:
                log.error("%s: stored %s: %s; using %r", owner, name, exc.message, default)
                fields[name] = default
    return Route(**fields)


