"""hotfn_runtime: write a hotfn function in Python.

    # func.py
    def handler(request):
        return f"hello {request.query_param('name', 'world')}"

The same file serves hot (msgpack frames, docs/protocol.md) and cold (one shot: env + stdin).
"""

from .types import Request, Response

# The one version string: the wheel's metadata (pyproject: dynamic) and the ready frame's
# runtime ("hotfn-python/<version>") both read it.
__version__ = "0.1.0"

__all__ = ["Request", "Response", "__version__"]
