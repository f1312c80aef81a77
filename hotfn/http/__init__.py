"""The HTTP/1.1 front: bytes in from clients, ApiRequests to the API, ApiResponses back out as
bytes. server is the listener and its bounds, connection serves one connection (h11 for what the
fast reader in simple does not take; the only h11 importer besides hotfn.protocol.httpformat).

May import: ``hotfn.api`` (its request and response types, and its handler), nothing else.
"""

from .server import HttpConfig, HttpServer

__all__ = ["HttpConfig", "HttpServer"]
