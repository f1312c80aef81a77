"""Where apps, routes, call records and logs live.

``Store`` is the interface the rest of hotfn uses; ``SqliteStore`` is the default, embedded
implementation. A server database (several hotfn nodes sharing one store) implements the same
interface. Every method is async so that such an implementation can do real I/O; the SQLite one
runs its queries on one worker thread, one at a time, over one connection.

Async calls are a queue in the store: ``enqueue_call`` commits a call with what it needs to run;
a node claims due calls with a lease (``claim_calls``), and ends each claim by finishing or
requeueing the call. A claim names its node and attempt: a node whose lease ran out (the call was
claimed again meanwhile) can no longer change the call. A server database implements the claim
with ``SELECT ... FOR UPDATE SKIP LOCKED``, so several nodes can share one queue.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, TypeVar

import trio

from .models import App, Call, Route, app_from_record, route_from_record
from .tokens import Token, token_from_record

T = TypeVar("T")


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


class StoreUnavailable(StoreError):
    """The store cannot do what was asked right now (a full disk, an I/O error, a lock held
    too long); the message says why. Nothing was changed."""


@dataclass(frozen=True)
class CallRequest:
    """What an async call needs to run (again): the request as the API received it. The route
    is looked up anew each time it runs."""

    method: str
    url: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """A node's hold on a queued call, until ``lease_until`` (Unix time). ``attempt`` is the
    run this claim is for, and fences out an older claim of the same call."""

    call_id: str
    node_id: str
    attempt: int
    lease_until: float


@dataclass
class ClaimedCall:
    call: Call  # status running, attempts == claim.attempt, node_id == claim.node_id
    request: CallRequest
    claim: Claim


class Store(abc.ABC):
    @abc.abstractmethod
    async def create_app(self, app: App) -> None: ...
    @abc.abstractmethod
    async def get_app(self, name: str) -> App: ...
    @abc.abstractmethod
    async def list_apps(self) -> list[App]: ...
    @abc.abstractmethod
    async def update_app(self, app: App) -> None: ...
    @abc.abstractmethod
    async def delete_app(self, name: str, cascade: bool = False) -> None: ...

    @abc.abstractmethod
    async def create_route(self, route: Route) -> None: ...
    @abc.abstractmethod
    async def get_route(self, app: str, path: str) -> Route: ...
    @abc.abstractmethod
    async def list_routes(self, app: str | None = None) -> list[Route]: ...
    @abc.abstractmethod
    async def update_route(self, route: Route) -> None: ...
    @abc.abstractmethod
    async def delete_route(self, app: str, path: str) -> None: ...
    @abc.abstractmethod
    async def routes_version(self) -> int:
        """A number that changes whenever any app or route changes (for route caches)."""

    @abc.abstractmethod
    async def save_calls(self, calls: Iterable[Call], logs: Iterable[tuple[str, str, bytes]]) -> None:
        """Insert or update call records, and store (call_id, app, log bytes) logs."""
    @abc.abstractmethod
    async def get_call(self, app: str, call_id: str) -> Call: ...
    @abc.abstractmethod
    async def list_calls(
        self, app: str, *, route: str | None = None, since: float | None = None,
        until: float | None = None, limit: int = 50, before_id: str | None = None,
    ) -> list[Call]: ...
    @abc.abstractmethod
    async def get_log(self, app: str, call_id: str) -> bytes: ...
    @abc.abstractmethod
    async def purge(self, older_than: float) -> int:
        """Delete call records and logs created before ``older_than``; how many calls went.
        A call still in the queue is kept."""

    # -- the async-call queue --

    @abc.abstractmethod
    async def enqueue_call(self, call: Call, request: CallRequest) -> None:
        """Commit ``call`` (status ``queued``) with the request to run it with; it can be
        claimed at once."""
    @abc.abstractmethod
    async def due_routes(self, now: float) -> list[tuple[str, str]]:
        """(app, route path) of every route with a call that can be claimed at ``now``."""
    @abc.abstractmethod
    async def claim_calls(self, node_id: str, app: str, route: str, limit: int,
                          lease_until: float, now: float) -> list[ClaimedCall]:
        """Claim up to ``limit`` of the route's due calls, oldest first, for ``node_id`` until
        ``lease_until``: each becomes ``running`` with one more attempt. A call is due when it
        is queued and its back-off is over, or claimed and its lease has run out. No two claims
        overlap: concurrent callers (other nodes) get other calls or none."""
    @abc.abstractmethod
    async def requeue_call(self, call: Call, claim: Claim, available_at: float) -> bool:
        """End ``claim`` by putting the call back in the queue, due at ``available_at``, its
        record as ``call`` says (status ``queued``, attempts, last error). False, and nothing
        changed, if the claim is no longer held."""
    @abc.abstractmethod
    async def finish_call(self, call: Call, claim: Claim) -> bool:
        """End ``claim`` with the call's final record; the call leaves the queue. False, and
        nothing changed, if the claim is no longer held."""
    @abc.abstractmethod
    async def release_calls(self, node_id: str, now: float) -> int:
        """Make every call claimed by ``node_id`` due at ``now`` (that node restarted: nothing
        of it is running any more); how many. Their attempts stay counted."""

    # -- API tokens (hotfn.tokens, hotfn.auth) --
    # Kept together for ports to other stores: one table, plain SQL. A revoked token must fail
    # at once on every node, so ``find_token`` is asked on every authenticated request (no
    # cache): it must be cheap.

    @abc.abstractmethod
    async def create_token(self, token: Token) -> None: ...
    @abc.abstractmethod
    async def list_tokens(self) -> list[Token]: ...
    @abc.abstractmethod
    async def delete_token(self, token_id: str) -> None:
        """Revoke: the token is gone. NotFound if there is no such token."""
    @abc.abstractmethod
    async def find_token(self, secret_hash: str) -> Token | None:
        """The token whose secret hashes to ``secret_hash``, if any (expired ones too)."""

    async def check(self) -> None:
        """Raise StoreUnavailable unless the store can be read and written right now."""
        await self.routes_version()

    async def close(self) -> None:
        pass


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    max_containers INTEGER, max_memory_mb INTEGER, rate_limit REAL, burst INTEGER,
    secrets TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS routes (
    app TEXT NOT NULL REFERENCES apps(name), path TEXT NOT NULL, spec TEXT NOT NULL,
    PRIMARY KEY (app, path));
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, route TEXT NOT NULL, mode TEXT NOT NULL,
    type TEXT NOT NULL, status TEXT NOT NULL, http_status INTEGER, container_id TEXT,
    error TEXT, result TEXT, created_at REAL NOT NULL, started_at REAL, completed_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0, node_id TEXT);
CREATE INDEX IF NOT EXISTS calls_by_app_time ON calls (app, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS calls_by_time ON calls (created_at);
CREATE TABLE IF NOT EXISTS logs (
    call_id TEXT PRIMARY KEY, app TEXT NOT NULL, created_at REAL NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS logs_by_time ON logs (created_at);
-- Async calls not yet finished, with their requests. available_at: when a queued call's back-off
-- ends, or when a claimed call's lease does; either way, from then on it may be claimed.
CREATE TABLE IF NOT EXISTS call_queue (
    call_id TEXT PRIMARY KEY, app TEXT NOT NULL, route TEXT NOT NULL, available_at REAL NOT NULL,
    node_id TEXT, attempt INTEGER NOT NULL DEFAULT 0,
    method TEXT NOT NULL, url TEXT NOT NULL, path TEXT NOT NULL, query TEXT NOT NULL,
    headers TEXT NOT NULL, params TEXT NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS call_queue_due ON call_queue (available_at);
CREATE INDEX IF NOT EXISTS call_queue_by_route ON call_queue (app, route, available_at);
-- API tokens: only a hash of each secret. apps: a JSON list of app names, NULL for every app.
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, scope TEXT NOT NULL,
    apps TEXT, expires_at REAL, created_at REAL NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '4'), ('routes_version', '0');
"""
SCHEMA_VERSION = 4
_APP_COLUMNS = "name, config, created_at, updated_at, max_containers, max_memory_mb, rate_limit, burst, secrets"
_TOKEN_COLUMNS = "id, secret_hash, name, scope, apps, expires_at, created_at"


_CALL_FIELDS = [f.name for f in dataclasses.fields(Call)]
_CALL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Call)
                  if f.default is not dataclasses.MISSING}
_CALL_COLUMNS = ", ".join(_CALL_FIELDS)
_CALL_PLACEHOLDERS = ", ".join("?" * len(_CALL_FIELDS))
_CALL_ROW = f"({_CALL_PLACEHOLDERS})"
_CALL_UPDATE = ", ".join(f"{name} = ?" for name in _CALL_FIELDS if name != "id")
# Rows per INSERT statement: SQLite's sqlite3 module lets go of the GIL around every step of a
# statement, and a busy event loop takes up to a switch interval (5 ms) to give it back; one
# statement for many rows makes that one hand-over, not one per row.
_ROWS_PER_INSERT = 500


class SqliteStore(Store):
    def __init__(self, path: str) -> None:
        self.path = path
        # One connection, used by one thread at a time (the limiter); WAL lets readers in other
        # processes (a CLI, a second node on the same disk) read while we write.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._limiter = trio.CapacityLimiter(1)
        self._lock = threading.Lock()
        # Token lookups (every authenticated request) read on the event loop's own thread, over
        # a connection of their own: an indexed read in WAL mode takes microseconds and never
        # waits for the writer, where a hop to the worker thread would cost far more and queue
        # behind call-record batches.
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._reader.execute("PRAGMA busy_timeout=1000")
        self._reader.execute("PRAGMA query_only=ON")
        self._tokens_by_row: dict[tuple, Token | None] = {}  # rows already parsed and checked

    def _migrate(self) -> None:
        """Bring a database written by an older hotfn up to SCHEMA_VERSION, keeping its data."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
        if "record" in columns:
            # Version 1 kept each call as one JSON document; version 2 has a column per field.
            with self._db:
                self._db.execute("ALTER TABLE calls RENAME TO calls_v1")
                self._db.executescript(SCHEMA)
                rows = self._db.execute("SELECT record FROM calls_v1").fetchall()
                self._db.executemany(
                    f"INSERT OR REPLACE INTO calls ({_CALL_COLUMNS}) VALUES ({_CALL_PLACEHOLDERS})",
                    [tuple(json.loads(r[0]).get(f, _CALL_DEFAULTS.get(f)) for f in _CALL_FIELDS)
                     for r in rows],
                )
                self._db.execute("DROP TABLE calls_v1")
        elif "attempts" not in columns:
            # Version 3 runs async calls from a queue (call_queue, created by SCHEMA) and counts
            # their attempts. A version-2 async call still queued or running was only ever in
            # that server's memory: its request is gone, so it can never run; say so.
            with self._db:
                self._db.execute("ALTER TABLE calls ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
                self._db.execute("ALTER TABLE calls ADD COLUMN node_id TEXT")
                self._db.execute(
                    "UPDATE calls SET attempts = 1 WHERE started_at IS NOT NULL")
                self._db.execute(
                    "UPDATE calls SET status = 'error', error = 'lost: the server stopped before "
                    "this call finished (recorded by a hotfn without a durable queue)' "
                    "WHERE status IN ('queued', 'running')")
        app_columns = {row[1] for row in self._db.execute("PRAGMA table_info(apps)")}
        if "secrets" not in app_columns:
            # Version 4 adds tenants' quotas and secrets to apps (and the tokens table, created
            # by SCHEMA). Old apps have no limits and no secrets.
            with self._db:
                for column in ("max_containers INTEGER", "max_memory_mb INTEGER",
                               "rate_limit REAL", "burst INTEGER",
                               "secrets TEXT NOT NULL DEFAULT '{}'"):
                    self._db.execute(f"ALTER TABLE apps ADD COLUMN {column}")
        version = int(self._db.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer hotfn (schema {version}); "
                             f"this one reads schema {SCHEMA_VERSION}")
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            with self._lock:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(self._db)
                        self._db.execute("COMMIT")
                    except BaseException:
                        # SQLite may have rolled back already (a full disk does that).
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                        raise
                    return result
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"the store ({self.path}) is failing: {exc}") from exc

        return await trio.to_thread.run_sync(work, limiter=self._limiter)

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'routes_version'")

    # -- apps --

    async def create_app(self, app: App) -> None:
        def work(db: sqlite3.Connection) -> None:
            try:
                db.execute(f"INSERT INTO apps ({_APP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           self._app_row(app))
            except sqlite3.IntegrityError:
                raise Conflict(f"app {app.name!r} already exists") from None
            self._bump(db)

        await self._run(work)

    @staticmethod
    def _app_row(app: App) -> tuple:
        return (app.name, json.dumps(dict(app.config)), app.created_at, app.updated_at,
                app.max_containers, app.max_memory_mb, app.rate_limit, app.burst,
                json.dumps(dict(app.secrets)))

    @staticmethod
    def _app(row: Any) -> App:
        return app_from_record({
            "name": row[0], "config": json.loads(row[1]), "created_at": row[2], "updated_at": row[3],
            "max_containers": row[4], "max_memory_mb": row[5], "rate_limit": row[6],
            "burst": row[7], "secrets": json.loads(row[8] or "{}")})

    async def get_app(self, name: str) -> App:
        def work(db: sqlite3.Connection) -> App:
            row = db.execute(f"SELECT {_APP_COLUMNS} FROM apps WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"app {name!r} not found")
            return self._app(row)

        return await self._run(work)

    async def list_apps(self) -> list[App]:
        return await self._run(lambda db: [
            self._app(r) for r in db.execute(f"SELECT {_APP_COLUMNS} FROM apps ORDER BY name")
        ])

    async def update_app(self, app: App) -> None:
        def work(db: sqlite3.Connection) -> None:
            row = self._app_row(app)
            cur = db.execute(
                "UPDATE apps SET config = ?, created_at = ?, updated_at = ?, max_containers = ?, "
                "max_memory_mb = ?, rate_limit = ?, burst = ?, secrets = ? WHERE name = ?",
                row[1:] + row[:1])
            if cur.rowcount == 0:
                raise NotFound(f"app {app.name!r} not found")
            self._bump(db)

        await self._run(work)

    async def delete_app(self, name: str, cascade: bool = False) -> None:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone() is None:
                raise NotFound(f"app {name!r} not found")
            (routes,) = db.execute("SELECT COUNT(*) FROM routes WHERE app = ?", (name,)).fetchone()
            if routes and not cascade:
                raise Conflict(
                    f"app {name!r} still has {routes} route(s); delete them first or pass ?cascade=true"
                )
            db.execute("DELETE FROM routes WHERE app = ?", (name,))
            db.execute("DELETE FROM apps WHERE name = ?", (name,))
            self._bump(db)

        await self._run(work)

    # -- routes --

    @staticmethod
    def _spec(route: Route) -> str:
        # to_record, not to_json: the write-only fields (secrets, jwt_key) are kept too.
        return json.dumps(route.to_record())

    async def create_route(self, route: Route) -> None:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM apps WHERE name = ?", (route.app,)).fetchone() is None:
                raise NotFound(f"app {route.app!r} not found")
            try:
                db.execute(
                    "INSERT INTO routes (app, path, spec) VALUES (?, ?, ?)",
                    (route.app, route.path, self._spec(route)),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"route {route.path!r} already exists in app {route.app!r}") from None
            self._bump(db)

        await self._run(work)

    async def get_route(self, app: str, path: str) -> Route:
        def work(db: sqlite3.Connection) -> Route:
            row = db.execute(
                "SELECT spec FROM routes WHERE app = ? AND path = ?", (app, path)
            ).fetchone()
            if row is None:
                raise NotFound(f"route {path!r} not found in app {app!r}")
            return route_from_record(json.loads(row[0]))

        return await self._run(work)

    async def list_routes(self, app: str | None = None) -> list[Route]:
        def work(db: sqlite3.Connection) -> list[Route]:
            if app is None:
                rows = db.execute("SELECT spec FROM routes ORDER BY app, path")
            else:
                rows = db.execute("SELECT spec FROM routes WHERE app = ? ORDER BY path", (app,))
            return [route_from_record(json.loads(r[0])) for r in rows]

        return await self._run(work)

    async def update_route(self, route: Route) -> None:
        def work(db: sqlite3.Connection) -> None:
            cur = db.execute(
                "UPDATE routes SET spec = ? WHERE app = ? AND path = ?",
                (self._spec(route), route.app, route.path),
            )
            if cur.rowcount == 0:
                raise NotFound(f"route {route.path!r} not found in app {route.app!r}")
            self._bump(db)

        await self._run(work)

    async def delete_route(self, app: str, path: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            cur = db.execute("DELETE FROM routes WHERE app = ? AND path = ?", (app, path))
            if cur.rowcount == 0:
                raise NotFound(f"route {path!r} not found in app {app!r}")
            self._bump(db)

        await self._run(work)

    async def routes_version(self) -> int:
        return await self._run(lambda db: int(db.execute(
            "SELECT value FROM meta WHERE key = 'routes_version'").fetchone()[0]))

    # -- calls and logs --

    async def save_calls(self, calls: Iterable[Call], logs: Iterable[tuple[str, str, bytes]]) -> None:
        calls, logs = list(calls), list(logs)

        # Plain columns: building rows stays cheap (this thread holds the GIL meanwhile, and
        # the event loop waits for it), and calls can be queried by any field.
        call_rows = [tuple(getattr(c, f) for f in _CALL_FIELDS) for c in calls]
        log_rows = [(call_id, app, call_id, data) for call_id, app, data in logs]

        def work(db: sqlite3.Connection) -> None:
            for chunk in _chunks(call_rows):
                db.execute(
                    f"INSERT OR REPLACE INTO calls ({_CALL_COLUMNS}) VALUES "
                    + ", ".join([_CALL_ROW] * len(chunk)), [v for row in chunk for v in row])
            # A log is as old as its call, so that purging takes both together.
            for chunk in _chunks(log_rows):
                db.execute(
                    "INSERT OR REPLACE INTO logs (call_id, app, created_at, data) VALUES "
                    + ", ".join(["(?, ?, COALESCE((SELECT created_at FROM calls WHERE id = ?), "
                                 "strftime('%s', 'now')), ?)"] * len(chunk)),
                    [v for row in chunk for v in row])

        await self._run(work)

    async def get_call(self, app: str, call_id: str) -> Call:
        def work(db: sqlite3.Connection) -> Call:
            row = db.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE app = ? AND id = ?", (app, call_id)
            ).fetchone()
            if row is None:
                raise NotFound(f"call {call_id!r} not found in app {app!r}")
            return Call(*row)

        return await self._run(work)

    async def list_calls(
        self, app: str, *, route: str | None = None, since: float | None = None,
        until: float | None = None, limit: int = 50, before_id: str | None = None,
    ) -> list[Call]:
        def work(db: sqlite3.Connection) -> list[Call]:
            sql = f"SELECT {_CALL_COLUMNS} FROM calls WHERE app = ?"
            args: list[Any] = [app]
            if route is not None:
                sql += " AND route = ?"
                args.append(route)
            if since is not None:
                sql += " AND created_at >= ?"
                args.append(since)
            if until is not None:
                sql += " AND created_at < ?"
                args.append(until)
            if before_id is not None:
                # Keyset paging: strictly older than the cursor call, in (created_at, id) order.
                row = db.execute("SELECT created_at FROM calls WHERE id = ?", (before_id,)).fetchone()
                if row is not None:
                    sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
                    args += [row[0], row[0], before_id]
            sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
            args.append(limit)
            return [Call(*r) for r in db.execute(sql, args)]

        return await self._run(work)

    async def get_log(self, app: str, call_id: str) -> bytes:
        def work(db: sqlite3.Connection) -> bytes:
            row = db.execute(
                "SELECT data FROM logs WHERE app = ? AND call_id = ?", (app, call_id)
            ).fetchone()
            if row is None:
                raise NotFound(f"no log for call {call_id!r} in app {app!r}")
            return bytes(row[0])

        return await self._run(work)

    async def purge(self, older_than: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            cur = db.execute("DELETE FROM calls WHERE created_at < ? AND id NOT IN "
                             "(SELECT call_id FROM call_queue)", (older_than,))
            db.execute("DELETE FROM logs WHERE created_at < ? AND call_id NOT IN "
                       "(SELECT call_id FROM call_queue)", (older_than,))
            return cur.rowcount

        return await self._run(work)

    # -- the async-call queue --
    # BEGIN IMMEDIATE (see _run) makes each of these one writer at a time across every process
    # on the file: a claim cannot see a call another claim is taking.

    async def enqueue_call(self, call: Call, request: CallRequest) -> None:
        row = tuple(getattr(call, f) for f in _CALL_FIELDS)

        def work(db: sqlite3.Connection) -> None:
            db.execute(f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES {_CALL_ROW}", row)
            db.execute(
                "INSERT INTO call_queue (call_id, app, route, available_at, method, url, path, "
                "query, headers, params, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (call.id, call.app, call.route, call.created_at, request.method, request.url,
                 request.path, json.dumps(request.query), json.dumps(request.headers),
                 json.dumps(dict(request.params)), request.body))

        await self._run(work)

    async def due_routes(self, now: float) -> list[tuple[str, str]]:
        return await self._run(lambda db: [tuple(r) for r in db.execute(
            "SELECT DISTINCT app, route FROM call_queue WHERE available_at <= ?", (now,))])

    async def claim_calls(self, node_id: str, app: str, route: str, limit: int,
                          lease_until: float, now: float) -> list[ClaimedCall]:
        def work(db: sqlite3.Connection) -> list[ClaimedCall]:
            rows = db.execute(
                "SELECT call_id, attempt, method, url, path, query, headers, params, body "
                "FROM call_queue WHERE app = ? AND route = ? AND available_at <= ? "
                "ORDER BY call_id LIMIT ?", (app, route, now, limit)).fetchall()
            claimed = []
            for call_id, attempt, method, url, path, query, headers, params, body in rows:
                claim = Claim(call_id, node_id, attempt + 1, lease_until)
                db.execute("UPDATE call_queue SET node_id = ?, attempt = ?, available_at = ? "
                           "WHERE call_id = ?", (node_id, claim.attempt, lease_until, call_id))
                db.execute("UPDATE calls SET status = 'running', attempts = ?, node_id = ?, "
                           "started_at = ?, completed_at = NULL WHERE id = ?",
                           (claim.attempt, node_id, now, call_id))
                call = Call(*db.execute(f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = ?",
                                        (call_id,)).fetchone())
                request = CallRequest(
                    method=method, url=url, path=path,
                    query=tuple(tuple(p) for p in json.loads(query)),
                    headers=tuple(tuple(p) for p in json.loads(headers)),
                    body=bytes(body), params=json.loads(params))
                claimed.append(ClaimedCall(call, request, claim))
            return claimed

        return await self._run(work)

    @staticmethod
    def _holds(db: sqlite3.Connection, claim: Claim) -> bool:
        return db.execute(
            "SELECT 1 FROM call_queue WHERE call_id = ? AND node_id = ? AND attempt = ?",
            (claim.call_id, claim.node_id, claim.attempt)).fetchone() is not None

    @staticmethod
    def _update_call(db: sqlite3.Connection, call: Call) -> None:
        db.execute(f"UPDATE calls SET {_CALL_UPDATE} WHERE id = ?",
                   tuple(getattr(call, f) for f in _CALL_FIELDS if f != "id") + (call.id,))

    async def requeue_call(self, call: Call, claim: Claim, available_at: float) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            if not self._holds(db, claim):
                return False
            self._update_call(db, call)
            # The attempt the record shows is the one the next claim counts from (a run that
            # never began, for want of capacity, gives its attempt back).
            db.execute("UPDATE call_queue SET node_id = NULL, attempt = ?, available_at = ? "
                       "WHERE call_id = ?", (call.attempts, available_at, call.id))
            return True

        return await self._run(work)

    async def finish_call(self, call: Call, claim: Claim) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            if not self._holds(db, claim):
                return False
            self._update_call(db, call)
            db.execute("DELETE FROM call_queue WHERE call_id = ?", (call.id,))
            return True

        return await self._run(work)

    async def release_calls(self, node_id: str, now: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            db.execute("UPDATE calls SET status = 'queued' WHERE id IN "
                       "(SELECT call_id FROM call_queue WHERE node_id = ?)", (node_id,))
            return db.execute("UPDATE call_queue SET node_id = NULL, available_at = ? "
                              "WHERE node_id = ?", (now, node_id)).rowcount

        return await self._run(work)

    # -- API tokens --

    @staticmethod
    def _token(row: Any) -> Token | None:
        token_id, secret_hash, name, scope, apps, expires_at, created_at = row
        try:
            apps = json.loads(apps) if apps is not None else None
        except ValueError:
            apps = "not JSON"  # refused by token_from_record, which says so
        return token_from_record({"id": token_id, "secret_hash": secret_hash, "name": name,
                                  "scope": scope, "apps": apps, "expires_at": expires_at,
                                  "created_at": created_at})

    async def create_token(self, token: Token) -> None:
        row = (token.id, token.secret_hash, token.name, token.scope,
               json.dumps(list(token.apps)) if token.apps is not None else None,
               token.expires_at, token.created_at)

        def work(db: sqlite3.Connection) -> None:
            try:
                db.execute(f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            except sqlite3.IntegrityError:
                raise Conflict("a token with this id already exists") from None

        await self._run(work)

    async def list_tokens(self) -> list[Token]:
        def work(db: sqlite3.Connection) -> list[Token]:
            rows = db.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id")
            return [t for t in map(self._token, rows) if t is not None]

        return await self._run(work)

    async def delete_token(self, token_id: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount == 0:
                raise NotFound(f"token {token_id!r} not found")

        await self._run(work)

    async def find_token(self, secret_hash: str) -> Token | None:
        # On this thread, over the reader connection (see __init__); autocommit, so each read
        # sees every commit made before it, by any process.
        try:
            row = self._reader.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?",
                                       (secret_hash,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the store ({self.path}) is failing: {exc}") from exc
        if row is None:
            return None
        # The row is read every time; only its parsing is remembered (the same row, the same
        # token), which halves the cost of a lookup.
        token = self._tokens_by_row.get(row, False)
        if token is False:
            if len(self._tokens_by_row) >= 1024:
                self._tokens_by_row.clear()
            token = self._tokens_by_row[row] = self._token(row)
        return token

    async def check(self) -> None:
        # A real write (a value that changes each time), so that a full disk fails it.
        now = repr(time.time())
        await self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('checked_at', ?)", (now,)))

    async def close(self) -> None:
        def work() -> None:
            with self._lock:
                self._db.close()
                self._reader.close()

        await trio.to_thread.run_sync(work, limiter=self._limiter)


def _chunks(rows: list[T]) -> Iterable[list[T]]:
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        yield rows[start:start + _ROWS_PER_INSERT]
