"""The HTTP API's meaning: admin endpoints for apps, routes, calls, tokens and nodes, the operator's
endpoints, and function invocation. Requests and responses are plain values here (no sockets, no
h11): hotfn.http turns bytes into an ApiRequest and an ApiResponse into bytes.

May import: every layer below the HTTP front: ``hotfn.cluster``, ``hotfn.async_calls``, ``hotfn.observe``, ``hotfn.invoke``, ``hotfn.access``, ``hotfn.pool``, ``hotfn.store``, ``hotfn.drivers``, ``hotfn.models``, ``hotfn.ui``.
"""

from .core import Api, ApiConfig
from .messages import ApiError, ApiRequest, ApiResponse, error_response, json_response

__all__ = [
    "Api", "ApiConfig", "ApiError", "ApiRequest", "ApiResponse", "error_response", "json_response",
]
