"""The shared store: PostgreSQL, for several hotfn nodes (``--db postgresql://...``).

The queries are the shared ones (``sql.SqlStore``); psycopg's calls block, so each runs on a
worker thread (``trio.to_thread``) with a connection from a ``psycopg_pool`` pool, and a
limiter no larger than the pool. The async-call claim takes rows with ``FOR UPDATE SKIP
LOCKED``: concurrent nodes get disjoint calls without waiting for each other.

Every app or route change sends ``NOTIFY hotfn_changes`` in its transaction; ``wait_for_changes``
listens on a connection of its own, so every node learns of a change as it commits.

A server that stops answering (down, restarting, cut off) opens the circuit of ``health``: from
then on requests fail at once (``StoreUnreachable``, a 503 for the API) rather than each waiting
for a connection, and only the probe (``probe``, on a connection of its own) knocks, until the
server answers again. Accepted async calls and their claims are committed with
``synchronous_commit`` on, whatever the server's default; everything else keeps that default
(which a server may set off for speed: a crash of it then loses the last moments of call
records, as a SIGKILL of hotfn would).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, TypeVar

import psycopg
import psycopg_pool
import trio

from . import schema
from .base import StoreError, StoreUnavailable, StoreUnreachable, display_url
from .sql import SqlStore

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "hotfn_changes"
# One schema creation at a time across nodes starting together (CREATE ... IF NOT EXISTS
# is not safe against a concurrent twin).
_SCHEMA_LOCK = 0x686F74666E  # "hotfn"
# Longest one wait for a notification blocks its thread: bounds how long close() waits.
_LISTEN_SLICE = 1.0
# Longest a request waits for a connection from the pool. The limiter lets no more requests
# in than the pool has connections, so a wait is for a connection being made: on a server
# that does not answer, this is how long the first requests take to learn it.
_CONNECTION_WAIT = 2.0
# The probe's own connection: how long it may take to connect (libpq's least), and a query.
_PROBE_CONNECT_TIMEOUT = 2
_PROBE_STATEMENT_TIMEOUT_MS = 2000
_PROBE_TIMEOUT = 3.0  # and in all, connecting included
# SQLSTATEs that say the server is gone or going: connection exceptions (08...), and the
# server shutting down or starting (57P01-57P03). A client-side failure has none.
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")


def _reason(exc: BaseException) -> str:
    """The first line of what went wrong (libpq adds hints on the lines after)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server does not answer (not that it refused what was asked)."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(_UNREACHABLE_STATES)


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
                if conn.execute("SHOW fsync").fetchone()[0] == "off":
                    log.warning("PostgreSQL at %s runs with fsync off: a crash of its machine "
                                "may lose accepted async calls (a crash of PostgreSQL alone "
                                "does not)", self.where)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._pool.close()
            raise StoreError(f"cannot use the PostgreSQL store {self.where}: {exc}") from None
        except BaseException:
            self._pool.close()
            raise
        self._limiter = trio.CapacityLimiter(max_connections)
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection | None = None
        self._probe_lock = threading.Lock()
        self._prober: psycopg.Connection | None = None
        self._closed = False
        self.health.where = self.where

    async def _run(self, work: Callable[[Any], T]) -> T:
        self.health.refuse_if_unreachable()

        def run() -> T:
            try:
                with self._pool.connection(timeout=_CONNECTION_WAIT) as conn:
                    with conn.transaction():
                        return work(_PgDb(conn))
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                message = f"the store ({self.where}) is failing: {str(exc).strip()}"
                if _unreachable(exc):
                    raise StoreUnreachable(message) from exc
                raise StoreUnavailable(message) from exc

        try:
            return await trio.to_thread.run_sync(run, limiter=self._limiter)
        except StoreUnreachable as exc:
            self.health.unreachable(_reason(exc.__cause__ or exc))
            raise

    def _commit_durably(self, db: Any) -> None:
        # Raised, never lowered: a server's "remote_apply" (replicas) stays as it is.
        db.execute("SELECT set_config('synchronous_commit', 'on', true) "
                   "WHERE current_setting('synchronous_commit') = 'off'")

    async def probe(self) -> None:
        # On a connection of its own, past the circuit: this is what closes it again.
        try:
            with trio.fail_after(_PROBE_TIMEOUT):
                await trio.to_thread.run_sync(self._probe, abandon_on_cancel=True)
        except trio.TooSlowError:
            # (A server cut off by the network: the thread waits on, and later probes say so.)
            self.health.unreachable(f"no answer within {_PROBE_TIMEOUT:g} s")
        except StoreUnreachable as exc:
            self.health.unreachable(_reason(exc.__cause__ or exc))
        except StoreUnavailable as exc:
            self.health.failing(_reason(exc.__cause__ or exc))
        else:
            if not self.health.reachable:
                # The pool's connections died with the server: drop them before requests
                # come back, or each would fail once and open the circuit again.
                await trio.to_thread.run_sync(self._pool.check)
            self.health.ok()

    def _probe(self) -> None:
        if not self._probe_lock.acquire(blocking=False):
            raise StoreUnreachable("the last probe is still waiting for an answer")
        try:
            if self._closed:
                return
            try:
                if self._prober is None or self._prober.closed:
                    self._prober = psycopg.connect(
                        self.url, autocommit=True, connect_timeout=_PROBE_CONNECT_TIMEOUT,
                        options=f"-c statement_timeout={_PROBE_STATEMENT_TIMEOUT_MS}")
                # A write, so that a server that cannot write (a full disk) says so.
                self._prober.execute("INSERT INTO meta (key, value) VALUES ('checked_at', %s) "
                                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                     (repr(time.time()),))
            except psycopg.Error as exc:
                if self._prober is not None and (self._prober.broken or _unreachable(exc)):
                    self._prober.close()
                    self._prober = None
                message = f"the store ({self.where}) is failing: {str(exc).strip()}"
                if _unreachable(exc):
                    raise StoreUnreachable(message) from exc
                raise StoreUnavailable(message) from exc
        finally:
            self._probe_lock.release()

    def _after_change(self, db: Any, seq: int) -> None:
        # Delivered when (and only if) the transaction commits.
        db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(seq)))

    async def wait_for_changes(self, timeout: float) -> None:
        if not self.health.reachable:
            await trio.sleep(timeout)  # polled: the probe knocks for everyone meanwhile
            return
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
            with self._probe_lock:
                if self._prober is not None:
                    self._prober.close()
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
