"""What the SQL stores share: every query, in ``SqlStore`` (the schema and the dialects are in
schema.py).

The queries are written once, in the SQL both engines accept (upserts with ``ON CONFLICT``,
``RETURNING``, row values), with ``?`` placeholders; ``Dialect.sql`` rewrites them for the
driver, ``Dialect.ddl`` rewrites the schema's types. An implementation supplies ``_run``: run
``work(db)`` in one transaction on a worker thread, ``db.execute(sql, args)`` returning a
DB-API cursor.

Over 500 lines, and whole on purpose: ``SqlStore`` is one class, a method per query of the
``Store`` interface, each short; cut in parts, every part would need its helpers back.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import operator
import time
from typing import Any, Callable, Iterable, TypeVar

from ..models import App, Call, Route, Token, app_from_record, route_from_record, token_from_record
from .base import (CallRequest, Change, ChangeFeed, Claim, ClaimedCall, Conflict, NodeInfo,
                   NotFound, QueueBounds, QueueFull, QuotaExceeded, Store)
from .schema import Db, Dialect

T = TypeVar("T")
log = logging.getLogger(__name__)

# How many changes the feed keeps: a node further behind reloads everything.
CHANGES_KEPT = 10_000
# Most changes one changes_since answers; more: reload everything (it is cheaper).
CHANGES_PER_READ = 1_000



CALL_FIELDS = [f.name for f in dataclasses.fields(Call)]
# A call's row, in CALL_FIELDS order, in one C call (a generator per row was ~3 us of the
# event loop's time per call at 4,000 calls/s).
_call_row = operator.attrgetter(*CALL_FIELDS)
CALL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Call)
                 if f.default is not dataclasses.MISSING}
CALL_COLUMNS = ", ".join(CALL_FIELDS)
CALL_PLACEHOLDERS = ", ".join("?" * len(CALL_FIELDS))
_CALL_ROW = f"({CALL_PLACEHOLDERS})"
_CALL_UPDATE = ", ".join(f"{name} = ?" for name in CALL_FIELDS if name != "id")
_CALL_UPSERT = ", ".join(f"{name} = excluded.{name}" for name in CALL_FIELDS if name != "id")
APP_COLUMNS = ("name, config, created_at, updated_at, max_containers, max_memory_mb, rate_limit, "
               "burst, secrets, isolation, allowed_images, max_routes, max_queued_calls, "
               "max_queued_mb")
_APP_PLACEHOLDERS = ", ".join("?" * len(APP_COLUMNS.split(",")))
TOKEN_COLUMNS = "id, secret_hash, name, scope, apps, expires_at, created_at"
# Rows per INSERT statement: SQLite's sqlite3 module lets go of the GIL around every step of a
# statement, and a busy event loop takes up to a switch interval (5 ms) to give it back; one
# statement for many rows makes that one hand-over, not one per row. (PostgreSQL: one round
# trip for many rows.)
_ROWS_PER_INSERT = 256
# A batch of n rows goes in chunks whose sizes come from a small fixed set (256, multiples of
# _ROW_STEP, and 1.._ROW_STEP-1), at most two besides the full ones: each distinct size is a
# distinct statement, which the connection keeps prepared (sqlite3 caches 128) and SQLite's
# memory for one grows with its rows. With one statement per batch size, a server under load
# held up to 128 of them, ~17 MB of SQLite's memory; with these 31 sizes, ~1 MB.
_ROW_STEP = 16



class SqlStore(Store):
    """Every query of the interface; subclasses connect, and run the work in transactions."""

    dialect: Dialect
    integrity_errors: tuple[type[BaseException], ...]

    async def _run(self, work: Callable[[Db], T]) -> T:
        raise NotImplementedError

    def _after_change(self, db: Db, seq: int) -> None:
        """Hook inside the changing transaction (PostgreSQL notifies the other nodes)."""

    def _commit_durably(self, db: Db) -> None:
        """Hook at the start of a transaction that must be on disk when it returns, whatever
        the store's default (an accepted async call, and the claim that counts an attempt);
        SQLite's are (WAL with synchronous=NORMAL survives a crash of the process)."""

    def _exec(self, db: Db, sql: str, args: Any = ()) -> Any:
        return db.execute(self.dialect.sql(sql), args)

    def _insert_rows(self, db: Db, head: str, row: str, tail: str, rows: list[tuple]) -> None:
        """``head VALUES row, row, ... tail`` for every row of ``rows``."""
        if not rows:
            return
        if not self.dialect.multirow_insert:
            db.executemany(self.dialect.sql(f"{head} VALUES {row} {tail}"), rows)
            return
        for chunk in _chunks(rows):
            self._exec(db, f"{head} VALUES " + ", ".join([row] * len(chunk)) + f" {tail}",
                       list(itertools.chain.from_iterable(chunk)))

    def _changed(self, db: Db, app: str, path: str | None, op: str) -> None:
        # The routes_version row is locked until this transaction ends, so changes are
        # numbered in the order they commit: a reader never sees seq n+1 before n.
        (seq,) = self._exec(db, "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) "
                                "WHERE key = 'routes_version' RETURNING value").fetchone()
        self._exec(db, "INSERT INTO changes (seq, app, path, op, at) VALUES (?, ?, ?, ?, ?)",
                   (int(seq), app, path, op, time.time()))
        self._after_change(db, int(seq))

    # -- apps --

    @staticmethod
    def _app_row(app: App) -> tuple:
        return (app.name, json.dumps(dict(app.config)), app.created_at, app.updated_at,
                app.max_containers, app.max_memory_mb, app.rate_limit, app.burst,
                json.dumps(dict(app.secrets)), app.isolation,
                json.dumps(list(app.allowed_images)) if app.allowed_images is not None else None,
                app.max_routes, app.max_queued_calls, app.max_queued_mb)

    @staticmethod
    def _app(row: Any) -> App:
        return app_from_record({
            "name": row[0], "config": json.loads(row[1]), "created_at": row[2], "updated_at": row[3],
            "max_containers": row[4], "max_memory_mb": row[5], "rate_limit": row[6],
            "burst": row[7], "secrets": json.loads(row[8] or "{}"), "isolation": row[9],
            "allowed_images": _json_or_invalid(row[10]), "max_routes": row[11],
            "max_queued_calls": row[12], "max_queued_mb": row[13]})

    async def create_app(self, app: App) -> None:
        def work(db: Db) -> None:
            try:
                self._exec(db, f"INSERT INTO apps ({APP_COLUMNS}) VALUES ({_APP_PLACEHOLDERS})",
                           self._app_row(app))
            except self.integrity_errors:
                raise Conflict(f"app {app.name!r} already exists") from None
            self._changed(db, app.name, None, "create")

        await self._run(work)

    async def get_app(self, name: str) -> App:
        def work(db: Db) -> App:
            row = self._exec(db, f"SELECT {APP_COLUMNS} FROM apps WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"app {name!r} not found")
            return self._app(row)

        return await self._run(work)

    async def list_apps(self, *, after: str | None = None, limit: int | None = None) -> list[App]:
        sql = f"SELECT {APP_COLUMNS} FROM apps"
        args: list[Any] = []
        if after is not None:
            sql += " WHERE name > ?"
            args.append(after)
        sql += " ORDER BY name"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return await self._run(lambda db: [self._app(r) for r in self._exec(db, sql, args)])

    async def update_app(self, app: App) -> None:
        def work(db: Db) -> None:
            row = self._app_row(app)
            cur = self._exec(
                db, "UPDATE apps SET config = ?, created_at = ?, updated_at = ?, max_containers = ?, "
                    "max_memory_mb = ?, rate_limit = ?, burst = ?, secrets = ?, isolation = ?, "
                    "allowed_images = ?, max_routes = ?, max_queued_calls = ?, max_queued_mb = ? "
                    "WHERE name = ?",
                row[1:] + row[:1])
            if cur.rowcount == 0:
                raise NotFound(f"app {app.name!r} not found")
            self._changed(db, app.name, None, "update")

        await self._run(work)

    async def delete_app(self, name: str, cascade: bool = False) -> None:
        def work(db: Db) -> None:
            if self._exec(db, "SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone() is None:
                raise NotFound(f"app {name!r} not found")
            (routes,) = self._exec(db, "SELECT COUNT(*) FROM routes WHERE app = ?",
                                   (name,)).fetchone()
            if routes and not cascade:
                raise Conflict(f"app {name!r} still has {routes} route(s); delete them first "
                               "or pass ?cascade=true")
            self._exec(db, "DELETE FROM routes WHERE app = ?", (name,))
            self._exec(db, "DELETE FROM apps WHERE name = ?", (name,))
            self._changed(db, name, None, "delete")

        await self._run(work)

    # -- routes --

    @staticmethod
    def _spec(route: Route) -> str:
        # to_record, not to_json: the write-only fields (secrets, jwt_key) are kept too.
        return json.dumps(route.to_record())

    async def create_route(self, route: Route, max_routes: int | None = None) -> None:
        def work(db: Db) -> None:
            # Locks the app's row (PostgreSQL): two nodes' creates count one after the other.
            app = self._exec(db, "SELECT max_routes FROM apps WHERE name = ?"
                             + self.dialect.lock_claimed.replace(" SKIP LOCKED", ""),
                             (route.app,)).fetchone()
            if app is None:
                raise NotFound(f"app {route.app!r} not found")
            limit = app[0] or max_routes
            if limit:
                (held,) = self._exec(db, "SELECT COUNT(*) FROM routes WHERE app = ?",
                                     (route.app,)).fetchone()
                if held >= limit:
                    raise QuotaExceeded(f"app {route.app!r} has {held} routes, its bound "
                                        f"(max_routes {limit}): delete one first, or ask an "
                                        "admin to raise it")
            try:
                self._exec(db, "INSERT INTO routes (app, path, spec) VALUES (?, ?, ?)",
                           (route.app, route.path, self._spec(route)))
            except self.integrity_errors:
                raise Conflict(f"route {route.path!r} already exists in app {route.app!r}") from None
            self._changed(db, route.app, route.path, "create")

        await self._run(work)

    async def get_route(self, app: str, path: str) -> Route:
        def work(db: Db) -> Route:
            row = self._exec(db, "SELECT spec FROM routes WHERE app = ? AND path = ?",
                             (app, path)).fetchone()
            if row is None:
                raise NotFound(f"route {path!r} not found in app {app!r}")
            return route_from_record(json.loads(row[0]))

        return await self._run(work)

    async def list_routes(self, app: str | None = None, *, after: str | None = None,
                          limit: int | None = None) -> list[Route]:
        if app is None:
            if after is not None:
                raise ValueError("list_routes pages within one app")
            sql, args = "SELECT spec FROM routes ORDER BY app, path", []
        else:
            sql, args = "SELECT spec FROM routes WHERE app = ?", [app]
            if after is not None:
                sql += " AND path > ?"
                args.append(after)
            sql += " ORDER BY path"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return await self._run(lambda db: [
            route_from_record(json.loads(r[0])) for r in self._exec(db, sql, args)])

    async def update_route(self, route: Route) -> None:
        def work(db: Db) -> None:
            cur = self._exec(db, "UPDATE routes SET spec = ? WHERE app = ? AND path = ?",
                             (self._spec(route), route.app, route.path))
            if cur.rowcount == 0:
                raise NotFound(f"route {route.path!r} not found in app {route.app!r}")
            self._changed(db, route.app, route.path, "update")

        await self._run(work)

    async def delete_route(self, app: str, path: str) -> None:
        def work(db: Db) -> None:
            cur = self._exec(db, "DELETE FROM routes WHERE app = ? AND path = ?", (app, path))
            if cur.rowcount == 0:
                raise NotFound(f"route {path!r} not found in app {app!r}")
            self._changed(db, app, path, "delete")

        await self._run(work)

    async def routes_version(self) -> int:
        return await self._run(lambda db: int(self._exec(
            db, "SELECT value FROM meta WHERE key = 'routes_version'").fetchone()[0]))

    async def changes_since(self, seq: int) -> ChangeFeed:
        def work(db: Db) -> ChangeFeed:
            latest = int(self._exec(
                db, "SELECT value FROM meta WHERE key = 'routes_version'").fetchone()[0])
            if latest <= seq:
                return ChangeFeed(latest, [], latest == seq)
            if latest - seq > CHANGES_PER_READ:
                return ChangeFeed(latest, [], False)
            rows = self._exec(db, "SELECT seq, app, path FROM changes WHERE seq > ? AND seq <= ? "
                                  "ORDER BY seq", (seq, latest)).fetchall()
            changes = [Change(int(s), a, p) for s, a, p in rows]
            # Every step has its row, unless it was pruned or written by a hotfn without feed.
            return ChangeFeed(latest, changes, len(changes) == latest - seq)

        return await self._run(work)

    # -- calls and logs --

    async def save_calls(self, calls: Iterable[Call], logs: Iterable[tuple[str, str, bytes]]) -> None:
        calls, logs = list(calls), list(logs)
        now = time.time()
        # Plain columns: building rows stays cheap (this thread holds the GIL meanwhile, and
        # the event loop waits for it), and calls can be queried by any field.
        call_rows = [_call_row(c) for c in calls]
        log_rows = [(call_id, app, call_id, now, data) for call_id, app, data in logs]

        def work(db: Db) -> None:
            self._insert_rows(db, f"INSERT INTO calls ({CALL_COLUMNS})", _CALL_ROW,
                              f"ON CONFLICT (id) DO UPDATE SET {_CALL_UPSERT}", call_rows)
            # A log is as old as its call, so that purging takes both together.
            self._insert_rows(db, "INSERT INTO logs (call_id, app, created_at, data)",
                              "(?, ?, COALESCE((SELECT created_at FROM calls WHERE id = ?), ?), ?)",
                              "ON CONFLICT (call_id) DO UPDATE SET app = excluded.app, "
                              "created_at = excluded.created_at, data = excluded.data", log_rows)

        await self._run(work)

    async def get_call(self, app: str, call_id: str) -> Call:
        def work(db: Db) -> Call:
            row = self._exec(db, f"SELECT {CALL_COLUMNS} FROM calls WHERE app = ? AND id = ?",
                             (app, call_id)).fetchone()
            if row is None:
                raise NotFound(f"call {call_id!r} not found in app {app!r}")
            return Call(*row)

        return await self._run(work)

    async def list_calls(
        self, app: str, *, route: str | None = None, since: float | None = None,
        until: float | None = None, limit: int = 50, before_id: str | None = None,
    ) -> list[Call]:
        def work(db: Db) -> list[Call]:
            sql = f"SELECT {CALL_COLUMNS} FROM calls WHERE app = ?"
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
                # Keyset paging: strictly older than the cursor call, in (created_at, id)
                # order. A row value, so that both engines use it as the index's bound (an
                # OR of the two cases is a filter: 137 ms a page at 1.4 M calls, not 0.1).
                row = self._exec(db, "SELECT created_at FROM calls WHERE id = ?",
                                 (before_id,)).fetchone()
                if row is not None:
                    sql += " AND (created_at, id) < (?, ?)"
                    args += [row[0], before_id]
            sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
            args.append(limit)
            return [Call(*r) for r in self._exec(db, sql, args)]

        return await self._run(work)

    async def get_log(self, app: str, call_id: str) -> bytes:
        def work(db: Db) -> bytes:
            row = self._exec(db, "SELECT data FROM logs WHERE app = ? AND call_id = ?",
                             (app, call_id)).fetchone()
            if row is not None:
                return bytes(row[0])
            # An empty log is not stored (most calls write nothing to stderr): a call that
            # exists without one has an empty log.
            if self._exec(db, "SELECT 1 FROM calls WHERE app = ? AND id = ?",
                          (app, call_id)).fetchone() is None:
                raise NotFound(f"no log for call {call_id!r} in app {app!r}")
            return b""

        return await self._run(work)

    async def purge(self, older_than: float) -> int:
        def work(db: Db) -> int:
            cur = self._exec(db, "DELETE FROM calls WHERE created_at < ? AND id NOT IN "
                                 "(SELECT call_id FROM call_queue)", (older_than,))
            self._exec(db, "DELETE FROM logs WHERE created_at < ? AND call_id NOT IN "
                           "(SELECT call_id FROM call_queue)", (older_than,))
            self._exec(db, "DELETE FROM changes WHERE seq <= (SELECT MAX(seq) FROM changes) - ?",
                       (CHANGES_KEPT,))
            return cur.rowcount

        return await self._run(work)

    # -- the async-call queue --
    # SQLite: BEGIN IMMEDIATE makes each of these one writer at a time across every process on
    # the file. PostgreSQL: the claim locks the rows it takes and skips those others hold.

    async def enqueue_call(self, call: Call, request: CallRequest,
                           bounds: QueueBounds | None = None) -> None:
        row = tuple(getattr(call, f) for f in CALL_FIELDS)
        query, headers = json.dumps(request.query), json.dumps(request.headers)
        params = json.dumps(dict(request.params))
        size = (len(request.body) + len(request.url) + len(request.path) + len(query)
                + len(headers) + len(params))

        def work(db: Db) -> None:
            # The 202 that follows says "it will run": a crash right after must not lose it.
            self._commit_durably(db)
            if bounds is not None:
                self._check_queue_bounds(db, call, size, bounds)
            self._exec(db, f"INSERT INTO calls ({CALL_COLUMNS}) VALUES {_CALL_ROW}", row)
            self._exec(db, "INSERT INTO call_queue (call_id, app, route, available_at, method, url, "
                           "path, query, headers, params, body, size) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (call.id, call.app, call.route, call.created_at, request.method, request.url,
                        request.path, query, headers, params, request.body, size))

        await self._run(work)

    def _check_queue_bounds(self, db: Db, call: Call, size: int, bounds: QueueBounds) -> None:
        if self.dialect.lock_app_queue:
            self._exec(db, self.dialect.lock_app_queue, (call.app,)).fetchone()
        # One pass over the app's entries of the (app, route, size) index, no table rows.
        app_calls, app_bytes, route_calls, route_bytes = self._exec(
            db, "SELECT COUNT(*), COALESCE(SUM(size), 0), "
                "COALESCE(SUM(CASE WHEN route = ? THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN route = ? THEN size ELSE 0 END), 0) "
                "FROM call_queue WHERE app = ?", (call.route, call.route, call.app)).fetchone()
        for holder, held, adding, limit, unit in (
                (f"app {call.app!r}", app_calls, 1, bounds.app_calls, "calls"),
                (f"app {call.app!r}", app_bytes, size, bounds.app_bytes, "bytes"),
                (f"route {call.route!r}", route_calls, 1, bounds.route_calls, "calls"),
                (f"route {call.route!r}", route_bytes, size, bounds.route_bytes, "bytes")):
            if limit is not None and held + adding > limit:
                raise QueueFull(f"{holder} holds {held} {unit} of async calls queued or running; "
                                f"{adding} more would pass its bound of {limit}: try again once "
                                "some have run")

    async def due_routes(self, now: float) -> list[tuple[str, str]]:
        return await self._run(lambda db: [(r[0], r[1]) for r in self._exec(
            db, "SELECT DISTINCT app, route FROM call_queue WHERE available_at <= ?", (now,))])

    async def claim_calls(self, node_id: str, app: str, route: str, limit: int,
                          lease_until: float, now: float) -> list[ClaimedCall]:
        def work(db: Db) -> list[ClaimedCall]:
            # The attempt is counted before the function runs: a claim lost in a crash would
            # let a call run again under the same attempt number.
            self._commit_durably(db)
            rows = self._exec(
                db, "SELECT call_id, attempt, method, url, path, query, headers, params, body "
                    "FROM call_queue WHERE app = ? AND route = ? AND available_at <= ? "
                    "ORDER BY call_id LIMIT ?" + self.dialect.lock_claimed,
                (app, route, now, limit)).fetchall()
            claimed = []
            for call_id, attempt, method, url, path, query, headers, params, body in rows:
                claim = Claim(call_id, node_id, attempt + 1, lease_until)
                self._exec(db, "UPDATE call_queue SET node_id = ?, attempt = ?, available_at = ? "
                               "WHERE call_id = ?", (node_id, claim.attempt, lease_until, call_id))
                call = Call(*self._exec(
                    db, "UPDATE calls SET status = 'running', attempts = ?, node_id = ?, "
                        f"started_at = ?, completed_at = NULL WHERE id = ? RETURNING {CALL_COLUMNS}",
                    (claim.attempt, node_id, now, call_id)).fetchone())
                request = CallRequest(
                    method=method, url=url, path=path,
                    query=tuple(tuple(p) for p in json.loads(query)),
                    headers=tuple(tuple(p) for p in json.loads(headers)),
                    body=bytes(body), params=json.loads(params))
                claimed.append(ClaimedCall(call, request, claim))
            return claimed

        return await self._run(work)

    def _holds(self, db: Db, claim: Claim) -> bool:
        # Locks the queue row (PostgreSQL) until the claim's end is written.
        return self._exec(db, "SELECT 1 FROM call_queue WHERE call_id = ? AND node_id = ? "
                              "AND attempt = ?" + self.dialect.lock_claimed.replace(" SKIP LOCKED", ""),
                          (claim.call_id, claim.node_id, claim.attempt)).fetchone() is not None

    def _update_call(self, db: Db, call: Call) -> None:
        self._exec(db, f"UPDATE calls SET {_CALL_UPDATE} WHERE id = ?",
                   tuple(getattr(call, f) for f in CALL_FIELDS if f != "id") + (call.id,))

    async def requeue_call(self, call: Call, claim: Claim, available_at: float) -> bool:
        def work(db: Db) -> bool:
            if not self._holds(db, claim):
                return False
            self._update_call(db, call)
            # The attempt the record shows is the one the next claim counts from (a run that
            # never began, for want of capacity, gives its attempt back).
            self._exec(db, "UPDATE call_queue SET node_id = NULL, attempt = ?, available_at = ? "
                           "WHERE call_id = ?", (call.attempts, available_at, call.id))
            return True

        return await self._run(work)

    async def finish_call(self, call: Call, claim: Claim) -> bool:
        def work(db: Db) -> bool:
            if not self._holds(db, claim):
                return False
            self._update_call(db, call)
            self._exec(db, "DELETE FROM call_queue WHERE call_id = ?", (call.id,))
            return True

        return await self._run(work)

    async def release_calls(self, node_id: str, now: float) -> int:
        def work(db: Db) -> int:
            self._exec(db, "UPDATE calls SET status = 'queued' WHERE id IN "
                           "(SELECT call_id FROM call_queue WHERE node_id = ?)", (node_id,))
            return self._exec(db, "UPDATE call_queue SET node_id = NULL, available_at = ? "
                                  "WHERE node_id = ?", (now, node_id)).rowcount

        return await self._run(work)

    async def queue_stats(self) -> list[tuple[str, str, int, float]]:
        return await self._run(lambda db: [(r[0], r[1], int(r[2]), float(r[3])) for r in self._exec(
            db, "SELECT q.app, q.route, COUNT(*), MIN(c.created_at) FROM call_queue q "
                "JOIN calls c ON c.id = q.call_id GROUP BY q.app, q.route")])

    # -- nodes --

    async def register_node(self, node: NodeInfo) -> None:
        await self._run(lambda db: self._exec(
            db, "INSERT INTO nodes (id, address, capacity, version, draining, started_at, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "address = excluded.address, capacity = excluded.capacity, version = "
                "excluded.version, draining = excluded.draining, started_at = excluded.started_at, "
                "heartbeat_at = excluded.heartbeat_at",
            (node.id, node.address, node.capacity, node.version, int(node.draining),
             node.started_at, node.heartbeat_at)))

    async def list_nodes(self) -> list[NodeInfo]:
        rows = await self._run(lambda db: self._exec(
            db, "SELECT id, address, capacity, version, draining, started_at, heartbeat_at "
                "FROM nodes ORDER BY id").fetchall())
        nodes = []
        for r in rows:
            try:
                nodes.append(NodeInfo(id=str(r[0]), address=str(r[1]), capacity=int(r[2]),
                                      version=str(r[3]), draining=bool(r[4]),
                                      started_at=float(r[5]), heartbeat_at=float(r[6])))
            except (TypeError, ValueError):
                # Written by hand or by something else: shown as nothing, not a 500.
                log.warning("ignoring a malformed row of the node registry: %r", tuple(r))
        return nodes

    async def remove_node(self, node_id: str) -> None:
        await self._run(lambda db: self._exec(db, "DELETE FROM nodes WHERE id = ?", (node_id,)))

    # -- API tokens (hotfn.models.tokens, hotfn.access.auth) --

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

        def work(db: Db) -> None:
            try:
                self._exec(db, f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           row)
            except self.integrity_errors:
                raise Conflict("a token with this id already exists") from None
            self._tokens_changed(db)

        await self._run(work)

    async def list_tokens(self) -> list[Token]:
        def work(db: Db) -> list[Token]:
            rows = self._exec(db, f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id")
            return [t for t in map(self._token, rows) if t is not None]

        return await self._run(work)

    async def delete_token(self, token_id: str) -> None:
        def work(db: Db) -> None:
            if self._exec(db, "DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount == 0:
                raise NotFound(f"token {token_id!r} not found")
            self._tokens_changed(db)

        await self._run(work)

    def _tokens_changed(self, db: Db) -> None:
        # An upsert: a store made by a hotfn before tokens_version lacks the row until then.
        self._exec(db, "INSERT INTO meta (key, value) VALUES ('tokens_version', '1') ON CONFLICT "
                       "(key) DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)")

    async def tokens_version(self) -> int:
        def work(db: Db) -> int:
            row = self._exec(db, "SELECT value FROM meta WHERE key = 'tokens_version'").fetchone()
            return int(row[0]) if row is not None else 0

        return await self._run(work)

    async def find_token(self, secret_hash: str) -> Token | None:
        def work(db: Db) -> Token | None:
            row = self._exec(db, f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?",
                             (secret_hash,)).fetchone()
            return None if row is None else self._token(tuple(row))

        return await self._run(work)

    async def check(self) -> None:
        # A real write (a value that changes each time), so that a full disk fails it.
        now = repr(time.time())
        await self._run(lambda db: self._exec(
            db, "INSERT INTO meta (key, value) VALUES ('checked_at', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (now,)))


def _json_or_invalid(text: str | None) -> Any:
    """A JSON column's value; text that is not JSON is handed on as is, for the model's check of
    stored values to refuse (and say so)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _chunks(rows: list[T]) -> Iterable[list[T]]:
    """``rows`` in order, in chunks of the sizes above (_ROWS_PER_INSERT, _ROW_STEP)."""
    start, end = 0, len(rows)
    while end - start >= _ROWS_PER_INSERT:
        yield rows[start:start + _ROWS_PER_INSERT]
        start += _ROWS_PER_INSERT
    steps = (end - start) // _ROW_STEP * _ROW_STEP
    for size in (steps, end - start - steps):
        if size:
            yield rows[start:start + size]
            start += size

