"""Where apps, routes, call records and logs live: the ``Store`` interface and its
implementations (SQLite embedded, PostgreSQL for several nodes)."""

from .sqlite import (CallRequest, Claim, ClaimedCall, Conflict, NotFound, SqliteStore, Store,
                     StoreError, StoreUnavailable)

__all__ = ["CallRequest", "Claim", "ClaimedCall", "Conflict", "NotFound", "SqliteStore", "Store",
           "StoreError", "StoreUnavailable"]
