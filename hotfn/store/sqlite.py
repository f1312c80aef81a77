"""The embedded store: one SQLite file, the default.

Its queries run on one worker thread, one at a time, over one connection; each is one
``BEGIN IMMEDIATE`` transaction, so that several processes on one file (a CLI, a second node on
the same disk) take turns as writers.

Space: deleted rows (purged records, finished async calls with their request bodies) leave free
pages that SQLite reuses but never gives back by itself. The file is in incremental auto-vacuum
mode, and each purge ends with an incremental vacuum and a WAL checkpoint, so that a burst of
large async calls does not leave the file at its peak size for good. That mode can only be
chosen before the first table is made; a file made without it is converted once, at open, by a
VACUUM (which rewrites it, and so needs as much free disk as the file takes).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
from typing import Callable, TypeVar

import trio

from ..models import Token
from . import schema
from .base import ChangeFeed, StoreUnavailable
from .sql import (CALL_COLUMNS, CALL_DEFAULTS, CALL_FIELDS, CALL_PLACEHOLDERS, TOKEN_COLUMNS,
                  SqlStore)

T = TypeVar("T")
log = logging.getLogger(__name__)
# SQLite's PRAGMA auto_vacuum values.
_AUTO_VACUUM_NONE, _AUTO_VACUUM_INCREMENTAL = 0, 2
# The WAL is cut back to this after a checkpoint (it otherwise stays at its largest).
_WAL_SIZE_LIMIT = 64 * 1024 * 1024


class SqliteStore(SqlStore):
    dialect = schema.SQLITE
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: str) -> None:
        self.path = path
        # One connection, used by one thread at a time (the limiter); WAL lets readers in other
        # processes (a CLI, a second node on the same disk) read while we write.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            # Before any table is made (a new file): afterwards only a VACUUM can change it.
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("BEGIN IMMEDIATE")
            schema.create_schema(self._db, self.dialect)
            self._migrate_legacy()
            schema.run_migrations(self._db, self.dialect, path)
            self._db.execute("COMMIT")
            self._convert_to_incremental_vacuum()
        except BaseException:
            self._db.close()
            raise
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

    def _convert_to_incremental_vacuum(self) -> None:
        """Once, for a file made before hotfn chose incremental auto-vacuum: VACUUM it, which
        rewrites it in that mode. Skipped (and said) where the disk lacks room for the copy or
        another process holds the file; the store works as before, without giving space back."""
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != _AUTO_VACUUM_NONE:
            return
        size = os.path.getsize(self.path)
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free
        if free < 2 * size + (64 << 20):
            log.warning("%s: not converted to incremental auto-vacuum (VACUUM needs about %d MB "
                        "free beside it, %d MB are): space freed by purges stays in the file",
                        self.path, 2 * size >> 20, free >> 20)
            return
        log.info("%s: converting to incremental auto-vacuum, once (VACUUM of %d MB)",
                 self.path, size >> 20)
        try:
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("%s: could not convert to incremental auto-vacuum (%s); will try at the "
                        "next start", self.path, exc)

    def _migrate_legacy(self) -> None:
        """Bring a database of schema 1 or 2 (before the shared migrations) up to 3."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
        if "record" in columns:
            # Version 1 kept each call as one JSON document; version 2 has a column per field.
            self._db.execute("ALTER TABLE calls RENAME TO calls_v1")
            for index in ("calls_by_app_time", "calls_by_route_time", "calls_by_time"):
                self._db.execute(f"DROP INDEX IF EXISTS {index}")
            schema.create_schema(self._db, self.dialect)
            rows = self._db.execute("SELECT record FROM calls_v1").fetchall()
            self._db.executemany(
                f"INSERT OR REPLACE INTO calls ({CALL_COLUMNS}) VALUES ({CALL_PLACEHOLDERS})",
                [tuple(json.loads(r[0]).get(f, CALL_DEFAULTS.get(f)) for f in CALL_FIELDS)
                 for r in rows],
            )
            self._db.execute("DROP TABLE calls_v1")
        elif "attempts" not in columns:
            # Version 3 runs async calls from a queue (call_queue, created by SCHEMA) and counts
            # their attempts. A version-2 async call still queued or running was only ever in
            # that server's memory: its request is gone, so it can never run; say so.
            self._db.execute("ALTER TABLE calls ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
            self._db.execute("ALTER TABLE calls ADD COLUMN node_id TEXT")
            self._db.execute("UPDATE calls SET attempts = 1 WHERE started_at IS NOT NULL")
            self._db.execute(
                "UPDATE calls SET status = 'error', error = 'lost: the server stopped before "
                "this call finished (recorded by a hotfn without a durable queue)' "
                "WHERE status IN ('queued', 'running')")

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._lock:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(self._db)
                        self._db.execute("COMMIT")
                    except BaseException:
                        # SQLite may have rolled back already (a full disk does that).
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                        raise
                    return result
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"the store ({self.path}) is failing: {exc}") from exc

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def purge(self, older_than: float) -> int:
        removed = await super().purge(older_than)
        await self._give_space_back()
        return removed

    async def _give_space_back(self) -> None:
        """Hand the file's free pages back to the file system, and cut the WAL back."""

        def run() -> None:
            with self._lock:
                try:
                    # Run to its end as a script: execute() steps it once, which frees one page.
                    self._db.executescript("PRAGMA incremental_vacuum;")
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                except sqlite3.Error as exc:
                    raise StoreUnavailable(f"the store ({self.path}) is failing: {exc}") from exc

        await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def changes_since(self, seq: int) -> ChangeFeed:
        # Asked on every miss (a request for an app or route this node does not know) and by
        # the periodic refresh: when nothing changed, the reader connection says so on this
        # thread (as find_token reads), with no hop to the writer's thread and no place in its
        # queue, so that a flood of requests for no such route costs the store nothing more.
        try:
            row = self._reader.execute(
                "SELECT value FROM meta WHERE key = 'routes_version'").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the store ({self.path}) is failing: {exc}") from exc
        if row is not None and int(row[0]) == seq:
            return ChangeFeed(seq, [], True)
        return await super().changes_since(seq)

    async def find_token(self, secret_hash: str) -> Token | None:
        # On this thread, over the reader connection (see __init__); autocommit, so each read
        # sees every commit made before it, by any process.
        try:
            row = self._reader.execute(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?",
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

    async def close(self) -> None:
        def work() -> None:
            with self._lock:
                self._db.close()
                self._reader.close()

        await trio.to_thread.run_sync(work, limiter=self._limiter)

