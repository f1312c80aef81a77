"""hotfn_runtime: write a hotfn function in Python.

    # func.py
    def handler(request):
        return f"hello {request.query_param('name', 'world')}"

The same file serves hot (msgpack frames, docs/protocol.md) and cold (one shot: env + stdin).
"""

from .types import Request, Response

__all__ = ["Request", "Response"]
