"""The shared store: PostgreSQL, for several hotfn nodes (``--db postgresql://...``).

The queries are the shared ones (``sql.SqlStore``); psycopg's calls block, so each runs on a
worker thread (``trio.to_thread``) with a connection from a ``psycopg_pool`` pool, and a
limiter no larger than the pool. The async-call claim takes rows with ``FOR UPDATE SKIP
LOCKED``: concurrent nodes get disjoint calls without waiting for each other.

Every app or route change sends ``NOTIFY hotfn_changes`` in its transaction; ``wait_for_changes``
listens on a connection of its own, so every node learns of a change as it commits.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, TypeVar

import psycopg
import psycopg_pool
import trio

from . import schema
from .base import StoreError, StoreUnavailable, display_url
from .sql import SqlStore

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "hotfn_changes"
# One schema creation at a time across nodes starting together (CREATE ... IF NOT EXISTS
# is not safe against a concurrent twin).
_SCHEMA_LOCK = 0x686F74666E  # "hotfn"
# Longest one wait for a notification blocks its thread: bounds how long close() waits.
_LISTEN_SLICE = 1.0


class PostgresStore(SqlStore):
    dialect = schema.POSTGRES
    integrity_errors = (psycopg.errors.IntegrityError,)

    def __init__(self, url: str, *, max_connections: int = 8, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.where = display_url(url)
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max_connections, open=False, timeout=connect_timeout,
            kwargs={"connect_timeout": max(1, int(connect_timeout))}, name="hotfn")
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
            with self._pool.connection() as conn:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    db = _PgDb(conn)
                    schema.create_schema(db, self.dialect)
                    schema.run_migrations(db, self.dialect, self.where)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._pool.close()
            raise StoreError(f"cannot use the PostgreSQL store {self.where}: {exc}") from None
        except BaseException:
            self._pool.close()
            raise
        self._limiter = trio.CapacityLimiter(max_connections)
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection | None = None
        self._closed = False

    async def _run(self, work: Callable[[Any], T]) -> T:
        def run() -> T:
            try:
                with self._pool.connection() as conn:
                    with conn.transaction():
                        return work(_PgDb(conn))
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                raise StoreUnavailable(f"the store ({self.where}) is failing: "
                                       f"{str(exc).strip()}") from exc

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    def _after_change(self, db: Any, seq: int) -> None:
        # Delivered when (and only if) the transaction commits.
        db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(seq)))

    async def wait_for_changes(self, timeout: float) -> None:
        deadline = trio.current_time() + timeout
        while (left := deadline - trio.current_time()) > 0:
            try:
                notified = await trio.to_thread.run_sync(
                    self._listen, min(left, _LISTEN_SLICE), abandon_on_cancel=True)
            except psycopg.Error as exc:
                # Polling (the caller's timeout) goes on; the next wait connects again.
                log.warning("listening for route changes on %s failed: %s", self.where, exc)
                await trio.sleep(left)
                return
            if notified:
                return

    def _listen(self, timeout: float) -> bool:
        with self._listen_lock:
            if self._closed:
                return False
            try:
                if self._listener is None or self._listener.closed:
                    self._listener = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                    self._listener.execute(f"LISTEN {CHANNEL}")
                    # What changed before LISTEN took effect the caller reads anyway.
                    return True
                return any(True for _ in self._listener.notifies(timeout=timeout, stop_after=1))
            except psycopg.Error:
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
                raise

    async def close(self) -> None:
        def work() -> None:
            self._closed = True
            with self._listen_lock:
                if self._listener is not None:
                    self._listener.close()
            self._pool.close()

        await trio.to_thread.run_sync(work)


class _PgDb:
    """What the shared queries need of a connection: execute(sql, args) -> cursor."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, query: str, args: Any = ()) -> psycopg.Cursor:
        return self._conn.execute(query, args or None)  # type: ignore[arg-type]

    def executemany(self, query: str, rows: Any) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(query, rows)
