"""The SQL stores' one schema, its migrations, and ``Dialect``: the only places where SQLite and
PostgreSQL differ.

The schema and its migrations:
- ``SCHEMA`` is the newest schema, idempotent (``IF NOT EXISTS``): a new database gets every
  table at once; an older one gets the tables and indexes it lacks.
- ``ADDED_COLUMNS`` are the columns added to tables after they were first released; a table
  that lacks one gets it (``ALTER TABLE ... ADD COLUMN``, the same in both dialects). Asking
  the table rather than a version number lets features developed side by side each add
  theirs.
- SQLite databases from before the shared story (schema 1 and 2) are migrated first by
  ``SqliteStore`` (PostgreSQL never had them).
- ``SCHEMA_VERSION`` is written into ``meta``; a hotfn refuses a store of a newer one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Protocol

from .base import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    max_containers INTEGER, max_memory_mb INTEGER, rate_limit REAL, burst INTEGER,
    secrets TEXT NOT NULL DEFAULT '{}', isolation TEXT NOT NULL DEFAULT 'container',
    allowed_images TEXT, max_routes INTEGER, max_queued_calls INTEGER, max_queued_mb INTEGER);
CREATE TABLE IF NOT EXISTS routes (
    app TEXT NOT NULL REFERENCES apps(name), path TEXT NOT NULL, spec TEXT NOT NULL,
    PRIMARY KEY (app, path));
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, route TEXT NOT NULL, mode TEXT NOT NULL,
    type TEXT NOT NULL, status TEXT NOT NULL, http_status INTEGER, container_id TEXT,
    error TEXT, result TEXT, created_at REAL NOT NULL, started_at REAL, completed_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0, node_id TEXT, traceparent TEXT);
-- Serves the newest-first keyset pages: (created_at, id) < (?, ?) is an index bound.
CREATE INDEX IF NOT EXISTS calls_by_app_time ON calls (app, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS calls_by_route_time ON calls (app, route, created_at DESC, id DESC);
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
    headers TEXT NOT NULL, params TEXT NOT NULL, body BLOB NOT NULL,
    size INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS call_queue_due ON call_queue (available_at);
CREATE INDEX IF NOT EXISTS call_queue_by_route ON call_queue (app, route, available_at);
-- API tokens: only a hash of each secret. apps: a JSON list of app names, NULL for every app.
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, scope TEXT NOT NULL,
    apps TEXT, expires_at REAL, created_at REAL NOT NULL);
-- One row per routes_version step: which app (path NULL) or route it touched.
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY, app TEXT NOT NULL, path TEXT, op TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY, address TEXT NOT NULL, capacity INTEGER NOT NULL, version TEXT NOT NULL,
    draining INTEGER NOT NULL, started_at REAL NOT NULL, heartbeat_at REAL NOT NULL);
INSERT INTO meta (key, value) VALUES ('schema_version', '5'), ('routes_version', '0'),
    ('tokens_version', '0') ON CONFLICT (key) DO NOTHING;
"""
# 4: tenants' quotas and secrets on apps, API tokens; 5: the change feed, the node registry.
SCHEMA_VERSION = 5

# (table, column definition) added since the table's first release, oldest first; SCHEMA has
# them too (for new databases). Old apps have no limits and no secrets.
ADDED_COLUMNS: list[tuple[str, str]] = [
    ("apps", "max_containers INTEGER"),
    ("apps", "max_memory_mb INTEGER"),
    ("apps", "rate_limit REAL"),
    ("apps", "burst INTEGER"),
    ("apps", "secrets TEXT NOT NULL DEFAULT '{}'"),
    ("calls", "traceparent TEXT"),  # the W3C traceparent each call was given
    ("apps", "isolation TEXT NOT NULL DEFAULT 'container'"),  # the least its routes run under
    ("apps", "allowed_images TEXT"),  # a JSON list of image patterns; NULL: the default
    ("apps", "max_routes INTEGER"),
    ("apps", "max_queued_calls INTEGER"),
    ("apps", "max_queued_mb INTEGER"),
    ("call_queue", "size INTEGER NOT NULL DEFAULT 0"),  # its request's bytes, for the bounds
]
# Indexes on added columns: made after them (SCHEMA runs first, on a table that may lack them).
ADDED_INDEXES: list[str] = [
    # The enqueue's bound check counts and sums an app's queue from this index alone.
    "CREATE INDEX IF NOT EXISTS call_queue_sizes ON call_queue (app, route, size)",
]



@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str  # what the driver wants for "?"
    types: tuple[tuple[str, str], ...]  # schema type -> this engine's
    lock_claimed: str  # appended to the claim's SELECT: lock the rows it takes
    columns_of: str  # a query of one table's column names (the table as its one argument)
    # Many rows in one INSERT (SQLite: one GIL hand-over), or one row per statement run as a
    # batch (psycopg pipelines executemany: three times faster than long VALUES lists).
    multirow_insert: bool
    # Run first in an enqueue's transaction, with the app's name: makes the bound check and the
    # insert one step among every node's enqueues for that app ("": BEGIN IMMEDIATE does).
    lock_app_queue: str = ""

    def sql(self, text: str) -> str:
        return _translate(self, text)

    def ddl(self, text: str) -> str:
        for generic, own in self.types:
            text = re.sub(rf"\b{generic}\b", own, text)
        return self.sql(text)

    def statements(self, script: str) -> list[str]:
        """``script`` as single statements (no ';' inside literals in ours), comments gone."""
        lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@functools.lru_cache(maxsize=512)
def _translate(dialect: Dialect, text: str) -> str:
    if dialect.placeholder == "?":
        return text
    return text.replace("%", "%%").replace("?", dialect.placeholder)


SQLITE = Dialect("sqlite", "?", (), "", "SELECT name FROM pragma_table_info(?)",
                 multirow_insert=True)
# REAL is 4 bytes in PostgreSQL: a Unix time in it would lose its milliseconds.
POSTGRES = Dialect("postgresql", "%s", (("REAL", "DOUBLE PRECISION"), ("BLOB", "BYTEA")),
                   " FOR UPDATE SKIP LOCKED",
                   "SELECT column_name FROM information_schema.columns "
                   "WHERE table_schema = current_schema() AND table_name = ?",
                   multirow_insert=False,
                   lock_app_queue="SELECT pg_advisory_xact_lock(hashtext('hotfn.queue:' || ?))")


class Db(Protocol):
    def execute(self, sql: str, args: Any = ...) -> Any: ...
    def executemany(self, sql: str, rows: Any) -> Any: ...



def create_schema(db: Db, dialect: Dialect) -> None:
    """Create the tables and indexes this database lacks."""
    for statement in dialect.statements(SCHEMA):
        db.execute(dialect.ddl(statement))


def run_migrations(db: Db, dialect: Dialect, where: str) -> None:
    """Add the columns this database lacks (after create_schema); refuse a newer one."""
    version = int(db.execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(f"{where} was written by a newer hotfn (schema {version}); "
                         f"this one reads schema {SCHEMA_VERSION}")
    columns: dict[str, set[str]] = {}
    for table, definition in ADDED_COLUMNS:
        if table not in columns:
            columns[table] = {r[0] for r in db.execute(dialect.sql(dialect.columns_of), (table,))}
        name = definition.split()[0]
        if name not in columns[table]:
            db.execute(dialect.ddl(f"ALTER TABLE {table} ADD COLUMN {definition}"))
            columns[table].add(name)
    for index in ADDED_INDEXES:
        db.execute(dialect.ddl(index))
    db.execute(dialect.sql("UPDATE meta SET value = ? WHERE key = 'schema_version'"),
               (str(SCHEMA_VERSION),))

