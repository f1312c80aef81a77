"""A hot Python function: one warm container serves request after request."""

import sys

calls = 0  # lives as long as the warm container: proof that it is reused


def handler(request):
    global calls
    calls += 1
    name = request.query_param("name") or request.text().strip() or "world"
    print(f"greeting {name!r} (call {calls} of this container)", file=sys.stderr)
    return f"Hello, {name}! (call {calls} of this container)\n"
