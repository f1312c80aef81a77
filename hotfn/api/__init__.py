"""The HTTP API's meaning: admin endpoints for apps, routes, calls, tokens and nodes, the
operator's endpoints, and function invocation. Requests and responses are plain values here (no
sockets, no h11): hotfn.http turns bytes into an ApiRequest and an ApiResponse into bytes.

A module per resource holds its handlers (apps, routes, calls, tokens, nodes; operator for health,
stats, series, metrics, the dashboard and the version; invocation for ``/r/``), each a function
``(api, request, match) -> ApiResponse`` marked with ``messages.needs``; sessions the dashboard's
sign-in; core holds the ``Api``, its background tasks and the dispatch table, and applies
browsers' rules (Host, Origin, JSON; function pages' sandbox) on the way in and out.

May import: ``hotfn.cluster``, ``hotfn.async_calls``,
``hotfn.observe``, ``hotfn.invoke``, ``hotfn.access``, ``hotfn.pool``, ``hotfn.store``,
``hotfn.drivers``, ``hotfn.models``, ``hotfn.ui``.
"""

from .core import Api, ApiConfig
from .messages import ApiError, ApiRequest, ApiResponse, error_response, json_response

__all__ = [
    "Api", "ApiConfig", "ApiError", "ApiRequest", "ApiResponse", "error_response", "json_response",
]
