"""Where apps, routes, call records and logs live: the ``Store`` interface (base.py) and its
implementations, SQLite embedded (sqlite.py, the default) and PostgreSQL for several nodes
(postgres.py), which share their schema (schema.py) and their queries (sql.py); and what is
known of a store's health without asking it (health.py), kept by a probe its owner runs
(``Store.watch``).

Nothing outside this package knows which implementation it has.

May import: ``hotfn.models``, and nothing else of hotfn.
"""

from __future__ import annotations

from .base import (CallRequest, Change, ChangeFeed, Claim, ClaimedCall, Conflict, NodeInfo,
                   NotFound, QueueBounds, QueueFull, QuotaExceeded, Store, StoreError,
                   StoreUnavailable, StoreUnreachable, display_url)
from .health import StoreHealth
from .schema import SCHEMA_VERSION
from .sqlite import SqliteStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


def open_store(location: str) -> Store:
    """The store at ``location``: a postgresql:// URL, or else a SQLite file path."""
    if is_postgres_url(location):
        from .postgres import PostgresStore  # psycopg is needed only by those who use it

        return PostgresStore(location)
    return SqliteStore(location)


__all__ = ["SCHEMA_VERSION", "CallRequest", "Change", "ChangeFeed", "Claim", "ClaimedCall", "Conflict", "NodeInfo",
           "NotFound", "QueueBounds", "QueueFull", "QuotaExceeded", "SqliteStore", "Store",
           "StoreError", "StoreHealth", "StoreUnavailable", "StoreUnreachable", "display_url",
           "is_postgres_url",
           "open_store"]
