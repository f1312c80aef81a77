"""What makes several nodes one service: the node lock and the node registry with its heartbeat
(node), the route table kept up to date from the store's change feed (routing), and HAProxy's
configuration for the nodes (lb, ``hotfn lb-config``; imported by its own name).

May import: ``hotfn.pool``, ``hotfn.store``, ``hotfn.models``.
"""

from .node import STALE_AFTER, NodeIdError, NodeLock, Registration
from .routing import RouteSync, RouteTable

__all__ = [
    "STALE_AFTER", "NodeIdError", "NodeLock", "Registration", "RouteSync", "RouteTable",
]
